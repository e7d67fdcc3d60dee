// The final gate for one optimized section, run on the whole object as it will be written (earlier
// sections already replaced by their accepted versions). Every check looks only at the programs
// that run the section. In order, cheapest first:
//   1. the object still lowers (labels, jump offsets, relocations);
//   2. the safety model accepts every program it accepted in the original;
//   3. where the programs are small, the whole-program checker does not find a difference (the
//      section's proof is the composition of its window proofs; this is a second opinion, and a
//      "different" is a k2 bug);
//   4. the kernel verifier (where bpf() works) accepts every program it accepted in the original,
//      and no program's verified_insns grows by more than 10 % (unless allowed);
//   5. for packet programs the kernel can test-run, a difftest of the previous version against the
//      candidate on generated inputs shows no mismatch (a mismatch is a k2 bug, logged with its input).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { objectBytes, programCode, TEST_RUN_PACKET_TYPES, type BpfObject, type IrInsn, type ProgramRef } from '../ir/index.js';
import { checkLinked, linkProgram } from '../safety/index.js';
import { checkPrograms } from '../smt/index.js';
import { verifyObject, type ProgramVerdict } from '../kernel/index.js';
import { diffObjects, type Mismatch } from '../testgen/diff.js';
import type { Objective } from '../synth/parallel.js';

export const progKey = (p: { section: string; name: string }): string => `${p.section}/${p.name}`;

/** Verifier work may grow by this factor at most (issue #11: xdp-synproxy went 22,693 → 53,045). */
export const VERIFIER_GROWTH_LIMIT = 1.1;
/** Programs up to this many instructions also get a whole-program equivalence check (default). */
export const PROGRAM_PROOF_MAX_INSNS = 600;

export interface ModelVerdict {
  safe: boolean;
  steps: number; // instructions the model processed (the proxy of verified_insns)
  reason: string | null;
}

export function modelVerdict(obj: BpfObject, p: ProgramRef): ModelVerdict {
  try {
    const v = checkLinked(linkProgram(obj, p));
    return { safe: v.safe, steps: v.stats.steps, reason: v.reason };
  } catch (e) {
    return { safe: false, steps: 0, reason: (e as Error).message };
  }
}

export interface GateContext {
  useKernel: boolean;
  kernelBefore: Map<string, ProgramVerdict> | null; // the original object's verdicts
  modelBefore: Map<string, ModelVerdict>; // the original object's
  objective: Objective;
  allowVerifierGrowth: boolean; // only with objective size
  difftestInputs: number; // per program; 0: no difftest
  seed: number;
  timeoutMs: number; // SMT timeout of the program check
  /** Programs up to this many instructions get the whole-program check (0: none). */
  programProofMaxInsns?: number;
  /** Test hook: a reason to refuse this candidate section, or null. */
  hook?: (section: string, insns: readonly IrInsn[]) => string | null;
}

export interface GateResult {
  ok: boolean;
  reason: string | null;
  /** The candidate shows a k2 bug (difftest mismatch, program checker difference): logged. */
  bug: string | null;
  /** Verifier log and details for a bug report. */
  log: string;
  kernel: { accepted: boolean; verifiedInsnsBefore: number | null; verifiedInsnsAfter: number | null } | null;
  difftest: { inputs: number; mismatches: number; programs: number; untestable: number; firstMismatch: Mismatch | null } | null;
  /** Sum of the model's processed-instruction counts over the users (the candidate's). */
  modelSteps: number;
  /** Per user, the kernel's verified_insns for the candidate (when loaded). */
  verified: Map<string, number | null> | null;
  programProof: boolean; // the whole-program checker proved every small user equal
}

const sum = (xs: (number | null | undefined)[]): number | null => {
  let n = 0;
  for (const x of xs) {
    if (x === null || x === undefined) return null;
    n += x;
  }
  return n;
};

/** Files for the difftest (diffObjects takes paths); removed by `dispose`. */
export class Scratch {
  private dir: string | null = null;
  private n = 0;
  write(bytes: Uint8Array): string {
    this.dir ??= mkdtempSync(join(tmpdir(), `k2-gate-${process.pid}-`));
    const f = join(this.dir, `o${this.n++}.o`);
    writeFileSync(f, bytes);
    return f;
  }
  dispose(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}

export async function finalGate(ctx: GateContext, prev: BpfObject, cand: BpfObject, secIndex: number, users: ProgramRef[], scratch: Scratch, progress: (m: string) => void = () => {}): Promise<GateResult> {
  const res: GateResult = { ok: false, reason: null, bug: null, log: '', kernel: null, difftest: null, modelSteps: 0, verified: null, programProof: false };
  const no = (reason: string, log = '', bug: string | null = null): GateResult => ({ ...res, ok: false, reason, log: log || reason, bug });
  const section = cand.code[secIndex]!;
  let bytes: Uint8Array;
  try {
    bytes = objectBytes(cand);
  } catch (e) {
    return no(`cannot write the optimized section: ${(e as Error).message}`);
  }
  const hooked = ctx.hook?.(section.name, section.insns) ?? null;
  if (hooked) return no(hooked);

  // 2. the safety model
  progress(`${section.name}: safety model on ${users.length} program(s)`);
  const model = new Map(users.map((p) => [progKey(p), modelVerdict(cand, p)]));
  res.modelSteps = [...model.values()].reduce((n, v) => n + v.steps, 0);
  for (const p of users) {
    const k = progKey(p), was = ctx.modelBefore.get(k), now = model.get(k)!;
    if (was?.safe && !now.safe) return no(`safety model rejects ${k}: ${now.reason}`);
  }

  // 3. second opinion of the whole-program checker on small programs
  progress(`${section.name}: whole-program checker`);
  let proved = users.length > 0;
  for (const p of users) {
    const size = programCode(cand, p).reduce((n, s) => n + s.insns.length, 0);
    if (size > (ctx.programProofMaxInsns ?? PROGRAM_PROOF_MAX_INSNS)) { proved = false; continue; }
    const r = await checkPrograms(prev, p, cand, p, { timeoutMs: ctx.timeoutMs, seed: ctx.seed });
    if (r.equivalent === false && !r.counterexample?.addressDependent) {
      const why = `the whole-program checker finds ${progKey(p)} different (${r.counterexample?.difference.what ?? '?'}: ${r.counterexample?.difference.a ?? ''} vs ${r.counterexample?.difference.b ?? ''})`;
      return no(why, `${why}\ncounterexample: ${JSON.stringify(r.counterexample)}`, why);
    }
    if (r.equivalent !== true) proved = false;
  }
  res.programProof = proved;

  // 4. the kernel verifier
  let verified: Map<string, ProgramVerdict> | null = null;
  if (ctx.useKernel && ctx.kernelBefore) {
    progress(`${section.name}: kernel verifier`);
    try {
      // only the programs running the section: the others' code did not change — unless that load
      // fails for one the kernel accepted before (a prog array whose slots the object initializes
      // with other programs cannot be set up without them): then the whole object, as it will load
      let r = await verifyObject(bytes, { name: cand.file, only: users });
      const lost = (x: typeof r): boolean => users.some((p) => ctx.kernelBefore!.get(progKey(p))?.verdict === 'accepted' && !x.programs.some((q) => progKey(q) === progKey(p) && q.verdict === 'accepted'));
      if (lost(r)) r = await verifyObject(bytes, { name: cand.file });
      verified = new Map(r.programs.map((p) => [progKey(p), p]));
    } catch (e) {
      // a failed check is a rejection, never a pass
      return no(`kernel check failed: ${(e as Error).message}`);
    }
    res.verified = new Map(users.map((p) => [progKey(p), verified!.get(progKey(p))?.verifiedInsns ?? null]));
  }
  const growthAllowed = ctx.allowVerifierGrowth && ctx.objective === 'size';
  for (const p of users) {
    const k = progKey(p);
    const mBefore = ctx.modelBefore.get(k), mNow = model.get(k)!;
    if (verified) {
      const was = ctx.kernelBefore!.get(k), now = verified.get(k);
      if (was?.verdict === 'accepted' && now?.verdict !== 'accepted') {
        return no(`kernel verifier rejects ${k}: ${now?.error ?? 'missing'}`, `kernel verifier rejects ${k}: ${now?.error ?? 'missing'}\n${now?.log ?? ''}`);
      }
      if (was?.verdict !== 'accepted' && !mNow.safe) return no(`${k} is neither kernel-verified nor model-safe`);
      const b = was?.verifiedInsns ?? null, a = now?.verifiedInsns ?? null;
      if (b !== null && a !== null && !growthAllowed && a > b * VERIFIER_GROWTH_LIMIT) {
        return no(`verifier work of ${k} grows ${b} → ${a} verified insns (more than 10%; --objective size --allow-verifier-growth keeps it)`);
      }
    } else {
      if (!mNow.safe) return no(`${k} cannot be shown safe here (no kernel check, safety model unsure)`);
      if (mBefore?.safe && !growthAllowed && mNow.steps > mBefore.steps * VERIFIER_GROWTH_LIMIT) {
        return no(`verifier work of ${k} grows ${mBefore.steps} → ${mNow.steps} processed insns in the safety model (more than 10%)`);
      }
    }
  }
  if (ctx.objective === 'verifier') {
    const before = verified ? sum(users.map((p) => ctx.kernelBefore!.get(progKey(p))?.verifiedInsns)) : sum(users.map((p) => ctx.modelBefore.get(progKey(p))?.steps));
    const after = verified ? sum(users.map((p) => verified!.get(progKey(p))?.verifiedInsns)) : res.modelSteps;
    if (before !== null && after !== null && after > before) return no(`objective verifier: verified insns grow ${before} → ${after}`);
  }
  if (verified && users.length) {
    res.kernel = {
      accepted: users.every((p) => verified!.get(progKey(p))?.verdict === 'accepted' || ctx.kernelBefore!.get(progKey(p))?.verdict !== 'accepted'),
      verifiedInsnsBefore: sum(users.map((p) => ctx.kernelBefore!.get(progKey(p))?.verifiedInsns)),
      verifiedInsnsAfter: sum(users.map((p) => verified!.get(progKey(p))?.verifiedInsns)),
    };
  }

  // 5. difftest of the previous version against the candidate
  const runnable = users.filter((p) => TEST_RUN_PACKET_TYPES.has(p.progType) && verified?.get(progKey(p))?.verdict === 'accepted');
  if (verified && ctx.difftestInputs > 0 && runnable.length) {
    let a: string, b: string;
    try {
      a = scratch.write(objectBytes(prev));
      b = scratch.write(bytes);
    } catch (e) {
      return no(`cannot write objects for the difftest: ${(e as Error).message}`);
    }
    progress(`${section.name}: difftest of ${runnable.length} program(s), ${ctx.difftestInputs} inputs each`);
    try {
      const r = await diffObjects(a, b, { inputs: ctx.difftestInputs, seed: ctx.seed, programs: runnable.map((p) => p.name) });
      const bad = r.programs.find((p) => p.mismatches > 0) ?? null;
      res.difftest = {
        inputs: r.programs.reduce((n, p) => n + p.inputs, 0),
        mismatches: r.programs.reduce((n, p) => n + p.mismatches, 0),
        programs: r.programs.length,
        untestable: r.untestable.length,
        firstMismatch: bad?.firstMismatch ?? null,
      };
      if (bad) {
        const m = bad.firstMismatch;
        const why = `difftest: ${bad.section}/${bad.name} differs after optimization (${m?.field ?? '?'}) on input ${m?.input ?? '?'}`;
        // the bug report carries the input that shows it
        const bug = `${why}: packet ${m?.packet ?? '?'}${m?.ctx ? `, ctx ${m.ctx}` : ''}; before ${JSON.stringify(m?.a)}, after ${JSON.stringify(m?.b)}`;
        return { ...no(why, `${why}\npacket: ${m?.packet ?? ''}\nctx: ${m?.ctx ?? ''}\nbefore: ${JSON.stringify(m?.a)}\nafter: ${JSON.stringify(m?.b)}`, bug), difftest: res.difftest, kernel: res.kernel };
      }
    } catch (e) {
      return no(`difftest failed: ${(e as Error).message}`);
    }
  }
  return { ...res, ok: true };
}
