// Window-by-window superoptimization of one code section: for each straight-line window, search
// for a cheaper rewrite (deletions, then MCMC), prove it equivalent with the SMT checker under the
// registers live after the window, and keep it only if `gate` (the safety model) accepts the
// program with it. Counterexamples become test cases for the next search round (CEGIS).
import type { Insn } from '../isa/index.js';
import { CLASS, LD_IMM64, MODE, SIZE, opClass, slotsOf } from '../isa/index.js';
import { liveIn, successors, liveOutAt, regList, blockStarts, constantsIn, nonzeroBitsIn } from '../analysis/index.js';
import { replaceWindow, type BpfObject, type CodeSection, type IrInsn } from '../ir/index.js';
import { checkWindow, checkPrograms, type Counterexample, type WindowPre } from '../smt/index.js';
import { programCode } from '../ir/index.js';
import { applyTailMerge, findTailMerge, invertBranchesOverGotos } from './tailmerge.js';
import { makeTest, perfCost, randomInput, type TestCase } from './cost.js';
import { STACK_SIZE, cloneState } from './eval.js';
import { Rng } from './rng.js';
import { searchWindow, loadBases, DEFAULT_SEARCH, type SearchOptions } from './search.js';

export interface SynthOptions {
  windowSizes: number[]; // tried largest first
  tests: number; // random test cases per window
  search: SearchOptions;
  timeoutMs: number; // per SMT query
  budgetMs: number; // per section; windows after the budget are left alone
  cegisRounds: number;
  memoryWindowSizes?: number[]; // larger windows, searched only for load merges (default [8, 7, 6, 5])
  constantStores?: boolean; // turn stores of known-constant registers into store-immediates (default on)
  tailMerge?: boolean; // merge identical tails of blocks (default on); each merge proven on whole programs
}

export const DEFAULT_SYNTH: SynthOptions = { windowSizes: [4, 3, 2, 1], tests: 16, search: DEFAULT_SEARCH, timeoutMs: 2000, budgetMs: 20000, cegisRounds: 3 };

export interface SectionStats {
  windows: number;
  proposals: number; // candidates sent to the checker
  proven: number;
  refuted: number;
  unknown: number;
  gateRejected: number;
  rewrites: number;
  smtMs: number[];
}

const isControl = (i: IrInsn): boolean => {
  const c = opClass(i.code);
  return c === CLASS.JMP || c === CLASS.JMP32;
};

/** Can insns[start, end) be rewritten as a unit? Straight-line, no inner labels, nothing pinned. */
function windowOk(sec: CodeSection, blockEnd: Int32Array, start: number, end: number): boolean {
  if (end > sec.insns.length || blockEnd[start]! < end) return false;
  for (let k = start; k < end; k++) {
    const i = sec.insns[k]!;
    if (i.pinned || isControl(i) || (i.code === LD_IMM64 && i.src !== 0) || (k > start && i.labels?.length)) return false;
  }
  return true;
}

function blockEnds(sec: CodeSection): Int32Array {
  const starts = blockStarts(sec);
  const out = new Int32Array(sec.insns.length);
  starts.forEach((s, k) => {
    const e = starts[k + 1] ?? sec.insns.length;
    for (let i = s; i < e; i++) out[i] = e;
  });
  return out;
}

/** A checker counterexample as a window test case, when it is about registers and stack only. */
function testFromCex(window: readonly Insn[], cex: Counterexample, rng: Rng, known: [number, bigint][]): TestCase | null {
  const input = randomInput(rng);
  for (const [r, v] of known) input.regs[r] = v;
  for (const [k, v] of Object.entries(cex.regs)) {
    const m = /^r(\d)$/.exec(k);
    if (!m || !v.startsWith('0x')) return null;
    input.regs[Number(m[1])] = BigInt(v);
  }
  for (const [off, byte] of Object.entries(cex.stack)) {
    const i = STACK_SIZE + Number(off);
    if (i < 0 || i >= STACK_SIZE) return null;
    input.stack[i] = byte;
  }
  return makeTest(window, cloneState(input));
}

const ALL_BITS = (1n << 64n) - 1n;

const key = (insns: readonly Insn[]): string => insns.map((i) => `${i.code},${i.dst},${i.src},${i.off},${i.imm},${i.imm2 ?? ''}`).join(';');

/**
 * The store-immediate form of `*(size *)(dst + off) = src` when `src` holds the known constant `v`,
 * or null. BPF_ST sign-extends its 32-bit immediate to the store width; narrower stores only keep
 * the low bytes, so any constant fits them.
 */
export function storeImmediate(insn: IrInsn, v: bigint): IrInsn | null {
  if (opClass(insn.code) !== CLASS.STX || (insn.code & 0xe0) !== MODE.MEM || insn.core || insn.pinned) return null;
  const size = insn.code & 0x18;
  const low32 = Number(BigInt.asIntN(32, v));
  if (size === SIZE.DW && BigInt.asIntN(64, v) !== BigInt(low32)) return null;
  return { ...insn, code: CLASS.ST | MODE.MEM | size, src: 0, imm: low32 };
}

/**
 * Stores of registers holding known constants become stores of immediates (clang 14 never emits
 * BPF_ST), so the `rX = imm` feeding them often dies and the window search deletes it. Each
 * rewrite is proven by the checker under the constant fact; the gate sees all of them at once and,
 * if it objects, each one alone.
 */
async function constantStores(
  obj: BpfObject,
  secIndex: number,
  sec: CodeSection,
  gate: (candidate: BpfObject) => boolean,
  opts: SynthOptions,
  stats: SectionStats,
  progType: string | undefined,
): Promise<CodeSection> {
  const withSection = (s: CodeSection): BpfObject => ({ ...obj, code: obj.code.map((x, k) => (k === secIndex ? s : x)) });
  const consts = constantsIn(sec), live = liveIn(sec), succ = successors(sec);
  const proven: [number, IrInsn][] = [];
  for (let k = 0; k < sec.insns.length; k++) {
    const insn = sec.insns[k]!;
    const v = opClass(insn.code) === CLASS.STX ? consts[k]![insn.src] : undefined;
    if (v === undefined) continue;
    const st = storeImmediate(insn, v);
    if (!st) continue;
    const liveOut = regList(liveOutAt(sec, live, succ, k));
    const { labels: _l, funcInfo: _f, lines: _n, ...plain } = insn;
    const { labels: _l2, funcInfo: _f2, lines: _n2, ...cand } = st;
    stats.proposals++;
    const res = await checkWindow([plain], [cand], { regs: { [insn.src]: { kind: 'scalar', value: v } } }, { regs: liveOut }, { timeoutMs: opts.timeoutMs, object: obj, progType });
    stats.smtMs.push(res.ms);
    if (res.equivalent === true) { stats.proven++; proven.push([k, st]); } else if (res.equivalent === null) stats.unknown++;
    else stats.refuted++;
  }
  if (!proven.length) return sec;
  const apply = (base: CodeSection, rs: [number, IrInsn][]): CodeSection => {
    const insns = [...base.insns];
    for (const [k, st] of rs) insns[k] = st;
    return { ...base, insns };
  };
  const all = apply(sec, proven);
  if (gate(withSection(all))) { stats.rewrites += proven.length; return all; }
  let cur = sec;
  for (const r of proven) {
    const next = apply(cur, [r]);
    if (gate(withSection(next))) { cur = next; stats.rewrites++; } else stats.gateRejected++;
  }
  return cur;
}

export async function optimizeSection(
  obj: BpfObject,
  secIndex: number,
  gate: (candidate: BpfObject) => boolean,
  opts: SynthOptions = DEFAULT_SYNTH,
  stats: SectionStats = { windows: 0, proposals: 0, proven: 0, refuted: 0, unknown: 0, gateRejected: 0, rewrites: 0, smtMs: [] },
): Promise<{ obj: BpfObject; stats: SectionStats }> {
  const t0 = Date.now();
  const progType = obj.programs.find((p) => p.section === obj.code[secIndex]!.name)?.progType;
  const withSection = (sec: CodeSection): BpfObject => ({ ...obj, code: obj.code.map((s, k) => (k === secIndex ? sec : s)) });
  let sec = obj.code[secIndex]!;
  if (opts.constantStores !== false) sec = await constantStores(obj, secIndex, sec, gate, opts, stats, progType);
  // tail merging first (cheap, often the biggest saving), and again after the window search
  if (opts.tailMerge !== false) sec = await tailMerges(obj, secIndex, sec, gate, opts, stats, t0);
  let live = liveIn(sec), succ = successors(sec), ends = blockEnds(sec), consts = constantsIn(sec), nonzero = nonzeroBitsIn(sec);
  const rng = new Rng(opts.search.seed);
  const memorySizes = opts.memoryWindowSizes ?? [8, 7, 6, 5];
  // Pass 1: the enumerated candidates (deletions, single ALU ops, load and copy merges) in every
  // window, larger windows first; pass 2: the stochastic search, with what is left of the budget.
  const passes = [...[...memorySizes, ...opts.windowSizes].map((size) => ({ size, chain: false })), ...opts.windowSizes.map((size) => ({ size, chain: true }))];
  for (const { size, chain } of passes) {
    const memoryOnly = !opts.windowSizes.includes(size);
    for (let start = 0; start < sec.insns.length; start++) {
      if (Date.now() - t0 > opts.budgetMs) break;
      const end = start + size;
      if (!windowOk(sec, ends, start, end)) continue;
      if (memoryOnly && ![...loadBases(sec.insns.slice(start, end)).values()].some((offs) => offs.length >= 2)) continue; // load/copy merges only
      stats.windows++;
      const window: Insn[] = sec.insns.slice(start, end);
      const liveOut = regList(liveOutAt(sec, live, succ, end - 1));
      // Precondition: live-in registers known to be constant here (constant propagation).
      const pre: WindowPre = { regs: {} };
      const known: [number, bigint][] = [];
      // Any register's entry value can reach the exit (a rewrite may drop the write), so all count.
      consts[start]!.forEach((v, r) => {
        if (v !== undefined && r < 10) { pre.regs![r] = { kind: 'scalar', value: v }; known.push([r, v]); }
      });
      // ... and registers whose high bits are known to be zero (after narrow loads, masks, zero-extensions)
      const masks: [number, bigint][] = [];
      nonzero[start]!.forEach((m, r) => {
        if (r < 10 && m !== ALL_BITS && pre.regs![r] === undefined) { pre.regs![r] = { kind: 'scalar', umax: m, tnum: { value: 0n, mask: m } }; masks.push([r, m]); }
      });
      const withKnown = (s: ReturnType<typeof randomInput>) => {
        for (const [r, v] of known) s.regs[r] = v;
        for (const [r, m] of masks) s.regs[r] = s.regs[r]! & m;
        return s;
      };
      const tests: TestCase[] = [];
      for (let k = 0; k < opts.tests; k++) {
        const t = makeTest(window, withKnown(randomInput(rng)));
        if (!t) break;
        tests.push(t);
      }
      if (tests.length < opts.tests) continue; // the window leaves the evaluator's model (memory beyond the stack)
      const refuted = new Set<string>();
      for (let round = 0; round < opts.cegisRounds; round++) {
        const search = { ...opts.search, seed: opts.search.seed + start * 31 + round, iterations: chain ? opts.search.iterations : 0 };
        const cand = searchWindow(window, tests, liveOut, search, (c) => refuted.has(key(c)));
        if (!cand || perfCost(cand) >= perfCost(window)) break;
        stats.proposals++;
        const res = await checkWindow(window, cand, pre, { regs: liveOut }, { timeoutMs: opts.timeoutMs, object: obj, progType });
        stats.smtMs.push(res.ms);
        if (res.equivalent === true) {
          stats.proven++;
          const next = replaceWindow(sec, start, end, cand as IrInsn[]);
          if (!gate(withSection(next))) {
            stats.gateRejected++;
            refuted.add(key(cand));
            continue;
          }
          sec = next;
          stats.rewrites++;
          live = liveIn(sec);
          succ = successors(sec);
          ends = blockEnds(sec);
          consts = constantsIn(sec);
          nonzero = nonzeroBitsIn(sec);
          start = Math.max(-1, start - size); // earlier windows may simplify now
          break;
        }
        refuted.add(key(cand));
        if (res.equivalent === null) { stats.unknown++; break; }
        stats.refuted++;
        const t = res.counterexample ? testFromCex(window, res.counterexample, rng, known) : null;
        if (t) tests.push(t);
      }
    }
  }
  // again after the window search, which may have made more tails identical (a little over budget is fine: it is cheap)
  if (opts.tailMerge !== false) sec = await tailMerges(obj, secIndex, sec, gate, opts, stats, t0, 1.25);
  return { obj: withSection(sec), stats };
}

/**
 * Merges identical block tails one at a time while it saves at least two slots; each merge must be
 * proven equivalent for every program that runs this section, then pass the gate.
 */
async function tailMerges(obj: BpfObject, secIndex: number, sec: CodeSection, gate: (candidate: BpfObject) => boolean, opts: SynthOptions, stats: SectionStats, t0: number, budgetShare = 1): Promise<CodeSection> {
  const withSection = (s: CodeSection): BpfObject => ({ ...obj, code: obj.code.map((x, k) => (k === secIndex ? s : x)) });
  const users = obj.programs.filter((p) => programCode(obj, p).some((s) => s.name === sec.name));
  if (!users.length) return sec; // code no program runs: nothing to prove it against
  const tried = new Set<string>();
  for (;;) {
    if (Date.now() - t0 > opts.budgetMs * budgetShare) return sec;
    const m = findTailMerge(sec, 2, (c) => !tried.has(`${c.start}/${c.keep}/${c.length}`));
    if (!m) return sec;
    tried.add(`${m.start}/${m.keep}/${m.length}`);
    const next = invertBranchesOverGotos(applyTailMerge(sec, m));
    const before = withSection(sec), after = withSection(next);
    stats.proposals++;
    let proven = true;
    for (const p of users) {
      const r = await checkPrograms(before, p, after, p, { timeoutMs: opts.timeoutMs });
      stats.smtMs.push(r.ms);
      if (r.equivalent !== true) { proven = false; if (r.equivalent === null) stats.unknown++; else stats.refuted++; break; }
    }
    if (!proven) continue;
    stats.proven++;
    if (!gate(after)) { stats.gateRejected++; continue; }
    stats.rewrites++;
    sec = next;
    tried.clear();
  }
}

export const sectionSlots = (sec: CodeSection): number => sec.insns.reduce((n, i) => n + slotsOf(i), 0);
