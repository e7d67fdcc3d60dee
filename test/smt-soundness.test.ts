import test from 'ava';
import { existsSync } from 'node:fs';
import { readObject } from '../src/ir/index.js';
import { mutantExperiment, type MutantReport } from '../src/smt/soundness.js';
import { shutdownZ3 } from '../src/smt/index.js';

test.after.always(async () => {
  await shutdownZ3();
});

// Random one-instruction mutants of fixture programs (the benchmark runs ≥ 1,000 of them). For each
// mutant the interpreter runs original and mutant on generated inputs and the checker compares
// them: whenever the interpreter tells them apart the checker must not say "equal", and every
// "different" must come with a counterexample the interpreter reproduces (unless the difference
// depends on helper results such as the clock, which the interpreter computes its own way).
const CASES: [string, string, number][] = [
  ['tc_classifier', 'tc_ingress', 6],
  ['socket_filter', 'sock_web', 6],
  ['cgroup_skb', 'cg_egress', 6],
  ['global_data', 'xdp_globals', 5],
  ['legacy_maps', 'xdp_legacy', 6],
  ['atomics', 'xdp_atomics', 5],
  ['loops', 'xdp_v4_csum', 5],
];

const all: MutantReport[] = [];

for (const [file, prog, n] of CASES) {
  test.serial(`mutants of ${file}/${prog}: never "equal" when the interpreter differs; counterexamples reproduce`, async (t) => {
    const path = `fixtures/build/${file}.o`;
    if (!existsSync(path)) {
      t.fail(`${path} is missing: run make -C fixtures`);
      return;
    }
    const obj = readObject(path);
    const p = obj.programs.find((x) => x.name === prog);
    if (!p) {
      t.fail(`no program ${prog} in ${path}`);
      return;
    }
    const rep = await mutantExperiment(obj, p, n, 1234, { timeoutMs: 1000, inputs: 32 });
    all.push(...rep);
    t.true(rep.length > 0, 'no mutants were generated');
    for (const r of rep) {
      t.false(r.unsound, `UNSOUND: ${JSON.stringify(r)}`);
      if (r.interpDiffers) t.not(r.verdict, true, JSON.stringify(r));
      if (r.verdict === false) t.not(r.reproduced, false, `counterexample not reproduced: ${JSON.stringify(r)}`);
    }
  });
}

test.serial('the experiment is informative: differences are found and replayed', (t) => {
  const differ = all.filter((r) => r.interpDiffers).length;
  const caught = all.filter((r) => r.interpDiffers && r.verdict === false).length;
  const replayed = all.filter((r) => r.reproduced === true).length;
  t.log(`${all.length} mutants: interpreter differs on ${differ}, checker proves ${caught} of them different, ${replayed} counterexamples replayed, ${all.filter((r) => r.verdict === true).length} proven equal, ${all.filter((r) => r.verdict === null).length} unknown`);
  t.true(differ > 5);
  t.true(caught >= differ * 0.8, 'the checker should find most differences the interpreter finds');
  t.true(replayed > 0);
});
