// One window of a section as a self-contained job (plain data: it can cross worker_threads), and
// its solution: test cases from the precondition, the search, the SMT proof, counterexamples fed
// back as tests (CEGIS). A proven rewrite is returned; the safety gate and applying it are the
// caller's. A rewrite cache (canonical window + precondition → proven rewrite) is consulted
// first; a hit is re-proven on the concrete window before it is returned.
import type { Insn } from '../isa/index.js';
import { CLASS, JMP, REG_FP, formatInsn, jmpOp, opClass } from '../isa/index.js';
import type { BpfObject, IrInsn } from '../ir/types.js';
import { checkWindowStates, objectMaps, type Counterexample, type WindowPost, type WindowPre } from '../smt/index.js';
import { makeTest, objectiveCost, passesAll, type Objective, type Observed, type TestCase } from './cost.js';
import { cloneState } from './eval.js';
import { inputFromCex, randomInputFor, type WindowContext } from './inputs.js';
import { Rng } from './rng.js';
import { searchWindow, DEFAULT_SEARCH, type SearchOptions, type SearchStats } from './search.js';

export interface WindowJob {
  section: string;
  start: number;
  end: number;
  insns: IrInsn[];
  /** Preconditions at the window's entry (one per distinct entry state; usually one, joined). */
  pres: WindowPre[];
  liveOut: number[];
  /** Stack bytes read after the window ('all': every byte). */
  stackOut: 'all' | { off: number; size: number }[];
  progType: string;
  /** Candidates to skip (keys of rewrites refused before, e.g. by the safety gate). */
  refused?: string[];
  /** The performance term (default size: slots). */
  objective?: Objective;
  /** Markov-chain proposals per chain (default: the solve options'); 0 = fast paths only. */
  iterations?: number;
}

export interface WindowOutcome {
  rewrite: IrInsn[] | null;
  proven: boolean;
  proposals: number;
  /** Candidates sent to the checker, and its answers. */
  checked: number;
  refuted: number;
  unknown: number;
  smtMs: number[];
  converged: boolean;
  cacheHit: boolean;
  ms: number;
  /** The deadline stopped it before its search was done (so it is not known to be fruitless). */
  cut?: boolean;
}

/** A store of proven rewrites by canonical key (the driver's on-disk cache implements it). */
export interface RewriteCache {
  get(key: string): Insn[] | undefined;
  put(key: string, rewrite: Insn[]): void;
}

export interface SolveOptions {
  tests: number;
  search: SearchOptions;
  timeoutMs: number;
  /** Z3 resource limit per query (deterministic under load); default none. */
  rlimit?: number;
  cegisRounds: number;
  cache?: RewriteCache;
  /**
   * Wall-clock time (Date.now()) after which the window stops: no new search or query is started,
   * and a query's timeout is cut to the time left. Only without rlimit (a time-bound profile).
   */
  deadline?: number;
}

export const DEFAULT_SOLVE: SolveOptions = { tests: 16, search: DEFAULT_SEARCH, timeoutMs: 2000, cegisRounds: 3 };

export const insnKey = (insns: readonly Insn[]): string =>
  insns.map((i) => `${i.code},${i.dst},${i.src},${i.off},${i.imm},${i.imm2 ?? ''},${(i as IrInsn).target ?? ''}`).join(';');

const show = (i: Insn): string => formatInsn(i, 0);

const isControl = (i: Insn): boolean => opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32;

/** Stack bytes read after the window as the search's byte mask (null: all). */
function stackMask(out: WindowJob['stackOut']): Uint8Array | null {
  if (out === 'all') return null;
  const m = new Uint8Array(512);
  for (const r of out) for (let b = r.off; b < r.off + r.size; b++) if (b >= -512 && b < 0) m[b + 512] = 1;
  return m;
}

/** Entry constants a precondition fixes (for the fast paths that reuse a register's value). */
function constsOf(pre: WindowPre): Map<number, bigint> {
  const m = new Map<number, bigint>();
  for (const [r, f] of Object.entries(pre.regs ?? {})) if (f?.kind === 'scalar' && f.value !== undefined) m.set(Number(r), f.value);
  return m;
}

/** Registers a precondition says hold a stack address (register → offset from r10). */
function stackRegsOf(pre: WindowPre): Map<number, number> {
  const m = new Map<number, number>();
  for (const [r, f] of Object.entries(pre.regs ?? {})) if (f?.kind === 'stack') m.set(Number(r), f.off);
  return m;
}

const REGION: Record<string, string> = { stack: 'stack', ctx: 'ctx', packet: 'pkt', packet_end: 'pkt', map_value: 'map', mem: 'mem' };

/** Which entry registers point into different memory regions (so accesses through them cannot alias). */
function disjointOf(pres: WindowPre[]): (a: number, b: number) => boolean {
  const kind = (pre: WindowPre, r: number): string | undefined => {
    if (r === REG_FP) return 'stack';
    const f = pre.regs?.[r];
    if (!f) return undefined;
    if (f.kind === 'map_value') return `map:${f.map}`;
    return REGION[f.kind];
  };
  return (a, b) => pres.every((p) => {
    const ka = kind(p, a), kb = kind(p, b);
    return ka !== undefined && kb !== undefined && ka !== kb && !(ka === 'mem' || kb === 'mem');
  });
}

/** Test cases drawn from each precondition in turn; null when the window leaves the evaluator's model. */
export function testsFor(job: WindowJob, wc: WindowContext, rng: Rng, n: number): TestCase[] | null {
  const tests: TestCase[] = [];
  let misses = 0;
  const pres = job.pres.length ? job.pres : [{}];
  for (let k = 0; tests.length < n; k++) {
    const input = randomInputFor(rng, pres[k % pres.length]!, wc);
    const t = input ? makeTest(job.insns, input) : null;
    if (t) tests.push(t);
    else if (++misses > n) return null;
  }
  return tests;
}

/**
 * A job's search seed: from the run's seed and the job's content (window, facts), never from its
 * place or from scheduling — so equal windows search alike wherever and whenever they come up.
 */
export function jobSeed(job: WindowJob, base: number): number {
  let h = (base ^ 0x9e3779b9) >>> 0;
  const s = `${insnKey(job.insns)}|${JSON.stringify([job.pres, job.liveOut, job.stackOut], (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`;
  for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193) >>> 0;
  return h;
}

export async function solveWindow(job: WindowJob, env: { object: BpfObject; maps?: WindowContext['maps'] }, opts: SolveOptions = DEFAULT_SOLVE, seed = opts.search.seed): Promise<WindowOutcome> {
  const t0 = performance.now();
  const out: WindowOutcome = { rewrite: null, proven: false, proposals: 0, checked: 0, refuted: 0, unknown: 0, smtMs: [], converged: true, cacheHit: false, ms: 0 };
  const done = (): WindowOutcome => ({ ...out, ms: Math.round(performance.now() - t0) });
  const wc: WindowContext = { progType: job.progType, maps: env.maps ?? objectMaps(env.object) };
  const perf = objectiveCost(job.objective);
  const rng = new Rng(seed);
  if (opts.deadline !== undefined && Date.now() >= opts.deadline) return { ...done(), cut: true, converged: false };
  const tests = testsFor(job, wc, rng, opts.tests);
  if (!tests) return done();
  const window = job.insns;
  // Every conditional jump must be tested both ways, or what decides a jump random inputs always
  // take (`if r5 != 8`), and whatever follows it, goes untested: inputs for the missing directions
  // come from the checker, once, when a first candidate passes the random tests (most windows
  // never get one).
  let covered: boolean | null = window.some((i) => isControl(i) && i.target !== undefined) ? null : true;
  const observed: Observed = { liveOut: job.liveOut, stackLive: stackMask(job.stackOut) };
  const post: WindowPost = { regs: job.liveOut, stack: job.stackOut };
  const refused = new Set(job.refused ?? []);
  // past the deadline nothing new starts; a query gets at most the time left (at least 10 ms)
  const late = (): boolean => opts.deadline !== undefined && Date.now() >= opts.deadline;
  const timeoutMs = (): number => (opts.deadline === undefined || opts.timeoutMs <= 0 ? opts.timeoutMs : Math.max(10, Math.min(opts.timeoutMs, opts.deadline - Date.now())));
  const check = async (cand: IrInsn[]): Promise<boolean | null> => {
    if (late()) { out.cut = true; return null; }
    if (covered === null) {
      covered = await coverJumps(job, tests, wc, rng, { timeoutMs: timeoutMs(), object: env.object, progType: job.progType, ...(opts.rlimit !== undefined ? { rlimit: opts.rlimit } : {}) }, out);
      if (!covered) { out.unknown++; return null; }
      if (!passesAll(cand, tests, observed)) { refused.add(insnKey(cand)); return false; }
    } else if (!covered) return null;
    out.checked++;
    const res = await checkWindowStates(window, cand, job.pres.length ? job.pres : [{}], post, { timeoutMs: timeoutMs(), object: env.object, progType: job.progType, ...(opts.rlimit !== undefined ? { rlimit: opts.rlimit } : {}) });
    out.smtMs.push(res.ms);
    if (process.env.K2_SYNTH_DEBUG) console.error(`[synth] ${job.section}@${job.start}: ${res.equivalent} ${res.via} ${res.ms}ms ${res.reason ?? ''}\n  ${window.map(show).join('; ')}\n  => ${cand.map(show).join('; ')}\n  pre=${JSON.stringify(job.pres, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))} live=${job.liveOut} stack=${JSON.stringify(job.stackOut)}`);
    if (res.equivalent === true) return true;
    refused.add(insnKey(cand));
    if (res.equivalent === null) { out.unknown++; return null; }
    out.refuted++;
    const t = res.counterexample ? testFromCex(job, wc, res.counterexample, rng) : null;
    if (t) tests.push(t);
    return false;
  };
  // A cached rewrite for this window shape: re-proven here before it is used.
  const canon = opts.cache ? canonicalJob(job) : null;
  if (canon) {
    const hit = opts.cache!.get(canon.key);
    const cand = hit ? canon.toConcrete(hit) : null;
    if (cand && perf(cand) < perf(window) && !refused.has(insnKey(cand)) && (await check(cand)) === true) {
      out.rewrite = cand;
      out.proven = true;
      out.cacheHit = true;
      return done();
    }
  }
  const ctx = { consts: constsOf(job.pres.length === 1 ? job.pres[0]! : {}), disjoint: disjointOf(job.pres.length ? job.pres : [{}]), stack: stackRegsOf(job.pres.length === 1 ? job.pres[0]! : {}) };
  const stats: SearchStats = { proposals: 0, chains: 0, converged: true };
  // Candidates keep the window's control flow: its side exits as they are and in their order (one
  // may go), and a jump ending the window last, to the same place (its form may change).
  const last = window[window.length - 1]!;
  const endsInJump = isControl(last);
  const sides = window.slice(0, endsInJump ? -1 : undefined).filter(isControl).map((i) => insnKey([i]));
  const shapeOk = (c: Insn[]): boolean => {
    const n = endsInJump ? c.length - 1 : c.length;
    if (endsInJump && (n < 0 || !isControl(c[n]!) || (c[n] as IrInsn).target !== last.target)) return false;
    let j = 0;
    for (let k = 0; k < n; k++) {
      if (!isControl(c[k]!)) continue;
      const key = insnKey([c[k]!]);
      while (j < sides.length && sides[j] !== key) j++;
      if (j === sides.length) return false;
      j++;
    }
    return true;
  };
  for (let round = 0; round < opts.cegisRounds; round++) {
    const search = { ...opts.search, seed: seed * 31 + round, perf, ...(job.iterations !== undefined ? { iterations: job.iterations } : {}) };
    const cand = searchWindow(window, tests, observed, search, (c) => refused.has(insnKey(c)) || !shapeOk(c), ctx, stats);
    if (!cand || perf(cand) >= perf(window)) break;
    const r = await check(cand as IrInsn[]);
    if (r === true) {
      out.rewrite = cand as IrInsn[];
      out.proven = true;
      if (canon) {
        const c = canon.toCanonical(cand);
        if (c) opts.cache!.put(canon.key, c);
      }
      break;
    }
    if (r === null || late()) break;
  }
  if (late() && !out.rewrite) out.cut = true;
  out.proposals = stats.proposals;
  out.converged = stats.converged;
  return done();
}

/** Positions of the conditional jumps before a window's last instruction (a superblock's side exits). */
export const sideExitsOf = (w: readonly Insn[]): number[] => w.flatMap((i, k) => (k < w.length - 1 && isControl(i) && (i as IrInsn).target !== undefined ? [k] : []));

const COVER = '$cover', PASS = '$pass';

/** Does the window, run on `input`, take its jump at `p` (true), pass it (false), or not get there (null)? */
function takesExit(window: readonly IrInsn[], p: number, input: TestCase['input']): boolean | null {
  const w = [...window.slice(0, p), { ...window[p]!, target: COVER }, { code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0, target: PASS }];
  const t = makeTest(w, cloneState(input));
  return t?.expected.left === COVER ? true : t?.expected.left === PASS ? false : null;
}

/**
 * Makes sure every conditional jump of the window is taken by some test and passed by another: for a
 * direction no test covers, the checker is asked for an input (the window against itself with
 * that exit removed, or made unconditional: any difference is an input taking, or passing, it).
 * A direction the checker proves impossible needs no test. False when some direction can be
 * neither covered nor ruled out (then the window is not searched).
 */
export async function coverJumps(job: WindowJob, tests: TestCase[], wc: WindowContext, rng: Rng, copts: Parameters<typeof checkWindowStates>[4], out: Pick<WindowOutcome, 'checked' | 'smtMs'> = { checked: 0, smtMs: [] }): Promise<boolean> {
  const window = job.insns;
  for (const p of window.flatMap((i, k) => (isControl(i) && i.target !== undefined ? [k] : []))) {
    for (const want of [true, false]) {
      if (tests.some((t) => takesExit(window, p, t.input) === want)) continue;
      const a = window.map((i, k) => (k === p ? { ...i, target: COVER } : i));
      const b = want ? a.filter((_, k) => k !== p) : a.map((i, k) => (k === p ? { code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0, target: COVER } : i));
      out.checked++;
      const r = await checkWindowStates(a, b, job.pres.length ? job.pres : [{}], { regs: [], stack: [] }, copts);
      out.smtMs.push(r.ms);
      if (process.env.K2_SYNTH_DEBUG) console.error(`[synth] cover ${job.section}@${job.start} jump ${p} ${want ? 'taken' : 'passed'}: ${r.equivalent} ${r.ms}ms ${r.reason ?? ''}`);
      if (r.equivalent === true) continue; // that direction never happens
      if (r.equivalent === null || !r.counterexample) return false;
      const input = inputFromCex(rng, r.counterexample, job.pres[0] ?? {}, wc);
      const t = input ? makeTest(window, cloneState(input)) : null;
      if (!t || takesExit(window, p, t.input) !== want) return false;
      tests.push(t);
    }
  }
  return true;
}

/** A checker counterexample as a window test case (null when the evaluator cannot reproduce it). */
function testFromCex(job: WindowJob, wc: WindowContext, cex: Counterexample, rng: Rng): TestCase | null {
  const pre = job.pres[0] ?? {};
  const input = inputFromCex(rng, cex, pre, wc);
  return input ? makeTest(job.insns, cloneState(input)) : null;
}

// ---- canonical form for the rewrite cache ----

/** Registers an instruction names (dst, and src where it is a register). */
function regsOf(i: Insn): number[] {
  const c = opClass(i.code);
  const usesSrc = (i.code & 0x08) !== 0 && (c === CLASS.ALU || c === CLASS.ALU64 || c === CLASS.JMP || c === CLASS.JMP32) || c === CLASS.LDX || c === CLASS.STX;
  return usesSrc ? [i.dst, i.src] : [i.dst];
}

/**
 * The job with registers renamed in order of first use (r10 and call/exit windows keep theirs):
 * the cache key, and the renaming both ways for rewrites.
 */
export function canonicalJob(job: WindowJob): { key: string; toConcrete(c: readonly Insn[]): IrInsn[] | null; toCanonical(c: readonly Insn[]): Insn[] | null } {
  const ren = new Map<number, number>([[REG_FP, REG_FP]]);
  // calls, exits and ld_abs/ld_ind use registers the ABI fixes: no renaming then
  const fixed = job.insns.some((i) => (isControl(i) && (jmpOp(i.code) === JMP.CALL || jmpOp(i.code) === JMP.EXIT)) || (opClass(i.code) === CLASS.LD && i.code !== 0x18));
  if (fixed) for (let r = 0; r <= 9; r++) ren.set(r, r);
  let next = 0;
  for (const i of job.insns) for (const r of regsOf(i)) if (!ren.has(r)) ren.set(r, next++);
  for (const r of job.liveOut) if (!ren.has(r)) ren.set(r, next++);
  for (const p of job.pres) for (const r of Object.keys(p.regs ?? {}).map(Number)) if (!ren.has(r)) ren.set(r, next++);
  for (let r = 0; r <= 9; r++) if (!ren.has(r)) ren.set(r, next++);
  const back = new Map([...ren].map(([a, b]) => [b, a]));
  // jump targets: the window's exits by order of first use (their names are the section's)
  const exits = new Map<string, string>();
  for (const i of job.insns) if (i.target !== undefined && !exits.has(i.target)) exits.set(i.target, `$exit${exits.size}`);
  const exitBack = new Map([...exits].map(([a, b]) => [b, a]));
  const rename = (m: Map<number, number>, t: Map<string, string>) => (c: readonly Insn[]): IrInsn[] | null => {
    const out: IrInsn[] = [];
    for (const i of c) {
      const d = m.get(i.dst), s = regsOf(i).length > 1 ? m.get(i.src) : i.src;
      if (d === undefined || s === undefined) return null;
      const o: IrInsn = { ...i, dst: d, src: s };
      const cls = opClass(i.code);
      if ((cls === CLASS.JMP || cls === CLASS.JMP32) && jmpOp(i.code) !== JMP.CALL && jmpOp(i.code) !== JMP.EXIT) {
        // a stored rewrite has lost its labels: its jump is the window's last exit
        const name = (i as IrInsn).target ?? [...t.keys()].pop();
        const to = name === undefined ? undefined : t.get(name);
        if (to === undefined) return null;
        o.target = to;
      }
      out.push(o);
    }
    return out;
  };
  const toCanon = rename(ren, exits);
  const w = toCanon(job.insns)!.map((i) => ({ code: i.code, dst: i.dst, src: i.src, off: i.off, imm: i.imm, imm2: i.imm2, target: i.target }));
  const pres = job.pres.map((p) => {
    const regs: Record<number, unknown> = {};
    for (const [r, f] of Object.entries(p.regs ?? {})) regs[ren.get(Number(r))!] = f;
    return { ...p, regs };
  });
  const key = JSON.stringify({ w, pres, live: job.liveOut.map((r) => ren.get(r)).sort(), stack: job.stackOut, t: job.progType, o: job.objective ?? 'size' }, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
  return { key, toConcrete: rename(back, exitBack), toCanonical: toCanon };
}
