// The SMT equivalence checker's public door.
export { checkWindow, checkWindowStates } from './window.js';
export { checkPrograms, checkObjects } from './program.js';
export { windowCache, canonicalWindow, EquivCache } from './cache.js';
export { shutdownZ3, warmUpSolver } from './z3.js';
export { asm, asm1 } from './asm.js';
export type { CheckOptions, Counterexample, EquivResult, RegFact, Speedups, WindowPost, WindowPre } from './types.js';
export { preFromSafety, liveRegs, joinPre, joinFact } from './facts.js';
export { objectMaps } from './codeenv.js';
export type { MapInfo } from './machine.js';
export { replayWindow, replayPrograms, runWindow, windowObservations, packetInput, type ReplayResult } from './replay.js';
export { mutantExperiment, interpDiffers, type MutantReport } from './soundness.js';
export type { ObjectsResult } from './program.js';
