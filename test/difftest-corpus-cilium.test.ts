// The interpreter against the kernel on the cilium-core corpus objects (large tc/XDP programs with
// tail calls and many maps). Their runs are slow (each session reads back dozens of maps), so CI
// uses K2_CILIUM_INPUTS inputs per program (default 150); the 2,000-input run is
// `K2_CILIUM_INPUTS=2000 npx ava test/difftest-corpus-cilium.test.ts`.
import test from 'ava';
import { existsSync } from 'node:fs';
import { checkObjects, objectsUnder } from '../src/testgen/corpus.js';

const CORPUS = new URL('../../shared/corpus/ebpf-samples', import.meta.url).pathname;
const INPUTS = Number(process.env.K2_CILIUM_INPUTS ?? 150);
const objects = existsSync(CORPUS) ? objectsUnder(CORPUS, (rel) => rel.startsWith('cilium-core/')) : [];

test.serial('cilium-core objects are present', (t) => {
  if (!existsSync(CORPUS)) return t.fail(`corpus not found at ${CORPUS}`);
  t.true(objects.length >= 6, `only ${objects.length} cilium-core objects`);
});

for (const f of objects) {
  const rel = f.slice(CORPUS.length + 1);
  test.serial(`${rel}: interpreter equals the kernel on every testable program`, async (t) => {
    const r = await checkObjects(CORPUS, [f], INPUTS);
    for (const p of r.programs) {
      t.is(p.mismatches, 0, `${p.name}: ${JSON.stringify(p.firstMismatch)}`);
      t.is(p.inputs + (p.undefinedInputs ?? 0) + (p.refusedInputs ?? 0), INPUTS, p.name);
    }
    t.log(`${r.programs.length} programs tested with ${INPUTS} inputs each; not tested:\n  ${r.untestable.join('\n  ')}`);
    // An object with no packet program at all (bpf_sock.o: cgroup socket hooks) has nothing to test.
    const noPacketPrograms = r.untestable.every((u) => /BPF_PROG_TEST_RUN (for|of) \S+ programs/.test(u));
    t.true(r.programs.length >= 1 || noPacketPrograms, `no program of ${rel} could be tested`);
  });
}
