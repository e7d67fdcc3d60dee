import test from 'ava';
import { fixtureObjects } from './helpers/paths.js';
import { readObject, type BpfObject, type CodeSection, type IrInsn } from '../src/ir/index.js';
import { applyTailMerge, findTailMerge, invertBranchesOverGotos } from '../src/synth/tailmerge.js';
import { sectionSlots, optimizeSection, DEFAULT_SYNTH } from '../src/synth/index.js';
import { checkPrograms, shutdownZ3 } from '../src/smt/index.js';
import { interpDiffers } from '../src/smt/soundness.js';

test.after.always(async () => {
  await shutdownZ3();
});

const fixture = (name: string): BpfObject => readObject(fixtureObjects().find((f) => f.endsWith(name))!);
const withSection = (obj: BpfObject, k: number, sec: CodeSection): BpfObject => ({ ...obj, code: obj.code.map((s, j) => (j === k ? sec : s)) });

function mergeAll(sec: CodeSection): { sec: CodeSection; merges: number } {
  let merges = 0;
  for (let m = findTailMerge(sec, 2); m; m = findTailMerge(sec, 2)) {
    sec = invertBranchesOverGotos(applyTailMerge(sec, m));
    merges++;
  }
  return { sec, merges };
}

test('identical block tails are merged; the result is proven equal and runs identically in the interpreter', async (t) => {
  const obj = fixture('xdp_parser.o');
  const k = obj.code.findIndex((s) => s.name === 'xdp');
  const { sec, merges } = mergeAll(obj.code[k]!);
  const merged = withSection(obj, k, sec);
  t.true(merges >= 3, `${merges} merges`);
  t.true(sectionSlots(sec) <= sectionSlots(obj.code[k]!) - 20, `${sectionSlots(obj.code[k]!)} → ${sectionSlots(sec)} slots`);
  const prog = obj.programs.find((p) => p.section === 'xdp')!;
  const r = await checkPrograms(obj, prog, merged, prog, { timeoutMs: 5000 });
  t.is(r.equivalent, true, r.reason);
  t.is(r.via, 'syntactic', 'proven by pairing both control-flow graphs');
  t.is(interpDiffers(obj, merged, prog, 300, 1), false);
});

test('a changed jump target, condition or tail instruction is never proven equal', async (t) => {
  const obj = fixture('xdp_parser.o');
  const k = obj.code.findIndex((s) => s.name === 'xdp');
  const { sec } = mergeAll(obj.code[k]!);
  const merged = withSection(obj, k, sec);
  const prog = obj.programs.find((p) => p.section === 'xdp')!;
  const condJumps = sec.insns.map((i, n) => [i, n] as const).filter(([i]) => i.target !== undefined && (i.code & 0xf0) !== 0x00 && (i.code & 0x07) === 0x05);
  const labels = sec.insns.flatMap((i) => i.labels ?? []);
  const mutants: [string, CodeSection][] = [];
  for (const [i, n] of condJumps.slice(0, 4)) {
    const other = labels.find((l) => l !== i.target && !sec.insns[n + 1]?.labels?.includes(l))!;
    mutants.push([`retarget ${n}`, { ...sec, insns: sec.insns.map((x, j) => (j === n ? { ...x, target: other } : x)) }]);
    // JEQ <-> JNE
    const flip = (x: IrInsn): IrInsn => ({ ...x, code: (x.code & 0xf0) === 0x10 ? (x.code & 0x0f) | 0x50 : (x.code & 0xf0) === 0x50 ? (x.code & 0x0f) | 0x10 : x.code ^ 0x80 });
    mutants.push([`flip ${n}`, { ...sec, insns: sec.insns.map((x, j) => (j === n ? flip(x) : x)) }]);
  }
  // an immediate changed in the shared tail
  const tailAlu = sec.insns.findIndex((i, n) => n > 20 && (i.code & 0x07) === 0x07 && (i.code & 0x08) === 0 && !i.labels?.length);
  mutants.push([`imm ${tailAlu}`, { ...sec, insns: sec.insns.map((x, j) => (j === tailAlu ? { ...x, imm: x.imm + 1 } : x)) }]);
  t.true(mutants.length >= 5);
  let told = 0;
  for (const [name, m] of mutants) {
    const r = await checkPrograms(merged, prog, withSection(merged, k, m), prog, { timeoutMs: 1000 });
    t.not(r.equivalent, true, name);
    if (interpDiffers(merged, withSection(merged, k, m), prog, 200, 2)) told++;
  }
  t.true(told >= 3, `the interpreter tells ${told} mutants apart`);
});

const mov = (dst: number, imm: number): IrInsn => ({ code: 0xb7, dst, src: 0, off: 0, imm });
const exit: IrInsn = { code: 0x95, dst: 0, src: 0, off: 0, imm: 0 };
const jeq = (dst: number, imm: number, target: string): IrInsn => ({ code: 0x15, dst, src: 0, off: 0, imm, target });

test('a tail falling into the merged code becomes a goto; tails of different functions stay apart', (t) => {
  // f: if r1 == 0 goto B; r0 = 1; r2 = 5; r3 = 6; exit;  B: r0 = 2; r2 = 5; r3 = 6; exit
  const sec: CodeSection = {
    name: 'x', shndx: 1, relSection: null, symbols: [{ sym: 1, start: 'F', end: 'G' }, { sym: 2, start: 'G', end: null }],
    insns: [{ ...jeq(1, 0, 'B'), labels: ['F'] }, mov(0, 1), mov(2, 5), mov(3, 6), exit, { ...mov(0, 2), labels: ['B'] }, mov(2, 5), mov(3, 6), exit],
  };
  const m = findTailMerge(sec, 2)!;
  t.deepEqual([m.start, m.length, m.keep, m.saved], [6, 3, 2, 2]);
  const out = applyTailMerge(sec, m);
  t.is(out.insns.length, 7);
  t.is(out.insns[6]!.code, 0x05, 'a goto replaces the removed run');
  t.is(out.insns[6]!.target, out.insns[2]!.labels![0]);
  // the same two tails in two functions: no merge
  // (a symbol with an end label is a function; B starts the second one)
  const two: CodeSection = { ...sec, symbols: [{ sym: 1, start: 'F', end: 'B' }, { sym: 2, start: 'B', end: 'F' }] };
  t.is(findTailMerge(two, 1), null);
});

test('a branch around a goto is inverted: if c goto L; goto M; L: → if !c goto M; L:', (t) => {
  const ja = (target: string): IrInsn => ({ code: 0x05, dst: 0, src: 0, off: 0, imm: 0, target });
  const sec: CodeSection = {
    name: 'x', shndx: 1, relSection: null, symbols: [],
    insns: [jeq(1, 7, 'L'), ja('M'), { ...mov(0, 1), labels: ['L'] }, exit, { ...mov(0, 2), labels: ['M'] }, exit],
  };
  const out = invertBranchesOverGotos(sec);
  t.is(out.insns.length, 5);
  t.deepEqual([out.insns[0]!.code, out.insns[0]!.imm, out.insns[0]!.target], [0x55, 7, 'M'], 'jeq became jne to the goto\'s target');
  // JSET has no inverse; a labelled goto (a jump target itself) stays
  t.is(invertBranchesOverGotos({ ...sec, insns: [{ ...jeq(1, 7, 'L'), code: 0x45 }, ...sec.insns.slice(1)] }).insns.length, 6);
  t.is(invertBranchesOverGotos({ ...sec, insns: [sec.insns[0]!, { ...ja('M'), labels: ['G'] }, ...sec.insns.slice(2)] }).insns.length, 6);
});

test('tail merging can be switched off (k2 opt --no-tail-merge, "tailMerge": false)', async (t) => {
  const obj = fixture('xdp_parser.o');
  const k = obj.code.findIndex((s) => s.name === 'xdp');
  const only = { ...DEFAULT_SYNTH, windowSizes: [], memoryWindowSizes: [], chainWindowSizes: [], constantStores: false, deadStores: false, copyRuns: false, budgetMs: 60000 };
  const on = await optimizeSection(obj, k, () => true, only);
  const off = await optimizeSection(obj, k, () => true, { ...only, tailMerge: false });
  t.true(sectionSlots(on.obj.code[k]!) < sectionSlots(obj.code[k]!));
  t.is(sectionSlots(off.obj.code[k]!), sectionSlots(obj.code[k]!));
});
