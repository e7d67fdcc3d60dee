export { optimizeSection, storeImmediate, sectionSlots, DEFAULT_SYNTH, type SynthOptions, type SectionStats } from './optimize.js';
export { searchWindow, deletions, poolOf, DEFAULT_SEARCH, type SearchOptions } from './search.js';
export { evalWindow, Fault, FP, type WinState } from './eval.js';
export { makeTest, randomInput, errorOn, type TestCase } from './cost.js';
export { Rng } from './rng.js';
