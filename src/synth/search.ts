// Search for a cheaper equivalent of one window: enumerated fast paths first (deletions, single ALU
// instructions, wider loads, merged copies, atomics, rebuilt byte copies), then Markov chains
// (K2/STOKE MCMC) under several parameter settings, each chain extended while it keeps improving
// and stopped once it has converged. Deterministic for a seed. Zero test error is only a filter:
// the SMT checker decides.
import { CLASS, opClass, type Insn } from '../isa/index.js';
import { compact, errorOn, passesAll, ERROR_WEIGHT, perfCost, type Observed, type TestCase } from './cost.js';
import { DEFAULT_MIX, poolOf, propose, type MoveMix, type Slot } from './moves.js';
import { atomicForms, copyMerges, copyRuns, deletions, stackAddrCopies, jump32Forms, jumpForms, ldIndFolds, loadSingles, singles } from './fastpaths.js';
import { Rng } from './rng.js';

export { poolOf } from './moves.js';
export { deletions, loadBases } from './fastpaths.js';

/** One Markov chain's parameters. */
export interface ChainSetting {
  beta: number;
  mix: MoveMix;
  /** Start from the original window, or from nothing (synthesis from scratch). */
  start: 'original' | 'empty';
}

export interface SearchOptions {
  /** Proposals per chain before it must have improved to go on (0: fast paths only). */
  iterations: number;
  beta: number;
  seed: number;
  /** Cap on a chain that keeps improving (default 100,000). */
  maxIterations?: number;
  /** Chains to run, one per setting (default: SETTINGS with `beta` for the first). */
  settings?: ChainSetting[];
  /** A chain stops after this many proposals without a lower cost (default: `iterations`). */
  convergeAfter?: number;
  /** Performance term (default: slots). */
  perf?: (insns: readonly Insn[]) => number;
}

export const SETTINGS: ChainSetting[] = [
  { beta: 1, mix: DEFAULT_MIX, start: 'original' },
  { beta: 3, mix: { replace: 20, operand: 25, delete: 30, swap: 10, two: 5, mem: 10 }, start: 'original' },
  { beta: 0.4, mix: { replace: 40, operand: 30, delete: 10, swap: 5, two: 10, mem: 5 }, start: 'original' },
  { beta: 1, mix: { replace: 45, operand: 25, delete: 5, swap: 10, two: 10, mem: 5 }, start: 'empty' },
];

export const DEFAULT_SEARCH: SearchOptions = { iterations: 1000, beta: 1, seed: 1 };

/** What the fast paths may use besides the window: constants at entry, which bases cannot alias. */
export interface SearchContext {
  consts?: ReadonlyMap<number, bigint>;
  disjoint?: (a: number, b: number) => boolean;
  /** Registers holding a stack address at entry (register → offset from r10). */
  stack?: ReadonlyMap<number, number>;
}

export interface SearchStats {
  proposals: number;
  chains: number;
  /** Every chain stopped because it converged (not because it hit the cap). */
  converged: boolean;
}

/**
 * The cheapest zero-error rewrite found, or null. `reject` filters candidates already refuted by
 * the checker (or by the safety model).
 */
export function searchWindow(
  window: readonly Insn[],
  tests: readonly TestCase[],
  observed: Observed | readonly number[],
  opts: SearchOptions = DEFAULT_SEARCH,
  reject: (cand: Insn[]) => boolean = () => false,
  ctx: SearchContext = {},
  stats: SearchStats = { proposals: 0, chains: 0, converged: true },
): Insn[] | null {
  const obs: Observed = 'liveOut' in observed ? observed : { liveOut: observed, stackLive: null };
  const perf = opts.perf ?? perfCost;
  const origCost = perf(window);
  // A conditional jump ending the window stays; only what comes before it is searched.
  const last = window[window.length - 1] as (Insn & { target?: string }) | undefined;
  const tail: Insn[] = last && last.target !== undefined && (opClass(last.code) === CLASS.JMP || opClass(last.code) === CLASS.JMP32) ? [last] : [];
  const body = window.slice(0, window.length - tail.length);
  const withTail = (c: Insn[]): Insn[] => (tail.length ? [...c, ...tail] : c);
  let best: Insn[] | null = null;
  let bestCost = origCost;
  const consider = (cand: Insn[], cost: number): void => {
    if (cost < bestCost && !reject(cand)) { best = cand; bestCost = cost; }
  };
  const tryAll = (gen: Iterable<Insn[]>, whole = false): void => {
    for (const c0 of gen) {
      const c = whole ? c0 : withTail(c0);
      const cost = perf(c);
      if (cost < bestCost && passesAll(c, tests, obs)) consider(c, cost);
    }
  };
  tryAll(deletions(body));
  if (best) return best;
  // side exits (conditional jumps inside a superblock window) stay where they are in the chains
  const pinned = body.map((i) => opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32);
  const sideExits = pinned.some(Boolean);
  const pool = poolOf(window, obs.liveOut);
  tryAll(jumpForms(window, ctx.consts ?? new Map()), true);
  tryAll(jump32Forms(window), true);
  tryAll(atomicForms(body, ctx.consts ?? new Map()));
  tryAll(ldIndFolds(body));
  if (ctx.stack?.size) tryAll(stackAddrCopies(body, ctx.stack));
  tryAll(copyRuns(body, obs.liveOut, ctx.disjoint ?? (() => false)));
  if (pool.regs.length === 0) return best;
  if (perf(body) > 1 && !best && body.length <= 6 && !sideExits) {
    for (const c0 of singles(pool)) {
      const c = withTail(c0);
      if (passesAll(c, tests, obs)) consider(c, perf(c));
      if (best) return best;
    }
  }
  tryAll(copyMerges(body));
  if (body.length <= 8) tryAll(loadSingles(body, pool));
  if (best) return best;
  if (body.length <= 2 || opts.iterations <= 0) return best; // two-instruction windows are covered completely above

  // the chains may also use one register the window neither reads nor leaves live (a temporary:
  // e.g. to keep a loaded pointer while the loaded register is reused)
  const scratch = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].find((r) => !pool.regs.includes(r));
  const chainPool = scratch === undefined ? pool : { ...pool, regs: [...pool.regs, scratch] };
  const steer = tests.slice(0, 4);
  const settings = opts.settings ?? [{ ...SETTINGS[0]!, beta: opts.beta }, ...SETTINGS.slice(1)];
  const cap = opts.maxIterations ?? 100_000;
  const quiet = opts.convergeAfter ?? opts.iterations;
  settings.forEach((s, n) => {
    const rng = new Rng((opts.seed * 0x9e3779b1 + n * 7919) >>> 0);
    let cur: Slot[] = s.start === 'original' ? [...body] : body.map((i, k) => (pinned[k] ? i : null));
    const c0 = withTail(compact(cur));
    let curCost = ERROR_WEIGHT * errorOn(c0, steer, obs) + perf(c0);
    let lowest = curCost;
    let sinceLower = 0;
    let budget = opts.iterations;
    stats.chains++;
    let it = 0;
    for (; it < budget && it < cap; it++) {
      const next = propose(rng, cur, chainPool, s.mix, sideExits ? pinned : undefined);
      const insns = withTail(compact(next));
      // The chain is steered by a few tests; a zero-error candidate must then pass them all.
      const err = errorOn(insns, steer, obs);
      const p = perf(insns);
      const cost = ERROR_WEIGHT * err + p;
      if (err === 0 && p < bestCost && passesAll(insns, tests, obs)) {
        consider(insns, p);
        budget = Math.min(cap, Math.max(budget, it + opts.iterations)); // still improving: go on
      }
      if (cost <= curCost || rng.float() < Math.exp(-s.beta * (cost - curCost))) {
        cur = next;
        curCost = cost;
      }
      if (curCost < lowest) { lowest = curCost; sinceLower = 0; }
      else if (++sinceLower >= quiet && it >= opts.iterations) break;
    }
    stats.proposals += it;
    if (it >= cap) stats.converged = false;
  });
  return best;
}

export { singles } from './fastpaths.js';
