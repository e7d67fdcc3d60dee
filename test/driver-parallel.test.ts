// Parallel search: the same seed gives the same object whatever --jobs (sections are searched from
// the original object, windows in fixed batches solved in worker threads with --jobs 2 and applied
// in window order).
import test from 'ava';
import { fixtureObjects } from './helpers/paths.js';
import { objectBytes, readObject } from '../src/ir/index.js';
import { optimizeObject } from '../src/driver/optimize.js';
import { DEFAULT_SYNTH } from '../src/synth/index.js';
import { shutdownZ3 } from '../src/smt/index.js';

test.after.always(async () => {
  await shutdownZ3();
});

const fixture = (name: string): string => fixtureObjects().find((f) => f.endsWith(name))!;

test('--seed: --jobs 1 and --jobs 2 write the same object', async (t) => {
  const obj = readObject(fixture('calls.o'));
  t.true(obj.code.length >= 3, 'an object with several sections');
  // The defaults decide SMT queries by Z3's resource limit (a wall-clock timeout is not
  // reproducible under load); a short chain keeps the test's CPU time down. With --jobs 2 the
  // windows are solved in two worker threads.
  const opts = { kernel: false, cache: false as const, timeSec: 300, seed: 7, difftestInputs: 0, synth: { search: { ...DEFAULT_SYNTH.search, iterations: 100 } } };
  const one = await optimizeObject(obj, { ...opts, jobs: 1 });
  const two = await optimizeObject(obj, { ...opts, jobs: 2 });
  // only a search that finished (not one cut by the clock) must be reproducible
  t.true([...one.report.sections, ...two.report.sections].every((s) => s.search.converged), 'every search converged');
  t.true(one.report.slotsAfter < one.report.slotsBefore, 'something was optimized');
  t.deepEqual(Buffer.from(objectBytes(two.obj)), Buffer.from(objectBytes(one.obj)));
  t.deepEqual(two.report.sections.map((s) => [s.name, s.status, s.after.slots, s.kept]), one.report.sections.map((s) => [s.name, s.status, s.after.slots, s.kept]));
  t.is(two.report.jobs, 2);
});
