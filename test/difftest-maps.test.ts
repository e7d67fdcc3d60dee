// The map access difftest and check-semantics use (src/kernel/difftest-maps.ts, src/testgen/kmaps.ts):
// each load's map fds come from the loader (LoadedObject.mapFd), two loads of one object get their own
// maps, chunked reads (BPF_MAP_LOOKUP_BATCH) agree with LoadedObject.readMap element for element,
// and nothing stays open after close. Needs root (bpf()) and the built fixtures.
import test from 'ava';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { openKObject } from '../src/testgen/kmaps.js';
import { possibleCpus, toHex } from '../src/interp/index.js';

const root = new URL('..', import.meta.url).pathname;
const corpus = new URL('../../shared/corpus/ebpf-samples', import.meta.url).pathname;

const bpfMapFds = (): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:bpf-map';
    } catch {
      return false;
    }
  }).length;

test.serial('two loads of one object: each finds its own map fds, writes do not cross', async (t) => {
  const f = join(root, 'fixtures/build/xdp_parser.o');
  if (!existsSync(f)) return t.fail('fixtures not built (make -C fixtures)');
  const before = bpfMapFds();
  const a = await openKObject(f, possibleCpus());
  const b = await openKObject(f, possibleCpus());
  try {
    t.is(a.access, 'fd');
    t.is(b.access, 'fd');
    t.true(a.maps.size > 0);
    t.deepEqual([...a.maps.keys()].sort(), [...b.maps.keys()].sort());
    for (const [name, ma] of a.maps) {
      if (ma.info.keySize !== 4 || !ma.isArray) continue;
      const mb = b.maps.get(name)!;
      const key = new Uint8Array([1, 0, 0, 0]);
      const v = new Uint8Array(ma.valueBytes).fill(0x5a);
      await ma.write(key, v);
      t.deepEqual(toHex((await ma.lookup(key))!), toHex(v), name);
      t.notDeepEqual(toHex((await mb.lookup(key))!), toHex(v), `${name}: the other load's map changed too`);
      await ma.remove(key);
    }
  } finally {
    await a.k.close();
    await b.k.close();
  }
  t.is(bpfMapFds(), before, 'map fds left open');
});

test.serial('chunked reads agree with readMap, element for element (libbpf and legacy loads)', async (t) => {
  const files = [join(root, 'fixtures/build/xdp_parser.o'), join(corpus, 'linux/sockex3_kern.o')];
  for (const f of files) {
    if (!existsSync(f)) return t.fail(`${f} is missing`);
    const ko = await openKObject(f, possibleCpus());
    try {
      t.is(ko.access, 'fd', f);
      for (const [name, m] of ko.maps) {
        // A few elements (hash maps) or non-zero values (arrays).
        for (let i = 0; i < Math.min(5, m.info.maxEntries); i++) {
          const key = new Uint8Array(m.info.keySize);
          key[0] = m.isArray ? i : i * 3;
          if (m.info.typeId === 11) continue; // LPM keys need a prefix length
          const v = new Uint8Array(m.valueBytes);
          v[0] = i + 1;
          await m.write(key, v);
        }
        const viaChunks = new Map<string, string>();
        for await (const c of m.chunks()) {
          for (let i = 0; i < c.n; i++) {
            viaChunks.set(toHex(c.keys.subarray(i * m.info.keySize, (i + 1) * m.info.keySize)), toHex(c.values.subarray(i * m.valueBytes, (i + 1) * m.valueBytes)));
          }
        }
        const whole = await ko.k.readMap(name);
        t.is(viaChunks.size, whole.length, `${f} ${name}`);
        for (const e of whole) {
          const got = viaChunks.get(toHex(e.key));
          t.truthy(got, `${f} ${name}: key ${toHex(e.key)} missing from the chunks`);
          if (!m.info.perCpu) t.is(got, toHex(e.value), `${f} ${name}`);
          else t.is(got!.slice(0, e.value.length * 2), toHex(e.value), `${f} ${name} (CPU 0)`);
        }
      }
    } finally {
      await ko.k.close();
    }
  }
});
