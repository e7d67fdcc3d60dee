// What a cache hit must pass before its code is used: the whole-object equivalence proof against
// clang's object (src/cache/proof.ts), then safety — the kernel verifier where bpf() works and the
// configuration allows it (a program clang's object loaded must still load), k2's model of the
// verifier otherwise. Only the programs that run changed code are checked. Heavy modules (solver,
// kernel loader, safety model) are imported on demand: an unchanged object needs none of them.
import { objectBytes, programCode, type BpfObject, type IrInsn, type ProgramRef } from '../ir/index.js';
import { plainInsn } from './entry.js';
import { sha256 } from './key.js';
import { MANY_STEPS, proveSameBehaviour, proveStepwise, stepCount, type ProofResult, type SectionSteps } from './proof.js';

export type Verification = 'kernel' | 'model' | 'none';

export interface CheckOutcome {
  ok: boolean;
  reason: string | null;
  verification: Verification; // how safety was established ('none': no program runs changed code)
  windows: number;
  proofMs: number;
  /** The proof (and, with `safetyReused`, the safety check) was done earlier in this process on these exact bytes. */
  proofReused: boolean;
  safetyReused: boolean;
}

const key = (p: { section: string; name: string }): string => `${p.section}/${p.name}`;

// Checks this process already did, by the exact bytes they were done on: a long-lived process (the
// compile server) checks a result once, not on every rebuild. Only checks that passed are kept;
// different bytes (a changed, corrupted or planted entry) are a different key, checked in full.
const MEMO_MAX = 10_000;
const proven = new Set<string>(); // sha256(clang's object) + sha256(candidate): proven equivalent
const shownSafe = new Map<string, Verification>(); // … + kernel setting: how safety was shown
const memoKey = (input: Uint8Array | string, cand: Uint8Array): string => `${typeof input === 'string' ? input : sha256(input)}:${sha256(cand)}`;
function remember(set: { size: number; clear(): void }, add: () => void): void {
  if (set.size >= MEMO_MAX) set.clear();
  add();
}

/** Records that `cand` (an object's bytes) was proven equivalent to clang's object (`inputSha`) in this process. */
export function rememberProof(inputSha: string, cand: Uint8Array): void {
  remember(proven, () => proven.add(memoKey(inputSha, cand)));
}

/** Programs of `obj` whose code (their section and every section they call) includes a changed section. */
function programsRunning(obj: BpfObject, changed: readonly string[]): ProgramRef[] {
  return obj.programs.filter((p) => {
    try {
      return programCode(obj, p).some((s) => changed.includes(s.name));
    } catch {
      return true; // a call into a missing section: check it (and fail there)
    }
  });
}

async function modelSafe(obj: BpfObject, p: ProgramRef): Promise<boolean> {
  const { checkLinked, linkProgram } = await import('../safety/index.js');
  try {
    return checkLinked(linkProgram(obj, p)).safe;
  } catch {
    return false;
  }
}

/**
 * Checks `cand` (clang's object `input` with cached code in the `changed` sections) before use.
 * `inputBytes` is clang's object as written (loaded into the kernel only if some program of the
 * candidate is not accepted, to tell "k2 broke it" from "it never loaded here"). With `steps` (the
 * rewrites of every changed section, from clang's code to the candidate's) the proof follows them
 * one by one (proveStepwise); else, or if that fails, it compares clang's code with the candidate's.
 */
export async function checkCandidate(input: BpfObject, inputBytes: Uint8Array, cand: BpfObject, changed: readonly string[], opts: { kernel: boolean; timeoutMs: number; steps?: SectionSteps }): Promise<CheckOutcome> {
  const out: CheckOutcome = { ok: false, reason: null, verification: 'none', windows: 0, proofMs: 0, proofReused: false, safetyReused: false };
  if (changed.length === 0) return { ...out, ok: true };
  let candBytes: Uint8Array;
  try {
    candBytes = objectBytes(cand);
  } catch (e) {
    return { ...out, reason: `its code cannot be written: ${(e as Error).message}` };
  }
  const pair = memoKey(inputBytes, candBytes);
  out.proofReused = proven.has(pair);
  if (!out.proofReused) {
    const t0 = performance.now();
    const proof = await proveCandidate(input, cand, changed, opts);
    out.windows = proof.windows;
    out.proofMs = Math.round(performance.now() - t0);
    if (!proof.proven) return { ...out, reason: `not proven equivalent to clang's object: ${proof.reason}` };
    remember(proven, () => proven.add(pair));
  }
  const safeKey = `${pair}:${opts.kernel}`;
  const known = shownSafe.get(safeKey);
  if (known) return { ...out, ok: true, verification: known, safetyReused: true };
  const safety = await checkSafety(input, inputBytes, cand, candBytes, changed, opts);
  if (safety.ok) remember(shownSafe, () => shownSafe.set(safeKey, safety.verification));
  return { ...out, ...safety };
}

/** Is `cand` proven equivalent to `input`: step by step (when every changed section has steps), else as a whole? */
async function proveCandidate(input: BpfObject, cand: BpfObject, changed: readonly string[], opts: { timeoutMs: number; steps?: SectionSteps }): Promise<ProofResult> {
  const steps = opts.steps;
  if (!steps || !changed.every((n) => steps.get(n)?.length)) return proveSameBehaviour(input, cand, { timeoutMs: opts.timeoutMs });
  const chain = new Map(changed.map((n) => [n, steps.get(n)!]));
  const stepwise = async (): Promise<ProofResult | null> => {
    const r = await proveStepwise(input, chain, { timeoutMs: opts.timeoutMs });
    const plain = (xs: readonly IrInsn[] | undefined): string => JSON.stringify(xs?.map(plainInsn));
    const same = r.obj.code.every((s) => plain(s.insns) === plain(cand.code.find((x) => x.name === s.name)?.insns));
    return r.proven && same ? r : null;
  };
  // few steps: step by step first (it proves more), else one proof first (it is cheaper)
  if (stepCount(chain) <= MANY_STEPS) return (await stepwise()) ?? proveSameBehaviour(input, cand, { timeoutMs: opts.timeoutMs });
  const whole = await proveSameBehaviour(input, cand, { timeoutMs: opts.timeoutMs });
  return whole.proven ? whole : (await stepwise()) ?? whole;
}

/** The safety half of checkCandidate: the kernel verifier where it can, k2's safety model otherwise. */
async function checkSafety(input: BpfObject, inputBytes: Uint8Array, cand: BpfObject, candBytes: Uint8Array, changed: readonly string[], opts: { kernel: boolean }): Promise<Pick<CheckOutcome, 'ok' | 'reason' | 'verification'>> {
  const out = { ok: false, reason: null as string | null, verification: 'none' as Verification };
  const users = [...new Map([...programsRunning(input, changed), ...programsRunning(cand, changed)].map((p) => [key(p), p])).values()];
  if (users.length === 0) return { ...out, ok: true };
  if (opts.kernel) {
    const kernel = await import('../kernel/index.js');
    if ((await kernel.bpfAvailable()).ok) {
      // the programs that run changed code; the whole object if that fails (a prog array the object
      // initializes with programs that were not loaded cannot be set up)
      let after = new Map((await kernel.verifyObject(candBytes, { name: cand.file, only: users })).programs.map((p) => [key(p), p.verdict]));
      if (users.some((p) => after.get(key(p)) !== 'accepted')) after = new Map((await kernel.verifyObject(candBytes, { name: cand.file })).programs.map((p) => [key(p), p.verdict]));
      const notAccepted = users.filter((p) => after.get(key(p)) !== 'accepted');
      if (notAccepted.length === 0) return { ...out, ok: true, verification: 'kernel' };
      const before = new Map((await kernel.verifyObject(inputBytes, { name: input.file })).programs.map((p) => [key(p), p.verdict]));
      for (const p of notAccepted) {
        if (before.get(key(p)) === 'accepted') return { ...out, reason: `the kernel verifier rejects ${key(p)}, which clang's object loads` };
        if (!(await modelSafe(cand, p))) return { ...out, reason: `${key(p)} does not load here and k2's safety model cannot show it safe` };
      }
      return { ...out, ok: true, verification: 'model' };
    }
  }
  for (const p of users) if (!(await modelSafe(cand, p))) return { ...out, reason: `k2's safety model cannot show ${key(p)} safe` };
  return { ...out, ok: true, verification: 'model' };
}
