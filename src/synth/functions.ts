// Whole small functions as one window, jumps included (K2 searches whole programs; the window
// search sees a block or a superblock at a time). A function qualifies when it is short (≤ 40
// instructions), loop-free (every jump goes forward, inside it), has one entry (nothing outside
// jumps into it), calls only helpers and ends in `exit`: the evaluator and the window checker then
// see all of it, and what the caller observes is r0 and memory. Helper calls and the `ld_imm64`s
// of maps stay where they are (the search moves the code around them).
//
// The search keeps the function's labels at their positions (a label of a removed instruction
// moves to the next one kept) and moves instructions as the window search does, the control
// instructions through their own moves: a conditional jump deleted, made unconditional, given
// another condition, operand or register, or sent to another label further on; an `exit` that is
// not the last instruction deleted. Zero test error is only a filter: the caller proves the result.
import { CLASS, JMP, LD_IMM64, REG_FP, jmpOp, opClass, type Insn } from '../isa/index.js';
import type { CodeSection, IrInsn } from '../ir/types.js';
import { labelIndex } from '../analysis/index.js';
import { ERROR_WEIGHT, errorOn, passesAll, perfCost, type Observed, type TestCase } from './cost.js';
import { DEFAULT_MIX, poolOf, propose, type Pool, type Slot } from './moves.js';
import { Rng } from './rng.js';

/** Longest function searched as a whole (instructions). */
export const MAX_FUNCTION_INSNS = 40;

export interface FunctionRegion {
  start: number;
  end: number; // one past its last instruction
}

const isJump = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32;
const isCall = (i: IrInsn): boolean => isJump(i) && jmpOp(i.code) === JMP.CALL;
/** Kept in place by the search: helper calls, and a map's relocated `ld_imm64`. */
export const fixedInFunction = (i: IrInsn): boolean => (isCall(i) && i.src === 0) || isMapLoad(i);
const isMapLoad = (i: IrInsn): boolean => i.code === LD_IMM64 && (i.src === 1 || i.src === 2) && !!i.reloc && i.pinned === 'relocation' && !i.core?.length;
const isExit = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.EXIT;

/** Where functions start: the section start, func_info records, sized symbols (programs, callees). */
function functionStarts(sec: CodeSection): number[] {
  const at = labelIndex(sec);
  const starts = new Set<number>([0]);
  sec.insns.forEach((i, k) => { if (i.funcInfo) starts.add(k); });
  for (const s of sec.symbols) {
    const k = s.end === null ? undefined : at.get(s.start);
    if (k !== undefined) starts.add(k);
  }
  return [...starts].filter((k) => k < sec.insns.length).sort((a, b) => a - b);
}

/** The functions of `sec` that can be searched as one window (see the file comment). */
export function smallFunctions(sec: CodeSection, max = MAX_FUNCTION_INSNS): FunctionRegion[] {
  const insns = sec.insns;
  const at = labelIndex(sec);
  const starts = functionStarts(sec);
  const out: FunctionRegion[] = [];
  for (const [n, start] of starts.entries()) {
    const end = starts[n + 1] ?? insns.length;
    if (end - start > max || end - start < 3 || !isExit(insns[end - 1]!)) continue;
    let ok = true;
    for (let k = start; k < end && ok; k++) {
      const i = insns[k]!;
      if (isMapLoad(i) || (isCall(i) && i.src === 0)) continue; // kept in place
      if (i.pinned || i.core?.length || (i.code === LD_IMM64 && i.src !== 0) || isCall(i) || (k > start && i.funcInfo)) ok = false;
      else if (isJump(i) && i.target !== undefined) {
        const t = at.get(i.target);
        ok = t !== undefined && t > k && t < end; // forward, inside
      }
    }
    if (!ok) continue;
    // one entry: no jump from elsewhere in the section to a label inside
    const inside = new Set(insns.slice(start + 1, end).flatMap((i) => i.labels ?? []));
    if (inside.size && insns.some((i, k) => (k < start || k >= end) && i.target !== undefined && inside.has(i.target))) continue;
    out.push({ start, end });
  }
  return out;
}

/** A candidate as a list of instructions: each slot's instruction (or none) with the labels of its position. */
export interface Shape {
  /** Labels at each position (position 0: none; the region's own start labels stay with the caller). */
  labelsAt: readonly (readonly string[])[];
  /** Positions of the labels (label → position). */
  position: ReadonlyMap<string, number>;
  /** Labels something outside the function names (symbols): they must stay. */
  named: ReadonlySet<string>;
}

export function shapeOf(body: readonly IrInsn[], named: ReadonlySet<string> = new Set()): Shape {
  const labelsAt = body.map((i, k) => (k === 0 ? [] : [...(i.labels ?? [])]));
  const position = new Map<string, number>();
  labelsAt.forEach((ls, k) => ls.forEach((l) => position.set(l, k)));
  return { labelsAt, position, named };
}

/**
 * The instructions of `slots`, each position's labels on the next instruction kept from there on;
 * labels left after the last one go if nothing names them (no jump of the candidate, no symbol),
 * else the candidate is null.
 */
export function assemble(slots: readonly Slot[], shape: Shape): IrInsn[] | null {
  const out: IrInsn[] = [];
  let carry: string[] = [];
  for (let k = 0; k < slots.length; k++) {
    carry.push(...shape.labelsAt[k]!);
    const s = slots[k];
    if (!s) continue;
    const { labels: _l, funcInfo: _f, lines: _n, ...plain } = s as IrInsn;
    out.push(carry.length ? { ...plain, labels: carry } : plain);
    carry = [];
  }
  if (!out.length) return null;
  if (carry.length && carry.some((l) => shape.named.has(l) || out.some((i) => i.target === l))) return null;
  return out;
}

const CONDITIONS = [JMP.JEQ, JMP.JNE, JMP.JGT, JMP.JGE, JMP.JLT, JMP.JLE, JMP.JSGT, JMP.JSGE, JMP.JSLT, JMP.JSLE, JMP.JSET];

/** One move of the control instruction at `k` (a jump or an exit), or null when it has none. */
export function controlMove(rng: Rng, slots: readonly Slot[], k: number, shape: Shape, pool: Pool): IrInsn | null | undefined {
  const i = slots[k] as IrInsn | null;
  if (!i) return undefined;
  if (isExit(i)) return k < slots.length - 1 ? null : undefined; // an exit before the last: deleted
  if (!isJump(i) || i.target === undefined) return undefined;
  const later = [...shape.position].filter(([, p]) => p > k).map(([l]) => l);
  const op = jmpOp(i.code);
  if (op === JMP.JA) return rng.int(2) === 0 || !later.length ? null : { ...i, target: rng.pick(later) };
  switch (rng.int(6)) {
    case 0: return null; // the branch goes
    case 1: return { ...i, code: (i.code & 0x0f) | rng.pick(CONDITIONS) };
    case 2: return rng.int(2) === 0
      ? { ...i, code: i.code | 0x08, src: rng.pick(pool.regs), imm: 0 }
      : { ...i, code: i.code & ~0x08, src: 0, imm: rng.pick(pool.imms) };
    case 3: return i.dst === REG_FP ? undefined : { ...i, dst: rng.pick(pool.regs) };
    case 4: return later.length ? { ...i, target: rng.pick(later) } : undefined;
    default: return { code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0, target: i.target }; // always taken
  }
}

export interface FunctionSearchOptions {
  /** Proposals per chain before it must have improved to go on. */
  iterations: number;
  seed: number;
  perf?: (insns: readonly Insn[]) => number;
  /** Chains (default 3: two from the function, one from nothing but its control flow). */
  chains?: number;
}

/**
 * The cheapest function body found that passes every test, or null. `reject` skips candidates
 * refused before (by the checker or the gate).
 */
export function searchFunction(body: readonly IrInsn[], tests: readonly TestCase[], observed: Observed, opts: FunctionSearchOptions, reject: (c: IrInsn[]) => boolean = () => false): IrInsn[] | null {
  const perf = opts.perf ?? perfCost;
  const shape = shapeOf(body);
  let best: IrInsn[] | null = null;
  let bestCost = perf(body);
  const consider = (c: IrInsn[] | null): boolean => {
    if (!c) return false;
    const p = perf(c);
    if (p >= bestCost || reject(c) || !passesAll(c, tests, observed)) return false;
    best = c;
    bestCost = p;
    return true;
  };
  const start: Slot[] = body.map((i) => i);
  const control = body.map((i) => isJump(i) || fixedInFunction(i));
  // fast paths: every single deletion, then every pair (40 instructions: 780 pairs); helper calls
  // and map loads stay
  const deletable = body.flatMap((i, k) => (fixedInFunction(i) ? [] : [k]));
  for (const a of deletable) {
    const s = [...start];
    s[a] = null;
    consider(assemble(s, shape));
  }
  for (const a of deletable) {
    for (const b of deletable) {
      if (b <= a) continue;
      const s = [...start];
      s[a] = null;
      s[b] = null;
      consider(assemble(s, shape));
    }
  }
  if (opts.iterations <= 0) return best;
  // Markov chains (K2/STOKE): the data instructions by the window moves (control ones pinned
  // there), the control instructions by controlMove
  const pool = poolOf(body, observed.liveOut);
  if (!pool.regs.length) return best;
  const steer = tests.slice(0, 4);
  const cost = (slots: Slot[]): { c: IrInsn[] | null; cost: number } => {
    const c = assemble(slots, shape);
    if (!c) return { c, cost: Infinity };
    return { c, cost: ERROR_WEIGHT * errorOn(c, steer, observed) + perf(c) };
  };
  const chains = opts.chains ?? 3;
  const controlAt = control.flatMap((v, k) => (v && !fixedInFunction(body[k]!) ? [k] : []));
  for (let n = 0; n < chains; n++) {
    const rng = new Rng((opts.seed * 0x9e3779b1 + n * 7919) >>> 0);
    const beta = [1, 3, 0.5][n % 3]!;
    // chain 3 starts from the control flow alone (synthesis of the data instructions)
    let cur: Slot[] = n === 2 ? start.map((s, k) => (control[k] ? s : null)) : [...start];
    let curCost = cost(cur).cost;
    let budget = opts.iterations;
    for (let it = 0; it < budget && it < 100_000; it++) {
      let next: Slot[];
      if (controlAt.length && rng.int(4) === 0) {
        const k = rng.pick(controlAt);
        const m = controlMove(rng, cur, k, shape, pool);
        if (m === undefined) continue;
        next = [...cur];
        next[k] = m;
      } else next = propose(rng, cur, pool, DEFAULT_MIX, control);
      const e = cost(next);
      if (e.c && e.cost - perf(e.c) === 0 && consider(e.c)) budget = Math.max(budget, it + opts.iterations); // still improving
      if (e.cost <= curCost || rng.float() < Math.exp(-beta * (e.cost - curCost))) {
        cur = next;
        curCost = e.cost;
      }
    }
  }
  return best;
}
