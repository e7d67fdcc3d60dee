// k2 repair on the safe fixtures (fixtures/repair): each build the kernel wrongly rejects is
// rejected before (asserted against this kernel), repaired, proven equivalent (what `k2 equiv` runs
// says equal where the SMT checker can follow the whole program, and never "different"), accepted
// by the kernel after, and — where BPF_PROG_TEST_RUN works — the repaired program in the kernel
// behaves as the input program does in k2's interpreter on generated inputs (the input cannot be
// test-run: the kernel refuses to load it).
import test from 'ava';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { readObject, writeObject, type BpfObject, type ProgramRef } from '../src/ir/index.js';
import { bpfAvailable, openLoaded, verifyObject } from '../src/kernel/index.js';
import { repairObject, type CandidateKind } from '../src/repair/index.js';
import { checkObjects, shutdownZ3 } from '../src/smt/index.js';
import { prepareObject, Runner, toHex } from '../src/interp/index.js';
import { generate } from '../src/testgen/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (name: string) => join(root, 'fixtures/repair/build', name);

const avail = await bpfAvailable('libbpf');
if (!avail.ok) console.error(`\n*** repair: SKIPPING (needs bpf()): ${avail.reason} ***\n`);
const kernelTest = avail.ok ? test.serial : test.skip;
test.after.always(async () => shutdownZ3());

interface Safe {
  name: string;
  builds: ('O1' | 'O2')[];
  reason: RegExp;
  kinds: CandidateKind[];
  /** The whole program is within the SMT checker's reach (else: why not). */
  whole: true | RegExp;
  /** BPF_PROG_TEST_RUN works for the program type (interpreter-vs-kernel comparison). */
  run: boolean;
  /** Map contents are deterministic (compared too). */
  maps: boolean;
}

const SAFE: Safe[] = [
  { name: 'retval_global_func', builds: ['O1', 'O2'], reason: /At program exit the register R0 has unknown scalar value should have been in \[0, 3\]/, kinds: ['retval-mask'], whole: true, run: true, maps: true },
  // the interpreter, like the kernel, stops at 8 frames: checked against the C semantics below
  { name: 'call_depth', builds: ['O1', 'O2'], reason: /the call stack of 9 frames is too deep/, kinds: ['inline', 'inline'], whole: true, run: false, maps: false },
  { name: 'bound_on_copy_kprobe', builds: ['O1', 'O2'], reason: /R2 min value is negative/, kinds: ['clamp-u32'], whole: true, run: false, maps: false },
  { name: 'zext_bound', builds: ['O1'], reason: /math between map_value pointer and register with unbounded min value/, kinds: ['check'], whole: true, run: true, maps: true },
  { name: 'spill_narrow', builds: ['O1', 'O2'], reason: /R0 unbounded memory access/, kinds: ['check'], whole: true, run: true, maps: true },
  { name: 'bound_on_copy_index', builds: ['O1', 'O2'], reason: /R2 unbounded memory access/, kinds: ['check'], whole: true, run: true, maps: true },
  { name: 'pkt_other_reg', builds: ['O1', 'O2'], reason: /R1 offset is outside of the packet/, kinds: ['packet-check'], whole: true, run: true, maps: true },
  { name: 'pkt_ge_check', builds: ['O1', 'O2'], reason: /R3 offset is outside of the packet/, kinds: ['packet-check'], whole: true, run: true, maps: true },
  { name: 'uninit_infeasible', builds: ['O1', 'O2'], reason: /R6 !read_ok/, kinds: ['init'], whole: true, run: true, maps: false }, // stores bpf_ktime_get_ns()
  { name: 'skb_load_len', builds: ['O1', 'O2'], reason: /R4 unbounded memory access/, kinds: ['clamp-u32'], whole: true, run: true, maps: true },
];

/**
 * The input program in k2's interpreter against the repaired one in the kernel, on `n` generated
 * inputs (maps zeroed before each): return value, output packet and the contents of array maps
 * and global data. Returns the mismatches (empty when clean) and the inputs compared.
 */
async function interpVsKernel(inObj: BpfObject, outFile: string, prog: ProgramRef, n: number, maps: boolean): Promise<{ compared: number; mismatches: string[] }> {
  const prep = prepareObject(inObj);
  const runner = new Runner(prep.unit);
  const k = await openLoaded(outFile);
  const mismatches: string[] = [];
  let compared = 0;
  try {
    const infos = await k.maps();
    const inputs = generate({ progType: prog.progType, maps: [], ncpu: 1, inputs: n, seed: 7 }).flatMap((s) => s.inputs);
    for (const [i, input] of inputs.entries()) {
      for (const m of infos) if (!m.name.endsWith('.rodata')) await k.clearMap(m.name);
      const state = prep.initialMaps();
      const o = runner.run(prog.name, prog.progType, input, state);
      if (o.status === 'fault') {
        mismatches.push(`input ${i}: the input program faults in the interpreter (${o.fault?.reason})`);
        continue;
      }
      let r;
      try {
        r = await k.testRun(prog.name, { dataIn: input.packet, dataSizeOut: input.packet.length + 4096, ...(input.ctx ? { ctxIn: input.ctx } : {}) });
      } catch {
        continue; // the kernel refuses this input for this program type: not comparable
      }
      compared++;
      if (r.retval !== o.ret) mismatches.push(`input ${i}: retval ${r.retval} (kernel, OUT) vs ${o.ret} (interpreter, IN)`);
      if (o.packet !== null && toHex(r.dataOut) !== o.packet) mismatches.push(`input ${i}: output packet differs`);
      if (!maps) continue;
      for (const snap of o.maps) {
        const info = infos.find((m) => m.name === snap.name || (snap.name.startsWith('.') && m.name.endsWith(snap.name)));
        if (!info || info.perCpu || !['array', 'hash'].includes(info.type)) continue;
        const kentries = (await k.readMap(info.name)).map((e) => [toHex(e.key), toHex(e.value)] as [string, string]).sort();
        const ientries = [...snap.entries].sort();
        if (JSON.stringify(kentries) !== JSON.stringify(ientries)) mismatches.push(`input ${i}: map ${snap.name} differs`);
      }
    }
  } finally {
    await k.close();
  }
  return { compared, mismatches };
}

for (const f of SAFE) {
  for (const o of f.builds) {
    const file = `${f.name}.${o}.o`;
    kernelTest(`${file}: rejected by the kernel, repaired (${f.kinds.join(' + ')}), proven, accepted after`, async (t) => {
      if (!existsSync(fixture(file))) return t.fail(`${fixture(file)} missing: run make -C fixtures`);
      const before = await verifyObject(fixture(file));
      const p0 = before.programs[0]!;
      t.is(p0.verdict, 'rejected', `the kernel accepts ${file}: the fixture no longer shows the pattern`);
      t.regex(p0.error ?? '', f.reason);

      const input = readObject(fixture(file));
      const r = await repairObject(input, { timeoutMs: 20000 });
      const rec = r.programs[0]!;
      t.true(rec.repaired, rec.remaining ?? '');
      t.is(r.remaining, 0);
      t.deepEqual(rec.changes.map((c) => c.kind), f.kinds);
      for (const c of rec.changes) {
        t.truthy(c.proof.method, `${c.kind}: no proof method`);
        t.true(c.insns.length > 0, `${c.kind}: no inserted instructions reported`);
        t.truthy(c.where, `${c.kind}: no source line`);
        t.is(c.where!.file, `${f.name}.c`);
      }
      t.is(rec.before.where?.file, `${f.name}.c`);

      const dir = mkdtempSync(join(tmpdir(), 'k2-repair-test-'));
      try {
        const outFile = join(dir, file);
        writeObject(r.obj, outFile);
        const after = await verifyObject(outFile);
        t.is(after.programs[0]!.verdict, 'accepted', after.programs[0]!.error ?? '');
        t.is(rec.after?.verdict, 'accepted');
        t.is(rec.after?.verifiedInsns, after.programs[0]!.verifiedInsns);

        // `k2 equiv IN OUT`: equal (exit 0), and what it runs
        const cli = await execa('node', [join(root, 'bin/k2.js'), 'equiv', fixture(file), outFile, '--json'], { reject: false });
        t.is(cli.exitCode, 0, `k2 equiv: ${cli.stdout} ${cli.stderr}`);
        t.is(JSON.parse(cli.stdout).equivalent, true);
        const eq = await checkObjects(readObject(fixture(file)), readObject(outFile), { timeoutMs: 30000 });
        t.not(eq.equivalent, false, `k2 equiv says different: ${JSON.stringify(eq.counterexample?.difference)}`);
        if (f.whole === true) {
          t.is(eq.equivalent, true, eq.reason ?? '');
          t.is(rec.proof, 'equivalent');
        } else {
          t.is(rec.proof, 'stepwise');
          t.regex(rec.equivalence?.reason ?? '', f.whole);
          t.regex(eq.reason ?? '', f.whole);
        }

        if (f.run) {
          const d = await interpVsKernel(readObject(fixture(file)), outFile, input.programs[0]!, 24, f.maps);
          t.deepEqual(d.mismatches, []);
          t.true(d.compared >= 12, `only ${d.compared} inputs could be compared`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}

kernelTest('mixed.O1.o / mixed.O2.o: `k2 equiv IN OUT` says equal on the partly repaired object', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-repair-test-'));
  try {
    for (const o of ['O1', 'O2']) {
      const file = `mixed.${o}.o`;
      if (!existsSync(fixture(file))) return t.fail(`${fixture(file)} missing: run make -C fixtures`);
      const r = await repairObject(readObject(fixture(file)), { timeoutMs: 20000 });
      t.true(r.programs.some((p) => p.repaired), `${file}: nothing repaired`);
      const out = join(dir, file);
      writeObject(r.obj, out);
      const cli = await execa('node', [join(root, 'bin/k2.js'), 'equiv', fixture(file), out], { reject: false });
      t.is(cli.exitCode, 0, `${file}: k2 equiv: ${cli.stdout} ${cli.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('zext_bound.O2.o: accepted as built, so nothing is changed', async (t) => {
  if (!existsSync(fixture('zext_bound.O2.o'))) return t.fail('fixtures not built: run make -C fixtures');
  const input = readObject(fixture('zext_bound.O2.o'));
  const r = await repairObject(input);
  t.is(r.rejected, 0);
  t.is(r.programs[0]!.before.verdict, 'accepted');
  t.deepEqual(r.programs[0]!.changes, []);
  t.deepEqual(r.obj.code.map((s) => s.insns.length), input.code.map((s) => s.insns.length));
});

kernelTest('call_depth: the repaired program returns what the C source computes (f8(ifindex) & 3)', async (t) => {
  if (!existsSync(fixture('call_depth.O2.o'))) return t.fail('fixtures not built: run make -C fixtures');
  // f0(x) = x * 3; fn(x) = f(n-1)(x + n) ^ n, in 32-bit int arithmetic
  const f = (n: number, x: number): number => (n === 0 ? Math.imul(x, 3) : f(n - 1, (x + n) | 0) ^ n);
  const dir = mkdtempSync(join(tmpdir(), 'k2-repair-test-'));
  try {
    for (const o of ['O1', 'O2']) {
      const out = join(dir, `call_depth.${o}.o`);
      writeObject((await repairObject(readObject(fixture(`call_depth.${o}.o`)))).obj, out);
      const k = await openLoaded(out);
      try {
        // xdp_md.ingress_ifindex of the test run: 1 (lo), passed in ctx_in
        const ctx = new Uint8Array(24);
        new DataView(ctx.buffer).setUint32(12, 1, true);
        const r = await k.testRun('deep', { dataIn: new Uint8Array(64), ctxIn: ctx });
        t.is(r.retval, f(8, 1) & 3);
      } finally {
        await k.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
