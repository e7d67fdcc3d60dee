// Moves and enumerated fast paths, one by one: what each proposes for a window, and that the
// search finds (and the checker proves) the expected rewrite where it is an equivalence.
import test from 'ava';
import { asm, checkWindow, shutdownZ3, type WindowPre } from '../src/smt/index.js';
import { atomicForms, copyMerges, copyRuns, deletions, jump32Forms, jumpForms, loadSingles, stackAddrCopies } from '../src/synth/fastpaths.js';
import { DEFAULT_MIX, exchangeMem, mutateOperand, poolOf, propose, randomInsn } from '../src/synth/moves.js';
import { searchWindow, testsFor, Rng, type WindowJob } from '../src/synth/index.js';
import { CLASS, MODE, formatInsn, opClass, type Insn } from '../src/isa/index.js';

test.after.always(async () => {
  await shutdownZ3();
});

const text = (c: readonly Insn[]): string => c.map((i) => formatInsn(i, 0)).join('; ');
const all = <T>(g: Iterable<T>): T[] => [...g];

test('deletions: one candidate per instruction', (t) => {
  const w = asm('r1 = 1; r2 = 2; r3 = 3'.replace(/; /g, '\n'));
  t.deepEqual(deletions(w).map(text), ['r2 = 2; r3 = 3', 'r1 = 1; r3 = 3', 'r1 = 1; r2 = 2']);
});

test('atomic forms: load-op-store on memory, with the operand register, a register holding the constant, or a fresh move', (t) => {
  const reg = all(atomicForms(asm('r3 = *(u64 *)(r1 + 0)\nr3 += r2\n*(u64 *)(r1 + 0) = r3'), new Map()));
  t.deepEqual(reg.map(text), ['lock *(u64 *)(r1 + 0) += r2']);
  const imm = all(atomicForms(asm('r1 = *(u64 *)(r0 + 0)\nr1 += 1\n*(u64 *)(r0 + 0) = r1'), new Map([[6, 1n]])));
  t.deepEqual(imm.map(text), ['lock *(u64 *)(r0 + 0) += r6', 'r1 = 1; lock *(u64 *)(r0 + 0) += r1']);
  const or32 = all(atomicForms(asm('w1 = *(u32 *)(r0 + 4)\nw1 |= w5\n*(u32 *)(r0 + 4) = w1'), new Map()));
  t.deepEqual(or32.map(text), ['lock *(u32 *)(r0 + 4) |= w5']);
  // a 32-bit op on a u64 cell is not an atomic add; an instruction in between touching memory blocks it
  t.deepEqual(all(atomicForms(asm('r1 = *(u64 *)(r0 + 0)\nw1 += 1\n*(u64 *)(r0 + 0) = r1'), new Map())), []);
  t.deepEqual(all(atomicForms(asm('r1 = *(u64 *)(r0 + 0)\nr1 += 1\n*(u64 *)(r10 - 8) = r2\n*(u64 *)(r0 + 0) = r1'), new Map())), []);
  // sub has no atomic form; a byte cell neither
  t.deepEqual(all(atomicForms(asm('r1 = *(u64 *)(r0 + 0)\nr1 -= 1\n*(u64 *)(r0 + 0) = r1'), new Map())), []);
  t.deepEqual(all(atomicForms(asm('r1 = *(u8 *)(r0 + 0)\nr1 += 1\n*(u8 *)(r0 + 0) = r1'), new Map())), []);
});

test('jump forms: a compared register holding a constant becomes an immediate (mirrored when it is the left operand)', (t) => {
  const w = asm('r2 = 5\nif r2 > r1 goto out');
  t.deepEqual(all(jumpForms(w, new Map())).map(text), ['r2 = 5; if r1 < 5 goto +0', 'if r1 < 5 goto +0']);
  const pre = all(jumpForms(asm('if r3 == r4 goto out'), new Map([[4, 7n]])));
  t.deepEqual(pre.map(text), ['if r3 == 7 goto +0']);
  // a 64-bit compare with a constant that is no sign-extended 32-bit immediate has no form
  t.deepEqual(all(jumpForms(asm('if r3 == r4 goto out'), new Map([[4, 0x80000000n]]))), []);
  t.deepEqual(all(jumpForms(asm('if w3 == w4 goto out'), new Map([[4, 0x80000000n]]))).length, 1, 'jmp32 compares the low half');
  // a compared register that is a copy of another
  t.deepEqual(all(jumpForms(asm('r1 = r2\nif r1 != r7 goto out'), new Map())).map(text), ['r1 = r2; if r2 != r7 goto +0', 'if r2 != r7 goto +0']);
  t.deepEqual(all(jumpForms(asm('r1 = r2\nr2 += 1\nif r1 != r7 goto out'), new Map())), [], 'the copy\'s source changed before the jump');
});

const disjointStackPkt = (a: number, b: number): boolean => (a === 10) !== (b === 10);

test('copy runs: a 12-byte MAC copy done in bytes becomes word copies (stack side aligned)', (t) => {
  // xdp_fwd: dmac/smac from the stack (fib params) into the packet, byte by byte
  const w = asm(`r1 = *(u16 *)(r10 - 2)
*(u8 *)(r6 + 4) = r1
r1 >>= 8
*(u8 *)(r6 + 5) = r1
r1 = *(u16 *)(r10 - 4)
*(u8 *)(r6 + 2) = r1
r1 >>= 8
*(u8 *)(r6 + 3) = r1
r1 = *(u16 *)(r10 - 6)
*(u8 *)(r6 + 0) = r1
r1 >>= 8
*(u8 *)(r6 + 1) = r1
r1 = *(u32 *)(r10 - 12)
r2 = r1
r2 >>= 24
*(u8 *)(r6 + 9) = r2
r2 = r1
r2 >>= 16
*(u8 *)(r6 + 8) = r2
*(u8 *)(r6 + 6) = r1
r1 >>= 8
*(u8 *)(r6 + 7) = r1
r1 = *(u16 *)(r10 - 8)
*(u8 *)(r6 + 10) = r1
r1 >>= 8
*(u8 *)(r6 + 11) = r1`);
  const cands = all(copyRuns(w, [6], disjointStackPkt));
  t.true(cands.length >= 1);
  const best = cands[0]!;
  t.true(best.length <= 8, text(best));
  for (const i of best) {
    if (opClass(i.code) === CLASS.LDX && i.src === 10) {
      const n = { 0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8 }[i.code & 0x18]!;
      t.is(((i.off % n) + n) % n, 0, `stack load aligned: ${formatInsn(i, 0)}`);
    }
  }
  // without knowing the stack and the packet apart, loads after stores might alias: no candidate
  t.deepEqual(all(copyRuns(w, [6], () => false)), []);
  // a live scratch register: no candidate (the rebuilt code would clobber it)
  t.deepEqual(all(copyRuns(w, [1, 6], disjointStackPkt)), []);
});

test('copy runs: adjacent constant stores merge into the widest aligned store', (t) => {
  const w = asm('*(u32 *)(r10 - 8) = 0\n*(u32 *)(r10 - 4) = 0\n*(u16 *)(r10 - 12) = 1\n*(u16 *)(r10 - 10) = 2');
  const c = all(copyRuns(w, [], () => false));
  t.deepEqual(c.map(text)[0], '*(u32 *)(r10 - 12) = 131073; *(u64 *)(r10 - 8) = 0');
  // misaligned for the stack: u32 zeros at -12 and -8 stay two stores (no u64 at -12)
  const m = all(copyRuns(asm('*(u32 *)(r10 - 12) = 0\n*(u32 *)(r10 - 8) = 0'), [], () => false));
  t.false(m.some((x) => x.some((i) => (i.code & 0x18) === 0x18)), m.map(text).join(' | '));
  // 8 bytes that are no sign-extended 32-bit immediate: two u32 stores
  const big = all(copyRuns(asm('*(u32 *)(r10 - 8) = 0\n*(u32 *)(r10 - 4) = 1'), [], () => false));
  t.deepEqual(big.map(text)[0], '*(u32 *)(r10 - 8) = 0; *(u32 *)(r10 - 4) = 1');
});

test('copy merges and load singles: the K2 width merges', (t) => {
  const cm = all(copyMerges(asm('r1 = *(u32 *)(r2 + 0)\n*(u32 *)(r3 + 0) = r1\nr1 = *(u32 *)(r2 + 4)\n*(u32 *)(r3 + 4) = r1')));
  t.deepEqual(cm.map(text), ['r1 = *(u64 *)(r2 + 0); *(u64 *)(r3 + 0) = r1']);
  const w = asm('r0 = *(u8 *)(r1 + 0)\nr2 = *(u8 *)(r1 + 1)\nr2 <<= 8\nr0 |= r2');
  const ls = all(loadSingles(w, poolOf(w, [0])));
  t.true(ls.some((c) => text(c) === 'r0 = *(u16 *)(r1 + 0)'));
  t.true(ls.some((c) => text(c) === 'r0 = *(u16 *)(r1 + 0); r0 = be16 r0'));
});

test('MCMC moves: deterministic for a seed, fields the kernel checks stay zero, memory exchange changes width or kind', (t) => {
  const w = asm('r1 = *(u32 *)(r6 + 4)\nr1 += 1\n*(u32 *)(r6 + 4) = r1\n*(u64 *)(r10 - 8) = r2');
  const pool = poolOf(w, [0, 6]);
  t.deepEqual([...pool.mem!.keys()].sort((a, b) => a - b), [6, 10]);
  const seq = (seed: number): string => {
    const r = new Rng(seed);
    let cur: (Insn | null)[] = [...w];
    const out: string[] = [];
    for (let k = 0; k < 200; k++) {
      cur = propose(r, cur, pool, DEFAULT_MIX);
      out.push(text(cur.filter((x): x is Insn => x !== null)));
    }
    return out.join('\n');
  };
  t.is(seq(4), seq(4));
  t.not(seq(4), seq(5));
  const r = new Rng(1);
  for (let k = 0; k < 500; k++) {
    const i = randomInsn(r, pool);
    const cls = opClass(i.code);
    if (cls === CLASS.ALU || cls === CLASS.ALU64) t.is(i.off, 0, formatInsn(i, 0));
    if (cls === CLASS.LDX) t.is(i.imm, 0);
    if (cls === CLASS.STX && (i.code & 0xe0) === MODE.MEM) t.is(i.imm, 0);
    const m = mutateOperand(r, i, pool);
    t.is(opClass(m.code), cls);
  }
  let widths = 0, kinds = 0;
  for (let k = 0; k < 200; k++) {
    const e = exchangeMem(r, w[0]!);
    if (!e) continue;
    if ((e.code & 0xe0) !== (w[0]!.code & 0xe0)) kinds++;
    else if ((e.code & 0x18) !== (w[0]!.code & 0x18)) widths++;
  }
  t.true(widths > 10 && kinds > 10);
  const st = exchangeMem(new Rng(3), w[3]!);
  t.truthy(st);
});

const job = (text: string, pre: WindowPre, liveOut: number[], progType = 'xdp'): WindowJob => {
  const insns = asm(text);
  return { section: 's', start: 0, end: insns.length, insns, pres: [pre], liveOut, stackOut: [], progType };
};

test('the search finds and the checker proves: atomic add on a map value, branch on a constant, register exchange', async (t) => {
  const maps = [{ name: 'm', type: 2, keySize: 4, valueSize: 8, maxEntries: 1, readonly: false, data: false }];
  const cases: [WindowJob, string][] = [
    [job('r1 = *(u64 *)(r0 + 0)\nr1 += 1\n*(u64 *)(r0 + 0) = r1', { regs: { 0: { kind: 'map_value', map: 'm', off: 0 }, 6: { kind: 'scalar', value: 1n } } }, [6]), 'lock *(u64 *)(r0 + 0) += r6'],
    [job('r2 = 5\nif r2 > r1 goto out', {}, [1]), 'if r1 < 5 goto +0'],
    [job('r1 = *(u32 *)(r6 + 0)\nr0 += r1\nr1 = r0\nr0 = 1', { regs: { 6: { kind: 'ctx', off: 0 } } }, [0, 1, 6]), 'r1 = *(u32 *)(r6 + 0); r1 += r0; r0 = 1'],
  ];
  for (const [j, want] of cases) {
    const tests = testsFor(j, { progType: j.progType, maps }, new Rng(1), 16)!;
    t.truthy(tests);
    const c = searchWindow(j.insns, tests, j.liveOut, { iterations: 20000, beta: 1, seed: 1 }, () => false, { consts: new Map(Object.entries(j.pres[0]!.regs ?? {}).flatMap(([r, f]) => (f?.kind === 'scalar' && f.value !== undefined ? [[Number(r), f.value] as [number, bigint]] : []))) });
    t.truthy(c, want);
    t.is(text(c!).replace(/w0 = 1$/, 'r0 = 1'), want);
    const obj = { file: 'x', programs: [], maps: [{ name: 'm', type: 2, keySize: 4, valueSize: 8, maxEntries: 1, sym: 0, section: '.maps', flags: 0, btf: true }], data: [] } as unknown as import('../src/ir/types.js').BpfObject;
    const r = await checkWindow(j.insns, c!, j.pres[0], { regs: j.liveOut, stack: [] }, { progType: j.progType, object: obj, timeoutMs: 30000 });
    t.true(r.equivalent, `${want}: ${r.reason ?? JSON.stringify(r.counterexample?.difference)}`);
  }
});

test('jump32 forms: a compare of an extended low half becomes a 32-bit compare, and the checker agrees', async (t) => {
  const cases: [string, string][] = [
    ['r0 <<= 32\nif r0 != 0 goto out', 'if w0 != 0 goto +0'],
    ['r1 <<= 32\nr1 >>= 32\nif r1 > 7 goto out', 'if w1 > 7 goto +0'],
    ['r1 <<= 32\nr1 s>>= 32\nif r1 s< -3 goto out', 'if w1 s< -3 goto +0'],
    ['w1 = w2\nif r1 >= 100 goto out', 'if w2 >= 100 goto +0'],
  ];
  for (const [src, want] of cases) {
    const w = asm(src);
    const c = all(jump32Forms(w));
    t.deepEqual(c.map(text), [want], src);
    const r = await checkWindow(w, c[0]!, {}, { regs: [], stack: [] }, { timeoutMs: 30000 });
    t.true(r.equivalent, `${src}: ${r.reason ?? JSON.stringify(r.counterexample?.difference)}`);
  }
  // no form: a signed compare after a zero-extension, a negative bound, `<<= 32` with a non-zero constant
  t.deepEqual(all(jump32Forms(asm('r1 <<= 32\nr1 >>= 32\nif r1 s> 7 goto out'))), []);
  t.deepEqual(all(jump32Forms(asm('r1 <<= 32\nr1 >>= 32\nif r1 > -1 goto out'))), []);
  t.deepEqual(all(jump32Forms(asm('r1 <<= 32\nif r1 == 5 goto out'))), []);
  // the register still live afterwards: the rewrite is not equivalent
  const live = await checkWindow(asm('r0 <<= 32\nif r0 != 0 goto out'), asm('if w0 != 0 goto out'), {}, { regs: [0], stack: [] }, { timeoutMs: 30000 });
  t.is(live.equivalent, false);
});

test('stack address copies: fp + k recomputed where another register still holds it', (t) => {
  const w = asm('r2 = r10\nr2 += -48\nr1 = 0 ll');
  t.deepEqual(all(stackAddrCopies(w, new Map([[6, -48]]))).map(text), ['r2 = r6; r1 = 0 ll']);
  t.deepEqual(all(stackAddrCopies(w, new Map([[6, -40]]))), [], 'another offset');
  t.deepEqual(all(stackAddrCopies(asm('r6 = 1\nr2 = r10\nr2 += -48'), new Map([[6, -48]]))), [], 'the holder changes first');
  t.deepEqual(all(stackAddrCopies(asm('call 5\nr2 = r10\nr2 += -48'), new Map([[0, -48]]))), [], 'a call clobbers r0');
});

test('superblock moves: side exits are never changed or moved, other instructions still move across them', (t) => {
  const w = asm('r1 = 1\nif r2 == 0 goto out\nr3 = 2\nr4 = 3');
  const pinned = w.map((i) => opClass(i.code) === CLASS.JMP);
  const pool = poolOf(w, [1, 3, 4]);
  const r = new Rng(9);
  let cur: (Insn | null)[] = [...w];
  let crossed = false;
  for (let k = 0; k < 2000; k++) {
    cur = propose(r, cur, pool, DEFAULT_MIX, pinned);
    t.is(cur[1], w[1], 'the side exit stays in its slot');
    const one = propose(r, [...w], pool, DEFAULT_MIX, pinned);
    if (one[0] && text([one[0]]) === 'r3 = 2') crossed = true;
  }
  t.true(crossed, 'an instruction was swapped across the exit');
});
