// `k2 verify` and `k2 run` as a user sees them: output formats, help text, exit codes 0/1/2/3.
// Needs `npx tsc -p .` first (the CLI runs from dist/).
import test from 'ava';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { bpfAvailable } from '../src/kernel/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (n: string) => join(root, 'fixtures/build', n);
const k2 = (...args: string[]) => execa('node', [join(root, 'bin/k2.js'), ...args], { reject: false, cwd: root });

const avail = await bpfAvailable('libbpf');
if (!avail.ok) console.error(`\n*** kernel-cli: SKIPPING bpf() tests: ${avail.reason} ***\n`);
const kernelTest = avail.ok ? test : test.skip;

const PKT = '02000000000102000000000208004500002e1234000040117c54c0000201c63364029c400007001a00006b322066697874757265206563686f212121';

test('verify and run --help document the exit codes', async (t) => {
  for (const cmd of ['verify', 'run']) {
    const r = await k2(cmd, '--help');
    t.is(r.exitCode, 0);
    const out = String(r.stdout);
    for (const code of ['0 ', '1 ', '2 ', '3 ']) t.true(out.includes(`\n  ${code}`), `${cmd} --help lists exit code ${code}`);
    t.regex(out, /Exit status for (verify|run)\b/);
    t.regex(out, /--loader/);
  }
});

test('usage errors exit 2', async (t) => {
  t.is((await k2('verify', fixture('xdp_parser.o'), '--loader', 'nope')).exitCode, 2);
  t.is((await k2('verify')).exitCode, 2);
  t.is((await k2('verify', '/no/such/file.o')).exitCode, 2);
  t.is((await k2('run', fixture('xdp_parser.o'))).exitCode, 2, '--prog is required');
  t.is((await k2('run', fixture('xdp_parser.o'), '--prog', 'xdp_parser', '--data-hex', 'zz')).exitCode, 2);
  t.is((await k2('run', fixture('xdp_parser.o'), '--prog', 'xdp_parser', '--repeat', '0')).exitCode, 2);
  const dir = mkdtempSync(join(tmpdir(), 'k2-cli-'));
  try {
    writeFileSync(join(dir, 'not-elf.o'), 'hello, I am not an ELF file at all, but I am long enough to have a header........');
    const r = await k2('verify', join(dir, 'not-elf.o'));
    t.is(r.exitCode, 2);
    t.regex(String(r.stderr), /not an ELF file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('k2 verify: table, JSON shape and exit 0 when every program is accepted', async (t) => {
  if (!existsSync(fixture('tc_classifier.o'))) return t.fail('fixtures not built: run make -C fixtures');
  const table = await k2('verify', fixture('tc_classifier.o'));
  t.is(table.exitCode, 0, String(table.stderr));
  t.regex(String(table.stdout), /section\s+name\s+type\s+accepted\s+verified_insns\s+xlated_insns/);
  const json = await k2('verify', fixture('tc_classifier.o'), '--json');
  t.is(json.exitCode, 0);
  const j = JSON.parse(String(json.stdout)) as { file: string; programs: Record<string, unknown>[] };
  t.is(j.file, fixture('tc_classifier.o'));
  t.true(j.programs.length >= 3);
  for (const p of j.programs) {
    for (const k of ['section', 'name', 'type', 'accepted', 'verifiedInsns', 'xlatedInsns', 'error', 'log']) t.true(k in p, `program has ${k}`);
    t.is(p.accepted, true);
    t.is(typeof p.verifiedInsns, 'number');
    t.is(typeof p.xlatedInsns, 'number');
    t.is(p.error, null);
  }
});

kernelTest('k2 run: JSON result, exit 1 for a rejected program, exit 2 for bad run input', async (t) => {
  if (!existsSync(fixture('xdp_parser.o'))) return t.fail('fixtures not built: run make -C fixtures');
  const ok = await k2('run', fixture('xdp_parser.o'), '--prog', 'xdp_parser', '--data-hex', PKT, '--json');
  t.is(ok.exitCode, 0, String(ok.stderr));
  const j = JSON.parse(String(ok.stdout)) as { retval: number; durationNs: number; dataOut: string };
  t.deepEqual(Object.keys(j).sort(), ['dataOut', 'durationNs', 'retval']);
  t.is(j.retval, 3, 'XDP_TX for the UDP echo sample');
  t.regex(j.dataOut, /^[0-9a-f]+$/);
  t.is(j.dataOut.length, PKT.length);
  t.not(j.dataOut, PKT, 'the echo rewrote the packet');
  const repeated = await k2('run', fixture('xdp_parser.o'), '--prog', 'xdp_parser', '--data-hex', PKT, '--json', '--repeat', '100');
  t.is(repeated.exitCode, 0);
  t.true(Number.isInteger((JSON.parse(String(repeated.stdout)) as { durationNs: number }).durationNs));
  const rejected = await k2('run', fixture('unsafe.o'), '--prog', 'xdp_unsafe', '--data-hex', PKT);
  t.is(rejected.exitCode, 1);
  t.regex(String(rejected.stderr), /rejected by the verifier/);
  const tiny = await k2('run', fixture('xdp_parser.o'), '--prog', 'xdp_parser', '--data-hex', '0102');
  t.is(tiny.exitCode, 2);
  t.regex(String(tiny.stderr), /EINVAL/);
  const unknown = await k2('run', fixture('xdp_parser.o'), '--prog', 'nope', '--data-hex', PKT);
  t.is(unknown.exitCode, 2);
});

kernelTest('k2 run: a legacy-maps object runs through the legacy loader; a program that cannot load here exits 7', async (t) => {
  const legacy = join(root, 'fixtures/legacy/build/xdp_maps.o');
  const fentry = fileURLToPath(new URL('../../shared/corpus/cilium-ebpf-testdata/fentry_fexit-el.elf', import.meta.url));
  if (!existsSync(legacy) || !existsSync(fentry)) return t.fail('fixtures/legacy not built (make -C fixtures) or corpus missing');
  const r = await k2('run', legacy, '--prog', 'xdp_count', '--data-hex', PKT, '--json');
  t.is(r.exitCode, 0, String(r.stderr));
  t.is((JSON.parse(String(r.stdout)) as { retval: number }).retval, 2, 'XDP_PASS: first frame from its source');
  const forced = await k2('run', fixture('xdp_parser.o'), '--prog', 'xdp_parser', '--data-hex', PKT, '--json', '--loader', 'legacy');
  t.is(forced.exitCode, 0, String(forced.stderr));
  t.is((JSON.parse(String(forced.stdout)) as { retval: number }).retval, 3, '--loader legacy runs libbpf-style objects too');
  const cannot = await k2('run', fentry, '--prog', 'trace_on_entry');
  t.is(cannot.exitCode, 7);
  t.regex(String(cannot.stderr), /cannot load here/);
});

kernelTest('k2 run --ctx passes a context and prints ctx_out', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-cli-ctx-'));
  try {
    writeFileSync(join(dir, 'ctx'), new Uint8Array(192)); // struct __sk_buff, all zero
    for (const loader of ['libbpf', 'bpftool']) {
      const r = await k2('run', fixture('socket_filter.o'), '--prog', 'sock_count', '--data-hex', PKT, '--ctx', join(dir, 'ctx'), '--json', '--loader', loader);
      t.is(r.exitCode, 0, String(r.stderr));
      const j = JSON.parse(String(r.stdout)) as { ctxOut: string };
      t.is(j.ctxOut.length, 192 * 2, `${loader}: ctx_out has the size of ctx_in`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('without CAP_BPF, verify and run exit 3 with a clear message', async (t) => {
  if (process.getuid?.() !== 0) return t.pass('not root: cannot drop privileges to test this (bpf() works here, so it is not a skip of the kernel tests)');
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  if (!setpriv) return t.fail('setpriv (util-linux) is needed to run k2 without privileges');
  for (const args of [['verify', fixture('xdp_parser.o')], ['verify', fixture('xdp_parser.o'), '--loader', 'bpftool'], ['run', fixture('xdp_parser.o'), '--prog', 'xdp_parser', '--data-hex', PKT], ['check', fixture('xdp_parser.o')], ['verify', fixture('xdp_parser.o'), '--loader', 'legacy']]) {
    const r = await execa(setpriv, ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', join(root, 'bin/k2.js'), ...args], { reject: false, cwd: '/' });
    t.is(r.exitCode, 3, `${args.join(' ')}: ${r.stderr}`);
    t.regex(String(r.stderr), /CAP_BPF/);
  }
});
