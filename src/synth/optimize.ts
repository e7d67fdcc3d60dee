// Superoptimization of one code section, in passes, each rewrite proven equivalent by the SMT
// checker and kept only if `gate` (the safety model) accepts the program with it:
//   1. stores of known constants become store-immediates;
//   2. identical block tails are merged (proven by control-flow pairing);
//   3. dead stack stores go (byte-level stack liveness over the CFG);
//   4. windows (up to 8 instructions, memory included, optionally ending in a conditional jump)
//      get the enumerated rewrites; whole blocks' byte copies are rebuilt with wider accesses;
//   5. Markov-chain search over windows of 2-4 (and 5-6) instructions with the rest of the budget;
//   6. tail merging again.
// Window preconditions come from the safety model's abstract states (pointer kinds, regions,
// ranges, bounds) and constant propagation; postconditions from precise register liveness (calls
// read only their arguments) and stack-byte liveness. Every accepted rewrite is recorded as a step
// with a snapshot of the section, so a later gate can keep any proven prefix.
import { CLASS, JMP, LD_IMM64, jmpOp, opClass, slotsOf, type Insn } from '../isa/index.js';
import {
  liveIn, successors, liveOutAt, regList, blockStarts, constantsIn, nonzeroBitsIn, objectLiveness, stackLiveness, stackLiveAfter,
  liveRanges, labelIndex, preciseStackLiveness, objectMapSizes, type CalleeReads, type MapSizes,
} from '../analysis/index.js';
import { replaceWindow, type BpfObject, type CodeSection, type IrInsn, type ProgramRef } from '../ir/index.js';
import { checkWindow, checkWindowStates, objectMaps, warmUpSolver, type WindowPre, type MapInfo } from '../smt/index.js';
import { programCode } from '../ir/index.js';
import { objectiveCost, perfCost } from './cost.js';
import { functionPass } from './function-pass.js';
import { constantStores, deadStores, proveOnPrograms, redundantLoadsPass, regionPass, tailMerges } from './passes.js';
export { storeImmediate } from './passes.js';
export { jobSeed } from './window.js';
import { DEFAULT_SEARCH, type SearchOptions } from './search.js';
import { loadBases } from './fastpaths.js';
import { sectionPres } from './facts.js';
import { withoutUnreachable, type RegionCandidate } from './regions.js';
import { insnKey, jobSeed, solveWindow, type RewriteCache, type SolveOptions, type WindowJob, type WindowOutcome } from './window.js';

export interface SynthOptions {
  windowSizes: number[]; // tried largest first
  tests: number; // random test cases per window
  search: SearchOptions;
  timeoutMs: number; // per SMT query (0: no solver — normal forms prove, random inputs refute)
  budgetMs: number; // per section; windows after the budget are left alone
  cegisRounds: number;
  memoryWindowSizes?: number[]; // larger windows, searched only for memory rewrites (default [8, 7, 6, 5])
  chainWindowSizes?: number[]; // windows the Markov chains search (default 6, 5 and windowSizes of 2-4; none without windowSizes)
  constantStores?: boolean; // turn stores of known-constant registers into store-immediates (default on)
  tailMerge?: boolean; // merge identical tails of blocks (default on); each merge proven on whole programs
  tailMergeMinSaved?: number; // slots a tail merge must save (default 1: `r0 = 0; exit` twice → once and a goto)
  deadStores?: boolean; // delete stack stores no path reads (default on)
  redundantLoads?: boolean; // delete loads whose register already holds the value on every path (default on)
  copyProp?: boolean; // copies `rA = rB` whose readers can read rB instead go (across blocks; default on)
  copyRuns?: boolean; // rebuild blocks' byte copies with wider accesses (default on)
  safetyFacts?: boolean; // preconditions from the safety model's states (default on)
  cache?: RewriteCache; // proven rewrites by canonical window (the driver's)
  objective?: 'size' | 'latency' | 'verifier'; // the search's performance term (verifier: slots; the driver's gate watches verifier work)
  onStep?: (step: RewriteStep) => void; // each accepted rewrite as it happens (then `steps` stays empty)
  budgetClock?: 'wall' | 'cpu'; // what budgetMs measures: elapsed time (default) or this process's CPU time (reproducible on a shared machine)
  rlimit?: number; // Z3 resource limit per query next to timeoutMs (deterministic under load; default none)
  /** Wall-clock time (Date.now()) after which window searches stop and queries are cut short (no rlimit only; set by optimizeSection). */
  deadline?: number;
  batch?: number; // windows solved together (default 1: one at a time); fixed, so results do not depend on who solves them
  /**
   * Solves a batch of window jobs (e.g. over worker threads) with the solve options `optsFor`
   * gives for a chain length (the section's: its query timeouts and deadline); default:
   * solveWindow here, in order.
   */
  solveBatch?: (jobs: WindowJob[], seeds: number[], optsFor: (iterations: number) => SolveOptions) => Promise<WindowOutcome[]>;
  /** Whole small loop-free functions searched as one window, jumps included (functions.ts; default on). */
  functions?: boolean;
  /** Region rewrites with control flow inside (regions.ts; default on). */
  regions?: boolean;
  /** Windows may leave in the middle through conditional jumps (superblocks; default on). */
  superblocks?: boolean;
  /**
   * How rewrites with control flow inside (superblock windows, region rewrites) are checked on
   * whole programs besides their window proofs: 'program' (default) = the whole-program checker
   * on every program running the section must not find a difference (where it cannot decide, an
   * unmodelled helper or CO-RE elsewhere, the window proofs stand); 'strict' = it must prove
   * them; 'window' = window proofs alone. Region rewrites without a window form always need it.
   */
  regionProof?: 'program' | 'strict' | 'window';
}

/** CPU time of this process (all threads, Z3's included), in ms. */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

export const DEFAULT_SYNTH: SynthOptions = { windowSizes: [4, 3, 2, 1], tests: 16, search: DEFAULT_SEARCH, timeoutMs: 2000, budgetMs: 20000, cegisRounds: 3 };

export interface SectionStats {
  windows: number;
  proposals: number; // candidates sent to the checker
  proven: number;
  refuted: number;
  unknown: number;
  gateRejected: number;
  rewrites: number;
  smtMs: number[];
  /** Markov-chain proposals over all windows. */
  searchProposals?: number;
  /** Rewrites the window checker proved and the whole-program checker refuted (should stay 0). */
  disagreements?: number;
}

/** One accepted rewrite: the section after it (each step proven against the section before it). */
export interface RewriteStep {
  kind: 'store-imm' | 'tail-merge' | 'dead-store' | 'redundant-load' | 'copy-prop' | 'window' | 'superblock' | 'copy-run' | 'function' | RegionCandidate['kind'];
  start: number;
  end: number;
  saved: number;
  proof: 'smt' | 'bisim' | 'program';
  after: CodeSection;
}

const emptyStats = (): SectionStats => ({ windows: 0, proposals: 0, proven: 0, refuted: 0, unknown: 0, gateRejected: 0, rewrites: 0, smtMs: [], searchProposals: 0 });

const isControl = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32;
const isCondJump = (i: IrInsn): boolean => isControl(i) && i.target !== undefined && jmpOp(i.code) !== JMP.JA && jmpOp(i.code) !== JMP.CALL && jmpOp(i.code) !== JMP.EXIT;

/**
 * Can insns[start, end) be rewritten as a unit? Straight-line with one entry: no inner labels,
 * nothing pinned; conditional jumps may end it and, with `sideExits` (a superblock), leave it in
 * the middle. Calls, exits and gotos end windows before them.
 */
function windowOk(sec: CodeSection, start: number, end: number, sideExits: boolean, blockEnd: Int32Array): boolean {
  if (end > sec.insns.length || end <= start) return false;
  if (!sideExits && blockEnd[start]! < end) return false;
  for (let k = start; k < end; k++) {
    const i = sec.insns[k]!;
    if (i.pinned || i.core?.length || (i.code === LD_IMM64 && i.src !== 0) || (k > start && i.labels?.length)) return false;
    if (isControl(i) && !((k === end - 1 || sideExits) && isCondJump(i))) return false;
  }
  return true;
}

/** Does the window leave in the middle (a conditional jump before its last instruction)? */
export const hasSideExit = (insns: readonly IrInsn[]): boolean => insns.some((i, k) => k < insns.length - 1 && isControl(i));

function blockEnds(sec: CodeSection): Int32Array {
  const starts = blockStarts(sec);
  const out = new Int32Array(sec.insns.length);
  starts.forEach((s, k) => {
    const e = starts[k + 1] ?? sec.insns.length;
    for (let i = s; i < e; i++) out[i] = e;
  });
  return out;
}

const ALL_BITS = (1n << 64n) - 1n;

const strip = (i: IrInsn): IrInsn => {
  const { labels: _l, funcInfo: _f, lines: _n, ...plain } = i;
  return plain;
};

/** Analyses of the current section, recomputed after each accepted rewrite. */
export class SectionState {
  sec: CodeSection;
  /** The program checker said "unsupported" for a program running this section (it models no CO-RE, ld_abs at negative offsets …): rewrites only it could prove are not tried again. */
  programsUnprovable = false;
  live!: Uint16Array;
  succ!: number[][];
  ends!: Int32Array;
  consts!: ReturnType<typeof constantsIn>;
  nonzero!: ReturnType<typeof nonzeroBitsIn>;
  stack!: ReturnType<typeof stackLiveness>;
  private pres: Map<number, WindowPre> | null | undefined;
  constructor(
    sec: CodeSection,
    readonly callee: CalleeReads,
    private readonly factsOf: (sec: CodeSection) => Map<number, WindowPre> | null,
    readonly mapOf: (insn: IrInsn) => MapSizes | undefined = () => undefined,
  ) {
    this.sec = sec;
    this.refresh(sec);
  }
  /**
   * The code changed. After a window rewrite ([start, end) replaced by `newLen` instructions) the
   * safety model's facts elsewhere are kept, moved with the code: a proven rewrite leaves every
   * live register's value at every other point as it was (facts are only used for registers live
   * at a window's entry, see pre()). Any other change recomputes them (on next use).
   */
  refresh(sec: CodeSection, window?: { start: number; end: number; newLen: number }): void {
    this.sec = sec;
    this.live = liveIn(sec, this.callee);
    this.succ = successors(sec);
    this.ends = blockEnds(sec);
    this.consts = constantsIn(sec);
    this.nonzero = nonzeroBitsIn(sec);
    // helpers' memory arguments: map key/value sizes (the map r1 holds), constant sizes
    this.stack = preciseStackLiveness(sec, this.live, this.callee, this.mapOf, this.consts);
    if (window && this.pres) {
      const moved = new Map<number, WindowPre>();
      const delta = window.newLen - (window.end - window.start);
      for (const [i, p] of this.pres) {
        if (i < window.start || (i === window.start && window.newLen > 0)) moved.set(i, p);
        else if (i >= window.end) moved.set(i + delta, p);
      }
      this.pres = moved;
    } else this.pres = undefined;
  }
  /** Safety-model facts per instruction (computed on first use after a change). */
  safetyPres(): Map<number, WindowPre> | null {
    if (this.pres === undefined) this.pres = this.factsOf(this.sec);
    return this.pres;
  }
  /**
   * Registers live where [start, end) is left: after its last instruction, and at the target of
   * every side exit (a conditional jump inside a superblock window). One set for every exit: the
   * window checker compares them at each.
   */
  liveOut(end: number, start = end - 1): number[] {
    let set = liveOutAt(this.sec, this.live, this.succ, end - 1);
    for (const t of this.sideTargets(start, end)) set |= this.live[t] ?? 0;
    return regList(set).filter((r) => r <= 9);
  }
  stackOut(end: number, start = end - 1): { off: number; size: number }[] | 'all' {
    const set = stackLiveAfter(this.stack, this.succ, end - 1);
    for (const t of this.sideTargets(start, end)) {
      const l = this.stack.liveIn[t];
      if (l) for (let w = 0; w < set.length; w++) set[w]! |= l[w]!;
    }
    return liveRanges(set);
  }
  /** What is used after [start, end): registers and stack bytes (live-in at `start` when empty). */
  postAt(start: number, end: number): { regs: number[]; stack: { off: number; size: number }[] | 'all' } {
    if (end > start) return { regs: this.liveOut(end, start), stack: this.stackOut(end, start) };
    return { regs: regList(this.live[start] ?? 0).filter((r) => r <= 9), stack: start < this.sec.insns.length ? liveRanges(this.stack.liveIn[start]!) : [] };
  }
  /** Targets of the conditional jumps in [start, end - 1) (the last one's are its successors). */
  private sideTargets(start: number, end: number): number[] {
    const out: number[] = [];
    for (let k = Math.max(0, start); k < end - 1; k++) if (isControl(this.sec.insns[k]!)) for (const t of this.succ[k]!) if (t !== k + 1) out.push(t);
    return out;
  }
  /**
   * The window's precondition: the safety model's pointer facts for registers live at its entry,
   * strengthened by constants and known-zero bits (exact for the current code, every register).
   */
  pre(start: number, useSafety: boolean): WindowPre {
    const base = useSafety ? this.safetyPres()?.get(start) : undefined;
    const regs: NonNullable<WindowPre['regs']> = {};
    for (const [r, f] of Object.entries(base?.regs ?? {})) if (f && this.live[start]! & (1 << Number(r))) regs[Number(r)] = f;
    this.consts[start]!.forEach((v, r) => {
      if (v === undefined || r >= 10) return;
      const f = regs[r];
      if (!f || f.kind === 'scalar' || f.kind === 'unknown') regs[r] = { kind: 'scalar', value: v };
    });
    this.nonzero[start]!.forEach((m, r) => {
      if (r >= 10 || m === ALL_BITS || regs[r]) return;
      regs[r] = { kind: 'scalar', umax: m, tnum: { value: 0n, mask: m } };
    });
    // stack addresses the stack analysis tracks (r10 + k)
    this.stack.ptrs[start]!.forEach((k, r) => {
      if (k !== undefined && r < 10 && (!regs[r] || regs[r]!.kind === 'unknown')) regs[r] = { kind: 'stack', off: k };
    });
    return { ...(base ?? {}), regs };
  }
}

/**
 * The map an `ld_imm64` loads (its relocation's symbol: the map's own, or the legacy `maps`
 * section's plus the map's offset), as key and value sizes.
 */
/** Windows searched without finding anything (by content, facts and search effort), across sections. */
const fruitless = new Set<string>();
function remember(key: string): void {
  if (fruitless.size >= 200_000) fruitless.clear();
  fruitless.add(key);
}
const big = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? `${v}n` : v);

/** The order windows are tried in one sweep: sizes, then starts; `chain` windows get the Markov chains. */
interface PlannedWindow { start: number; end: number; iterations: number; kind: RewriteStep['kind'] }
interface Pass { size: number; iterations: number; kind: RewriteStep['kind']; memoryOnly: boolean; sideExits?: boolean }

/**
 * One section under optimization: its current code and analyses, the gate, the steps taken.
 * `optimizeSection` drives it window by window; a parallel driver can `plan` jobs, solve them
 * elsewhere (`solveWindow`) and `apply` the outcomes here in job order.
 */
export class SectionSession {
  readonly steps: RewriteStep[] = [];
  readonly secName: string;
  readonly progType: string;
  readonly maps: MapInfo[];
  private readonly S: SectionState;
  private readonly users: ProgramRef[];
  private readonly useSafety: boolean;
  readonly perf: (insns: readonly Insn[]) => number;

  constructor(
    readonly obj: BpfObject,
    readonly secIndex: number,
    readonly gate: (candidate: BpfObject) => boolean,
    readonly opts: SynthOptions,
    readonly stats: SectionStats,
  ) {
    this.secName = obj.code[secIndex]!.name;
    this.users = obj.programs.filter((p) => programCode(obj, p).some((s) => s.name === this.secName));
    this.progType = this.users[0]?.progType ?? obj.programs[0]?.progType ?? 'xdp';
    this.maps = objectMaps(obj);
    this.perf = objectiveCost(opts.objective);
    // What bpf-to-bpf callees read (their live-in arguments), over the whole object.
    const objLive = objectLiveness(obj.code);
    const labels = new Map(obj.code.map((s) => [s.name, labelIndex(s)]));
    const callee: CalleeReads = (insn) => {
      const c = (insn as IrInsn).callee;
      const at = c ? labels.get(c.section)?.get(c.label) : undefined;
      return c && at !== undefined ? objLive.get(c.section)?.[at] : undefined;
    };
    this.useSafety = opts.safetyFacts !== false;
    this.S = new SectionState(obj.code[secIndex]!, callee, (sec) => sectionPres(this.withSection(sec), this.secName, this.users), objectMapSizes(obj));
  }

  get section(): CodeSection {
    return this.S.sec;
  }
  private core: boolean | undefined;
  /** Does a program running this section have CO-RE relocations (which the program checker does not model)? */
  get coreInPrograms(): boolean {
    this.core ??= this.users.some((p) => programCode(this.obj, p).some((sec) => sec.insns.some((i) => i.core?.length)));
    return this.core;
  }
  get state(): SectionState {
    return this.S;
  }
  withSection(sec: CodeSection): BpfObject {
    return { ...this.obj, code: this.obj.code.map((s, k) => (k === this.secIndex ? sec : s)) };
  }
  /** Records an accepted rewrite (the section's new code). */
  accept(next: CodeSection, kind: RewriteStep['kind'], start: number, end: number, proof: RewriteStep['proof']): void {
    const step: RewriteStep = { kind, start, end, saved: sectionSlots(this.S.sec) - sectionSlots(next), proof, after: next };
    if (this.opts.onStep) this.opts.onStep(step);
    else this.steps.push(step);
    const windowLike = kind === 'window' || kind === 'superblock' || kind === 'copy-run' || kind === 'dead-store' || kind === 'redundant-load' || kind === 'copy-prop';
    this.S.refresh(next, windowLike ? { start, end, newLen: end - start + next.insns.length - this.S.sec.insns.length } : undefined);
    this.stats.rewrites++;
  }

  /** The job for window [start, end) of the current code. */
  job(start: number, end: number, refused: string[] = []): WindowJob {
    const S = this.S;
    return {
      section: this.secName, start, end, insns: S.sec.insns.slice(start, end).map(strip),
      pres: [S.pre(start, this.useSafety)], liveOut: S.liveOut(end, start), stackOut: S.stackOut(end, start), progType: this.progType, refused,
      ...(this.opts.objective && this.opts.objective !== 'size' ? { objective: this.opts.objective } : {}),
    };
  }

  /** Can [start, end) be a window now (straight-line, nothing pinned)? */
  windowOk(start: number, end: number, sideExits = this.opts.superblocks !== false): boolean {
    return windowOk(this.S.sec, start, end, sideExits, this.S.ends);
  }

  /** The passes of one sweep, in order: window size (0: a block's copy run), kind, chain length. */
  passes(): Pass[] {
    const o = this.opts;
    const out: Pass[] = [];
    const memorySizes = o.memoryWindowSizes ?? [8, 7, 6, 5];
    for (const size of [...memorySizes, ...o.windowSizes]) out.push({ size, iterations: 0, kind: 'window', memoryOnly: !o.windowSizes.includes(size) });
    if (o.copyRuns !== false) out.push({ size: 0, iterations: 0, kind: 'copy-run', memoryOnly: true });
    for (const size of o.chainWindowSizes ?? (o.windowSizes.length ? [6, 5, ...o.windowSizes.filter((k) => k >= 2 && k < 5)] : [])) {
      out.push({ size, iterations: o.search.iterations, kind: 'window', memoryOnly: false });
    }
    // then superblocks: windows that leave in the middle (the ones above stop at block ends)
    if (o.superblocks !== false && o.windowSizes.length) {
      for (const size of [8, 6, 5, 4, 3]) out.push({ size, iterations: 0, kind: 'window', memoryOnly: false, sideExits: true });
      for (const size of [6, 5, 4]) out.push({ size, iterations: o.search.iterations, kind: 'window', memoryOnly: false, sideExits: true });
    }
    return out;
  }

  /** The window of pass `p` starting at `start` in the current code, or null. */
  windowAt(p: Pass, start: number): PlannedWindow | null {
    const S = this.S;
    if (p.size === 0) {
      // the longest run of the block from `start` (up to 40) with two stores or more
      for (let end = Math.min(S.ends[start] ?? 0, start + 40); end - start > 8; end--) {
        if (!this.windowOk(start, end, false)) continue;
        if (S.sec.insns.slice(start, end).filter((i) => opClass(i.code) === CLASS.ST || opClass(i.code) === CLASS.STX).length < 2) return null;
        return { start, end, iterations: p.iterations, kind: p.kind };
      }
      return null;
    }
    const end = start + p.size;
    if (!this.windowOk(start, end, p.sideExits === true)) return null;
    if (p.sideExits && !hasSideExit(S.sec.insns.slice(start, end))) return null;
    if (p.memoryOnly && !memoryPattern(S.sec.insns.slice(start, end))) return null;
    return { start, end, iterations: p.iterations, kind: p.kind };
  }

  /** Every window of one sweep over the current code, in the order they are tried. */
  planned(): PlannedWindow[] {
    const out: PlannedWindow[] = [];
    for (const p of this.passes()) {
      for (let start = 0; start < this.S.sec.insns.length; start++) {
        const w = this.windowAt(p, start);
        if (w) out.push(w);
      }
    }
    return out;
  }

  /** Jobs for one sweep of the current code (plain data, for worker threads). */
  plan(): WindowJob[] {
    return this.planned().map((w) => ({ ...this.job(w.start, w.end), iterations: w.iterations, kind: w.kind }));
  }

  solveOptions(iterations: number): SolveOptions {
    const o = this.opts;
    return { tests: o.tests, search: { ...o.search, iterations }, timeoutMs: o.timeoutMs, cegisRounds: o.cegisRounds, ...(o.cache ? { cache: o.cache } : {}), ...(o.rlimit !== undefined ? { rlimit: o.rlimit } : {}), ...(o.deadline !== undefined ? { deadline: o.deadline } : {}) };
  }

  /**
   * Applies a solved job's rewrite to the current code, if its window is still there (same
   * instructions; earlier applied rewrites may have moved it). The proof is reused when the
   * window's precondition and postcondition are unchanged, else the rewrite is proven again here.
   * True when applied (proven and accepted by the gate).
   */
  async apply(job: WindowJob, outcome: WindowOutcome, moved: (start: number) => number | null = (x) => x): Promise<boolean> {
    if (!outcome.rewrite) return false;
    const start = moved(job.start);
    if (start === null) return false;
    const end = start + (job.end - job.start);
    if (!this.windowOk(start, end) || insnKey(this.S.sec.insns.slice(start, end).map(strip)) !== insnKey(job.insns)) return false;
    const now = this.job(start, end);
    const same = JSON.stringify([now.pres, now.liveOut, now.stackOut], big) === JSON.stringify([job.pres, job.liveOut, job.stackOut], big);
    if (!same || !outcome.proven) {
      this.stats.proposals++;
      const r = await checkWindowStates(now.insns, outcome.rewrite, now.pres, { regs: now.liveOut, stack: now.stackOut }, { timeoutMs: this.opts.timeoutMs, object: this.obj, progType: this.progType, ...(this.opts.rlimit !== undefined ? { rlimit: this.opts.rlimit } : {}) });
      this.stats.smtMs.push(r.ms);
      if (r.equivalent !== true) {
        if (process.env.K2_SYNTH_DEBUG2) console.error('[synth] apply: window check', r.equivalent, JSON.stringify(now.pres, big), now.liveOut);
        if (r.equivalent === null) this.stats.unknown++;
        else this.stats.refuted++;
        return false;
      }
    }
    const next = replaceWindow(this.S.sec, start, end, outcome.rewrite);
    if (hasSideExit(now.insns) && !(await this.regionProven(next, true))) return false;
    if (!this.gate(this.withSection(next))) {
      this.stats.gateRejected++;
      return false;
    }
    const kind = (job as WindowJob & { kind?: RewriteStep['kind'] }).kind ?? 'window';
    this.accept(next, kind === 'window' && hasSideExit(now.insns) ? 'superblock' : kind, start, end, 'smt');
    return true;
  }

  /**
   * The whole-program checker's word on `next` against `prev` (default: the current section), for
   * every program running the section: true (all proven), false (one differs), null (it cannot
   * decide: an unmodelled helper or CO-RE relocation elsewhere in a program, a timeout).
   */
  async programProof(next: CodeSection, prev: CodeSection = this.S.sec): Promise<boolean | null> {
    if (!this.users.length) return null;
    return proveOnPrograms(this.withSection(prev), this.withSection(next), this.users, this.opts, this.stats, this.S);
  }


  /**
   * The program-level check of a rewrite with control flow inside, already proven by window
   * proofs (`windowProven`): with regionProof 'program' (default) the whole-program checker must
   * not find a difference, and where it cannot decide the window proofs stand; 'strict': it must
   * prove it; 'window': not asked.
   */
  async regionProven(next: CodeSection, windowProven: boolean, prev?: CodeSection): Promise<boolean> {
    const mode = this.opts.regionProof ?? 'program';
    if (mode === 'window') return windowProven;
    // with CO-RE relocations in a program the program checker can prove only code equal without
    // any facts (or re-laid out), and never refute: its word cannot overturn the window proofs
    if (mode === 'program' && windowProven && this.coreInPrograms) return true;
    const r = await this.programProof(next, prev);
    if (r === false && windowProven) this.stats.disagreements = (this.stats.disagreements ?? 0) + 1;
    return r === true || (r === null && windowProven && mode === 'program');
  }

  /**
   * Applies a region rewrite if it is proven and the gate agrees. A superblock-shaped one is
   * proven as a window (the window checker refutes a wrong one quickly) and then on the programs;
   * one given as window steps (an insertion, deletions) by each step's window proof in turn, and
   * on the programs; removing code no path reaches by the programs' control-flow pairing.
   */
  async tryRegion(c: RegionCandidate): Promise<boolean> {
    if (c.window) {
      if (!this.windowOk(c.start, c.end, true)) return false;
      const job = { ...this.job(c.start, c.end), kind: c.kind };
      return this.apply(job, { rewrite: c.window, proven: false, proposals: 0, checked: 0, refuted: 0, unknown: 0, smtMs: [], converged: true, cacheHit: false, ms: 0 });
    }
    let next = c.next;
    if (c.steps) {
      // each step proven as a window on the code the previous steps left (the first one with the
      // safety model's facts of the current code, the others with k2's own analyses)
      let cur = this.S.sec;
      for (const [n, step] of c.steps.entries()) {
        const st = n === 0 ? this.S : new SectionState(cur, this.S.callee, () => null, this.S.mapOf);
        const before = cur.insns.slice(step.at, step.at + step.remove).map(strip);
        if (before.some((i, k) => k > 0 && cur.insns[step.at + k]!.labels?.length)) return false;
        const post = st.postAt(step.at, step.at + step.remove);
        this.stats.proposals++;
        const r = await checkWindow(before, step.insns.map(strip), st.pre(step.at, n === 0 && this.useSafety), post, { timeoutMs: this.opts.timeoutMs, object: this.obj, progType: this.progType, ...(this.opts.rlimit !== undefined ? { rlimit: this.opts.rlimit } : {}) });
        this.stats.smtMs.push(r.ms);
        if (process.env.K2_SYNTH_DEBUG) console.error(`[synth] region step ${n} ${c.kind}@${step.at}: ${r.equivalent} ${r.via} ${Math.round(r.ms)}ms ${r.reason ?? ''}`);
        if (r.equivalent !== true) {
          if (r.equivalent === null) this.stats.unknown++;
          else this.stats.refuted++;
          return false;
        }
        cur = replaceWindow(cur, step.at, step.at + step.remove, step.insns);
      }
      if (!(await this.regionProven(cur, true))) return false;
      next = cur;
      if (c.cleanup) {
        const clean = withoutUnreachable(cur);
        if (!clean) return false;
        // removing code no path reaches: the control-flow pairing of both versions proves it
        if (clean !== cur && (await this.programProof(clean, cur)) !== true) return false;
        next = clean;
      }
    } else if (!(await this.regionProven(next, false))) return false;
    if (!this.gate(this.withSection(next))) {
      this.stats.gateRejected++;
      return false;
    }
    this.accept(next, c.kind, c.start, c.end, c.steps ? 'smt' : 'program');
    return true;
  }

  /**
   * Solves windows (a batch, each independently: `opts.solveBatch` may spread them over threads)
   * and applies their outcomes in window order; true when any was applied. A window whose search
   * was fruitless before (same content, facts, effort and seed) is not searched again.
   */
  async tryBatch(ws: PlannedWindow[]): Promise<boolean> {
    const jobs: (WindowJob & { kind: RewriteStep['kind'] })[] = [];
    const memos: string[] = [];
    for (const w of ws) {
      const job = { ...this.job(w.start, w.end), kind: w.kind, iterations: w.iterations };
      const memo = `${this.obj.file}|${this.opts.search.seed}|${w.iterations}|${this.opts.objective ?? 'size'}|${insnKey(job.insns)}|${JSON.stringify([job.pres, job.liveOut, job.stackOut], big)}`;
      if (fruitless.has(memo)) continue;
      jobs.push(job);
      memos.push(memo);
    }
    if (!jobs.length) return false;
    const seeds = jobs.map((j) => jobSeed(j, this.opts.search.seed));
    const outs = this.opts.solveBatch
      ? await this.opts.solveBatch(jobs, seeds, (iters) => this.solveOptions(iters))
      : await (async () => {
        const r: WindowOutcome[] = [];
        for (let k = 0; k < jobs.length; k++) r.push(await solveWindow(jobs[k]!, { object: this.obj, maps: this.maps }, this.solveOptions(jobs[k]!.iterations ?? 0), seeds[k]));
        return r;
      })();
    const stats = this.stats;
    outs.forEach((out, k) => {
      stats.windows++;
      stats.proposals += out.checked;
      stats.refuted += out.refuted;
      stats.unknown += out.unknown;
      stats.smtMs.push(...out.smtMs);
      stats.searchProposals = (stats.searchProposals ?? 0) + out.proposals;
      if (out.rewrite) stats.proven++;
      else if (out.unknown === 0 && !out.cut) remember(memos[k]!);
    });
    return (await applyOutcomes(this, jobs, outs)) > 0;
  }

  /** Solves the window [start, end) here and applies its rewrite if the gate agrees; true when applied. */
  async tryWindow(start: number, end: number, iterations: number, kind: RewriteStep['kind'] = 'window'): Promise<boolean> {
    const refused: string[] = [];
    const stats = this.stats;
    for (let attempt = 0; attempt < 2; attempt++) {
      const job = { ...this.job(start, end, refused), kind };
      // the same window under the same facts was searched before without success: skip it
      const memo = `${this.obj.file}|${this.opts.search.seed}|${iterations}|${this.opts.objective ?? 'size'}|${insnKey(job.insns)}|${JSON.stringify([job.pres, job.liveOut, job.stackOut], big)}`;
      if (attempt === 0 && fruitless.has(memo)) return false;
      stats.windows++;
      const out = await solveWindow(job, { object: this.obj, maps: this.maps }, this.solveOptions(iterations), jobSeed(job, this.opts.search.seed));
      stats.proposals += out.checked;
      stats.refuted += out.refuted;
      stats.unknown += out.unknown;
      stats.smtMs.push(...out.smtMs);
      stats.searchProposals = (stats.searchProposals ?? 0) + out.proposals;
      if (!out.rewrite) {
        if (attempt === 0 && out.unknown === 0 && !out.cut) remember(memo);
        return false;
      }
      stats.proven++;
      if (await this.apply(job, out)) return true;
      refused.push(insnKey(out.rewrite));
    }
    return false;
  }
}

/**
 * Applies solved jobs (from `SectionSession.plan`, solved anywhere) in job order; windows moved by
 * earlier rewrites are found at their new place, windows overlapping an applied rewrite are
 * skipped (the next sweep plans them again). Returns how many were applied.
 */
export async function applyOutcomes(session: SectionSession, jobs: WindowJob[], outcomes: WindowOutcome[]): Promise<number> {
  const applied: { start: number; oldEnd: number; delta: number }[] = [];
  const moved = (start: number, len: number): number | null => {
    let s = start;
    for (const a of applied) {
      if (start < a.oldEnd && start + len > a.start) return null; // overlaps an applied rewrite
      if (start >= a.oldEnd) s += a.delta;
    }
    return s;
  };
  let n = 0;
  for (let k = 0; k < jobs.length; k++) {
    const job = jobs[k]!, out = outcomes[k];
    if (!out?.rewrite) continue;
    const len = job.end - job.start;
    const before = session.section.insns.length;
    if (await session.apply(job, out, (s) => moved(s, len))) {
      applied.push({ start: job.start, oldEnd: job.end, delta: session.section.insns.length - before });
      n++;
    }
  }
  return n;
}

export async function optimizeSection(
  obj: BpfObject,
  secIndex: number,
  gate: (candidate: BpfObject) => boolean,
  opts: SynthOptions = DEFAULT_SYNTH,
  stats: SectionStats = emptyStats(),
): Promise<{ obj: BpfObject; stats: SectionStats; steps: RewriteStep[] }> {
  if (opts.timeoutMs > 0) await warmUpSolver(); // once per process: not part of any section's budget
  const clock = opts.budgetClock === 'cpu' ? cpuMs : Date.now;
  const t0 = clock();
  const over = (share = 1): boolean => clock() - t0 > opts.budgetMs * share;
  // Without a resource limit (the build profile) a query may not run past the budget: its timeout
  // is capped by the time left (a timeout is "not proven": the rewrite is simply not made). With
  // rlimit (thorough), Z3's resource count decides, whatever the clock says.
  const budgetMs = opts.budgetMs;
  if (opts.rlimit === undefined) {
    opts = withDeadline(opts, () => budgetMs * 1.1 - (clock() - t0));
    // window searches (here or in worker threads) stop at the same point; only the wall clock crosses threads
    if (clock === Date.now) opts.deadline = t0 + budgetMs * 1.1;
  }
  const session = new SectionSession(obj, secIndex, gate, opts, stats);
  const S = session.state;
  const accept = session.accept.bind(session);

  if (opts.constantStores !== false) {
    const r = await constantStores(obj, secIndex, S.sec, gate, opts, stats, session.progType, over);
    if (r !== S.sec) accept(r, 'store-imm', 0, S.sec.insns.length, 'smt');
  }
  if (opts.tailMerge !== false) await tailMerges(obj, secIndex, S, gate, opts, stats, over, accept);
  if (opts.deadStores !== false) await deadStores(obj, S, (s) => session.withSection(s), gate, opts, stats, session.progType, accept, over);
  if (opts.redundantLoads !== false) await redundantLoadsPass(session, over);
  if (opts.regions !== false) await regionPass(session, over);

  // Passes 4 and 5. Window by window, or (with `batch`) in batches of windows at consecutive
  // starts solved independently — the same batches whatever solves them, so results do not depend
  // on how many threads do. After a rewrite, the windows just before it are tried again.
  const batch = Math.max(1, opts.batch ?? 1);
  for (const p of session.passes()) {
    for (let start = 0; start < S.sec.insns.length && !over(); ) {
      if (batch === 1) {
        const w = session.windowAt(p, start);
        if (w && (await session.tryWindow(w.start, w.end, w.iterations, w.kind))) start = Math.max(0, start - Math.max(p.size, 1));
        else start++;
        continue;
      }
      const ws: PlannedWindow[] = [];
      let s = start;
      for (; s < S.sec.insns.length && ws.length < batch; s++) {
        const w = session.windowAt(p, s);
        if (w) ws.push(w);
      }
      if (ws.length && (await session.tryBatch(ws))) start = Math.max(0, ws[0]!.start - Math.max(p.size, 1));
      else start = s;
    }
  }
  // whole small functions, jumps included (what the windows left)
  if (opts.functions !== false) await functionPass(session, over);
  // copies the windows left (and loads they made redundant), then the regions again
  if (opts.redundantLoads !== false) await redundantLoadsPass(session, () => over(1.1));
  if (opts.regions !== false) await regionPass(session, () => over(1.1));
  // again after the window search, which may have made more tails identical (a little over budget is fine: it is cheap)
  if (opts.tailMerge !== false) await tailMerges(obj, secIndex, S, gate, opts, stats, over, accept, 1.25);
  return { obj: session.withSection(S.sec), stats, steps: session.steps };
}

/** `opts` whose `timeoutMs`, read at each query, is at most the time `left()` (and at least 25 ms; 0 stays 0: no solver). */
function withDeadline(opts: SynthOptions, left: () => number): SynthOptions {
  const cap = opts.timeoutMs;
  const timed = { ...opts };
  Object.defineProperty(timed, 'timeoutMs', { enumerable: true, get: () => (cap <= 0 ? 0 : Math.max(25, Math.min(cap, Math.floor(left())))) });
  return timed;
}

/** A window worth the larger sizes: two loads from one base, a load-op-store, or two stores. */
function memoryPattern(w: readonly IrInsn[]): boolean {
  if ([...loadBases(w).values()].some((offs) => offs.length >= 2)) return true;
  const stores = w.filter((i) => opClass(i.code) === CLASS.ST || opClass(i.code) === CLASS.STX).length;
  const loads = w.filter((i) => opClass(i.code) === CLASS.LDX).length;
  return stores >= 2 || (stores >= 1 && loads >= 1);
}

export const sectionSlots = (sec: CodeSection): number => sec.insns.reduce((n, i) => n + slotsOf(i), 0);
export { perfCost };

