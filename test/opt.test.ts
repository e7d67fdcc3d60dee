import test from 'ava';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, basename } from 'node:path';
import { tmpdir } from 'node:os';
import { fixtureObjects, k2 } from './helpers/paths.js';
import { bpfAvailable, loadAll, runPinned, samplePackets } from './helpers/bpftool.js';
import { optimizeSection, storeImmediate, DEFAULT_SYNTH, type SynthOptions } from '../src/synth/index.js';
import { readObject, type BpfObject, type IrInsn, type CodeSection } from '../src/ir/index.js';
import { shutdownZ3 } from '../src/smt/index.js';
import { interpDiffers } from '../src/smt/soundness.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2opt-'));
test.after.always(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await shutdownZ3();
});

const FAST: SynthOptions = { ...DEFAULT_SYNTH, budgetMs: 5000, search: { ...DEFAULT_SYNTH.search, iterations: 100 } };

/** A one-section object around hand-written code (the ELF part is never written in these tests). */
function objectOf(insns: IrInsn[]): BpfObject {
  const obj = readObject(fixtureObjects().find((f) => f.endsWith('redundant.o'))!);
  const sec: CodeSection = { ...obj.code[0]!, insns: insns.map((i, k) => (k === 0 ? { ...i, labels: ['L0'] } : i)), symbols: [] };
  return { ...obj, code: [sec] };
}
const mov = (dst: number, imm: number): IrInsn => ({ code: 0xb7, dst, src: 0, off: 0, imm });
const movx = (dst: number, src: number): IrInsn => ({ code: 0xbf, dst, src, off: 0, imm: 0 });
const exit: IrInsn = { code: 0x95, dst: 0, src: 0, off: 0, imm: 0 };
const lsh = (dst: number, imm: number): IrInsn => ({ code: 0x67, dst, src: 0, off: 0, imm });
const rsh = (dst: number, imm: number): IrInsn => ({ code: 0x77, dst, src: 0, off: 0, imm });

test('a dead store and a zero-extension pair are rewritten, each proven', async (t) => {
  const obj = objectOf([mov(0, 7), movx(0, 1), lsh(0, 32), rsh(0, 32), exit]);
  const { obj: out, stats } = await optimizeSection(obj, 0, () => true, FAST);
  const code = out.code[0]!.insns;
  t.true(code.length < 5, JSON.stringify(code));
  t.is(stats.proven, stats.rewrites);
  // r0 = zext32(r1): a single `w0 = w1`
  t.deepEqual(code.map((i) => [i.code, i.dst, i.src]), [[0xbc, 0, 1], [0x95, 0, 0]]);
  t.deepEqual(code[0]!.labels, ['L0'], 'the window heir keeps the label');
});

test('a rewrite the gate refuses is not applied', async (t) => {
  const obj = objectOf([mov(0, 7), mov(0, 8), exit]);
  const { obj: out, stats } = await optimizeSection(obj, 0, () => false, FAST);
  t.is(out.code[0]!.insns.length, 3);
  t.true(stats.gateRejected > 0);
  t.is(stats.rewrites, 0);
});

const stx = (size: number, dst: number, off: number, src: number): IrInsn => ({ code: 0x63 | size, dst, src, off, imm: 0 });

test('stores of a known constant become store-immediates and the dead constant goes', async (t) => {
  // r1 = 0; *(u32 *)(r10 - 4) = r1; *(u64 *)(r10 - 16) = r1; r0 = 0; exit
  // ... bpf_trace_printk(r10 - 16, 16): a helper reads the stored bytes, so the stores are not dead
  const call = (id: number): IrInsn => ({ code: 0x85, dst: 0, src: 0, off: 0, imm: id });
  const obj = objectOf([mov(1, 0), stx(0x00, 10, -4, 1), stx(0x18, 10, -16, 1), movx(1, 10), { code: 0x07, dst: 1, src: 0, off: 0, imm: -16 }, mov(2, 16), call(6), mov(0, 0), exit]);
  const { obj: out } = await optimizeSection(obj, 0, () => true, FAST);
  const code = out.code[0]!.insns;
  t.deepEqual(code.slice(0, 2).map((i) => [i.code, i.dst, i.off, i.imm]), [[0x62, 10, -4, 0], [0x7a, 10, -16, 0]], JSON.stringify(code));
  t.false(code.some((i) => i.code === 0xb7 && i.dst === 1), 'r1 = 0 is dead after the rewrite');
});

const ldxb = (dst: number, src: number, off: number): IrInsn => ({ code: 0x71, dst, src, off, imm: 0 });
const orx = (dst: number, src: number): IrInsn => ({ code: 0x4f, dst, src, off: 0, imm: 0 });

test('byte loads combined with shift and or become one wider load (little- and big-endian)', async (t) => {
  // r1 = p[13] << 8 | p[12]  →  r1 = *(u16 *)(r7 + 12)
  const le = objectOf([ldxb(2, 7, 12), ldxb(1, 7, 13), lsh(1, 8), orx(1, 2), movx(0, 1), exit]);
  const a = (await optimizeSection(le, 0, () => true, FAST)).obj.code[0]!.insns;
  t.true(a.some((i) => i.code === 0x69 && i.src === 7 && i.off === 12), JSON.stringify(a));
  t.false(a.some((i) => i.code === 0x71), 'no byte load is left');
  // r1 = p[12] << 8 | p[13]  →  a u16 load and a be16 swap
  const be = objectOf([ldxb(1, 7, 12), lsh(1, 8), ldxb(2, 7, 13), orx(1, 2), movx(0, 1), exit]);
  const b = (await optimizeSection(be, 0, () => true, FAST)).obj.code[0]!.insns;
  t.true(b.some((i) => i.code === 0x69 && i.off === 12) && b.some((i) => i.code === 0xdc && i.imm === 16), JSON.stringify(b));
});

const ldxw = (dst: number, src: number, off: number): IrInsn => ({ code: 0x61, dst, src, off, imm: 0 });
const stxw = (dst: number, off: number, src: number): IrInsn => ({ code: 0x63, dst, src, off, imm: 0 });

test('two copies of neighbouring words become one u64 copy, unless the halves overlap', async (t) => {
  // *(u32 *)(r8 + 8) = *(u32 *)(r8 + 24); *(u32 *)(r8 + 12) = *(u32 *)(r8 + 28)
  const apart = objectOf([ldxw(1, 8, 24), stxw(8, 8, 1), ldxw(1, 8, 28), stxw(8, 12, 1), mov(0, 0), exit]);
  const a = (await optimizeSection(apart, 0, () => true, FAST)).obj.code[0]!.insns;
  t.deepEqual(a.slice(0, 2).map((i) => [i.code, i.off]), [[0x79, 24], [0x7b, 8]], JSON.stringify(a));
  // *(u32 *)(r8 + 4) = *(u32 *)(r8 + 0); *(u32 *)(r8 + 8) = *(u32 *)(r8 + 4): the second load reads the first store
  const overlap = objectOf([ldxw(1, 8, 0), stxw(8, 4, 1), ldxw(1, 8, 4), stxw(8, 8, 1), mov(0, 0), exit]);
  const b = (await optimizeSection(overlap, 0, () => true, FAST)).obj.code[0]!.insns;
  t.false(b.some((i) => i.code === 0x79 || i.code === 0x7b), JSON.stringify(b));
  t.is(b.filter((i) => i.code === 0x63).length, 2);
});

test('store-immediate only where the sign-extended immediate gives the same bytes', (t) => {
  const dw = stx(0x18, 10, -8, 1), w = stx(0x00, 10, -8, 1);
  t.is(storeImmediate(dw, 0xffff_ffff_ffff_fff0n)!.imm, -16);
  t.is(storeImmediate(dw, 0xffff_ffffn), null, 'u64 0xffffffff is not a sign-extended imm32');
  t.is(storeImmediate(dw, 1n << 40n), null);
  t.is(storeImmediate(w, 0x1_8000_0000n)!.imm, -0x8000_0000, 'a u32 store keeps only the low word');
  t.is(storeImmediate({ ...dw, code: 0xdb }, 1n), null, 'atomics are not plain stores');
});

test('live-out registers are kept: a write read after the window is not deleted', async (t) => {
  // r2 is not read by exit, r0 is: only `r2 = 1` may go.
  const obj = objectOf([mov(2, 1), mov(0, 3), exit]);
  const { obj: out } = await optimizeSection(obj, 0, () => true, FAST);
  t.deepEqual(out.code[0]!.insns.map((i) => [i.code, i.dst, i.imm]), [[0xb7, 0, 3], [0x95, 0, 0]]);
});

test('k2 opt shrinks fixtures; the kernel accepts the output and it runs identically', async (t) => {
  const avail = await bpfAvailable();
  if (!avail.ok) {
    t.log(`SKIPPED LOUDLY: bpf() unavailable: ${avail.reason}`);
    return t.pass();
  }
  let before = 0, after = 0, runs = 0, interpRuns = 0;
  const names = ['redundant.o', 'calls.o', 'xdp_parser.o', 'tc_classifier.o', 'loops.o', 'cgroup_skb.o', 'socket_filter.o', 'jmp32.o'];
  for (const name of names) {
    const f = fixtureObjects().find((p) => p.endsWith(name))!;
    const out = join(tmp, name);
    const r = await execa('node', [k2, 'opt', f, '-o', out, '--json', '--budget-ms', '6000'], { reject: false, env: { K2_CACHE_DIR: join(tmp, 'cache') } });
    t.is(r.exitCode, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    t.true(rep.kernelChecked);
    before += rep.slotsBefore;
    after += rep.slotsAfter;
    const v = await execa('node', [k2, 'verify', out, '--json'], { reject: false });
    t.is(v.exitCode, 0, `${name}: ${v.stdout}`);
    // the interpreter on generated packets, maps and contexts (kernel-agreed, see interp tests)
    const oa = readObject(f), ob = readObject(out);
    for (const p of oa.programs) {
      const d = interpDiffers(oa, ob, p, 200, 3);
      if (d === null) continue; // a program type the interpreter cannot run
      t.false(d, `${name}:${p.name} behaves differently after optimization`);
      interpRuns += 200;
    }
    const a = await loadAll(f, 'oa');
    const b = await loadAll(out, 'ob');
    try {
      t.truthy(a.loaded && b.loaded);
      for (const p of a.loaded!.programs) {
        for (const pkt of samplePackets()) {
          let x;
          try { x = await runPinned(join(a.loaded!.dir, p), pkt); } catch { break; }
          t.deepEqual(await runPinned(join(b.loaded!.dir, p), pkt), x, `${basename(f)}:${p}`);
          runs++;
        }
      }
    } finally {
      a.loaded?.cleanup();
      b.loaded?.cleanup();
    }
  }
  t.log(`${before} → ${after} slots over ${names.length} fixtures, ${runs} kernel test runs identical, ~${interpRuns} interpreter inputs identical`);
  t.true(after < before);
  t.true(runs > 10);
});

test('k2 opt --json / --report: the report shape, all three figures whatever the objective', async (t) => {
  const f = fixtureObjects().find((p) => p.endsWith('xdp_parser.o'))!;
  for (const objective of ['size', 'latency']) {
    const out = join(tmp, `shape-${objective}.o`), file = join(tmp, `shape-${objective}.json`);
    const r = await execa('node', [k2, 'opt', f, '-o', out, '--json', '--report', file, '--objective', objective, '--time', '5', '--jobs', '1', '--no-cache'], { reject: false, env: { K2_CACHE_DIR: join(tmp, 'cache') } });
    t.is(r.exitCode, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    t.deepEqual(JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(file, 'utf8'))), rep, '--report writes the same JSON');
    for (const k of ['input', 'output', 'objective', 'ms', 'sections']) t.true(k in rep, k);
    t.is(rep.input, f);
    t.is(rep.output, out);
    t.is(rep.objective, objective);
    t.true(rep.sections.length > 0);
    for (const s of rep.sections) {
      for (const k of ['name', 'before', 'after', 'status', 'reason', 'proven', 'kernel', 'difftest', 'ms']) t.true(k in s, `section.${k}`);
      for (const side of [s.before, s.after]) for (const k of ['slots', 'insns', 'latencyNs', 'verifiedInsns']) t.is(typeof side[k], 'number', `${k}: ${JSON.stringify(side)}`);
      t.true(['optimized', 'unchanged', 'fallback'].includes(s.status));
      t.is(typeof s.proven, 'boolean');
      if (s.kernel !== null) for (const k of ['accepted', 'verifiedInsnsBefore', 'verifiedInsnsAfter']) t.true(k in s.kernel, `kernel.${k}`);
      if (s.difftest !== null) t.deepEqual(Object.keys(s.difftest).sort(), ['inputs', 'mismatches']);
      if (s.status === 'optimized') {
        t.true(objective === 'latency' ? s.after.latencyNs <= s.before.latencyNs : s.after.slots <= s.before.slots, JSON.stringify(s));
        if (rep.kernelChecked) t.truthy(s.kernel?.accepted);
      }
    }
  }
});

test('k2 opt: bad flags are usage errors (exit 2)', async (t) => {
  const f = fixtureObjects().find((p) => p.endsWith('xdp_parser.o'))!;
  for (const args of [['--objective', 'speed'], ['--jobs', '0'], ['--objective', 'latency', '--allow-verifier-growth']]) {
    const r = await execa('node', [k2, 'opt', f, '-o', join(tmp, 'bad.o'), ...args], { reject: false });
    t.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /^k2: /);
  }
});
