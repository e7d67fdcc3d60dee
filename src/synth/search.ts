// Markov-chain Monte Carlo search for a cheaper window (K2 §4, after STOKE): propose a neighbour,
// accept it with probability min(1, exp(-beta * Δcost)); remember the cheapest candidate with zero
// error on every test case. Zero test error is only a filter: the SMT checker decides.
import type { Insn } from '../isa/index.js';
import { REG_FP } from '../isa/index.js';
import { compact, errorOn, passesAll, ERROR_WEIGHT, perfCost, type TestCase } from './cost.js';
import { ALU, CLASS, MODE, SIZE, SRC_K, SRC_X, opClass } from '../isa/index.js';
import { propose, type Pool, type Slot } from './moves.js';
import { Rng } from './rng.js';

export interface SearchOptions {
  iterations: number;
  beta: number;
  seed: number;
}

export const DEFAULT_SEARCH: SearchOptions = { iterations: 300, beta: 1, seed: 1 };

/** Registers, constants and stack offsets a window's rewrites may draw from. */
export function poolOf(window: readonly Insn[], liveOut: readonly number[]): Pool {
  const regs = new Set<number>(liveOut.filter((r) => r !== REG_FP));
  const imms = new Set<number>([0, 1, -1, 2, 4, 8, 16, 32, 0xff, 0xffff]);
  const stackOffs = new Set<number>();
  for (const i of window) {
    if (i.dst !== REG_FP) regs.add(i.dst);
    if (i.src !== REG_FP && i.src <= 9) regs.add(i.src);
    if (i.imm2 === undefined) imms.add(i.imm);
    if (i.src === REG_FP || i.dst === REG_FP) stackOffs.add(i.off);
  }
  return { regs: [...regs].filter((r) => r <= 9), imms: [...imms], stackOffs: [...stackOffs] };
}

/** Candidates that delete exactly one instruction: cheap, and they find dead code at once. */
export function deletions(window: readonly Insn[]): Insn[][] {
  return window.map((_, k) => window.filter((__, j) => j !== k));
}

const SINGLE_OPS = [ALU.MOV, ALU.ADD, ALU.SUB, ALU.MUL, ALU.OR, ALU.AND, ALU.LSH, ALU.RSH, ALU.XOR, ALU.ARSH, ALU.NEG];

/** Every one-instruction ALU rewrite over the pool (complete for windows that collapse to one ALU op). */
export function* singles(pool: Pool): Generator<Insn[]> {
  for (const cls of [CLASS.ALU, CLASS.ALU64]) {
    for (const op of SINGLE_OPS) {
      const shift = op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH;
      for (const dst of pool.regs) {
        if (op === ALU.NEG) { yield [{ code: cls | op, dst, src: 0, off: 0, imm: 0 }]; continue; }
        for (const src of pool.regs) yield [{ code: cls | op | SRC_X, dst, src, off: 0, imm: 0 }];
        const imms = shift ? [1, 2, 3, 4, 8, 16, 24, 31, 32, 48, 56, 63].filter((k) => k < (cls === CLASS.ALU ? 32 : 64)) : pool.imms;
        for (const imm of imms) yield [{ code: cls | op | SRC_K, dst, src: 0, off: 0, imm }];
      }
    }
  }
}

/** The non-stack base registers a window loads from, each with the offsets it reads. */
export function loadBases(window: readonly Insn[]): Map<number, number[]> {
  const out = new Map<number, Set<number>>();
  const written = new Set<number>();
  for (const i of window) {
    // a base is only useful while it still holds its entry value
    if (opClass(i.code) === CLASS.LDX && i.src !== REG_FP && !written.has(i.src)) {
      if (!out.has(i.src)) out.set(i.src, new Set());
      out.get(i.src)!.add(i.off);
    }
    if (opClass(i.code) === CLASS.LDX || opClass(i.code) === CLASS.ALU || opClass(i.code) === CLASS.ALU64 || i.code === 0x18) written.add(i.dst);
  }
  return new Map([...out].map(([r, offs]) => [r, [...offs].sort((a, b) => a - b)]));
}

/**
 * One load (optionally byte-swapped to big-endian) from a base the window reads: the rewrites that
 * merge byte loads combined with shifts and ors into one wider load (K2's load-width merges).
 */
export function* loadSingles(window: readonly Insn[], pool: Pool): Generator<Insn[]> {
  for (const [base, offs] of loadBases(window)) {
    for (const off of offs) {
      for (const [size, bits] of [[SIZE.H, 16], [SIZE.W, 32], [SIZE.DW, 64], [SIZE.B, 8]] as const) {
        for (const dst of pool.regs) {
          const ld: Insn = { code: CLASS.LDX | MODE.MEM | size, dst, src: base, off, imm: 0 };
          yield [ld];
          if (bits > 8) yield [ld, { code: CLASS.ALU | ALU.END | SRC_X, dst, src: 0, off: 0, imm: bits }];
        }
      }
    }
  }
}

/**
 * Copies of neighbouring fields (`r = *(s *)(A + a); *(s *)(B + b) = r` twice, the second at
 * a + s, b + s) merged into one copy of twice the width. Whether the halves overlap, or the
 * register's final value matters, is for the tests and the checker to find out.
 */
export function* copyMerges(window: readonly Insn[]): Generator<Insn[]> {
  const isMem = (i: Insn, cls: number): boolean => opClass(i.code) === cls && (i.code & 0xe0) === MODE.MEM;
  const pairs: { k: number; size: number; base: number; a: number; dstBase: number; b: number; reg: number }[] = [];
  for (let k = 0; k + 1 < window.length; k++) {
    const ld = window[k]!, st = window[k + 1]!;
    if (!isMem(ld, CLASS.LDX) || !isMem(st, CLASS.STX) || st.src !== ld.dst || ld.src === ld.dst) continue;
    pairs.push({ k, size: ld.code & 0x18, base: ld.src, a: ld.off, dstBase: st.dst, b: st.off, reg: ld.dst });
  }
  const bytes: Record<number, number> = { [SIZE.B]: 1, [SIZE.H]: 2, [SIZE.W]: 4 };
  const wider: Record<number, number> = { [SIZE.B]: SIZE.H, [SIZE.H]: SIZE.W, [SIZE.W]: SIZE.DW };
  for (const p of pairs) {
    for (const q of pairs) {
      const n = bytes[p.size];
      if (q.k <= p.k + 1 || n === undefined || q.size !== p.size || q.base !== p.base || q.dstBase !== p.dstBase) continue;
      const lo = q.a === p.a + n && q.b === p.b + n ? p : p.a === q.a + n && p.b === q.b + n ? q : null;
      if (!lo) continue;
      const w = wider[p.size]!;
      const merged: Insn[] = [
        { code: CLASS.LDX | MODE.MEM | w, dst: p.reg, src: p.base, off: lo.a, imm: 0 },
        { code: CLASS.STX | MODE.MEM | w, dst: p.dstBase, src: p.reg, off: lo.b, imm: 0 },
      ];
      const out: Insn[] = [];
      window.forEach((i, k) => {
        if (k === p.k) out.push(...merged);
        else if (k !== p.k + 1 && k !== q.k && k !== q.k + 1) out.push(i);
      });
      yield out;
    }
  }
}

/**
 * The cheapest zero-error rewrite found, or null. Candidates come from single deletions first, then
 * from the chain; `reject` filters candidates already refuted by the checker.
 */
export function searchWindow(
  window: readonly Insn[],
  tests: readonly TestCase[],
  liveOut: readonly number[],
  opts: SearchOptions = DEFAULT_SEARCH,
  reject: (cand: Insn[]) => boolean = () => false,
): Insn[] | null {
  const origCost = perfCost(window);
  let best: Insn[] | null = null;
  let bestCost = origCost;
  const consider = (cand: Insn[], cost: number): void => {
    if (cost < bestCost && !reject(cand)) { best = cand; bestCost = cost; }
  };
  for (const d of deletions(window)) if (passesAll(d, tests, liveOut)) consider(d, perfCost(d));
  if (best) return best;
  const pool = poolOf(window, liveOut);
  if (pool.regs.length === 0) return null;
  if (origCost > 1) {
    for (const c of singles(pool)) {
      if (passesAll(c, tests, liveOut)) consider(c, 1);
      if (best) return best;
    }
  }
  for (const c of copyMerges(window)) {
    const cost = perfCost(c);
    if (cost < bestCost && passesAll(c, tests, liveOut)) consider(c, cost);
  }
  for (const c of loadSingles(window, pool)) {
    const cost = perfCost(c);
    if (cost < bestCost && passesAll(c, tests, liveOut)) consider(c, cost);
  }
  if (best) return best;
  if (window.length <= 2 || opts.iterations <= 0) return best; // two-instruction windows are covered completely above

  const rng = new Rng(opts.seed);
  const steer = tests.slice(0, 4);
  let cur: Slot[] = [...window];
  let curCost = perfCost(window);
  for (let it = 0; it < opts.iterations; it++) {
    const next = propose(rng, cur, pool);
    const insns = compact(next);
    // The chain is steered by a few tests; a zero-error candidate must then pass them all.
    const err = errorOn(insns, steer, liveOut);
    const perf = perfCost(insns);
    const cost = ERROR_WEIGHT * err + perf;
    if (err === 0 && perf < bestCost && passesAll(insns, tests, liveOut)) consider(insns, perf);
    if (cost <= curCost || rng.float() < Math.exp(-opts.beta * (cost - curCost))) {
      cur = next;
      curCost = cost;
    }
  }
  return best;
}
