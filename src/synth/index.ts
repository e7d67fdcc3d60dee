export { optimizeSection, storeImmediate, sectionSlots, SectionSession, applyOutcomes, jobSeed, DEFAULT_SYNTH, type SynthOptions, type SectionStats, type RewriteStep } from './optimize.js';
export { searchWindow, deletions, poolOf, DEFAULT_SEARCH, SETTINGS, type SearchOptions, type ChainSetting, type SearchStats } from './search.js';
export { solveWindow, canonicalJob, testsFor, coverJumps, sideExitsOf, insnKey, DEFAULT_SOLVE, type WindowJob, type WindowOutcome, type RewriteCache, type SolveOptions } from './window.js';
export { sectionPres } from './facts.js';
export { evalWindow, Fault, FP, type WinState, type WinEnv, type MemRegion } from './eval.js';
export { makeTest, randomInput, errorOn, perfCost, objectiveCost, type TestCase, type Observed, type Objective } from './cost.js';
export { randomInputFor, inputFromCex, type WindowContext } from './inputs.js';
export { Rng } from './rng.js';
