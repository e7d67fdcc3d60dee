// Comparing and resetting kernel maps a chunk at a time (never a whole big map in memory).
//
// Three-way comparison: the original twice (a1, a2: what differs between them is nondeterministic)
// and the other object (b). Two-way comparison (check-semantics: kernel vs interpreter) passes a1 as
// a2. Arrays are walked in lockstep (index order); hash maps by looking up each element of one map
// in the others; LPM tries (whose lookup matches prefixes, not keys) by reading them whole — they
// hold only what the inputs inserted.
import { toHex } from '../interp/index.js';
import type { MapChunk } from '../kernel/index.js';
import { isZero, KeyList, type KMap } from './kmaps.js';
import { diffOffsets, without } from './nondet.js';

export interface CompareSink {
  /** `field` differed between the two runs of the original (offsets null: all of it / the key set). */
  nondet(field: string, offsets: number[] | null): void;
  /** `field` differs between the original (a) and the other (b), outside what a1/a2 showed nondeterministic. */
  diff(field: string, offsets: number[] | null, a: unknown, b: unknown): void;
}

const LPM_TRIE = 11;

/** A cursor over a map's chunks, handing out runs of elements (views valid until the next call). */
class Cursor {
  private it: AsyncIterator<MapChunk>;
  private cur: MapChunk | null = null;
  private pos = 0;
  private done = false;
  constructor(
    m: KMap,
    private readonly ks: number,
    private readonly vs: number,
  ) {
    this.it = m.chunks()[Symbol.asyncIterator]();
  }
  /** Makes sure a chunk with elements left is at hand; false when the map is exhausted. */
  async fill(): Promise<boolean> {
    while (!this.cur || this.pos >= this.cur.n) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      this.cur = r.value;
      this.pos = 0;
    }
    return true;
  }
  /** Elements left in the chunk at hand. */
  get buffered(): number {
    return this.cur ? this.cur.n - this.pos : 0;
  }
  /** The next `n` elements (n <= buffered). */
  take(n: number): { n: number; keys: Buffer; values: Buffer } {
    const c = this.cur!;
    const keys = c.keys.subarray(this.pos * this.ks, (this.pos + n) * this.ks);
    const values = c.values.subarray(this.pos * this.vs, (this.pos + n) * this.vs);
    this.pos += n;
    return { n, keys, values };
  }
}

const entry = (key: Uint8Array, value: Uint8Array | null): { key: string; value: string | null } => ({ key: toHex(key), value: value ? toHex(value) : null });

/** One element present on both sides: its value difference outside the a1/a2 mask. */
function compareValues(field: string, key: Uint8Array, v1: Uint8Array, v2: Uint8Array | null, vb: Uint8Array, sink: CompareSink): void {
  const mask = v2 ? diffOffsets(v1, v2) : [];
  if (mask && mask.length) sink.nondet(field, mask);
  if (Buffer.compare(v1, vb) === 0) return;
  const d = diffOffsets(v1, vb)!;
  const rest = without(d, mask);
  if (rest.length) sink.diff(field, rest, entry(key, v1), entry(key, vb));
  else sink.diff(field, d, entry(key, v1), entry(key, vb)); // inside the mask: the sink excuses it
}

/** Arrays: index by index, the three in lockstep. */
async function compareArrays(name: string, m1: KMap, m2: KMap, mb: KMap, sink: CompareSink): Promise<void> {
  const ks = m1.info.keySize;
  const vs = m1.valueBytes;
  const field = `map ${name} value`;
  const c1 = new Cursor(m1, ks, vs);
  const c2 = m2 === m1 ? null : new Cursor(m2, ks, vs);
  const cb = new Cursor(mb, ks, vs);
  const cursors = [c1, c2, cb].filter((c): c is Cursor => !!c);
  for (;;) {
    // As many elements as every cursor has at hand (whole chunks when they line up).
    const more = await Promise.all(cursors.map((c) => c.fill()));
    if (!more.every((x) => x)) {
      if (more.some((x) => x)) throw new Error(`map ${name}: arrays of different lengths`);
      return;
    }
    const n = Math.min(...cursors.map((c) => c.buffered));
    const r1 = c1.take(n);
    const r2 = c2 ? c2.take(n) : r1;
    const rb = cb.take(n);
    if (Buffer.compare(r1.values, rb.values) === 0 && (r2 === r1 || Buffer.compare(r1.values, r2.values) === 0)) continue;
    for (let i = 0; i < n; i++) {
      const v1 = r1.values.subarray(i * vs, (i + 1) * vs);
      const v2 = r2.values.subarray(i * vs, (i + 1) * vs);
      const vb = rb.values.subarray(i * vs, (i + 1) * vs);
      if (Buffer.compare(v1, vb) === 0 && Buffer.compare(v1, v2) === 0) continue;
      compareValues(field, r1.keys.subarray(i * ks, (i + 1) * ks), v1, r2 === r1 ? null : v2, vb, sink);
    }
  }
}

async function* elements(m: KMap): AsyncGenerator<{ key: Buffer; value: Buffer }> {
  const ks = m.info.keySize;
  const vs = m.valueBytes;
  for await (const c of m.chunks()) {
    for (let i = 0; i < c.n; i++) yield { key: Buffer.from(c.keys.subarray(i * ks, (i + 1) * ks)), value: Buffer.from(c.values.subarray(i * vs, (i + 1) * vs)) };
  }
}

/** Hash maps: each element of one side looked up in the others (keys are exact in a hash map). */
async function compareHashes(name: string, m1: KMap, m2: KMap, mb: KMap, sink: CompareSink): Promise<void> {
  const field = `map ${name} value`;
  const keys = `map ${name} keys`;
  const two = m2 === m1;
  for await (const { key, value: v1 } of elements(m1)) {
    const v2 = two ? null : await m2.lookup(key);
    if (!two && !v2) sink.nondet(keys, null);
    const vb = await mb.lookup(key);
    if (!vb) {
      sink.diff(keys, null, entry(key, v1), entry(key, null));
      continue;
    }
    compareValues(field, key, v1, v2, vb, sink);
  }
  for await (const { key, value: vb } of elements(mb)) {
    if (await m1.lookup(key)) continue;
    const v2 = two ? null : await m2.lookup(key);
    if (v2) sink.nondet(keys, null);
    sink.diff(keys, null, entry(key, null), entry(key, vb));
  }
  if (two) return;
  for await (const { key } of elements(m2)) if (!(await m1.lookup(key))) sink.nondet(keys, null);
}

async function wholeMap(m: KMap): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const e of elements(m)) out.set(toHex(e.key), e.value);
  return out;
}

/** LPM tries: read whole (lookups match prefixes), compared by key. */
async function compareWhole(name: string, m1: KMap, m2: KMap, mb: KMap, sink: CompareSink): Promise<void> {
  const field = `map ${name} value`;
  const keys = `map ${name} keys`;
  const e1 = await wholeMap(m1);
  const e2 = m2 === m1 ? null : await wholeMap(m2);
  const eb = await wholeMap(mb);
  if (e2 && (e2.size !== e1.size || [...e1.keys()].some((k) => !e2.has(k)))) sink.nondet(keys, null);
  for (const [k, v1] of e1) {
    const vb = eb.get(k);
    const key = Buffer.from(k, 'hex');
    if (!vb) sink.diff(keys, null, entry(key, v1), entry(key, null));
    else compareValues(field, key, v1, e2?.get(k) ?? null, vb, sink);
  }
  for (const [k, vb] of eb) if (!e1.has(k)) sink.diff(keys, null, entry(Buffer.from(k, 'hex'), null), entry(Buffer.from(k, 'hex'), vb));
}

/** Compares map `name` of the original (m1, m2: two runs; m2 === m1 for two-way) with mb. */
export async function compareMap(name: string, m1: KMap, m2: KMap, mb: KMap, sink: CompareSink): Promise<void> {
  if (m1.isArray) return compareArrays(name, m1, m2, mb, sink);
  if (m1.info.typeId === LPM_TRIE) return compareWhole(name, m1, m2, mb, sink);
  return compareHashes(name, m1, m2, mb, sink);
}

/**
 * Empties a map (hash: deletes every element; array: zeroes every non-zero element), then writes
 * `entries`. `base` (a global data section's initial bytes) is element 0's value instead of zero.
 */
export async function resetMap(m: KMap, entries: { key: Uint8Array; value: Uint8Array }[], base: Uint8Array | null = null): Promise<void> {
  const dirty = new KeyList(m.info.keySize);
  const vs = m.valueBytes;
  const ks = m.info.keySize;
  for await (const c of m.chunks()) {
    for (let i = 0; i < c.n; i++) {
      if (m.isArray && isZero(c.values.subarray(i * vs, (i + 1) * vs))) continue;
      dirty.push(c.keys.subarray(i * ks, (i + 1) * ks));
    }
  }
  for (let i = 0; i < dirty.n; i++) await m.remove(dirty.at(i));
  if (base) await m.write(new Uint8Array(ks), base);
  for (const e of entries) await m.write(e.key, e.value);
}
