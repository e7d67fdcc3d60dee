// The interpreter against the kernel (BPF_PROG_TEST_RUN) on every testable fixture program, and the
// check-semantics / difftest commands. Needs root (bpf()) and the built fixtures.
import test from 'ava';
import { existsSync, readFileSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { checkSemantics, diffObjects } from '../src/testgen/diff.js';
import { bpfAvailable } from '../src/kernel/index.js';
import { readObject, writeObject } from '../src/ir/index.js';
import type { IrInsn } from '../src/ir/types.js';

const root = new URL('..', import.meta.url).pathname;
const INPUTS = Number(process.env.K2_DIFFTEST_INPUTS ?? 2000);

interface ManifestProgram { name: string; type: string; loads?: boolean; testRun?: boolean }
const manifest = existsSync(join(root, 'fixtures/manifest.json'))
  ? (JSON.parse(readFileSync(join(root, 'fixtures/manifest.json'), 'utf8')) as { object: string; programs: ManifestProgram[] }[])
  : null;

// Fixture objects with a program the kernel loads and can test-run with a packet.
const objects = (manifest ?? []).filter((o) => o.programs.some((p) => p.loads && p.testRun)).map((o) => o.object);

test.serial('fixtures are built and bpf() works', async (t) => {
  if (!manifest) return t.fail('fixtures/manifest.json is missing');
  const a = await bpfAvailable();
  t.true(a.ok, `bpf() unavailable: ${a.reason}`);
  for (const o of objects) t.true(existsSync(join(root, 'fixtures', o)), `${o} is not built (make -C fixtures)`);
  t.true(objects.length >= 8);
});

for (const o of objects) {
  test.serial(`interpreter equals the kernel on ${INPUTS} inputs per program: ${o}`, async (t) => {
    const r = await checkSemantics(join(root, 'fixtures', o), { inputs: INPUTS, seed: 1 });
    const expected = manifest!.find((x) => x.object === o)!.programs.filter((p) => p.loads && p.testRun);
    for (const p of expected) {
      const got = r.programs.find((x) => x.name === p.name);
      t.truthy(got, `${p.name} was not tested: ${JSON.stringify(r.untestable.find((u) => u.name === p.name))}`);
      if (!got) continue;
      t.is(got.mismatches, 0, `${p.name}: ${JSON.stringify(got.firstMismatch)}`);
      t.is(got.inputs + (got.undefinedInputs ?? 0), INPUTS);
      // Nearly every input must be compared exactly (not excused by ktime/prandom or undefined behaviour).
      const exact = got.inputs - (got.nondetInputs ?? 0);
      t.true(exact >= INPUTS * 0.95, `${p.name}: only ${exact} of ${INPUTS} inputs compared exactly`);
    }
  });
}

test.serial('difftest finds no difference between an object and its copy, and reports a missing program', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-difftest-'));
  try {
    const a = join(root, 'fixtures/build/xdp_parser.o');
    const b = join(dir, 'copy.o');
    copyFileSync(a, b);
    const same = await diffObjects(a, b, { inputs: 200, seed: 3 });
    t.is(same.programs.length, 1);
    t.is(same.programs[0]!.mismatches, 0);
    t.is(same.programs[0]!.inputs, 200);
    const other = await diffObjects(a, join(root, 'fixtures/build/redundant.o'), { inputs: 10 });
    t.is(other.programs[0]!.mismatches, 1);
    t.is(other.programs[0]!.firstMismatch!.field, 'load');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('difftest catches a behavioural change: every exit turned into XDP_DROP', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-difftest-'));
  try {
    const a = join(root, 'fixtures/build/xdp_parser.o');
    const obj = readObject(a);
    const sec = obj.code.find((s) => s.name === 'xdp')!;
    // Before every exit: r0 = XDP_DROP (the exit's labels move to the new instruction).
    const insns: IrInsn[] = [];
    for (const i of sec.insns) {
      if (i.code === 0x95) {
        insns.push({ code: 0xb7, dst: 0, src: 0, off: 0, imm: 1, ...(i.labels ? { labels: i.labels } : {}) });
        delete i.labels;
      }
      insns.push(i);
    }
    t.true(insns.length > sec.insns.length);
    sec.insns = insns;
    const b = join(dir, 'changed.o');
    writeObject(obj, b);
    const r = await diffObjects(a, b, { inputs: 100, seed: 5 });
    t.true(r.programs[0]!.mismatches > 0);
    t.is(r.programs[0]!.firstMismatch!.field, 'ret');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('k2 check-semantics --json prints the documented shape and exits 0', async (t) => {
  const bin = join(root, 'bin/k2.js');
  if (!existsSync(join(root, 'dist/cli/main.js'))) return t.fail('dist/ is not built (npx tsc -p .)');
  const r = await execa('node', [bin, 'check-semantics', join(root, 'fixtures/build/calls.o'), '--inputs', '40', '--seed', '7', '--json'], { reject: false });
  t.is(r.exitCode, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { programs: { section: string; name: string; inputs: number; mismatches: number; firstMismatch: unknown }[] };
  t.deepEqual(j.programs.map((p) => p.name).sort(), ['tc_calls', 'xdp_calls']);
  for (const p of j.programs) {
    t.is(typeof p.section, 'string');
    t.is(p.mismatches, 0);
    t.is(p.firstMismatch, null);
    t.true(p.inputs > 30);
  }
  const bad = await execa('node', [bin, 'check-semantics', join(root, 'no-such.o')], { reject: false });
  t.is(bad.exitCode, 2);
  const usage = await execa('node', [bin, 'difftest', join(root, 'fixtures/build/calls.o'), join(root, 'fixtures/build/calls.o'), '--inputs', '0'], { reject: false });
  t.is(usage.exitCode, 2);
});
