// The SMT equivalence checker's public door.
export { checkWindow } from './window.js';
export { checkPrograms, checkObjects } from './program.js';
export { windowCache, canonicalWindow, EquivCache } from './cache.js';
export { shutdownZ3 } from './z3.js';
export { asm, asm1 } from './asm.js';
export type { CheckOptions, Counterexample, EquivResult, RegFact, Speedups, WindowPost, WindowPre } from './types.js';
