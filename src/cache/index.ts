// The build cache's door (like ccache/sccache): results of k2 on clang's objects, content-addressed
// on (clang's object bytes, k2's build, every setting that changes the result), under cacheRoot().
// A hit is used only after it is re-proven equivalent to clang's object and shown safe (kernel
// verifier where bpf() works, k2's safety model otherwise); a failed check removes the entry.
export { cacheRoot, objectsDir, entryPath, encodeEntry, readEntry, writeEntry, removeEntry, recordEvent, cacheStats, cleanCache, type CacheEntry, type CacheStats, type SectionSummary } from './store.js';
export { cacheKey, k2BuildId, sha256, stableJson, ENTRY_FORMAT } from './key.js';
export { objectFromEntry, entryFor, parseInsn, BadEntry } from './entry.js';
export { checkCandidate, type CheckOutcome, type Verification } from './verify.js';
export { proveSameBehaviour, proveStepwise, type ProofResult, type SectionSteps, type StepwiseResult } from './proof.js';
export { processObject, type ObjectResult, type PipelineOptions, type CacheOutcome } from './pipeline.js';
export { writeReport, totals, type BuildReport, type ReportObject } from './report.js';
