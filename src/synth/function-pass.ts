// The whole-function pass of the synthesizer (pass 7): each small function (functions.ts) searched
// as one window, proven by the window checker, then by the program checker where it can decide,
// gated, and applied through the section session.
import type { IrInsn } from '../ir/index.js';
import { replaceRegion } from '../ir/index.js';
import { checkWindowStates } from '../smt/index.js';
import { makeTest, type Observed } from './cost.js';
import { cloneState } from './eval.js';
import { searchFunction, smallFunctions } from './functions.js';
import { inputFromCex } from './inputs.js';
import { Rng } from './rng.js';
import { coverJumps, insnKey, jobSeed, testsFor, type WindowJob } from './window.js';
import type { SectionSession } from './optimize.js';
/**
 * Whole small functions (functions.ts), each searched as one window with its jumps: tests from the
 * precondition at its entry (every branch direction covered, as for superblocks), the search, the
 * window checker on the whole function (what the caller sees: r0 and memory), counterexamples fed
 * back (CEGIS), then the program checker's word where it can decide, and the gate.
 */
export async function functionPass(session: SectionSession, over: () => boolean): Promise<void> {
  const S = session.state;
  const tried = new Set<string>();
  for (;;) {
    if (over()) return;
    const r = smallFunctions(S.sec).find((f) => !tried.has(`${f.start}|${insnKey(S.sec.insns.slice(f.start, f.end))}`));
    if (!r) return;
    tried.add(`${r.start}|${insnKey(S.sec.insns.slice(r.start, r.end))}`);
    await tryFunction(session, r.start, r.end, over);
  }
}

async function tryFunction(session: SectionSession, start: number, end: number, over: () => boolean): Promise<boolean> {
  const S = session.state, opts = session.opts, stats = session.stats;
  // the body with its inner labels and jump targets (the start's own metadata stays in the section)
  const body: IrInsn[] = S.sec.insns.slice(start, end).map(({ funcInfo: _f, lines: _n, ...rest }, k) => {
    if (k === 0) { const { labels: _l, ...x } = rest; return x; }
    return rest;
  });
  // What the caller observes: r0 and memory. A program's frame is dead when it exits; a callee's
  // frame is too, but a callee may write its caller's stack through a pointer argument, which the
  // window's model does not tell from its own frame — so for a callee every stack byte counts.
  const stackOut: WindowJob['stackOut'] = calledOrShared(session, start) ? 'all' : [];
  const job: WindowJob = { section: session.secName, start, end, insns: body, pres: [S.pre(start, opts.safetyFacts !== false)], liveOut: [0], stackOut, progType: session.progType };
  const wc = { progType: session.progType, maps: session.maps };
  const rng = new Rng(jobSeed(job, opts.search.seed));
  const tests = testsFor(job, wc, rng, opts.tests);
  if (!tests) return false;
  const copts = { timeoutMs: opts.timeoutMs, object: session.obj, progType: session.progType, ...(opts.rlimit !== undefined ? { rlimit: opts.rlimit } : {}) };
  const cover = { checked: 0, smtMs: [] as number[] };
  const covered = await coverJumps(job, tests, wc, rng, copts, cover);
  stats.proposals += cover.checked;
  stats.smtMs.push(...cover.smtMs);
  if (!covered) return false;
  stats.windows++;
  const observed: Observed = { liveOut: [0], stackLive: stackOut === 'all' ? null : new Uint8Array(512) };
  const refused = new Set<string>();
  for (let round = 0; round < Math.max(2, opts.cegisRounds + 1) && !over(); round++) {
    const cand = searchFunction(body, tests, observed, { iterations: opts.search.iterations, seed: opts.search.seed * 31 + round, perf: session.perf }, (c) => refused.has(insnKey(c)));
    if (!cand) return false;
    refused.add(insnKey(cand));
    stats.proposals++;
    const r = await checkWindowStates(body, cand, job.pres, { regs: [0], stack: stackOut }, copts);
    stats.smtMs.push(r.ms);
    if (process.env.K2_SYNTH_DEBUG) console.error(`[synth] function ${session.secName}@${start}-${end}: ${r.equivalent} ${r.via} ${Math.round(r.ms)}ms ${r.reason ?? ''} (${body.length} → ${cand.length})`);
    if (r.equivalent !== true) {
      if (r.equivalent === null) { stats.unknown++; return false; }
      stats.refuted++;
      const input = r.counterexample ? inputFromCex(rng, r.counterexample, job.pres[0]!, wc) : null;
      const t = input ? makeTest(body, cloneState(input)) : null;
      if (t) tests.push(t);
      continue;
    }
    stats.proven++;
    const next = replaceRegion(S.sec, start, end, cand);
    // refused by the program checker or the gate (e.g. a bounds check the verifier needs, though
    // equivalent): the search goes on without it
    if (!(await session.regionProven(next, true))) continue;
    if (!session.gate(session.withSection(next))) {
      stats.gateRejected++;
      continue;
    }
    session.accept(next, 'function', start, end, 'smt');
    return true;
  }
  return false;
}

/** Is the function at `start` anything but a program's entry that nothing calls (a bpf-to-bpf callee, a callback)? */
function calledOrShared(session: SectionSession, start: number): boolean {
  const sec = session.state.sec;
  const labels = new Set(sec.insns[start]!.labels ?? []);
  const entry = session.obj.programs.some((p) => p.section === sec.name && labels.has(p.entry));
  const named = session.obj.code.some((s) => s.insns.some((i) => i.callee?.section === sec.name && labels.has(i.callee.label)));
  return !entry || named;
}
