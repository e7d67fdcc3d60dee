// `k2 opt`: optimize every code section, then gate each section's result as a whole.
//
// 1. Search: every section is searched on its own, starting from the original object (so the
//    result does not depend on how sections are spread over worker threads), smallest first, until
//    the object's deadline (`--time`) or until every search converged. Each rewrite is proven
//    (SMT, normal form or control-flow pairing) on the code the previous ones left and gated by the
//    safety model; the search returns them as a list of steps.
// 2. Final gate, section by section in object order, on the object as it will be written: see
//    gate.ts (model, program checker, kernel verifier on the programs that run the section,
//    verifier-work growth, kernel difftest). When it refuses, the longest accepted prefix of the
//    steps is found by bisection (every prefix of proven rewrites is proven), the culprit rewrite
//    is blacklisted, and — while time is left — the search continues from that prefix. A section
//    keeps the best version that passed; never all-or-nothing.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { objectBytes, programCode, readObject, writeObject, type BpfObject, type CodeSection, type IrInsn, type ProgramRef } from '../ir/index.js';
import { sectionSlots, DEFAULT_SYNTH, type SectionStats, type SynthOptions } from '../synth/index.js';
import { inThreadSolver, runSectionJobs, searchSection, WindowPool, type Objective, type SectionJob, type SectionResult } from '../synth/parallel.js';
import { longestAcceptedPrefix, replaySteps, stepKey, type Step } from '../synth/parallel-steps.js';
import { latencyCost } from '../synth/latency.js';
import { rewriteCacheDir, defaultCacheRoot } from '../synth/cache.js';
import { bpfAvailable, verifyObject, type ProgramVerdict } from '../kernel/index.js';
import { warmUpSolver } from '../smt/index.js';
import { EFFORT_PROFILES } from '../config/effort.js';
import type { Effort } from '../config/schema.js';
import { finalGate, modelVerdict, progKey, Scratch, PROGRAM_PROOF_MAX_INSNS, type GateContext, type GateResult, type ModelVerdict } from './gate.js';

export type { Objective } from '../synth/parallel.js';
export type { Effort } from '../config/schema.js';

/**
 * Per effort profile (src/config/effort.ts has the search settings): the object's search time when
 * the profile does not fix one, and the final difftest's inputs per program.
 */
const DRIVER_EFFORT: Record<Effort, { timeSec: number; difftestInputs: number; programProofMaxInsns: number }> = {
  thorough: { timeSec: 60, difftestInputs: 200, programProofMaxInsns: PROGRAM_PROOF_MAX_INSNS },
  // builds: the rewrites' own proofs, the model, the kernel and a short difftest (no second opinion)
  build: { timeSec: 1.5, difftestInputs: 50, programProofMaxInsns: 0 },
};

export interface OptimizeOptions {
  objective?: Objective; // default size
  /** Search budget for the whole object, seconds (default: the effort profile's). */
  timeSec?: number;
  /** Worker threads (default: the machine's cores); 1 = search in this thread. */
  jobs?: number;
  seed?: number; // default 1
  kernel?: boolean; // check with the real verifier and difftest where bpf() works (default true)
  /** Directory to save rejected candidates (object + verifier log) for bug reports. */
  keepRejected?: string | null;
  /** With objective size: keep rewrites that make verified_insns grow by more than 10 %. */
  allowVerifierGrowth?: boolean;
  effort?: Effort; // default thorough
  /** Inputs per program of the final difftest (default: the effort profile's; 0 = none). */
  difftestInputs?: number;
  /** Proven-rewrite cache: a directory, false for none, or true/undefined for the default place. */
  cache?: boolean | string;
  /** Search settings (the synthesizer's); `budgetMs` here is an alias of `timeSec` (ms per object). */
  synth?: Partial<SynthOptions>;
  /** Final-gate rounds per section (gate, bisect, search again from the accepted prefix). Default 3. */
  maxRounds?: number;
  onProgress?: (msg: string) => void;
  /** Test hooks. `finalGate` returns a reason to refuse a candidate section (null: no objection). */
  hooks?: { finalGate?: (section: string, insns: readonly IrInsn[]) => string | null };
}

export interface Figures {
  slots: number;
  insns: number;
  latencyNs: number; // the cost model's estimate: sum over the section's instructions
  /** verified_insns summed over the programs that run the section (kernel), else the safety model's processed count. */
  verifiedInsns: number | null;
  verifiedBy: 'kernel' | 'model';
}

export type SectionStatus = 'optimized' | 'unchanged' | 'fallback';

export interface SectionReport {
  name: string;
  before: Figures;
  after: Figures;
  /** optimized: every rewrite found passed; fallback: the final gate refused some (kept: the longest accepted prefix); unchanged: nothing found. */
  status: SectionStatus;
  reason: string | null;
  /** Every kept rewrite was proven equivalent (composition of window / tail-merge proofs). */
  proven: boolean;
  /** The whole-program checker also proved every (small) program that runs the section equal. */
  programProof: boolean;
  kernel: { accepted: boolean; verifiedInsnsBefore: number | null; verifiedInsnsAfter: number | null } | null;
  difftest: { inputs: number; mismatches: number } | null;
  ms: number;
  /** Rewrites kept / found. */
  kept: number;
  found: number;
  /** k2 bugs the gate caught (difftest mismatch with its input, program checker difference). */
  bugs: string[];
  /** Files written by --keep-rejected. */
  rejectedFiles: string[];
  search: { ms: number; converged: boolean; note: string | null; windows: number; proposals: number; proven: number; refuted: number; unknown: number; gateRejected: number; smtMsMedian: number | null; rounds: number };
  // kept for earlier consumers (k2-clang, bench): same as before.slots / after.slots
  slotsBefore: number;
  slotsAfter: number;
}

export interface OptimizeReport {
  input: string;
  output: string | null;
  objective: Objective;
  effort: Effort;
  ms: number;
  seed: number;
  jobs: number;
  timeSec: number;
  kernelChecked: boolean;
  sections: SectionReport[];
  slotsBefore: number;
  slotsAfter: number;
  /** Whole object, same units as the sections' figures. */
  before: { slots: number; insns: number; latencyNs: number };
  after: { slots: number; insns: number; latencyNs: number };
  /** Same as input (earlier consumers). */
  file: string;
}

const median = (xs: number[]): number | null => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const round1 = (x: number): number => Math.round(x * 10) / 10;

function figures(sec: CodeSection, users: ProgramRef[], kernel: Map<string, number | null> | null, model: Map<string, ModelVerdict>): Figures {
  let verifiedInsns: number | null = null, verifiedBy: 'kernel' | 'model' = 'model';
  if (kernel && users.length && users.every((p) => (kernel.get(progKey(p)) ?? null) !== null)) {
    verifiedInsns = users.reduce((n, p) => n + kernel.get(progKey(p))!, 0);
    verifiedBy = 'kernel';
  } else if (users.length) {
    verifiedInsns = users.reduce((n, p) => n + (model.get(progKey(p))?.steps ?? 0), 0);
  }
  return { slots: sectionSlots(sec), insns: sec.insns.length, latencyNs: round1(latencyCost(sec.insns)), verifiedInsns, verifiedBy };
}

const withSection = (obj: BpfObject, i: number, sec: CodeSection): BpfObject => ({ ...obj, code: obj.code.map((s, k) => (k === i ? sec : s)) });

/** Is `after` an improvement for the objective (the final gate decides whether it is kept)? */
function improves(objective: Objective, before: CodeSection, after: CodeSection): boolean {
  const sb = sectionSlots(before), sa = sectionSlots(after);
  if (objective === 'latency') return latencyCost(after.insns) < latencyCost(before.insns) - 1e-9 || (Math.abs(latencyCost(after.insns) - latencyCost(before.insns)) < 1e-9 && sa < sb);
  return sa < sb || (sa === sb && latencyCost(after.insns) < latencyCost(before.insns) - 1e-9);
}

/** Z3 resource limit per query with --effort thorough (about 0.5–2 s of solving here: the effort of the former 2 s timeout), and its wall-clock safety net. */
const DETERMINISTIC_RLIMIT = 1_000_000;
const DETERMINISTIC_TIMEOUT_MS = 10_000;

/** A section's users: the programs whose code includes it. */
const usersOf = (obj: BpfObject, name: string): ProgramRef[] => obj.programs.filter((p) => programCode(obj, p).some((s) => s.name === name));

/** Sections longer than this search sequentially in a worker thread (which can be stopped at the deadline). */
const HUGE_SECTION = 5000;
const windowMode = (sec: CodeSection): SectionJob['windows'] => (sec.insns.length > HUGE_SECTION ? 'sequential' : 'batched');

/** Programs the model takes this many processed instructions or more to check get the model in the final gate only. */
const EAGER_GATE_MAX_STEPS = 50000;

/**
 * The optimized object, its report, and for each section whose code changed the rewrites kept, as
 * steps from the input's code (each proven on the code the previous ones left): the build cache
 * stores them so that a hit can be re-proven step by step, with the facts each step was proven with.
 */
export async function optimizeObject(obj: BpfObject, opts: OptimizeOptions = {}): Promise<{ obj: BpfObject; report: OptimizeReport; steps: Map<string, Step[]> }> {
  // Z3 starts (once per process) before the object's clock does: no search budget pays for it —
  // unless the search runs without the solver (timeout 0: the build profile), then never
  if ((opts.synth?.timeoutMs ?? EFFORT_PROFILES[opts.effort ?? 'thorough'].synth.timeoutMs ?? DEFAULT_SYNTH.timeoutMs) > 0) await warmUpSolver();
  const t0 = Date.now();
  const effort: Effort = opts.effort ?? 'thorough';
  const profile = { ...DRIVER_EFFORT[effort], synth: EFFORT_PROFILES[effort].synth };
  const objectMs = EFFORT_PROFILES[effort].objectBudgetMs;
  if (objectMs !== null) profile.timeSec = objectMs / 1000;
  const objective: Objective = opts.objective ?? 'size';
  const seed = opts.seed ?? opts.synth?.search?.seed ?? 1;
  const timeSec = opts.timeSec ?? (opts.synth?.budgetMs !== undefined ? opts.synth.budgetMs / 1000 : profile.timeSec);
  const jobsN = Math.max(1, Math.floor(opts.jobs ?? availableParallelism()));
  const deadline = t0 + timeSec * 1000;
  const graceMs = Math.max(5000, timeSec * 100); // 10 % of the budget, at least 5 s
  const synthBase: Partial<SynthOptions> = {
    ...profile.synth,
    ...opts.synth,
    search: { ...DEFAULT_SYNTH.search, ...profile.synth.search, ...opts.synth?.search, seed },
    // a merged tail puts one more goto on the merged paths: not for latency
    ...(objective === 'latency' ? { tailMerge: false } : {}),
  };
  delete synthBase.budgetMs; // the object's deadline decides
  // Reproducible --seed under load (thorough): Z3's resource limit decides a query, the wall-clock
  // timeout is only a safety net (a query cut by the clock depends on the machine's load).
  if (effort === 'thorough' && opts.synth?.rlimit === undefined && opts.synth?.timeoutMs === undefined) {
    synthBase.rlimit = DETERMINISTIC_RLIMIT;
    synthBase.timeoutMs = Math.max(synthBase.timeoutMs ?? DEFAULT_SYNTH.timeoutMs, DETERMINISTIC_TIMEOUT_MS);
  }
  const cacheDir = opts.cache === false ? null : typeof opts.cache === 'string' ? opts.cache : rewriteCacheDir(defaultCacheRoot());
  const progress = opts.onProgress ?? (() => {});

  // The original's verdicts: the safety model's and, where bpf() works, the kernel's.
  const modelBefore = new Map(obj.programs.map((p) => [progKey(p), modelVerdict(obj, p)]));
  const useKernel = (opts.kernel ?? true) && (await bpfAvailable()).ok;
  let kernelBefore: Map<string, ProgramVerdict> | null = null;
  if (useKernel) {
    try {
      kernelBefore = new Map((await verifyObject(objectBytes(obj), { name: obj.file })).programs.map((p) => [progKey(p), p]));
    } catch {
      kernelBefore = null; // the original does not even lower/load: the model alone decides
    }
  }
  const kernelCounts = kernelBefore ? new Map([...kernelBefore].map(([k, v]) => [k, v.verifiedInsns])) : null;
  const ctx: GateContext = {
    useKernel: useKernel && kernelBefore !== null, kernelBefore, modelBefore, objective,
    allowVerifierGrowth: !!opts.allowVerifierGrowth, difftestInputs: opts.difftestInputs ?? profile.difftestInputs,
    // the program check is a second opinion: an unknown costs nothing, so it gets a short timeout
    seed, timeoutMs: Math.min(synthBase.timeoutMs ?? DEFAULT_SYNTH.timeoutMs, 3000), hook: opts.hooks?.finalGate, programProofMaxInsns: profile.programProofMaxInsns,
  };
  const growth = ctx.allowVerifierGrowth && objective === 'size' ? null : 1.1;

  const users = obj.code.map((s) => usersOf(obj, s.name));
  const jobFor = (i: number, start: CodeSection | null, blacklist: string[]): SectionJob => {
    const gateUsers = users[i]!.filter((p) => modelBefore.get(progKey(p))?.safe).map((p) => ({ prog: p, steps: modelBefore.get(progKey(p))!.steps }));
    const eagerGate = gateUsers.reduce((n, u) => n + u.steps, 0) <= EAGER_GATE_MAX_STEPS;
    return { secIndex: i, start, deadline, graceMs, windows: windowMode(obj.code[i]!), synth: synthBase, objective, verifierGrowth: growth, blacklist, gateUsers, eagerGate, cacheDir };
  };
  // Sections are searched one after the other, their windows in batches spread over the window
  // pool (--jobs workers; with --jobs 1 in this thread): the result does not depend on --jobs.
  // Huge sections are searched by the synthesizer's own sequential loop in one worker, which can be
  // stopped at the deadline (in this thread a pass over 30k instructions could overrun it).
  const pool = jobsN > 1 ? new WindowPool(obj, jobsN) : null;
  const solver = pool ?? inThreadSolver(obj);
  const search = async (o: BpfObject, job: SectionJob): Promise<SectionResult> =>
    job.windows === 'batched' ? searchSection(o, job, undefined, solver) : (await runSectionJobs(o, [job], 1, undefined, false))[0]!;

  // 1. search, smallest sections first
  const order = obj.code.map((s, i) => i).filter((i) => obj.code[i]!.insns.length > 0)
    .sort((a, b) => sectionSlots(obj.code[a]!) - sectionSlots(obj.code[b]!) || a - b);
  progress(`searching ${order.length} section(s), windows on ${jobsN} thread(s)`);
  const resultOf = new Map<number, SectionResult>();
  // shares grow with the square root of the size: a huge section (cilium's 32k insns) still gets
  // most of the time, but a 900-insn one beside it gets enough to converge
  const size = (i: number): number => Math.sqrt(Math.max(1, obj.code[i]!.insns.length));
  try {
    // Each section gets its share of the time left, growing with its size; time a section
    // does not use (it converged) goes to the next ones. A second round gives the time still left
    // to the sections whose search was cut short, continuing from where they stopped.
    for (let round = 0; round < 2; round++) {
      const todo = round === 0 ? order : order.filter((i) => !resultOf.get(i)!.converged && !resultOf.get(i)!.error);
      let sizeLeft = todo.reduce((n, i) => n + size(i), 0);
      for (const i of todo) {
        const now = Date.now();
        // a search overruns its share a little (a window in progress is finished): a section the
        // clock has passed by still gets a short search, while the overrun stays within a quarter
        // of the budget, rather than none
        const late = now >= deadline;
        if (late && (round > 0 || now >= deadline + timeSec * 250)) {
          if (round === 0) resultOf.set(i, { secIndex: i, steps: [], stats: null, converged: false, ms: 0, error: null, note: 'no time left' });
          continue;
        }
        const prev = resultOf.get(i);
        const start = prev ? replaySteps(obj.code[i]!, prev.steps, prev.steps.length) : null;
        const share = late ? Math.min(2000, timeSec * 50) : ((deadline - now) * size(i)) / sizeLeft;
        const job = { ...jobFor(i, start, []), deadline: now + share };
        sizeLeft -= size(i);
        const r = await search(obj, job);
        resultOf.set(i, prev ? { ...r, steps: [...prev.steps, ...r.steps], ms: prev.ms + r.ms, stats: mergeStats(prev.stats, r.stats) } : r);
        progress(`searched ${obj.code[i]!.name}${round ? ' again' : ''} (${r.steps.length} rewrites${r.converged ? '' : ', cut by the clock'})${r.note ? `: ${r.note}` : ''}`);
      }
      if (Date.now() >= deadline) break;
    }
  } catch (e) {
    await pool?.close();
    throw e;
  }

  // 2. final gate, in object order
  let cur = obj;
  const keptSteps = new Map<string, Step[]>();
  const reports: SectionReport[] = [];
  const scratch = new Scratch();
  try {
    for (let i = 0; i < obj.code.length; i++) {
      const t1 = Date.now();
      const orig = obj.code[i]!;
      const r = resultOf.get(i) ?? null;
      progress(`checking ${orig.name} (${i + 1}/${obj.code.length})`);
      const g = await gateSection(cur, i, users[i]!, r, ctx, opts, jobFor, search, scratch);
      cur = withSection(cur, i, g.section);
      if (g.kept > 0) keptSteps.set(orig.name, g.steps);
      const before = figures(orig, users[i]!, kernelCounts, modelBefore);
      const modelAfter = g.gate ? new Map(users[i]!.map((p) => [progKey(p), modelVerdict(cur, p)])) : modelBefore;
      const after = g.kept > 0 ? figures(g.section, users[i]!, g.gate?.verified ?? null, modelAfter) : before;
      const stats = g.stats;
      reports.push({
        name: orig.name, before, after,
        status: g.kept === 0 && !g.reason ? 'unchanged' : g.reason ? 'fallback' : 'optimized',
        reason: g.reason, proven: true, programProof: g.kept > 0 && !!g.gate?.programProof,
        kernel: g.kept > 0 ? g.gate?.kernel ?? null : null,
        difftest: g.kept > 0 && g.gate?.difftest ? { inputs: g.gate.difftest.inputs, mismatches: g.gate.difftest.mismatches } : null,
        ms: Date.now() - t1 + (r?.ms ?? 0), kept: g.kept, found: g.found, bugs: g.bugs, rejectedFiles: g.files,
        search: {
          ms: g.searchMs, converged: g.converged, note: g.note, windows: stats.windows, proposals: stats.proposals, proven: stats.proven, refuted: stats.refuted,
          unknown: stats.unknown, gateRejected: stats.gateRejected, smtMsMedian: median(stats.smtMs), rounds: g.rounds,
        },
        slotsBefore: before.slots, slotsAfter: after.slots,
      });
      for (const b of g.bugs) process.stderr.write(`k2: BUG: ${obj.file}: section ${orig.name}: ${b}\n`);
    }
  } finally {
    scratch.dispose();
    await pool?.close();
  }
  const total = (f: (s: SectionReport) => Figures) => ({
    slots: reports.reduce((n, s) => n + f(s).slots, 0), insns: reports.reduce((n, s) => n + f(s).insns, 0), latencyNs: round1(reports.reduce((n, s) => n + f(s).latencyNs, 0)),
  });
  const report: OptimizeReport = {
    input: obj.file, file: obj.file, output: null, objective, effort, ms: Date.now() - t0, seed, jobs: jobsN, timeSec, kernelChecked: ctx.useKernel,
    sections: reports, before: total((s) => s.before), after: total((s) => s.after),
    slotsBefore: reports.reduce((n, s) => n + s.before.slots, 0), slotsAfter: reports.reduce((n, s) => n + s.after.slots, 0),
  };
  return { obj: cur, report, steps: keptSteps };
}

interface Gated {
  section: CodeSection;
  steps: Step[]; // the kept ones: section = replaySteps(base, steps, kept)
  kept: number;
  found: number;
  reason: string | null;
  gate: GateResult | null; // the accepted version's gate result (null: nothing kept)
  stats: SectionStats;
  searchMs: number;
  converged: boolean;
  note: string | null;
  rounds: number;
  bugs: string[];
  files: string[];
}

function mergeStats(a: SectionStats | null, b: SectionStats | null): SectionStats | null {
  if (!a || !b) return a ?? b;
  const out = emptyStats();
  addStats(out, a);
  addStats(out, b);
  return out;
}

const emptyStats = (): SectionStats => ({ windows: 0, proposals: 0, proven: 0, refuted: 0, unknown: 0, gateRejected: 0, rewrites: 0, smtMs: [] });
function addStats(a: SectionStats, b: SectionStats | null): void {
  if (!b) return;
  a.windows += b.windows; a.proposals += b.proposals; a.proven += b.proven; a.refuted += b.refuted;
  a.unknown += b.unknown; a.gateRejected += b.gateRejected; a.rewrites += b.rewrites; a.smtMs.push(...b.smtMs);
}

/** Gate one section's steps; bisect and search again on refusal. */
async function gateSection(
  cur: BpfObject, i: number, users: ProgramRef[], first: SectionResult | null, ctx: GateContext, opts: OptimizeOptions,
  jobFor: (i: number, start: CodeSection | null, blacklist: string[]) => SectionJob,
  search: (o: BpfObject, job: SectionJob) => Promise<SectionResult>, scratch: Scratch,
): Promise<Gated> {
  const base = cur.code[i]!;
  const stats = emptyStats();
  const out: Gated = { section: base, steps: [], kept: 0, found: 0, reason: null, gate: null, stats, searchMs: 0, converged: true, note: null, rounds: 0, bugs: [], files: [] };
  if (!first) return out;
  if (first.error) return { ...out, reason: `search failed: ${first.error}` };
  addStats(stats, first.stats);
  out.searchMs = first.ms;
  out.converged = first.converged;
  out.note = first.note ?? null;
  let steps: Step[] = [...first.steps];
  let accepted = 0; // steps[0..accepted) passed the gate (0: the original code)
  const blacklist: string[] = [];
  const maxRounds = opts.maxRounds ?? 3;
  const gateAt = new Map<number, GateResult>();
  const check = async (k: number): Promise<GateResult> => {
    let g = gateAt.get(k);
    if (!g) {
      opts.onProgress?.(`${base.name}: final gate on ${k} of ${steps.length} rewrites`);
      g = await finalGate(ctx, cur, withSection(cur, i, replaySteps(base, steps, k)), i, users, scratch, opts.onProgress);
      opts.onProgress?.(`${base.name}: ${g.ok ? 'passed' : `refused: ${g.reason}`}`);
      gateAt.set(k, g);
    }
    return g;
  };
  for (let round = 1; ; round++) {
    out.rounds = round;
    out.found = Math.max(out.found, steps.length);
    const n = steps.length;
    if (n === accepted) break;
    if (!improves(ctx.objective, replaySteps(base, steps, accepted), replaySteps(base, steps, n))) {
      if (accepted === 0) out.reason = null;
      out.note = `${out.note ? `${out.note}; ` : ''}the ${n - accepted} rewrite(s) found do not improve the objective ${ctx.objective}`;
      break;
    }
    const g = await check(n);
    if (g.ok) {
      accepted = n;
      break;
    }
    if (g.bug) out.bugs.push(g.bug);
    // bisect for the longest accepted prefix above the one we have
    const { k } = await longestAcceptedPrefix(n - accepted, async (d) => (await check(accepted + d)).ok);
    const good = accepted + k;
    const culprit = good + 1; // steps[good] is the rewrite the gate refused
    const bad = await check(culprit);
    if (bad.bug && !out.bugs.includes(bad.bug)) out.bugs.push(bad.bug);
    out.reason = `kept ${good} of ${n} rewrites: ${bad.reason ?? g.reason}`;
    if (opts.keepRejected) out.files.push(...saveRejected(opts.keepRejected, cur, i, base, steps, good, bad));
    const prefix = replaySteps(base, steps, good);
    blacklist.push(stepKey(prefix.insns, steps[good]!));
    accepted = good;
    steps = steps.slice(0, good);
    for (const k2 of [...gateAt.keys()]) if (k2 > good) gateAt.delete(k2);
    if (round >= maxRounds || Date.now() >= jobFor(i, null, []).deadline) break;
    // search on from the accepted prefix, without the refused rewrite
    opts.onProgress?.(`${base.name}: searching again from rewrite ${good} (round ${round + 1})`);
    const again = await search(cur, jobFor(i, prefix, [...blacklist]));
    addStats(stats, again.stats);
    out.searchMs += again.ms;
    out.converged = again.converged;
    out.note = again.note ?? out.note;
    if (again.error) break;
    steps = [...steps, ...again.steps];
  }
  // a kept prefix that does not improve the objective is not worth changing the code for
  if (accepted > 0 && !improves(ctx.objective, base, replaySteps(base, steps, accepted))) accepted = 0;
  if (accepted > 0) {
    out.section = replaySteps(base, steps, accepted);
    out.gate = (await check(accepted));
  }
  out.kept = accepted;
  out.steps = steps.slice(0, accepted);
  return out;
}

/** --keep-rejected: the refused candidate with its log, and the accepted prefix beside it. */
function saveRejected(dir: string, cur: BpfObject, i: number, base: CodeSection, steps: Step[], good: number, bad: GateResult): string[] {
  const stem = `${basename(cur.file).replace(/\.o$/, '')}.${base.name.replace(/[^A-Za-z0-9_.-]+/g, '_')}.${good + 1}`;
  const files: string[] = [];
  try {
    mkdirSync(dir, { recursive: true });
    const write = (name: string, data: Uint8Array | string): void => {
      const f = join(dir, name);
      writeFileSync(f, data);
      files.push(f);
    };
    const rejected = withSection(cur, i, replaySteps(base, steps, good + 1));
    try {
      write(`${stem}.rejected.o`, objectBytes(rejected));
    } catch { /* the candidate does not even lower: the log says so */ }
    try {
      write(`${stem}.accepted.o`, objectBytes(withSection(cur, i, replaySteps(base, steps, good))));
    } catch { /* idem */ }
    const step = steps[good]!;
    write(`${stem}.log`, [
      `k2 opt --keep-rejected: ${cur.file}, section ${base.name}`,
      `rewrite ${good + 1} of ${steps.length} refused: ${bad.reason}`,
      bad.bug ? `k2 bug: ${bad.bug}` : '',
      `rewrite (instructions ${step.start}..${step.start + step.remove - 1}): ${stepKey(replaySteps(base, steps, good).insns, step)}`,
      `${stem}.accepted.o has the ${good} rewrites before it (accepted), ${stem}.rejected.o adds this one.`,
      '',
      bad.log,
    ].filter((l, k) => l !== '' || k > 3).join('\n'));
  } catch (e) {
    process.stderr.write(`k2: warning: --keep-rejected: cannot write to ${dir}: ${(e as Error).message}\n`);
  }
  return files;
}

export async function optimizeFile(input: string, output: string, opts: OptimizeOptions = {}): Promise<OptimizeReport> {
  const obj = readObject(input);
  const { obj: out, report } = await optimizeObject(obj, opts);
  writeObject(out, output);
  return { ...report, output };
}
