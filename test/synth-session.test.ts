// The per-window API the driver can spread over worker threads: plan one sweep of jobs (plain
// data), solve them anywhere, apply the outcomes in job order here (re-proven where the window's
// facts changed, gated, recorded as steps); and the sequential optimizeSection on K2's benchmark.
import test from 'ava';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { corpusDir } from './helpers/paths.js';
import { readObject, programCode, type BpfObject } from '../src/ir/index.js';
import { checkLinked, linkProgram } from '../src/safety/index.js';
import { shutdownZ3 } from '../src/smt/index.js';
import {
  SectionSession, applyOutcomes, jobSeed, solveWindow, optimizeSection, sectionSlots, DEFAULT_SYNTH, type SectionStats, type WindowOutcome,
} from '../src/synth/index.js';

test.after.always(async () => {
  await shutdownZ3();
});

const monitor = join(corpusDir, 'linux/xdp_monitor_kern.o');
const stats = (): SectionStats => ({ windows: 0, proposals: 0, proven: 0, refuted: 0, unknown: 0, gateRejected: 0, rewrites: 0, smtMs: [] });
const gateFor = (obj: BpfObject, secIndex: number) => {
  const users = obj.programs.filter((p) => programCode(obj, p).some((s) => s.name === obj.code[secIndex]!.name));
  return (c: BpfObject): boolean => users.every((p) => checkLinked(linkProgram(c, p)).safe);
};

test.serial('plan → solve each job → apply in job order: the section shrinks, every step gated and recorded', async (t) => {
  if (!existsSync(monitor)) return t.fail(`corpus missing: ${monitor}`);
  const obj = readObject(monitor);
  const k = obj.code.findIndex((s) => s.name === 'tracepoint/xdp/xdp_cpumap_enqueue');
  const opts = { ...DEFAULT_SYNTH, timeoutMs: 20000 };
  const session = new SectionSession(obj, k, gateFor(obj, k), opts, stats());
  const before = sectionSlots(session.section);
  for (let sweep = 0; sweep < 4; sweep++) {
    const jobs = session.plan();
    t.true(jobs.length > 0);
    // plain data: a structured clone is the same job
    t.deepEqual(structuredClone(jobs[0]), jobs[0]);
    const outcomes: WindowOutcome[] = [];
    for (const j of jobs) outcomes.push(await solveWindow(j, { object: obj }, session.solveOptions(Math.min(j.iterations ?? 0, 200)), jobSeed(j, 1)));
    if ((await applyOutcomes(session, jobs, outcomes)) === 0) break;
  }
  const after = sectionSlots(session.section);
  t.true(after <= before - 4, `${before} → ${after}`);
  t.true(session.steps.length >= 2);
  t.is(session.steps[session.steps.length - 1]!.after, session.section);
  t.true(gateFor(obj, k)(session.withSection(session.section)));
});

test.serial('an outcome whose window moved or changed is found again or dropped, never misapplied', async (t) => {
  if (!existsSync(monitor)) return t.fail(`corpus missing: ${monitor}`);
  const obj = readObject(monitor);
  const k = obj.code.findIndex((s) => s.name === 'tracepoint/xdp/xdp_exception');
  const session = new SectionSession(obj, k, gateFor(obj, k), { ...DEFAULT_SYNTH, timeoutMs: 20000 }, stats());
  const jobs = session.plan();
  const j = jobs.find((x) => x.insns.some((i) => (i.code & 0x07) === 0x01 && i.src === 0))!; // a window over the map value
  t.truthy(j);
  const out = await solveWindow(j, { object: obj }, session.solveOptions(0), jobSeed(j, 1));
  t.truthy(out.rewrite);
  // a stale outcome for code that is no longer there: refused
  const stale = { ...j, insns: j.insns.map((i) => ({ ...i, imm: i.imm + 1 })) };
  t.false(await applyOutcomes(session, [stale], [out]) > 0);
  // the real one applies once; applying it again finds nothing to replace
  t.is(await applyOutcomes(session, [j], [out]), 1);
  t.is(await applyOutcomes(session, [j], [out]), 0);
});

test.serial("K2's benchmark sections of xdp_monitor reach K2's sizes", async (t) => {
  if (!existsSync(monitor)) return t.fail(`corpus missing: ${monitor}`);
  const obj = readObject(monitor);
  const want: Record<string, number> = { 'tracepoint/xdp/xdp_exception': 16, 'tracepoint/xdp/xdp_redirect_err': 16, 'tracepoint/xdp/xdp_cpumap_enqueue': 22 };
  for (const [name, size] of Object.entries(want)) {
    const k = obj.code.findIndex((s) => s.name === name);
    // a generous budget (no timed assertion: the figure is what must be reached)
    const r = await optimizeSection(obj, k, gateFor(obj, k), { ...DEFAULT_SYNTH, budgetMs: 120000, timeoutMs: 20000 });
    t.true(sectionSlots(r.obj.code[k]!) <= size, `${name}: ${sectionSlots(r.obj.code[k]!)} slots (K2: ${size})`);
  }
});

test.serial('batches of windows: the same result whichever order the batch is solved in (as over threads)', async (t) => {
  if (!existsSync(monitor)) return t.fail(`corpus missing: ${monitor}`);
  const obj = readObject(monitor);
  const k = obj.code.findIndex((s) => s.name === 'tracepoint/xdp/xdp_devmap_xmit');
  const base = { ...DEFAULT_SYNTH, budgetMs: 600000, timeoutMs: 20000, batch: 6, search: { ...DEFAULT_SYNTH.search, iterations: 150 } };
  const inOrder = await optimizeSection(obj, k, gateFor(obj, k), base);
  // solved back to front, each with its own seed: the outcomes are per job, so nothing changes
  const reversed = await optimizeSection(obj, k, gateFor(obj, k), {
    ...base,
    solveBatch: async (jobs, seeds) => {
      const out = new Array(jobs.length);
      for (let i = jobs.length - 1; i >= 0; i--) out[i] = await solveWindow(jobs[i]!, { object: obj }, { tests: base.tests, search: { ...base.search, iterations: jobs[i]!.iterations ?? 0 }, timeoutMs: base.timeoutMs, cegisRounds: base.cegisRounds }, seeds[i]);
      return out;
    },
  });
  const code = (r: typeof inOrder) => r.obj.code[k]!.insns.map((i) => [i.code, i.dst, i.src, i.off, i.imm]);
  t.true(sectionSlots(inOrder.obj.code[k]!) < sectionSlots(obj.code[k]!));
  t.deepEqual(code(reversed), code(inOrder));
});
