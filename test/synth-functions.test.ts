// Whole small functions searched as one window, jumps included: which functions qualify, how a
// candidate keeps the function's labels, the control moves, and end to end that the pass finds
// a rewrite no block-level window can (a branch whose two sides compute the same value), proves
// it on the whole function, and that the result is accepted by the kernel and runs identically.
import test from 'ava';
import { asm, checkWindow, shutdownZ3 } from '../src/smt/index.js';
import { assemble, controlMove, searchFunction, shapeOf, smallFunctions } from '../src/synth/functions.js';
import { makeTest, type Observed } from '../src/synth/cost.js';
import { randomInputFor } from '../src/synth/inputs.js';
import { Rng } from '../src/synth/rng.js';
import { optimizeSection, DEFAULT_SYNTH, type SectionStats } from '../src/synth/index.js';
import { objectBytes, type BpfObject, type CodeSection, type IrInsn } from '../src/ir/index.js';
import { checkLinked, linkProgram } from '../src/safety/index.js';
import { interpDiffers } from '../src/smt/soundness.js';
import { bpfAvailable, verifyObject } from '../src/kernel/index.js';
import { formatInsn, JMP, CLASS } from '../src/isa/index.js';
import { handMade } from './helpers/objects.js';

test.after.always(async () => {
  await shutdownZ3();
});

const section = (src: string, symbols: CodeSection['symbols'] = []): CodeSection => ({ name: 's', shndx: 0, insns: asm(src), symbols, relSection: null });
const text = (c: readonly IrInsn[]): string => c.map((i) => `${i.labels?.length ? `${i.labels.join(',')}: ` : ''}${formatInsn(i, 0).replace(/goto [+-]\d+$/, `goto ${i.target ?? '?'}`)}`).join('; ');

test('small functions: loop-free, one entry, helper calls only, at most 40 instructions, ending in exit', (t) => {
  const ok = 'r0 = 0\nif r1 == 0 goto l\nr0 = r1\nl:\nexit';
  t.deepEqual(smallFunctions(section(ok)), [{ start: 0, end: 4 }]);
  // a second function (a sized symbol) splits the section; each is judged alone
  const two = section(`${ok}\nf:\nr0 = 1\nr0 += 1\nexit`, [{ sym: 1, start: 'f', end: null }]);
  t.deepEqual(smallFunctions({ ...two, symbols: [{ sym: 1, start: 'f', end: '$end' }] }), [{ start: 0, end: 4 }, { start: 4, end: 7 }]);
  t.deepEqual(smallFunctions(section('r0 = 0\nl:\nr0 += 1\nif r0 < 5 goto l\nexit')), [], 'a loop');
  t.deepEqual(smallFunctions(section('r0 = 0\ncall 5\nr0 = 1\nexit')), [{ start: 0, end: 4 }], 'a helper call stays in place');
  const pseudo = section('r0 = 0\ncall 5\nr0 = 1\nexit');
  pseudo.insns[1] = { ...pseudo.insns[1]!, src: 1, callee: { section: 's', label: 'f' } };
  t.deepEqual(smallFunctions(pseudo), [], 'a bpf-to-bpf call');
  t.deepEqual(smallFunctions(section(`${'r0 += 1\n'.repeat(41)}exit`)), [], 'too long');
  t.deepEqual(smallFunctions(section('r0 = 0\nif r1 == 0 goto l\nr0 = 1\nl:\nr0 += 1')), [], 'no exit at the end');
  // a jump from another function into this one's middle: two entries
  const entered = section(`r0 = 0\nif r1 == 0 goto l\nr0 = r1\nl:\nexit\nf:\nr0 = 1\ngoto l`, [{ sym: 1, start: 'f', end: '$end' }]);
  t.deepEqual(smallFunctions(entered).map((r) => r.start), [], 'neither: the first is entered in the middle, the second leaves itself');
});

test('a candidate keeps the labels at their positions: a removed instruction\'s labels go to the next one kept', (t) => {
  const body = asm('r0 = 0\nif r1 == 0 goto l\nr0 = r1\nl:\nr0 += 1\nexit');
  const shape = shapeOf(body);
  t.is(text(assemble(body, shape)!), 'r0 = 0; if r1 == 0 goto l; r0 = r1; l: r0 += 1; exit');
  t.is(text(assemble([body[0]!, body[1]!, body[2]!, null, body[4]!], shape)!), 'r0 = 0; if r1 == 0 goto l; r0 = r1; l: exit');
  // labels left after the last instruction: fine when nothing names them, else no candidate
  const tail = asm('r0 = 0\nif r1 == 0 goto l\nr0 = 1\nl:\nexit');
  t.is(assemble([tail[0]!, tail[1]!, tail[2]!, null], shapeOf(tail)), null, 'the jump names l');
  t.is(text(assemble([tail[0]!, null, tail[2]!, null], shapeOf(tail))!), 'r0 = 0; r0 = 1');
  t.is(assemble([tail[0]!, null, tail[2]!, null], shapeOf(tail, new Set(['l']))), null, 'a symbol names l');
});

test('control moves: a jump goes, changes its condition, operand or register, is sent further on or always taken; an exit before the last goes', (t) => {
  const body = asm('if r1 == 0 goto a\nr0 = 1\nexit\na:\nif r2 > 3 goto b\nr0 = 2\nb:\nexit');
  const shape = shapeOf(body);
  const pool = { regs: [0, 1, 2], imms: [0, 1, 3], stackOffs: [] };
  const rng = new Rng(7);
  const seen = new Set<string>();
  for (let n = 0; n < 400; n++) {
    const m = controlMove(rng, body, 0, shape, pool);
    seen.add(m === null ? 'deleted' : m === undefined ? 'none' : m.code === (CLASS.JMP | JMP.JA) ? `ja ${m.target}` : `${m.code.toString(16)} r${m.dst} ${m.src} ${m.imm} ${m.target}`);
    if (m) t.true(m.target === 'a' || m.target === 'b', 'only labels further on');
  }
  t.true(seen.has('deleted') && seen.has('ja a') && seen.has('15 r1 0 0 b') && seen.size >= 8, [...seen].join(' | '));
  t.is(controlMove(rng, body, 2, shape, pool), null, 'the exit in the middle goes');
  t.is(controlMove(rng, body, 6, shape, pool), undefined, 'the last exit stays');
  t.is(controlMove(rng, body, 1, shape, pool), undefined, 'not a control instruction');
});

test('the search finds what no block-level window can: both sides of a branch compute r1 - r2 (0 when r1 == r2); the checker proves it', async (t) => {
  const body = asm('r0 = 0\nif r1 == r2 goto same\nr0 = r1\nr0 -= r2\nsame:\nexit');
  const rng = new Rng(3);
  const wc = { progType: 'xdp', maps: [] };
  const tests = [];
  for (let n = 0; n < 24; n++) {
    const input = randomInputFor(rng, {}, wc)!;
    if (n % 3 === 0) input.regs[2] = input.regs[1]!; // both ways
    tests.push(makeTest(body, input)!);
  }
  const observed: Observed = { liveOut: [0], stackLive: new Uint8Array(512) };
  const cand = searchFunction(body, tests, observed, { iterations: 2000, seed: 1 });
  t.truthy(cand);
  t.is(text(cand!.map(({ labels: _l, ...i }) => i)), 'r0 = r1; r0 -= r2; exit', 'the branch and the code only one side ran are gone');
  const r = await checkWindow(body, cand!, {}, { regs: [0], stack: [] }, { timeoutMs: 10000, progType: 'xdp' });
  t.true(r.equivalent, r.reason ?? '');
  // and a wrong one is refused
  const wrong = asm('r0 = r1\nr0 -= r1\nexit');
  t.false((await checkWindow(body, wrong, {}, { regs: [0], stack: [] }, { timeoutMs: 10000, progType: 'xdp' })).equivalent);
});

test('helper calls stay where they are: the search removes a branch around them whose both sides return the helper\'s value', async (t) => {
  // r0 = ktime(); if r0 == 0 goto z; exit; z: r0 = 0; exit  ->  the value either way
  const body = asm('call 5\nif r0 == 0 goto z\nexit\nz:\nr0 = 0\nexit');
  const rng = new Rng(5);
  const tests = Array.from({ length: 24 }, () => makeTest(body, randomInputFor(rng, {}, { progType: 'kprobe', maps: [] })!)!);
  t.true(tests.some((x) => x.expected.regs[0] === 0n) && tests.some((x) => x.expected.regs[0] !== 0n), 'the helper\'s modelled value takes both ways');
  const cand = searchFunction(body, tests, { liveOut: [0], stackLive: new Uint8Array(512) }, { iterations: 500, seed: 2 });
  t.is(text(cand!.map(({ labels: _l, ...i }) => i)), 'call 5; exit');
  t.true((await checkWindow(body, cand!, {}, { regs: [0], stack: [] }, { timeoutMs: 10000, progType: 'kprobe' })).equivalent);
});

test.serial('end to end: a program whose branch is redundant is searched as a whole, proven, accepted by the kernel and runs identically in the interpreter', async (t) => {
  // xdp: r0 = (ingress_ifindex - rx_queue_index), with a branch for the equal case
  const insns = asm('r2 = *(u32 *)(r1 + 12)\nr3 = *(u32 *)(r1 + 16)\nr0 = 0\nif r2 == r3 goto same\nr0 = r2\nr0 -= r3\nsame:\nr0 &= 3\nexit');
  const obj = handMade(insns);
  const prog = obj.programs[0]!;
  const gate = (c: BpfObject): boolean => { try { return checkLinked(linkProgram(c, prog)).safe; } catch { return false; } };
  const stats: SectionStats = { windows: 0, proposals: 0, proven: 0, refuted: 0, unknown: 0, gateRejected: 0, rewrites: 0, smtMs: [] };
  // only the function search (the other passes switched off, so that it is the one that finds it)
  const out = await optimizeSection(obj, 0, gate, {
    ...DEFAULT_SYNTH, windowSizes: [], memoryWindowSizes: [], chainWindowSizes: [], superblocks: false, copyRuns: false, tailMerge: false, deadStores: false,
    redundantLoads: false, regions: false, constantStores: false, budgetMs: 60000, timeoutMs: 10000, search: { ...DEFAULT_SYNTH.search, iterations: 2000 },
  }, stats);
  const after = out.obj.code[0]!.insns;
  t.true(out.steps.some((s) => s.kind === 'function'), out.steps.map((s) => s.kind).join(','));
  t.log(text(after));
  t.true(after.length <= 6, `${insns.length} → ${after.length} instructions`);
  t.false(after.some((i) => i.target !== undefined), 'no branch left');
  t.deepEqual(after[0]!.labels, obj.code[0]!.insns[0]!.labels, 'the entry label stays on the first instruction');
  // the interpreter runs both versions alike on random contexts
  t.is(interpDiffers(obj, out.obj, prog, 300, 1), false, 'the interpreter finds a difference (or cannot run it)');
  const avail = await bpfAvailable();
  if (!avail.ok) return t.log(`kernel check skipped: ${avail.reason}`);
  const k = await verifyObject(objectBytes(out.obj), { name: 'function-e2e' });
  t.true(k.programs.every((p) => p.accepted), JSON.stringify(k.programs.map((p) => [p.name, p.verdict, p.error])));
});
