// Nothing leaks: no fd stays open after verify/open/run/close, no pin or bpffs mount stays behind,
// including when the process is ended by a signal or exits without close().
import test from 'ava';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { bpfAvailable, livePinDirs, openLoaded, PIN_PREFIX, verifyObject } from '../src/kernel/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (n: string) => join(root, 'fixtures/build', n);
const corpus = (n: string) => fileURLToPath(new URL(`../../shared/corpus/ebpf-samples/${n}`, import.meta.url));

const avail = await bpfAvailable('libbpf');
if (!avail.ok) console.error(`\n*** kernel-leaks: SKIPPING bpf() tests: ${avail.reason} ***\n`);
const kernelTest = avail.ok ? test.serial : test.skip;

/** Open fds of this process that refer to BPF objects or anything else (by link target). */
function fds(): string[] {
  return readdirSync('/proc/self/fd').map((fd) => {
    try {
      return `${fd}:${readlinkSync(`/proc/self/fd/${fd}`)}`;
    } catch {
      return `${fd}:?`;
    }
  }).filter((x) => !x.endsWith(':?')).sort();
}
const bpfFds = () => fds().filter((f) => /anon_inode:bpf/.test(f));

/** What process `pid` could leave behind: its pin dirs in /tmp and /sys/fs/bpf, its bpffs mounts.
 * (Other test files load objects concurrently, so only this pid's names count.) */
function leftovers(pid = process.pid): string[] {
  const mine = `${PIN_PREFIX}${pid}-`;
  const out: string[] = [];
  for (const dir of [tmpdir(), '/sys/fs/bpf']) {
    try {
      for (const e of readdirSync(dir)) if (e.startsWith(mine)) out.push(join(dir, e));
    } catch {
      /* absent */
    }
  }
  for (const l of readFileSync('/proc/mounts', 'utf8').split('\n')) if (l.includes(mine)) out.push(`mount: ${l}`);
  return out.sort();
}

const fixturesBuilt = existsSync(fixture('xdp_parser.o'));

kernelTest('verify, open, run, map access and close leave no fd behind (libbpf)', async (t) => {
  if (!fixturesBuilt) return t.fail('fixtures not built: run make -C fixtures');
  // warm up lazily opened descriptors (koffi, libbpf, libc) before counting
  await verifyObject(fixture('xdp_parser.o'));
  const before = fds();
  for (const f of ['xdp_parser.o', 'unsafe.o', 'tc_classifier.o', 'legacy_maps.o']) await verifyObject(fixture(f));
  await verifyObject(corpus('invalid/badsymsize.o'));
  await verifyObject(corpus('build/tail_call_bad.o'));
  for (let i = 0; i < 3; i++) {
    const o = await openLoaded(fixture('xdp_parser.o'));
    t.true(bpfFds().length > 0, 'programs and maps are open while loaded');
    await o.testRun(o.programs[0]!.name, { dataIn: new Uint8Array(64) });
    const m = (await o.maps())[0]!;
    await o.readMap(m.name);
    t.true(o.mapFd(m.name) >= 0);
    t.true(o.loadedInsns(o.programs[0]!.name)!.length > 0);
    await o.close();
    await o.close(); // idempotent
  }
  // a usage error thrown half-way through a load must close what was opened
  await t.throwsAsync(() => openLoaded(corpus('build/divzero.o'), { progType: 'no_such_type' }), { message: /unknown program type/ });
  await t.throwsAsync(() => verifyObject(corpus('build/divzero.o'), { progType: 'no_such_type' }), { message: /unknown program type/ });
  t.deepEqual(fds(), before);
});

const legacyFixture = (n: string) => join(root, 'fixtures/legacy/build', n);

kernelTest('k2\'s legacy-maps loader leaves no fd or map behind (verify, open, run, maps, errors)', async (t) => {
  const names = ['xdp_maps.o', 'map_in_map.o', 'tailcall.o', 'kprobe.o', 'socket.o'];
  if (!names.every((n) => existsSync(legacyFixture(n)))) return t.fail('fixtures/legacy not built: run make -C fixtures');
  await verifyObject(legacyFixture('xdp_maps.o')); // warm up
  const before = fds();
  for (const n of names) {
    const r = await verifyObject(legacyFixture(n));
    t.is(r.loader, 'legacy');
  }
  for (const n of ['linux/sockex3_kern.o', 'linux/test_map_in_map_kern.o', 'cilium/bpf_lxc.o', 'linux/xdp_redirect_cpu_kern.o']) await verifyObject(corpus(n));
  for (const n of names) {
    const o = await openLoaded(legacyFixture(n));
    t.true(bpfFds().length > 0, `${n}: maps and programs are open while loaded`);
    for (const m of await o.maps()) if (!/prog_array|of_maps/.test(m.type)) await o.readMap(m.name);
    for (const m of await o.maps()) t.true(o.mapFd(m.name) >= 0);
    const p = o.programs.find((x) => x.type !== 'kprobe');
    if (p) await o.testRun(p.name, { dataIn: new Uint8Array(64) });
    const accepted = o.programs.find((x) => x.accepted);
    if (accepted) t.true(o.loadedInsns(accepted.name)!.length > 0);
    await o.close();
    await o.close();
  }
  const sockex3 = await openLoaded(corpus('linux/sockex3_kern.o')); // prog array filled with program fds
  await sockex3.close();
  // errors half-way: an unknown --type, a map-in-map whose inner map is missing
  await t.throwsAsync(() => openLoaded(corpus('linux/lwt_len_hist_kern.o'), { progType: 'no_such_type' }), { message: /unknown program type/ });
  await t.throwsAsync(() => verifyObject(corpus('build/map_in_map_legacy.o'), { loader: 'legacy', progType: 'no_such_type' }), { message: /unknown program type/ });
  t.deepEqual(fds(), before);
});

kernelTest('the bpftool loader leaves no pin, mount or fd behind', async (t) => {
  if (!fixturesBuilt) return t.fail('fixtures not built: run make -C fixtures');
  const before = leftovers();
  const fdsBefore = fds();
  for (const f of ['xdp_parser.o', 'unsafe.o', 'legacy_maps.o']) await verifyObject(fixture(f), { loader: 'bpftool' });
  await verifyObject(corpus('build/tail_call_bad.o'), { loader: 'bpftool' });
  const o = await openLoaded(fixture('xdp_parser.o'), { loader: 'bpftool' });
  t.is(livePinDirs(), 1, 'a loaded object holds one private pin dir');
  t.true(leftovers().length > before.length, 'its private bpffs is visible while loaded');
  await o.testRun(o.programs[0]!.name, { dataIn: new Uint8Array(64) });
  const m = (await o.maps())[0]!;
  const fd = o.mapFd(m.name); // opened from the pin, closed by close()
  t.true(fd >= 0);
  t.is(o.mapFd(m.name), fd);
  await o.close();
  t.is(livePinDirs(), 0);
  t.deepEqual(leftovers(), before);
  t.deepEqual(fds(), fdsBefore);
});

/** Runs a child that loads with bpftool, waits, and is then ended by `how`. */
async function childLeaves(how: 'SIGTERM' | 'SIGINT' | 'exit-without-close' | 'throw'): Promise<{ during: string[]; after: string[]; before: string[]; code: number | null; signal: string | null }> {
  const dir = mkdtempSync(join(tmpdir(), 'k2-leak-child-'));
  const script = join(dir, 'child.mts');
  const index = join(root, 'src/kernel/index.ts');
  writeFileSync(script, `
import { openLoaded } from ${JSON.stringify(index)};
import { readFileSync } from 'node:fs';
const o = await openLoaded(${JSON.stringify(fixture('xdp_parser.o'))}, { loader: 'bpftool' });
const mounts = readFileSync('/proc/mounts', 'utf8').split('\\n').filter((l) => l.includes(${JSON.stringify(PIN_PREFIX)} + process.pid + '-'));
console.log(JSON.stringify({ pid: process.pid, mounts }));
console.log('READY');
const how = ${JSON.stringify(how)};
if (how === 'exit-without-close') process.exit(0);
if (how === 'throw') setTimeout(() => { throw new Error('boom'); }, 10);
setInterval(() => {}, 1000);
`);
  try {
    const child = execa('node', ['--import=tsx', script], { cwd: root, reject: false, all: false });
    let out = '';
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('READY')) resolve();
      });
      child.once('exit', () => reject(new Error(`child exited early: ${out}`)));
    });
    await ready;
    const hello = JSON.parse(out.split('\n')[0]!) as { pid: number; mounts: string[] };
    const before = leftovers(hello.pid);
    if (how === 'SIGTERM' || how === 'SIGINT') child.kill(how);
    const r = await child;
    return { during: hello.mounts, before, after: leftovers(hello.pid), code: r.exitCode ?? null, signal: r.signal ?? null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const how of ['SIGTERM', 'SIGINT', 'exit-without-close', 'throw'] as const) {
  kernelTest(`pins are removed when the process ends by ${how}`, async (t) => {
    if (!fixturesBuilt) return t.fail('fixtures not built: run make -C fixtures');
    const r = await childLeaves(how);
    t.is(r.during.length, 1, 'the child had its private bpffs mounted');
    t.true(r.before.length > 0 || how === 'exit-without-close' || how === 'throw', 'its pins were visible from outside while it ran');
    t.deepEqual(r.after, [], 'nothing of the child is left');
    if (how === 'SIGTERM' || how === 'SIGINT') t.is(r.signal, how, 'the signal still ends the process');
    if (how === 'throw') t.not(r.code, 0);
  });
}
