// Effort profiles: how much search k2 spends, as SynthOptions values. The one place that maps
// `effort` (and the budgetMs / timeoutMs / iterations overrides) to optimizer options; the driver
// (src/driver/optimize.ts) reads EFFORT_PROFILES for the search settings and the object budget.
// The synthesizer may grow options: a profile sets only the ones it needs (the rest keep
// DEFAULT_SYNTH's values).
import type { SynthOptions } from '../synth/optimize.js';
import type { Effort, K2Config } from './schema.js';

export interface EffortProfile {
  /** Search options over DEFAULT_SYNTH. */
  synth: Partial<SynthOptions>;
  /** Search time for the whole object, ms, shared by its sections (null: the driver's default); with `clangTimes`, the most it gets. */
  objectBudgetMs: number | null;
  /**
   * The object's search time as a multiple of clang's CPU time for it (k2-clang and k2 build
   * measure it), between `minBudgetMs` and `objectBudgetMs`: what a build pays for k2 then grows
   * with what it pays for clang, on a fast or slow, idle or busy machine alike (clang's wall time
   * would not do: on a busy machine it is several times its CPU time, and the search, which runs to
   * a wall-clock deadline, would then cost several times clang). null: fixed.
   */
  clangTimes: number | null;
  minBudgetMs: number;
  /**
   * Kernel difftest of each accepted section in the driver's final gate (inputs per program; null:
   * the driver's default). Every rewrite is proven before the gate sees it: the difftest is a test
   * on top of the proofs, worth its time in `k2 opt`, not on every build.
   */
  finalDifftestInputs: number | null;
}

/**
 * build: what `k2-clang` and `k2 build` do by default — store immediates, tail merges and the
 * enumerated window rewrites (deletions, single ALU ops, load/copy merges), the stochastic search
 * (few proposals) only in the time the object has left, and no solver: a rewrite is proven when
 * the normal forms of both sides are identical (random inputs refute the rest at once). Z3 costs
 * ~1 s of CPU to start and its queries run out their timeouts in a budget this short (measured:
 * without it the build saves more, 1.4% against 1.0% on the vmlinux project, in less time), and
 * what the normal forms prove, the cache's re-proof proves the same way. The
 * object's search time is a third of clang's CPU time for it (0.1 s to 1.5 s; 1.5 s when that time
 * is unknown), and the final gate runs no kernel difftest. With k2's fixed costs (a k2-clang
 * process, ~0.1 s CPU; the compile server's start, ~0.7 s once per build; the gate and the cache's
 * re-proof, ~0.1–0.3 s per object) that keeps a cold build of a vmlinux.h project within three
 * times plain clang: measured 2.9× with k2-clang, 2.6× with k2 build, saving 0.9% (half of
 * clang's time: 3.4×, 1.3%; README, Benchmarks).
 * thorough: the full search (`k2 opt`'s default): 300 MCMC proposals per window and round, 2 s per
 * solver query, the driver's object budget (60 s).
 */
export const EFFORT_PROFILES: Record<Effort, EffortProfile> = {
  build: {
    // timeout 0: normal forms only, Z3 never started (see above)
    synth: { timeoutMs: 0, cegisRounds: 2, search: { iterations: 60, beta: 1, seed: 1 } },
    objectBudgetMs: 1500,
    clangTimes: 0.33,
    minBudgetMs: 100,
    finalDifftestInputs: 0,
  },
  thorough: {
    synth: { timeoutMs: 2000, cegisRounds: 3, search: { iterations: 300, beta: 1, seed: 1 } },
    objectBudgetMs: null,
    clangTimes: null,
    minBudgetMs: 0,
    finalDifftestInputs: null,
  },
};

/** What decides the optimizer's output for a configuration (part of the build cache key). */
export interface OptimizerSettings {
  optimize: boolean;
  kernel: boolean;
  effort: Effort;
  /** Search time per object (ms) when the configuration sets one; null: the profile's. */
  budgetMs: number | null;
  /** Explicit search overrides over the profile (timeoutMs, iterations, tailMerge). */
  synth: Partial<SynthOptions>;
}

/**
 * The search time for one object: the configuration's budgetMs when set, else the profile's
 * (for the build profile: clang's CPU time for this object × clangTimes, clamped), null for the
 * driver's default.
 */
export function objectBudget(config: Pick<K2Config, 'effort' | 'budgetMs'>, clangMs: number | null): number | null {
  if (config.budgetMs !== null) return config.budgetMs;
  const p = EFFORT_PROFILES[config.effort];
  if (p.clangTimes === null || clangMs === null || !Number.isFinite(clangMs) || clangMs < 0) return p.objectBudgetMs;
  const ms = Math.round(clangMs * p.clangTimes);
  return Math.max(p.minBudgetMs, p.objectBudgetMs === null ? ms : Math.min(p.objectBudgetMs, ms));
}

export function optimizerSettings(config: K2Config): OptimizerSettings {
  const p = EFFORT_PROFILES[config.effort];
  const synth: Partial<SynthOptions> = { tailMerge: config.tailMerge };
  if (config.timeoutMs !== null) synth.timeoutMs = config.timeoutMs;
  if (config.iterations !== null) synth.search = { iterations: config.iterations, beta: p.synth.search?.beta ?? 1, seed: p.synth.search?.seed ?? 1 };
  return { optimize: config.optimize, kernel: config.kernel, effort: config.effort, budgetMs: config.budgetMs, synth };
}
