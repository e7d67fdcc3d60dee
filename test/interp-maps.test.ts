// The interpreter's map states as user space reads them: the bulk copy of array elements
// (MapState.copyArrayElements, used by check-semantics' chunked comparisons) gives exactly what
// element-by-element reads (userElements / userLookup) give, for plain and per-CPU arrays.
import test from 'ava';
import fc from 'fast-check';
import { MapState, MAP_TYPE, percpuStride } from '../src/interp/index.js';

test('copyArrayElements equals userElements (array and per-CPU array, any run)', (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(MAP_TYPE.ARRAY, MAP_TYPE.PERCPU_ARRAY),
      fc.integer({ min: 1, max: 40 }), // value size
      fc.integer({ min: 1, max: 30 }), // max entries
      fc.integer({ min: 1, max: 4 }), // cpus
      fc.array(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 400 })), { maxLength: 20 }),
      fc.nat(),
      fc.nat(),
      (type, valueSize, maxEntries, ncpu, writes, a, b) => {
        const m = new MapState({ name: 'm', type, keySize: 4, valueSize, maxEntries, flags: 0 }, ncpu);
        const per = type === MAP_TYPE.PERCPU_ARRAY ? percpuStride(valueSize) * ncpu : valueSize;
        for (const [i, bytes] of writes) {
          const key = new Uint8Array(4);
          new DataView(key.buffer).setUint32(0, i % maxEntries, true);
          const v = new Uint8Array(per);
          v.set(bytes.subarray(0, per));
          m.set(key, v);
        }
        const from = a % maxEntries;
        const n = 1 + (b % (maxEntries - from));
        const keys = new Uint8Array(4 * n);
        const values = new Uint8Array(per * n).fill(0xee);
        m.copyArrayElements(from, n, keys, values);
        const all = [...m.userElements()];
        for (let i = 0; i < n; i++) {
          const [k, v] = all[from + i]!;
          if (Buffer.compare(Buffer.from(k), Buffer.from(keys.subarray(4 * i, 4 * i + 4))) !== 0) return false;
          if (Buffer.compare(Buffer.from(v), Buffer.from(values.subarray(per * i, per * (i + 1)))) !== 0) return false;
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});
