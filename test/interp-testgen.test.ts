// The input generator: seeded, well-formed where it means to be, and shaped to the maps it fills.
import test from 'ava';
import { generate, packet, mapInits, Rng, skbAcceptable } from '../src/testgen/index.js';
import { MAP_TYPE, type MapSpec } from '../src/interp/index.js';

const maps: MapSpec[] = [
  { name: 'flows', type: MAP_TYPE.HASH, keySize: 16, valueSize: 16, maxEntries: 1024, flags: 0 },
  { name: 'stats', type: MAP_TYPE.PERCPU_ARRAY, keySize: 4, valueSize: 12, maxEntries: 4, flags: 0 },
  { name: 'deny', type: MAP_TYPE.LPM_TRIE, keySize: 8, valueSize: 4, maxEntries: 64, flags: 1 },
  { name: 'jmp', type: MAP_TYPE.PROG_ARRAY, keySize: 4, valueSize: 4, maxEntries: 2, flags: 0 },
  { name: '.rodata', type: MAP_TYPE.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, flags: 0, readonly: true },
];

test('the same seed gives the same sessions; another seed does not', (t) => {
  const a = generate({ progType: 'xdp', maps, ncpu: 2, inputs: 50, seed: 42 });
  const b = generate({ progType: 'xdp', maps, ncpu: 2, inputs: 50, seed: 42 });
  const c = generate({ progType: 'xdp', maps, ncpu: 2, inputs: 50, seed: 43 });
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
  t.is(a.reduce((n, s) => n + s.inputs.length, 0), 50);
});

test('packets: at least an Ethernet header, mostly IPv4/IPv6 with valid IPv4 header checksums', (t) => {
  const r = new Rng(7);
  let v4 = 0, v6 = 0, goodSum = 0, vlan = 0;
  for (let i = 0; i < 3000; i++) {
    const p = packet(r);
    t.true(p.length >= 14 && p.length <= 1500);
    let at = 12;
    let proto = (p[at]! << 8) | p[at + 1]!;
    while ((proto === 0x8100 || proto === 0x88a8) && p.length >= at + 6) {
      vlan++;
      at += 4;
      proto = (p[at]! << 8) | p[at + 1]!;
    }
    const l3 = at + 2;
    if (proto === 0x0800 && p.length >= l3 + 20 && p[l3]! >> 4 === 4) {
      v4++;
      const ihl = (p[l3]! & 15) * 4;
      if (ihl >= 20 && p.length >= l3 + ihl) {
        let s = 0;
        for (let k = 0; k < ihl; k += 2) s += (p[l3 + k]! << 8) | p[l3 + k + 1]!;
        while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
        if (s === 0xffff) goodSum++;
      }
    }
    if (proto === 0x86dd && p.length >= l3 + 40) v6++;
  }
  t.true(v4 > 700, `ipv4 ${v4}`);
  t.true(v6 > 600, `ipv6 ${v6}`);
  t.true(goodSum > v4 * 0.7, `checksums ${goodSum}/${v4}`);
  t.true(vlan > 100, `vlan ${vlan}`);
});

test('map contents fit the maps: key and value sizes, per-CPU values for every CPU, no prog arrays or .rodata', (t) => {
  const r = new Rng(3);
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    for (const init of mapInits(r, maps, 3)) {
      const spec = maps.find((m) => m.name === init.map)!;
      seen.add(init.map);
      for (const e of init.entries) {
        t.is(e.key.length, spec.keySize);
        t.is(e.value.length, spec.type === MAP_TYPE.PERCPU_ARRAY ? 16 * 3 : spec.valueSize);
        if (spec.type === MAP_TYPE.LPM_TRIE) t.true(new DataView(e.key.buffer).getUint32(0, true) <= 32);
        if (spec.type === MAP_TYPE.PERCPU_ARRAY) t.true(new DataView(e.key.buffer).getUint32(0, true) < 4);
      }
    }
  }
  t.deepEqual([...seen].sort(), ['deny', 'flows', 'stats']);
});

test('skb inputs are padded to a whole network header (the kernel refuses shorter ones)', (t) => {
  const r = new Rng(1);
  const short = Uint8Array.from([...new Array(12).fill(0), 0x08, 0x00, 0x45, 0x00]);
  t.is(skbAcceptable(short, r).length, 34);
  const v6 = Uint8Array.from([...new Array(12).fill(0), 0x86, 0xdd]);
  t.is(skbAcceptable(v6, r).length, 54);
  const arp = Uint8Array.from([...new Array(12).fill(0), 0x08, 0x06]);
  t.is(skbAcceptable(arp, r).length, 14);
  for (const s of generate({ progType: 'sched_cls', maps: [], ncpu: 1, inputs: 400, seed: 9 })) {
    for (const i of s.inputs) t.is(skbAcceptable(i.packet, r), i.packet);
  }
});
