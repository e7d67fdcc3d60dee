// k2's loader for legacy `maps` objects (struct bpf_map_def in SEC("maps"), refused by libbpf >= 1.0):
// the fixtures of fixtures/legacy/ verify, run with the results their C source implies (and that
// k2's interpreter computes), difftest against themselves, and the same loader gives libbpf's own
// verdicts and sizes on objects libbpf can load.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bpfAvailable, openLoaded, verifyObject } from '../src/kernel/index.js';
import { scanElf } from '../src/kernel/elfscan.js';
import { readObject, readObjectBytes } from '../src/ir/index.js';
import { prepareObject, run } from '../src/interp/index.js';
import { diffObjects } from '../src/testgen/diff.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const legacy = (n: string) => join(root, 'fixtures/legacy/build', n);
const fixture = (n: string) => join(root, 'fixtures/build', n);
const corpus = (n: string) => fileURLToPath(new URL(`../../shared/corpus/ebpf-samples/${n}`, import.meta.url));

const avail = await bpfAvailable('libbpf');
if (!avail.ok) console.error(`\n*** legacy-loader: SKIPPING bpf() tests: ${avail.reason} ***\n`);
const kernelTest = avail.ok ? test.serial : test.skip;

const FIXTURES = ['xdp_maps.o', 'map_in_map.o', 'tailcall.o', 'kprobe.o', 'socket.o'];
const built = () => FIXTURES.every((f) => existsSync(legacy(f)));
const NOT_BUILT = 'fixtures/legacy not built: run make -C fixtures';

// Ethernet + IPv4 + UDP 192.0.2.1:40000 -> 198.51.100.2:7 ("k2 fixture echo!!!").
const UDP7 = '02000000000102000000000208004500002e1234000040117c54c0000201c63364029c400007001a00006b322066697874757265206563686f212121';
const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
/** The same frame to UDP port `port` (the UDP checksum is not checked by anyone here). */
function udpTo(port: number): Uint8Array {
  const p = hex(UDP7);
  p[36] = port >> 8;
  p[37] = port & 0xff;
  return p;
}
const ARP = hex('ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002' + '00'.repeat(18));
const u64 = (n: number) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n), true); return b; };
const u64of = (b: Uint8Array) => Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));

/** Runs program `name` of `file` in k2's interpreter on fresh maps, one packet after another. */
function interpRetvals(file: string, name: string, packets: Uint8Array[]): number[] {
  const obj = readObject(file);
  const prep = prepareObject(obj);
  const maps = prep.initialMaps();
  const prog = obj.programs.find((p) => p.name === name)!;
  return packets.map((packet) => run(prep.unit, name, prog.progType, { packet }, maps).ret);
}

test('the legacy fixtures are built', (t) => {
  for (const f of FIXTURES) t.true(existsSync(legacy(f)), `${f}: ${NOT_BUILT}`);
});

kernelTest('libbpf refuses every legacy fixture; k2 loads it with its legacy loader and says so', async (t) => {
  if (!built()) return t.fail(NOT_BUILT);
  for (const f of FIXTURES) {
    const r = await verifyObject(legacy(f));
    t.is(r.loader, 'legacy', `${f}: the legacy path was taken`);
    t.regex(r.fixups[0] ?? '', /legacy loader.*libbpf >= 1\.0 refuses legacy map definitions/, `${f}: fixups say why`);
    t.is(r.objectError, null);
    t.true(r.programs.length > 0);
    for (const p of r.programs) {
      t.is(p.verdict, 'accepted', `${f} ${p.name}: ${p.error}`);
      t.true((p.verifiedInsns ?? 0) > 0 && (p.xlatedInsns ?? 0) > 0, `${f} ${p.name}: verified_insns and xlated size reported`);
    }
    const forced = await verifyObject(legacy(f), { loader: 'legacy' });
    t.deepEqual(forced.programs.map((p) => [p.name, p.verdict, p.xlatedInsns]), r.programs.map((p) => [p.name, p.verdict, p.xlatedInsns]), `${f}: --loader legacy gives the same verdicts`);
  }
  const types = Object.fromEntries((await Promise.all(FIXTURES.map((f) => verifyObject(legacy(f))))).flatMap((r) => r.programs.map((p) => [p.name, p.type])));
  t.like(types, { xdp_count: 'xdp', xdp_mim: 'xdp', entry_hit: 'socket_filter', target: 'socket_filter', count_open: 'kprobe', open_ret: 'kprobe', sock_ipv4: 'socket_filter' });
});

kernelTest('xdp_maps: array + hash + .rodata/.bss + a .text call run as the C source says, like the interpreter', async (t) => {
  if (!built()) return t.fail(NOT_BUILT);
  const f = legacy('xdp_maps.o');
  const o = await openLoaded(f);
  try {
    t.true(o.fixups.length > 0);
    t.true(o.programs[0]!.fixups.some((x) => /linked with 1 called function/.test(x)), 'the .text subprogram was linked in');
    const names = (await o.maps()).map((m) => m.name).sort();
    t.deepEqual(names, ['limits', 'proto_count', 'src_count', 'xdp_maps.bss', 'xdp_maps.rodata'], 'legacy maps and libbpf-named global data maps');
    // Fresh maps: first sight of 192.0.2.1 passes; UDP to port 9 (.rodata drop_port) drops; ARP passes.
    const packets = [udpTo(7), udpTo(9), ARP, udpTo(7)];
    const kernel: number[] = [];
    for (const p of packets) kernel.push((await o.testRun('xdp_count', { dataIn: p })).retval);
    t.deepEqual(kernel, [2, 1, 2, 2], 'XDP_PASS, XDP_DROP (drop_port), XDP_PASS (not IPv4), XDP_PASS');
    t.deepEqual(kernel, interpRetvals(f, 'xdp_count', packets), 'the interpreter agrees');
    t.deepEqual((await o.readMap('src_count')).map((e) => [[...e.key], u64of(e.value)]), [[[192, 0, 2, 1], 3]], 'three IPv4 frames from 192.0.2.1');
    const udp = (await o.readMap('proto_count')).find((e) => e.key[0] === 17)!;
    t.is(u64of(udp.value), 3, 'proto_count[UDP] = 3');
    const bss = (await o.readMap('xdp_maps.bss'))[0]!;
    t.is(u64of(bss.value), 3, '.bss `seen` counted the IPv4 frames (BPF_PSEUDO_MAP_VALUE)');
    // limits[0] = 4: the 4th frame from the same source is dropped.
    await o.writeMap('limits', [{ key: new Uint8Array(4), value: u64(4) }]);
    t.is((await o.testRun('xdp_count', { dataIn: udpTo(7) })).retval, 1, 'dropped at the limit');
    await o.clearMap('src_count');
    t.deepEqual(await o.readMap('src_count'), []);
    t.is((await o.testRun('xdp_count', { dataIn: udpTo(7) })).retval, 2, 'a cleared counter passes again');
  } finally {
    await o.close();
  }
});

kernelTest('map_in_map: the inner map is the one inner_map_idx names (a wrong inner map is rejected)', async (t) => {
  if (!built()) return t.fail(NOT_BUILT);
  const f = legacy('map_in_map.o');
  const r = await verifyObject(f);
  t.true(r.fixups.some((x) => /map 'outer': inner maps shaped like 'inner_action'/.test(x)), r.fixups.join('\n'));
  t.is(r.programs[0]!.verdict, 'accepted');
  const o = await openLoaded(f);
  try {
    const outer = (await o.maps()).find((m) => m.name === 'outer')!;
    t.is(outer.type, 'array_of_maps');
    t.is((await o.testRun('xdp_mim', { dataIn: udpTo(7) })).retval, 2, 'outer maps start empty: XDP_PASS');
    t.is(u64of(new Uint8Array([...(await o.readMap('decoy'))[0]!.value, 0, 0, 0, 0])), 1, 'decoy[0] counted the run');
  } finally {
    await o.close();
  }
  t.deepEqual(interpRetvals(f, 'xdp_mim', [udpTo(7)]), [2], 'the interpreter agrees');
  // Point inner_map_idx at `decoy` (4-byte values): reading `action` at offset 12 must now be refused.
  const bytes = new Uint8Array(readFileSync(f));
  const scan = scanElf(bytes);
  if (!scan.ok) return t.fail(scan.reason);
  const obj = readObjectBytes(bytes, f);
  const def = obj.maps.find((m) => m.name === 'outer')!;
  const at = scan.scan.sections.find((s) => s.name === 'maps')!.offset + Number(obj.elf.symbols[def.sym]!.value) + 20;
  t.is(new DataView(bytes.buffer).getUint32(at, true), 1, 'inner_map_idx as compiled');
  new DataView(bytes.buffer).setUint32(at, 0, true);
  const wrong = await verifyObject(bytes, { name: 'map_in_map_decoy.o' });
  t.true(wrong.fixups.some((x) => /inner maps shaped like 'decoy'/.test(x)));
  t.is(wrong.programs[0]!.verdict, 'rejected', 'the verifier sees the inner map shape');
  t.regex(wrong.programs[0]!.error ?? '', /invalid access to map value/);
  new DataView(bytes.buffer).setUint32(at, 2, true);
  const self = await verifyObject(bytes, { name: 'map_in_map_self.o' });
  t.is(self.programs[0]!.verdict, 'cannot-load', 'an outer map cannot be its own inner map');
  t.regex(self.programs[0]!.error ?? '', /no usable inner map: its inner map 'outer' is itself/);
});

kernelTest('tailcall: "socket/1" fills slot 1 of the prog array, as samples/bpf did; empty slots fall through', async (t) => {
  if (!built()) return t.fail(NOT_BUILT);
  const o = await openLoaded(legacy('tailcall.o'));
  try {
    t.true(o.fixups.some((x) => /samples\/bpf: section 'socket\/1' goes into slot 1 of prog array 'jmp_table'/.test(x)), o.fixups.join('\n'));
    const ret = async (p: string) => (await o.testRun(p, { dataIn: udpTo(7) })).retval;
    t.is(await ret('entry_hit'), 222, 'the tail call reached `target`');
    t.is(await ret('entry_miss'), 333, 'slot 5 is empty: falls through');
    t.is(await ret('target'), 222);
  } finally {
    await o.close();
  }
});

kernelTest('kprobe: kprobe and kretprobe load with kern_version; their maps are readable', async (t) => {
  if (!built()) return t.fail(NOT_BUILT);
  const o = await openLoaded(legacy('kprobe.o'));
  try {
    t.deepEqual(o.programs.map((p) => [p.section, p.type, p.verdict]), [['kprobe/do_sys_openat2', 'kprobe', 'accepted'], ['kretprobe/do_sys_openat2', 'kprobe', 'accepted']]);
    t.deepEqual(await o.readMap('calls'), [], 'never attached: no calls counted');
    t.is((await o.readMap('ret_sign')).length, 2);
    await t.throwsAsync(() => o.testRun('count_open', {}), { message: /not supported for kprobe|refused the run input/ });
  } finally {
    await o.close();
  }
});

kernelTest('socket: an old "socket1" section is a socket filter; it keeps IPv4 frames and counts them', async (t) => {
  if (!built()) return t.fail(NOT_BUILT);
  const f = legacy('socket.o');
  const o = await openLoaded(f);
  try {
    t.true(o.programs[0]!.fixups.some((x) => /section prefix 'socket'/.test(x)));
    const ipv4 = await o.testRun('sock_ipv4', { dataIn: udpTo(7) });
    t.is(ipv4.retval, udpTo(7).length - 14, 'skb->len: the frame without its Ethernet header');
    t.is((await o.testRun('sock_ipv4', { dataIn: ARP })).retval, 0, 'not IPv4: dropped');
    const counted = (await o.readMap('proto_frames')).filter((e) => u64of(e.value) > 0);
    t.deepEqual(counted.map((e) => [e.key[0], u64of(e.value)]), [[17, 1]], 'one UDP frame');
    t.deepEqual([ipv4.retval, 0], interpRetvals(f, 'sock_ipv4', [udpTo(7), ARP]), 'the interpreter agrees');
  } finally {
    await o.close();
  }
});

kernelTest('difftest of each runnable legacy fixture against itself finds no mismatch', async (t) => {
  if (!built()) return t.fail(NOT_BUILT);
  for (const f of ['xdp_maps.o', 'map_in_map.o', 'tailcall.o', 'socket.o']) {
    const r = await diffObjects(legacy(f), legacy(f), { inputs: 40, seed: 7 });
    const tested = r.programs.filter((p) => p.inputs > 0);
    t.true(tested.length > 0, `${f}: some program was tested (untestable: ${JSON.stringify(r.untestable)})`);
    for (const p of r.programs) t.is(p.mismatches, 0, `${f} ${p.name}: ${JSON.stringify(p.firstMismatch)}`);
  }
});

kernelTest('on objects libbpf loads, the legacy loader gives libbpf\'s verdicts and sizes', async (t) => {
  const files = ['xdp_parser.o', 'socket_filter.o', 'cgroup_skb.o', 'global_data.o', 'calls.o', 'jmp32.o', 'atomics.o', 'unsafe.o', 'redundant.o'].map(fixture);
  files.push(corpus('new_linux/sockex1_kern.o'), corpus('new_linux/tracex4_kern.o'), corpus('build/packet_overflow.o'));
  for (const f of files) if (!existsSync(f)) return t.fail(`${f} missing (fixtures built? corpus at ../shared/corpus?)`);
  let compared = 0;
  let rejected = 0;
  for (const f of files) {
    const a = await verifyObject(f);
    const b = await verifyObject(f, { loader: 'legacy' });
    t.is(a.loader, 'libbpf');
    t.is(b.loader, 'legacy');
    for (const p of a.programs) {
      const q = b.programs.find((x) => x.section === p.section && x.name === p.name);
      if (!q) return t.fail(`${f} ${p.name}: missing from the legacy loader's report`);
      t.is(q.verdict, p.verdict, `${f} ${p.name}: ${q.error}`);
      t.is(q.type, p.type);
      t.is(q.xlatedInsns, p.xlatedInsns, `${f} ${p.name}: xlated size`);
      // Without BTF func_info every subprogram is verified in its caller's context (libbpf verifies
      // global functions on their own), so only objects without global functions count the same.
      if (!f.endsWith('calls.o')) t.is(q.verifiedInsns, p.verifiedInsns, `${f} ${p.name}: verified_insns`);
      if (p.verdict === 'rejected') {
        rejected++;
        t.is(q.error, p.error, `${f} ${p.name}: the same complaint`);
      }
      compared++;
    }
  }
  t.true(compared >= 15 && rejected >= 2, `${compared} programs compared, ${rejected} rejected by both`);
});

kernelTest('global data maps get the names libbpf gives them', async (t) => {
  if (!existsSync(fixture('global_data.o'))) return t.fail('fixtures not built: run make -C fixtures');
  const a = await openLoaded(fixture('global_data.o'));
  const b = await openLoaded(fixture('global_data.o'), { loader: 'legacy' });
  try {
    const names = async (o: typeof a) => (await o.maps()).map((m) => m.name).sort();
    t.deepEqual(await names(b), await names(a));
    t.true((await names(a)).some((n) => n.endsWith('.rodata')));
  } finally {
    await a.close();
    await b.close();
  }
});

kernelTest('corpus: legacy objects libbpf refuses now get kernel verdicts (samples/bpf, prototype-kernel)', async (t) => {
  const expectAccepted = ['linux/sockex1_kern.o', 'linux/sockex3_kern.o', 'linux/xdp1_kern.o', 'linux/test_map_in_map_kern.o', 'linux/tracex4_kern.o', 'prototype-kernel/xdp_ddos01_blacklist_kern.o', 'linux/xdp_monitor_kern.o'];
  for (const n of expectAccepted) {
    if (!existsSync(corpus(n))) return t.fail(`corpus object ${n} missing (expected ../shared/corpus/ebpf-samples)`);
    const r = await verifyObject(corpus(n));
    t.is(r.loader, 'legacy', n);
    t.true(r.programs.length > 0, n);
    for (const p of r.programs) t.is(p.verdict, 'accepted', `${n} ${p.name}: ${p.error}`);
  }
  // Same source, built once with legacy maps and once with BTF maps: the kernel sees the same program.
  const old = await verifyObject(corpus('linux/sockex1_kern.o'));
  const btf = await verifyObject(corpus('new_linux/sockex1_kern.o'));
  t.is(btf.loader, 'libbpf');
  t.is(old.programs[0]!.xlatedInsns, btf.programs[0]!.xlatedInsns);
  // sockex3's parser tail-calls programs from "socket/N" sections: a run goes through the chain.
  const o = await openLoaded(corpus('linux/sockex3_kern.o'));
  try {
    t.true(o.fixups.filter((x) => /samples\/bpf: section 'socket\/\d+' goes into slot \d+/.test(x)).length >= 3, o.fixups.join('\n'));
    const r = await o.testRun('main_prog', { dataIn: udpTo(7) });
    t.is(r.retval, 0, 'sockex3 returns 0 (the flow is recorded in a map)');
  } finally {
    await o.close();
  }
});
