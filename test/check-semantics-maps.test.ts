// check-semantics' map bookkeeping against the kernel: after an input the interpreter could not
// predict (a clock value in the packet), its maps are re-read from the kernel's. A big LPM trie must
// be re-read whole, not key by key: the kernel's lookup of a touched /32 key answers with the /8
// element's value (trie_lookup_elem, the same from user space), and copying that under the /32 key
// made the interpreter hold an element the kernel does not (the cilium_policy_v2 false mismatch on
// cilium-core/bpf_host.o cil_host_policy). Needs root (bpf()) and the built fixtures.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkSemantics } from '../src/testgen/diff.js';

const root = new URL('..', import.meta.url).pathname;
const fixture = join(root, 'fixtures/difftest/build/lpm_big.o');

test('a big LPM trie re-read from the kernel after a nondeterministic input holds only the kernel\'s elements', async (t) => {
  if (!existsSync(fixture)) return t.fail('fixtures/difftest not built (make -C fixtures)');
  const r = await checkSemantics(fixture, { inputs: 64, seed: 1 });
  t.deepEqual(r.untestable, []);
  const p = r.programs.find((x) => x.name === 'xdp_lpm_stamp');
  if (!p) return t.fail('xdp_lpm_stamp not tested');
  t.is(p.inputs, 64);
  // The re-read path ran (IPv4 inputs carry the clock), and the trie was compared after it.
  t.true((p.nondetInputs ?? 0) >= 4, `only ${p.nondetInputs} inputs re-read the maps`);
  t.is(p.mismatches, 0, JSON.stringify(p.firstMismatch));
});
