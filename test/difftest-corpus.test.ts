// The interpreter against the kernel on the corpus programs that load here (../shared/corpus),
// except cilium-core (difftest-corpus-cilium.test.ts). Objects the kernel cannot load here and
// program types BPF_PROG_TEST_RUN cannot run are listed (t.log) with the reason; every program that
// can be tested must show 0 mismatches. Inputs per program: K2_CORPUS_INPUTS (default 1000: the
// interpreter instructions these programs execute saturate there — 2026-12, 66 programs: 3,733 at
// 300 inputs, 3,796 at 1,000, 3,805 at 2,000 — while 2,000 took twice the time).
import test from 'ava';
import { existsSync } from 'node:fs';
import { checkObjects, objectsUnder } from '../src/testgen/corpus.js';

const CORPUS = new URL('../../shared/corpus/ebpf-samples', import.meta.url).pathname;
const INPUTS = Number(process.env.K2_CORPUS_INPUTS ?? 1000);

test('corpus (all but cilium-core): interpreter equals the kernel on every testable program', async (t) => {
  if (!existsSync(CORPUS)) return t.fail(`corpus not found at ${CORPUS}`);
  const files = objectsUnder(CORPUS, (rel) => !rel.startsWith('cilium-core/'));
  t.true(files.length > 100, `only ${files.length} objects found`);
  const r = await checkObjects(CORPUS, files, INPUTS);
  for (const p of r.programs) {
    t.is(p.mismatches, 0, `${p.file} ${p.name}: ${JSON.stringify(p.firstMismatch)}`);
    t.is(p.inputs + (p.undefinedInputs ?? 0) + (p.refusedInputs ?? 0), INPUTS, `${p.file} ${p.name}`);
  }
  t.log(`${r.programs.length} programs tested with ${INPUTS} inputs each; not tested:\n  ${r.untestable.join('\n  ')}`);
  // This many packet programs of the corpus load on this kernel and run in the interpreter.
  t.true(r.programs.length >= 20, `only ${r.programs.length} programs could be tested`);
});
