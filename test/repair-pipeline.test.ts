// Repair as part of the pipeline: `k2 opt --repair` and `"repair": true` / K2_REPAIR=1 for
// k2-clang. Programs the kernel wrongly rejects come out loadable, proven equal to the input
// (k2 equiv), and optimized; a truly unsafe one stays rejected (exit 1, OUT still written).
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { bpfAvailable, verifyObject } from '../src/kernel/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (name: string) => join(root, 'fixtures/repair/build', name);
const k2 = join(root, 'bin/k2.js');
const tmp = mkdtempSync(join(tmpdir(), 'k2repairpipe-'));
const env = { K2_CACHE_DIR: join(tmp, 'cache'), PATH: `/usr/sbin:${process.env.PATH}` };

const avail = await bpfAvailable('libbpf');
if (!avail.ok) console.error(`\n*** repair-pipeline: SKIPPING (needs bpf()): ${avail.reason} ***\n`);
const kernelTest = avail.ok ? test.serial : test.skip;
test.after.always(async () => {
  await execa('node', [k2, 'server', 'stop'], { reject: false, env });
  rmSync(tmp, { recursive: true, force: true });
});

const verdicts = async (file: string) => (await verifyObject(file)).programs.map((p) => p.verdict);

for (const name of ['retval_global_func.O2.o', 'bound_on_copy_index.O2.o', 'call_depth.O1.o']) {
  kernelTest(`k2 opt --repair: ${name} is rejected as clang built it, loads after, and k2 equiv says equal`, async (t) => {
    const input = fixture(name);
    if (!existsSync(input)) return t.fail(`${input} missing: run make -C fixtures`);
    t.true((await verdicts(input)).includes('rejected'), 'the fixture is rejected by this kernel as built');
    const out = join(tmp, `opt-${name}`);
    const r = await execa('node', [k2, 'opt', input, '-o', out, '--repair', '--json', '--time', '5', '--jobs', '1', '--no-cache'], { reject: false, env });
    t.is(r.exitCode, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    t.is(rep.repair.status, 'done');
    t.true(rep.repair.rejected > 0);
    t.is(rep.repair.repaired, rep.repair.rejected);
    t.true(rep.repair.programs.every((p: { repaired: boolean; changes: unknown[] }) => p.repaired && p.changes.length > 0));
    t.true(rep.kernelChecked);
    t.deepEqual([...new Set(await verdicts(out))], ['accepted']);
    const eq = await execa('node', [k2, 'equiv', input, out, '--json'], { reject: false, env });
    t.is(eq.exitCode, 0, `k2 equiv IN OUT: ${eq.stdout}${eq.stderr}`);
  });
}

kernelTest('k2 opt --repair on a truly unsafe program: exit 1, OUT written, the program still rejected', async (t) => {
  const input = fixture('unsafe_pkt.O2.o');
  if (!existsSync(input)) return t.fail(`${input} missing: run make -C fixtures`);
  const out = join(tmp, 'unsafe.o');
  const r = await execa('node', [k2, 'opt', input, '-o', out, '--repair', '--time', '3', '--jobs', '1', '--no-cache'], { reject: false, env });
  t.is(r.exitCode, 1, r.stderr);
  t.regex(r.stdout, /repaired 0 of 1 rejected program\(s\); still rejected: /);
  t.true(existsSync(out));
  t.deepEqual(await verdicts(out), ['rejected']);
});

kernelTest('k2-clang with K2_REPAIR=1 writes a loadable object for a source clang compiles into a rejected one', async (t) => {
  const src = join(root, 'fixtures/repair/retval_global_func.c');
  const plain = join(tmp, 'plain.o'), repaired = join(tmp, 'repaired.o'), report = join(tmp, 'cc.json');
  const args = ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-D__TARGET_ARCH_x86', '-c', src];
  const a = await execa('node', [k2, 'cc', ...args, '-o', plain], { reject: false, env: { ...env, K2_OPT: '0' } });
  t.is(a.exitCode, 0, a.stderr);
  t.deepEqual(await verdicts(plain), ['rejected']);
  const b = await execa('node', [k2, 'cc', ...args, '-o', repaired, `--k2-report=${report}`], { reject: false, env: { ...env, K2_REPAIR: '1', K2_SERVER: '0' } });
  t.is(b.exitCode, 0, b.stderr);
  t.deepEqual(await verdicts(repaired), ['accepted']);
  t.regex(b.stderr, /repaired 1 of 1 program\(s\) the verifier rejected/, 'the per-object line says so');
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  const obj = (rep.objects ?? [rep])[0];
  t.is(obj.repair?.repaired, 1, JSON.stringify(obj));
  const eq = await execa('node', [k2, 'equiv', plain, repaired], { reject: false, env });
  t.is(eq.exitCode, 0, eq.stdout + eq.stderr);
});
