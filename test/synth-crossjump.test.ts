// Cross-jumping with a fall-through (a run ending in `goto L` against one falling into L) and
// constants moved up their blocks so that blocks differing in a constant share their tail
// (synth/tailmerge.ts), proven by the program checker and run in the interpreter.
import test from 'ava';
import { corpusDir, fixtureObjects } from './helpers/paths.js';
import { readObject, type BpfObject, type CodeSection } from '../src/ir/index.js';
import { applyTailMerge, dropJumpsToNext, findTailMerge, hoistConstants, invertBranchesOverGotos } from '../src/synth/tailmerge.js';
import { sectionSlots } from '../src/synth/index.js';
import { asm, checkPrograms, shutdownZ3 } from '../src/smt/index.js';
import { interpDiffers } from '../src/smt/soundness.js';

test.after.always(async () => {
  await shutdownZ3();
});

const section = (text: string): CodeSection => ({ name: 's', shndx: 0, insns: asm(text), symbols: [], relSection: null });
const fixture = (name: string): BpfObject => readObject(fixtureObjects().find((f) => f.endsWith(name))!);
const withSection = (obj: BpfObject, k: number, sec: CodeSection): BpfObject => ({ ...obj, code: obj.code.map((s, j) => (j === k ? sec : s)) });

test('a run ending in goto L merges with the identical run that falls into L (the falling one is kept)', (t) => {
  const sec = section('if r1 == 0 goto b\nr2 = r1\nr3 = r1\nr0 = r2\ngoto l\nb:\nr2 = r1\nr3 = r1\nr0 = r2\nl:\nr0 += r3\nexit');
  const m = findTailMerge(sec, 1)!;
  t.truthy(m);
  t.deepEqual([m.start, m.length, m.keep], [1, 4, 5], 'the goto run (goto included) goes, the falling run stays');
  const out = invertBranchesOverGotos(applyTailMerge(sec, m));
  t.true(sectionSlots(out) < sectionSlots(sec));
  // what is left: the branch reaches the kept run either way, which still falls into l
  t.is(out.insns.filter((i) => i.code === 0x05).length, 0, 'no goto left');
});

test('no fall-through merge when L lies inside the removed run or the runs differ', (t) => {
  t.is(findTailMerge(section('r3 = 1\nl:\nr3 = 1\ngoto l'), 1), null, 'L inside the removed run');
  t.is(findTailMerge(section('if r1 == 0 goto b\nr2 = 1\ngoto l\nb:\nr2 = 2\nl:\nr0 = r2\nexit'), 1), null, 'different instructions');
  // hoisting never moves a constant past a jump, a register it touches, or another constant
  const h = hoistConstants(section('r1 = r6\nif r1 == 0 goto l\nr0 = r2\nr2 = 5\nr3 = 1\nl:\nexit'));
  t.deepEqual(h.insns.map((i) => `${i.code}:${i.dst}:${i.imm}`), section('r1 = r6\nif r1 == 0 goto l\nr0 = r2\nr2 = 5\nr3 = 1\nl:\nexit').insns.map((i) => `${i.code}:${i.dst}:${i.imm}`));
  const h2 = hoistConstants(section('if r1 == 0 goto l\nr3 = r6\nr2 = 9\nr4 = 1\nl:\nexit'));
  t.deepEqual(h2.insns.slice(1, 4).map((i) => i.dst), [2, 4, 3], 'r2 = 9 then r4 = 1 moved above r3 = r6, in order');
});

test('socket_filter.o: blocks that differ in a helper argument share their tail after hoisting; proven and identical in the interpreter', async (t) => {
  const obj = fixture('socket_filter.o');
  const k = obj.code.findIndex((s) => s.name === 'socket');
  const sec = obj.code[k]!;
  const plain = findTailMerge(sec, 1);
  const hoisted = hoistConstants(sec);
  const m = findTailMerge(hoisted, 1)!;
  t.truthy(m);
  t.true(m.saved > (plain?.saved ?? 0), `hoisted merge saves ${m.saved}, without ${plain?.saved ?? 0}`);
  const merged = withSection(obj, k, invertBranchesOverGotos(applyTailMerge(hoisted, m)));
  t.true(sectionSlots(merged.code[k]!) <= sectionSlots(sec) - 4, `${sectionSlots(sec)} → ${sectionSlots(merged.code[k]!)}`);
  for (const prog of obj.programs.filter((p) => p.section === 'socket')) {
    const r = await checkPrograms(obj, prog, merged, prog, { timeoutMs: 20000 });
    t.is(r.equivalent, true, `${prog.name}: ${r.reason}`);
    t.is(interpDiffers(obj, merged, prog, 200, 1), false, prog.name);
  }
});

test('a wrong merge (a constant that differs, not hoisted) is refuted by the program checker', async (t) => {
  const obj = fixture('socket_filter.o');
  const k = obj.code.findIndex((s) => s.name === 'socket');
  const hoisted = hoistConstants(obj.code[k]!);
  const m = findTailMerge(hoisted, 1)!;
  // extend the removed run one instruction up: it now swallows the differing constant (r2 = 9 vs 6)
  const wrong = { ...m, start: m.start - 1, length: m.length + 1, keep: m.keep - 1 };
  const insWrong = hoisted.insns[wrong.start]!, insKept = hoisted.insns[wrong.keep]!;
  t.not(`${insWrong.code}:${insWrong.dst}:${insWrong.imm}`, `${insKept.code}:${insKept.dst}:${insKept.imm}`, 'the instructions before the run differ');
  const merged = withSection(obj, k, invertBranchesOverGotos(applyTailMerge(hoisted, wrong)));
  const prog = obj.programs.find((p) => p.name === 'sock_count')!;
  const r = await checkPrograms(obj, prog, merged, prog, { timeoutMs: 20000 });
  t.is(r.equivalent, false);
});

test('a jump to the next instruction goes, then the ALU results only it read; other jumps and live results stay', (t) => {
  const out = dropJumpsToNext(section('r6 = r1\ncall 7\nr1 = r0\nr1 &= 1\nif r1 != 0 goto l\nl:\nr0 <<= 2\nexit'));
  // r6 = r1 is dead too (nothing reads r6): it goes with r1's
  t.deepEqual(out.insns.map((i) => i.code), section('call 7\nr0 <<= 2\nexit').insns.map((i) => i.code));
  t.true(out.insns[1]!.labels?.includes('l'), 'the label moves to the next instruction');
  // r1 is read after the label: kept; a jump elsewhere: kept
  const keep = section('r1 = r0\nr1 &= 1\nif r1 != 0 goto l\nl:\nr0 = r1\nexit');
  t.is(dropJumpsToNext(keep).insns.length, keep.insns.length - 1, 'only the jump goes');
  const other = section('r1 = r0\nif r1 != 0 goto m\nr0 = 1\nm:\nexit');
  t.is(dropJumpsToNext(other), other, 'nothing to drop: the same section');
});

test('packet_access.o: two branches made identical are merged and the branch goes; proven and identical in the interpreter', async (t) => {
  const obj = readObject(`${corpusDir}/build/packet_access.o`);
  const k = obj.code.findIndex((s) => s.name === 'xdp');
  // the window search first turns `r0 += r1; r1 = r0` into `r1 += r0` in one branch (as in k2 opt)
  const sec0 = obj.code[k]!;
  const i = sec0.insns.findIndex((x, j) => x.code === 0x0f && x.dst === 0 && x.src === 1 && sec0.insns[j + 1]?.code === 0xbf);
  t.true(i > 0, 'the pattern is there');
  const sec1 = { ...sec0, insns: [...sec0.insns.slice(0, i), { ...sec0.insns[i]!, dst: 1, src: 0 }, ...sec0.insns.slice(i + 2)] };
  const m = findTailMerge(sec1, 1)!;
  t.truthy(m);
  const merged = withSection(obj, k, dropJumpsToNext(invertBranchesOverGotos(applyTailMerge(sec1, m))));
  t.true(sectionSlots(merged.code[k]!) <= 14, `${sectionSlots(sec0)} → ${sectionSlots(merged.code[k]!)}`);
  const prog = obj.programs[0]!;
  const r = await checkPrograms(obj, prog, merged, prog, { timeoutMs: 20000 });
  t.is(r.equivalent, true, r.reason);
  t.is(interpDiffers(obj, merged, prog, 200, 1), false);
});
