import test from 'ava';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { k2, k2clang, repo } from './helpers/paths.js';
import { encodeMessage, MessageReader, MAX_MESSAGE } from '../src/server/protocol.js';
import { serverPlace } from '../src/server/paths.js';
import { verifyObject } from '../src/kernel/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2server-'));
const caches: string[] = [];

/** A private cache directory, hence a private server (the socket's name hashes the cache root). */
function freshCache(name: string): string {
  const d = join(tmp, `cache-${name}`);
  caches.push(d);
  return d;
}

// Every server a test started is stopped, whatever happened (they would also stop when their
// cache directory goes, or after their idle time).
test.after.always(async () => {
  for (const c of caches) await execa('node', [k2, 'server', 'stop'], { reject: false, env: { K2_CACHE_DIR: c } });
  rmSync(tmp, { recursive: true, force: true });
});

// A program k2 shrinks (11 → 8 slots: 32-bit arithmetic without ALU32) and whose search converges
// long before its budget, so every run gives the same bytes whatever the machine's load.
const SRC = join(tmp, 'tiny.c');
writeFileSync(SRC, `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int tiny(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	__u32 x = len * 3 + skb->protocol;

	if (x > 1000)
		return 0;
	return x;
}

char LICENSE[] SEC("license") = "GPL";
`);
const FLAGS = ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`];
// k2-clang runs in a project whose configuration gives each solver query 10 s: the search converges
// with the same answers however loaded the machine is (a query that times out would change them)
const PROJECT = join(tmp, 'proj');
mkdirSync(PROJECT);
writeFileSync(join(PROJECT, 'package.json'), JSON.stringify({ name: 'tiny', k2: { timeoutMs: 10000 } }));

interface Rec { via: string; cache: string; slotsBefore: number; slotsAfter: number; status: string }

/** k2-clang on tiny.c into OUT with a JSON report; returns the report's record and stderr. */
async function compile(out: string, env: Record<string, string>, node: string[] = []): Promise<{ rec: Rec; stderr: string }> {
  const report = `${out}.json`;
  rmSync(report, { force: true });
  const r = await execa('node', [...node, k2clang, ...FLAGS, '-c', SRC, '-o', out, `--k2-report=${report}`], { cwd: PROJECT, reject: false, env: { K2_BUDGET_MS: '20000', ...env } });
  if (r.exitCode !== 0) throw new Error(`k2-clang failed (${r.exitCode}): ${r.stderr}`);
  return { rec: (JSON.parse(readFileSync(report, 'utf8')) as { objects: Rec[] }).objects[0]!, stderr: String(r.stderr) };
}

/** stderr lines other than the object's line and the DWARF note (what K2_SERVER=0 prints too). */
const otherLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l && !/^k2: \S+ \d+ → \d+ slots/.test(l) && !l.startsWith('k2: note: DWARF'));

interface Status { running: boolean; socket: string; lock: string; pid?: number; served?: number; k2?: string }
async function status(cache: string): Promise<Status> {
  const r = await execa('node', [k2, 'server', 'status', '--json'], { reject: false, env: { K2_CACHE_DIR: cache } });
  t_is(r.exitCode, (JSON.parse(r.stdout) as Status).running ? 0 : 1);
  return JSON.parse(r.stdout) as Status;
}
const t_is = (a: unknown, b: unknown): void => { if (a !== b) throw new Error(`expected ${String(b)}, got ${String(a)}`); };

/** The output of k2-clang without any server (K2_SERVER=0), the reference the server must match. */
let reference: Promise<Buffer> | null = null;
function inProcessOutput(): Promise<Buffer> {
  reference ??= (async () => {
    const out = join(tmp, 'reference.o');
    const { rec } = await compile(out, { K2_CACHE_DIR: freshCache('reference'), K2_SERVER: '0' });
    if (rec.via !== 'process') throw new Error(`K2_SERVER=0 ran ${rec.via}`);
    return readFileSync(out);
  })();
  return reference;
}

test('messages survive any split into chunks; an oversized length is refused before allocating', (t) => {
  const msgs = [{ type: 'alive' }, { type: 'progress', msg: 'é'.repeat(3000) }, { type: 'stopping' }] as const;
  const wire = Buffer.concat(msgs.map((m) => encodeMessage(m)));
  for (const size of [1, 3, 7, 1000, wire.length]) {
    const r = new MessageReader();
    const got: unknown[] = [];
    for (let i = 0; i < wire.length; i += size) got.push(...r.push(wire.subarray(i, i + size)));
    t.deepEqual(got, msgs, `chunks of ${size}`);
  }
  const head = Buffer.alloc(4);
  head.writeUInt32BE(MAX_MESSAGE + 1, 0);
  t.throws(() => new MessageReader().push(head), { message: /larger than/ });
});

test('the socket lives in a private directory; a too-long path falls back to a short one', (t) => {
  const p = serverPlace('/home/u/.cache/k2', 'abc', {});
  t.is(p.dir, '/home/u/.cache/k2/server');
  t.regex(p.socket, /^\/home\/u\/\.cache\/k2\/server\/[0-9a-f]{20}\.sock$/);
  t.not(serverPlace('/home/u/.cache/k2', 'abd', {}).socket, p.socket, 'another k2 build, another server');
  t.is(serverPlace('/c', 'abc', { XDG_RUNTIME_DIR: '/run/user/7' }).dir, '/run/user/7/k2');
  const long = serverPlace(`/${'x'.repeat(120)}`, 'abc', {});
  t.true(long.socket.length <= 100, long.socket);
  t.false(p.lock.includes('\0'));
});

test.serial('k2-clang starts the server on first use and gets the same object from it as without; k2 server status and stop', async (t) => {
  const cache = freshCache('start');
  t.false((await status(cache)).running);
  const out = join(tmp, 'start.o');
  const { rec } = await compile(out, { K2_CACHE_DIR: cache });
  t.is(rec.via, 'server');
  t.is(rec.cache, 'miss');
  t.true(rec.slotsAfter < rec.slotsBefore, `${rec.slotsBefore} → ${rec.slotsAfter}`);
  t.true(readFileSync(out).equals(await inProcessOutput()), 'the server\'s object differs from the in-process one');
  const v = await verifyObject(out);
  t.true(v.programs.every((p) => p.verdict === 'accepted'));

  const s = await status(cache);
  t.true(s.running);
  t.is(s.served, 1);
  t.is(statSync(join(s.socket, '..')).mode & 0o777, 0o700, 'socket directory mode');
  t.is(statSync(s.socket).mode & 0o777, 0o600, 'socket mode');
  // a second object goes to the same (already warm) server: a cache hit there
  const again = await compile(join(tmp, 'start2.o'), { K2_CACHE_DIR: cache });
  t.is(again.rec.via, 'server');
  t.is(again.rec.cache, 'hit');
  t.is((await status(cache)).pid, s.pid);

  const stop = await execa('node', [k2, 'server', 'stop'], { env: { K2_CACHE_DIR: cache } });
  t.regex(stop.stdout, /stopped/);
  t.false((await status(cache)).running);
  t.false(existsSync(s.socket), 'the stopped server removed its socket');
});

test.serial('two k2-clang processes at once share one server', async (t) => {
  const cache = freshCache('two');
  const [a, b] = await Promise.all([compile(join(tmp, 'two-a.o'), { K2_CACHE_DIR: cache }), compile(join(tmp, 'two-b.o'), { K2_CACHE_DIR: cache })]);
  t.is(a.rec.via, 'server');
  t.is(b.rec.via, 'server');
  const s = await status(cache);
  t.is(s.served, 2);
  const ref = await inProcessOutput();
  t.true(readFileSync(join(tmp, 'two-a.o')).equals(ref));
  t.true(readFileSync(join(tmp, 'two-b.o')).equals(ref));
});

test.serial('a server killed mid-request: the client optimizes in its own process (same object, no message), and the next build replaces the dead server', async (t) => {
  const cache = freshCache('crash');
  const out = join(tmp, 'crash.o');
  // the server this client starts kills itself (SIGKILL) when the object arrives
  const { rec, stderr } = await compile(out, { K2_CACHE_DIR: cache, K2_SERVER_TEST: 'crash-on-request' });
  t.is(rec.via, 'process');
  t.true(readFileSync(out).equals(await inProcessOutput()), 'fallback output differs');
  t.deepEqual(otherLines(stderr), [], 'a fallback looks like K2_SERVER=0');
  const dead = await status(cache);
  t.false(dead.running);
  t.true(existsSync(dead.socket), 'the killed server left its socket file behind');
  // that stale socket does not block the next build: a new server takes its place
  const next = await compile(join(tmp, 'crash2.o'), { K2_CACHE_DIR: cache });
  t.is(next.rec.via, 'server');
  t.true((await status(cache)).running);
  t.true(readFileSync(join(tmp, 'crash2.o')).equals(await inProcessOutput()));
});

test.serial('a server that stops answering: the client gives up after a silence and optimizes in its own process', async (t) => {
  const cache = freshCache('hang');
  const out = join(tmp, 'hang.o');
  const { rec, stderr } = await compile(out, { K2_CACHE_DIR: cache, K2_SERVER_TEST: 'hang-on-request', K2_SERVER_SILENCE_MS: '3000' });
  t.is(rec.via, 'process');
  t.deepEqual(otherLines(stderr), []);
  t.true(readFileSync(out).equals(await inProcessOutput()));
});

test.serial('a server of another k2 build at our socket is not used: the client optimizes in its own process', async (t) => {
  const cache = freshCache('version');
  const place = await status(cache);
  mkdirSync(join(place.socket, '..'), { recursive: true, mode: 0o700 });
  const impostor = spawn('node', [join(repo, 'dist/server/main.js'), '--socket', place.socket, '--lock', place.lock, '--cache-root', cache, '--build-id', 'another-k2-build'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 600 && !existsSync(place.socket); i++) await new Promise((r) => setTimeout(r, 100));
    const s = await status(cache);
    t.is(s.k2, 'another-k2-build');
    const out = join(tmp, 'version.o');
    const { rec, stderr } = await compile(out, { K2_CACHE_DIR: cache });
    t.is(rec.via, 'process');
    t.deepEqual(otherLines(stderr), []);
    t.true(readFileSync(out).equals(await inProcessOutput()));
    t.is((await status(cache)).served, 0);
  } finally {
    impostor.kill('SIGTERM');
  }
});

test.serial('K2_SERVER=0 and "server": false: no server is started', async (t) => {
  const cache = freshCache('off');
  const a = await compile(join(tmp, 'off-a.o'), { K2_CACHE_DIR: cache, K2_SERVER: '0' });
  t.is(a.rec.via, 'process');
  t.false((await status(cache)).running);
  const dir = join(tmp, 'proj-off');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'off', k2: { server: false, timeoutMs: 10000 } }));
  const report = join(dir, 'r.json');
  const r = await execa('node', [k2clang, ...FLAGS, '-c', SRC, '-o', join(dir, 'x.o'), `--k2-report=${report}`], { cwd: dir, env: { K2_CACHE_DIR: cache, K2_BUDGET_MS: '20000' } });
  t.is(r.exitCode, 0);
  t.is((JSON.parse(readFileSync(report, 'utf8')) as { objects: Rec[] }).objects[0]!.via, 'process');
  t.false((await status(cache)).running);
});

test.serial('with a running server, the k2-clang client loads no optimizer, solver, safety or kernel module', async (t) => {
  const cache = freshCache('light');
  await compile(join(tmp, 'light0.o'), { K2_CACHE_DIR: cache }); // starts the server
  const hook = join(tmp, 'trace-hook.mjs');
  const loader = `import { appendFileSync } from 'node:fs'; export async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(join(tmp, 'modules.txt'))}, r.url + '\\n'); return r; }`;
  writeFileSync(hook, `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(loader)}));\n`);
  rmSync(join(tmp, 'modules.txt'), { force: true });
  const { rec } = await compile(join(tmp, 'light.o'), { K2_CACHE_DIR: cache }, ['--import', hook]);
  t.is(rec.via, 'server');
  const loaded = readFileSync(join(tmp, 'modules.txt'), 'utf8').split('\n').filter(Boolean);
  t.true(loaded.some((u) => u.endsWith('/dist/cli/cc.js')), 'the trace saw k2-clang\'s modules');
  const heavy = loaded.filter((u) => /\/dist\/(driver|synth|smt|safety|kernel|analysis|testgen|elf|ir)\/|z3-solver|koffi/.test(u));
  t.deepEqual(heavy, []);
});

test.serial('an idle server stops by itself and removes its socket', async (t) => {
  const cache = freshCache('idle');
  await compile(join(tmp, 'idle.o'), { K2_CACHE_DIR: cache, K2_SERVER_IDLE_MS: '1000' });
  const s = await status(cache);
  let running = s.running;
  for (let i = 0; i < 120 && running; i++) {
    await new Promise((r) => setTimeout(r, 500));
    running = (await status(cache)).running;
  }
  t.false(running, 'the server did not stop within a minute of idling');
  t.false(existsSync(s.socket));
});
