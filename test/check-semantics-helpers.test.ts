// k2's interpreter against the kernel on the skb helpers that resize a packet or move its headers
// (skb_change_tail, skb_change_head, skb_adjust_room with encap/decap flags) and the skb hash
// helpers, driven by fixtures/difftest/skb_resize.c with lengths, modes and flags from packet bytes
// (valid and invalid ones). Needs root (bpf()) and the built fixtures.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkSemantics } from '../src/testgen/diff.js';
import { openHelperOracle } from '../src/kernel/index.js';

const root = new URL('..', import.meta.url).pathname;
const fixture = join(root, 'fixtures/difftest/build/skb_resize.o');
const INPUTS = Number(process.env.K2_HELPER_INPUTS ?? 2000);

test('skb resize and hash helpers: the interpreter equals the kernel', async (t) => {
  if (!existsSync(fixture)) return t.fail('fixtures/difftest not built (make -C fixtures)');
  const r = await checkSemantics(fixture, { inputs: INPUTS, seed: 3 });
  t.deepEqual(r.untestable, []);
  t.deepEqual(r.programs.map((p) => p.name).sort(), ['adjust_room', 'head_and_hash', 'resize_tail']);
  for (const p of r.programs) {
    t.is(p.mismatches, 0, `${p.name}: ${JSON.stringify(p.firstMismatch)}`);
    t.is(p.inputs, INPUTS, `${p.name}: every input compared (refused ${p.refusedInputs}, undefined ${p.undefinedInputs})`);
  }
  // Only the hash the kernel computes with its boot-time secret is unknown to the interpreter; the
  // resize helpers are compared exactly on every input.
  for (const name of ['adjust_room', 'resize_tail']) t.is(r.programs.find((p) => p.name === name)!.nondetInputs ?? 0, 0, name);
  const hash = r.programs.find((p) => p.name === 'head_and_hash')!;
  t.true((hash.nondetInputs ?? 0) < INPUTS * 0.2, `${hash.nondetInputs} inputs depend on the flow hash`);
});

test('the host answers fib_lookup and the skb flow hash (probe programs under BPF_PROG_TEST_RUN)', (t) => {
  const o = openHelperOracle();
  try {
    // AF_INET lookup of 127.0.0.1 on the loopback device (ifindex 1).
    const params = new Uint8Array(64);
    params[0] = 2; // AF_INET
    new DataView(params.buffer).setUint32(8, 1, true); // ifindex
    params.set([127, 0, 0, 1], 32); // ipv4_dst (struct bpf_fib_lookup: family, l4_protocol, ports, tot_len, ifindex @8, tos @12, src @16, dst @32)
    const xdp = o.fibLookup('xdp', params, 0, 0);
    const skb = o.fibLookup('skb', params, 0, 100);
    t.truthy(xdp);
    t.truthy(skb);
    t.true(xdp!.ret >= 0 && xdp!.ret <= 8, `BPF_FIB_LKUP_RET_* expected, got ${xdp!.ret}`);
    t.is(xdp!.params.length, 64);
    // Invalid flags are refused by the kernel as well.
    t.is(o.fibLookup('xdp', params, 1 << 30, 0)!.ret, -22);
    // The flow hash is a function of the flow: the same frame twice gives the same value.
    const frame = Uint8Array.from([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0, 0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0, 53, 0, 8, 0, 0]);
    const h1 = o.skbHash(frame);
    t.not(h1, null);
    t.is(o.skbHash(frame), h1);
    const other = frame.slice();
    other[35] = 0x3a; // another source port
    t.not(o.skbHash(other), h1);
  } finally {
    o.close();
  }
});

test('cilium DSR programs: fib_lookup and the flow hash answered by the host, compared exactly', async (t) => {
  const f = new URL('../../shared/corpus/ebpf-samples/cilium-core/bpf_xdp.o', import.meta.url).pathname;
  if (!existsSync(f)) return t.fail(`corpus not found: ${f}`);
  const r = await checkSemantics(f, { inputs: 200, seed: 1, programs: ['tail_nodeport_ipv4_dsr', 'tail_nodeport_ipv6_dsr'] });
  t.is(r.programs.length, 2, JSON.stringify(r.untestable));
  for (const p of r.programs) {
    t.is(p.mismatches, 0, `${p.name}: ${JSON.stringify(p.firstMismatch)}`);
    t.is(p.nondetInputs ?? 0, 0, `${p.name}: inputs left nondeterministic`);
  }
});
