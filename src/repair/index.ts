// The repair stage's door: make programs the kernel verifier wrongly rejects load, by adding code
// that is provably nil on every execution but hands the verifier the fact it was missing (a bound,
// a packet range, a return range, an initialised register), or by inlining a call when the call
// chain is too deep. Every change is proven with the SMT checker and confirmed by the kernel.
//
//   import { repairObject } from '../repair/index.js';
//   const r = await repairObject(readObject('in.o'), { timeoutMs: 20000 });
//   writeObject(r.obj, 'out.o');            // unrepaired programs keep their input code
//   r.programs                                // per program: before/after verdicts, changes, proofs
//
// Needs bpf() (the kernel is asked for every verdict); throws the kernel layer's K2Error otherwise.
export { repairObject, sourceLine, disasm } from './search.js';
export { repairStage, repairLine, type RepairSummary } from './stage.js';
export type { RepairOptions, RepairResult, ProgramRepair, RepairChange, VerdictSummary, UnsafeFinding, SourceLine } from './search.js';
export { parseVerifierLog, classifyReason, type VerifierFailure, type FailureKind, type RegView } from './log.js';
export { linkedLayout, funcAt, type FuncRange, type LinkedLayout } from './layout.js';
export { candidatesFor, type Candidate, type CandidateKind, type Site } from './candidates.js';
export { inlineCall, callDepth, frameDepth } from './inline.js';
export { proveCandidate, proveGuard, proveUnobserved, proveFunction, type ProofResult, type ProofMethod } from './proof.js';
export { HELPER_SIZE_ARGS, DATA_END } from './helpers.js';
