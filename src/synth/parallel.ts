// Section searches and the worker threads behind them. Jobs are plain data (they cross threads);
// each worker holds one structured clone of the object and its own Z3 instance.
//  - Batched sections (the usual case): the synthesizer's loop runs here and hands its windows out
//    WINDOW_BATCH at a time through `SynthOptions.solveBatch` — to the WindowPool's workers, or in
//    this thread — then applies the outcomes in window order. Each window's seed comes from its
//    content, so the result does not depend on which thread solved what, nor on how many there are.
//  - Huge sections (cilium's 32k insns): the whole sequential search runs in one worker
//    (runSectionJobs) that reports its steps as it goes and is stopped if it overruns the deadline.
//
// The search's gate (run for every proven rewrite before the synthesizer applies it): the safety
// model on every program that runs the section and that the model accepted before, the
// verifier-work rule on the model's processed-instruction count (the in-search proxy of the
// kernel's verified_insns), and the blacklist of rewrites the driver's final gate refused. For
// programs whose model check is expensive the driver defers the model to its final gate
// (`eagerGate: false`), which bisects if needed.
import { Worker } from 'node:worker_threads';
import type { BpfObject, CodeSection, ProgramRef } from '../ir/index.js';
import { checkLinked, linkProgram } from '../safety/index.js';
import { diffInsns, stepKey, type Step } from './parallel-steps.js';
import { optimizeSection, DEFAULT_SYNTH, type SectionStats, type SynthOptions } from './optimize.js';
import { solveWindow, type SolveOptions, type WindowJob, type WindowOutcome } from './window.js';
import { objectMaps } from '../smt/index.js';
import { openRewriteCache } from './cache.js';

export type Objective = 'size' | 'latency' | 'verifier';

export interface SectionJob {
  secIndex: number;
  /** Code to start from (a re-run after the final gate refused a step); null: the object's. */
  start: CodeSection | null;
  /** Absolute time (Date.now()) after which no new work starts. */
  deadline: number;
  synth: Partial<SynthOptions>;
  objective: Objective;
  /** A program's processed-instruction count (model) may grow to at most this factor of its count in the original; null: no limit. */
  verifierGrowth: number | null;
  /** stepKey()s of rewrites the final gate refused. */
  blacklist: string[];
  /** Programs running the section that the safety model accepted in the original, with their processed-instruction counts. */
  gateUsers: { prog: ProgramRef; steps: number }[];
  /** Check the safety model on every rewrite (else only the blacklist; the final gate checks). */
  eagerGate: boolean;
  /** Proven-rewrite cache directory, or null for none. */
  cacheDir: string | null;
  /**
   * A worker still searching this long after the deadline is stopped (the synthesizer checks its
   * budget between windows; one pass over a huge section can overrun it); the steps it reported
   * so far are kept. In-thread searches cannot be stopped.
   */
  graceMs: number;
  /**
   * How windows are searched: 'sequential' (one at a time) or 'batched' (WINDOW_BATCH windows at
   * consecutive starts solved independently — in this thread or on the window pool — and applied
   * in window order by the synthesizer; the result does not depend on where they were solved).
   */
  windows: 'sequential' | 'batched';
}

export interface SectionResult {
  secIndex: number;
  steps: Step[]; // accepted rewrites in order, from the job's starting code
  stats: SectionStats | null;
  /** The search finished before its deadline (every chain converged). */
  converged: boolean;
  /** Why the search stopped early, when it did (stopped at the deadline, no time left). */
  note?: string;
  ms: number;
  error: string | null;
}

const newStats = (): SectionStats => ({ windows: 0, proposals: 0, proven: 0, refuted: 0, unknown: 0, gateRejected: 0, rewrites: 0, smtMs: [] });

/** Runs one section search in this thread. Never throws: a failure is reported in `error`. */
export async function searchSection(obj: BpfObject, job: SectionJob, onStep?: (s: Step) => void, solver: WindowSolver = inThreadSolver(obj)): Promise<SectionResult> {
  const t0 = Date.now();
  const i = job.secIndex;
  const base = job.start ?? obj.code[i]!;
  const startObj: BpfObject = { ...obj, code: obj.code.map((s, k) => (k === i ? base : s)) };
  const blacklist = new Set(job.blacklist);
  const steps: Step[] = [];
  let cur = base.insns;
  const curSteps = new Map(job.gateUsers.map((u) => [u.prog, u.steps]));
  const gate = (cand: BpfObject): boolean => {
    const next = cand.code[i]!.insns;
    const step = diffInsns(cur, next);
    if (!step || blacklist.has(stepKey(cur, step))) return false;
    if (job.eagerGate) {
      const counts: [ProgramRef, number][] = [];
      for (const u of job.gateUsers) {
        let v;
        try {
          v = checkLinked(linkProgram(cand, u.prog));
        } catch {
          return false;
        }
        if (!v.safe) return false;
        const n = v.stats.steps;
        if (job.verifierGrowth !== null && n > u.steps * job.verifierGrowth) return false;
        if (job.objective === 'verifier' && n > curSteps.get(u.prog)!) return false;
        counts.push([u.prog, n]);
      }
      for (const [p, n] of counts) curSteps.set(p, n);
    }
    // The synthesizer applies every candidate the gate accepts, at once (the contract in
    // notes/progress-driver.md): this is the next version of the section.
    steps.push(step);
    onStep?.(step);
    cur = next;
    return true;
  };
  const budgetMs = Math.max(0, job.deadline - Date.now());
  const opts: SynthOptions = { ...DEFAULT_SYNTH, ...job.synth, budgetMs };
  if (job.cacheDir !== null) opts.cache = openRewriteCache(job.cacheDir);
  if (job.objective !== 'size') opts.objective = job.objective;
  // the synthesizer's own steps, as diffs as they come (its snapshots are not kept)
  const theirs: Step[] = [];
  let prev = base.insns;
  opts.onStep = (st) => {
    const d = diffInsns(prev, st.after.insns);
    if (d) theirs.push(d);
    prev = st.after.insns;
  };
  try {
    const stats = newStats();
    if (job.windows === 'batched') {
      // windows in fixed-size batches, solved by `solver` (this thread or the pool), applied in
      // window order by the synthesizer: the same batches and results whoever solves them
      opts.batch = WINDOW_BATCH;
      opts.solveBatch = (jobs, seeds, optsFor) => solver.solve(jobs, seeds, (iters) => { const o = optsFor(iters); delete o.cache; return o; }, job.cacheDir);
    }
    const r = await optimizeSection(startObj, i, gate, opts, stats);
    const out = r.obj.code[i]!.insns;
    const ms = Date.now() - t0;
    const done = (st: Step[]): SectionResult => ({ secIndex: i, steps: st, stats: r.stats, converged: ms < budgetMs, ms, error: null });
    // Contract check: the last candidate the gate accepted is what came back ...
    if (!diffInsns(cur, out)) return done(steps);
    // ... else the synthesizer's own list of steps, when it ends where the section ends ...
    if (!diffInsns(prev, out)) return done(theirs);
    // ... else one step from the start to the end (still proven: a composition of proven rewrites).
    const whole = diffInsns(base.insns, out);
    return done(whole ? [whole] : []);
  } catch (e) {
    return { secIndex: i, steps: [], stats: null, converged: true, ms: Date.now() - t0, error: (e as Error).message ?? String(e) };
  }
}

// ---- batched window search ---------------------------------------------------------------------

/** Solves window jobs: here, or spread over worker threads. Outcomes in job order. */
export interface WindowSolver {
  solve(jobs: WindowJob[], seeds: number[], optsFor: (iterations: number) => SolveOptions, cacheDir: string | null): Promise<WindowOutcome[]>;
}

/** Windows per batch: fixed, whatever the number of workers, so that results do not depend on it. */
export const WINDOW_BATCH = 8;

export function inThreadSolver(obj: BpfObject): WindowSolver {
  let maps: ReturnType<typeof objectMaps> | null = null;
  return {
    async solve(jobs, seeds, optsFor, cacheDir) {
      maps ??= objectMaps(obj);
      const out: WindowOutcome[] = [];
      for (let k = 0; k < jobs.length; k++) {
        const o = optsFor(jobs[k]!.iterations ?? 0);
        out.push(await solveWindow(jobs[k]!, { object: obj, maps }, cacheDir !== null ? { ...o, cache: openRewriteCache(cacheDir) } : o, seeds[k]!));
      }
      return out;
    },
  };
}

// ---- the pool ---------------------------------------------------------------------------------

type ToWorker =
  | { type: 'job'; id: number; job: SectionJob }
  | { type: 'window'; id: number; job: WindowJob; seed: number; opts: SolveOptions; cacheDir: string | null }
  | { type: 'stop' };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'step'; id: number; step: Step }
  | { type: 'result'; id: number; result: SectionResult }
  | { type: 'window-result'; id: number; outcome: WindowOutcome }
  | { type: 'stopped' };

/**
 * A worker running ./worker (.js once compiled). Under tsx (tests, scripts) a worker does not
 * inherit tsx's loader, so a small bootstrap registers it first, then imports worker.ts.
 */
function startWorker(workerData: unknown): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./worker.js', import.meta.url), { workerData });
  const api = import.meta.resolve('tsx/esm/api');
  const target = new URL('./worker.ts', import.meta.url).href;
  return new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(target)}); })`, { eval: true, workerData });
}

/**
 * Runs `jobs` on up to `workers` worker threads (in this thread when `inThread`, by default when
 * `workers` ≤ 1). Results are in job order. A worker that dies fails its job (error set), not the
 * run; one still busy `graceMs` after the deadline is stopped and its job keeps the steps it
 * reported. Jobs not started by their deadline are skipped.
 */
export async function runSectionJobs(obj: BpfObject, jobs: SectionJob[], workers: number, onDone?: (r: SectionResult) => void, inThread = workers <= 1): Promise<SectionResult[]> {
  const results: SectionResult[] = new Array(jobs.length);
  const skipped = (job: SectionJob): SectionResult => ({ secIndex: job.secIndex, steps: [], stats: null, converged: false, ms: 0, error: null, note: 'no time left' });
  if (inThread || jobs.length === 0) {
    for (let k = 0; k < jobs.length; k++) {
      results[k] = Date.now() >= jobs[k]!.deadline ? skipped(jobs[k]!) : await searchSection(obj, jobs[k]!);
      onDone?.(results[k]!);
    }
    return results;
  }
  let next = 0;
  const n = Math.max(1, Math.min(workers, jobs.length));
  const runWorker = async (): Promise<void> => {
    const w = startWorker({ obj });
    let pending: { id: number; steps: Step[]; t0: number; resolve: (r: SectionResult | null) => void } | null = null;
    let dead: string | null = null;
    let ready = false;
    const settle = (r: SectionResult | null): void => {
      const p = pending;
      pending = null;
      p?.resolve(r);
    };
    const fail = (why: string): void => {
      dead ??= why;
      if (!pending) return;
      // a worker that never started gives its job back (it runs in this thread below);
      // one that died on a job (out of memory...) fails that job, keeping the steps it reported
      const p = pending;
      settle(ready ? { secIndex: jobs[p.id]!.secIndex, steps: p.steps, stats: null, converged: false, ms: Date.now() - p.t0, error: p.steps.length ? null : `worker failed: ${why}`, note: `worker failed: ${why}` } : null);
    };
    w.on('message', (m: FromWorker) => {
      if (m.type === 'ready') ready = true;
      else if (m.type === 'step' && pending?.id === m.id) pending.steps.push(m.step);
      else if (m.type === 'result' && pending?.id === m.id) settle(m.result);
    });
    w.on('error', (e) => fail(e.message));
    w.on('exit', (code) => fail(`exited with code ${code}`));
    let stopped = false;
    try {
      while (next < jobs.length && !dead) {
        const id = next++;
        const job = jobs[id]!;
        if (Date.now() >= job.deadline) {
          results[id] = skipped(job);
          onDone?.(results[id]!);
          continue;
        }
        const r = await new Promise<SectionResult | null>((resolve) => {
          pending = { id, steps: [], t0: Date.now(), resolve };
          // past the deadline and its grace: stop the worker, keep the steps it reported
          const timer = setTimeout(() => {
            if (pending?.id !== id) return;
            const p = pending;
            stopped = true;
            dead = 'stopped at the deadline';
            settle({ secIndex: job.secIndex, steps: p.steps, stats: null, converged: false, ms: Date.now() - p.t0, error: null, note: `stopped ${Math.round(job.graceMs / 1000)} s after the deadline` });
            void w.terminate();
          }, Math.max(0, job.deadline + job.graceMs - Date.now()));
          pending.resolve = (x) => {
            clearTimeout(timer);
            resolve(x);
          };
          w.postMessage({ type: 'job', id, job } satisfies ToWorker);
        });
        if (!r) break;
        results[id] = r;
        onDone?.(r);
      }
    } finally {
      if (!dead && !stopped) {
        // let the worker release Z3 before it goes
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5000);
          w.once('exit', () => { clearTimeout(timer); resolve(); });
          w.postMessage({ type: 'stop' } satisfies ToWorker);
        });
      }
      await w.terminate();
    }
  };
  await Promise.all(Array.from({ length: n }, runWorker));
  // jobs left by workers that could not start or were stopped
  for (let k = 0; k < jobs.length; k++) {
    if (results[k]) continue;
    results[k] = Date.now() >= jobs[k]!.deadline ? skipped(jobs[k]!) : await searchSection(obj, jobs[k]!);
    onDone?.(results[k]!);
  }
  return results;
}

/**
 * Window jobs over worker threads (each holds a clone of the object and its own Z3). Jobs go to
 * idle workers in order; outcomes come back by job position. A job whose worker dies is solved in
 * this thread. `close()` releases every worker.
 */
export class WindowPool implements WindowSolver {
  private workers: { w: Worker; busy: boolean; dead: boolean; task: { id: number; resolve: (o: WindowOutcome | null) => void } | null }[] = [];
  private waiting: (() => void)[] = [];
  private nextId = 0;
  private readonly local: WindowSolver;

  constructor(private readonly obj: BpfObject, private readonly size: number) {
    this.local = inThreadSolver(obj);
  }

  private start(): void {
    if (this.workers.length) return;
    for (let k = 0; k < this.size; k++) {
      const slot = { w: startWorker({ obj: this.obj }), busy: false, dead: false, task: null as { id: number; resolve: (o: WindowOutcome | null) => void } | null };
      const fail = (): void => {
        slot.dead = true;
        slot.busy = false;
        const t = slot.task;
        slot.task = null;
        t?.resolve(null);
        for (const w of this.waiting.splice(0)) w(); // every waiter looks again (maybe no worker is left)
      };
      slot.w.on('message', (m: FromWorker) => {
        if (m.type === 'window-result' && slot.task?.id === m.id) {
          const t = slot.task;
          slot.task = null;
          slot.busy = false;
          t.resolve(m.outcome);
          this.wake();
        }
      });
      slot.w.on('error', fail);
      slot.w.on('exit', fail);
      this.workers.push(slot);
    }
  }

  private wake(): void {
    const w = this.waiting.shift();
    w?.();
  }

  /** Claims an idle live worker (marked busy before anyone else can look), waiting for one; null when every worker is dead. */
  private async claim(): Promise<(typeof this.workers)[number] | null> {
    for (;;) {
      const live = this.workers.filter((x) => !x.dead);
      if (!live.length) return null;
      const free = live.find((x) => !x.busy);
      if (free) {
        free.busy = true;
        return free;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  async solve(jobs: WindowJob[], seeds: number[], optsFor: (iterations: number) => SolveOptions, cacheDir: string | null): Promise<WindowOutcome[]> {
    this.start();
    const runs = jobs.map(async (job, k): Promise<WindowOutcome> => {
      const { cache: _c, ...plain } = optsFor(job.iterations ?? 0);
      const slot = await this.claim();
      let out: WindowOutcome | null = null;
      if (slot) {
        const id = this.nextId++;
        out = await new Promise<WindowOutcome | null>((resolve) => {
          slot.task = { id, resolve };
          slot.w.postMessage({ type: 'window', id, job, seed: seeds[k]!, opts: plain, cacheDir } satisfies ToWorker);
        });
      }
      return out ?? (await this.local.solve([job], [seeds[k]!], optsFor, cacheDir))[0]!;
    });
    return Promise.all(runs);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.filter((x) => !x.dead).map(async (x) => {
      x.dead = true;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        x.w.once('exit', () => { clearTimeout(timer); resolve(); });
        x.w.postMessage({ type: 'stop' } satisfies ToWorker);
      });
      await x.w.terminate();
    }));
    this.workers = [];
  }
}
