// Concrete models of BPF maps as a program sees them through helpers, with the kernel's error codes.
import type { MapSnapshot } from './outcome.js';
import { toHex } from './outcome.js';

export const MAP_TYPE = {
  HASH: 1, ARRAY: 2, PROG_ARRAY: 3, PERF_EVENT_ARRAY: 4, PERCPU_HASH: 5, PERCPU_ARRAY: 6, STACK_TRACE: 7,
  CGROUP_ARRAY: 8, LRU_HASH: 9, LRU_PERCPU_HASH: 10, LPM_TRIE: 11, ARRAY_OF_MAPS: 12, HASH_OF_MAPS: 13,
  DEVMAP: 14, SOCKMAP: 15, CPUMAP: 16, XSKMAP: 17, SOCKHASH: 18, QUEUE: 22, STACK: 23, DEVMAP_HASH: 25, RINGBUF: 27,
} as const;

export const ERRNO = { ENOENT: 2, E2BIG: 7, EFAULT: 14, EEXIST: 17, EINVAL: 22, ENOSPC: 28, EOPNOTSUPP: 95 } as const;
export const UPDATE = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

/** What the interpreter needs to know about a map (a MapDef, or a global data section seen as a map). */
export interface MapSpec {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  readonly?: boolean; // .rodata: the program may not write its values
}

const isPercpu = (t: number): boolean => t === MAP_TYPE.PERCPU_ARRAY || t === MAP_TYPE.PERCPU_HASH || t === MAP_TYPE.LRU_PERCPU_HASH;
const isHash = (t: number): boolean =>
  t === MAP_TYPE.HASH || t === MAP_TYPE.PERCPU_HASH || t === MAP_TYPE.LRU_HASH || t === MAP_TYPE.LRU_PERCPU_HASH;
const isArrayLike = (t: number): boolean => t === MAP_TYPE.ARRAY || t === MAP_TYPE.PERCPU_ARRAY;

/** Maps whose contents the interpreter models (lookup/update/delete and snapshots). */
export const modelledMapType = (t: number): boolean =>
  isArrayLike(t) || isHash(t) || t === MAP_TYPE.LPM_TRIE || t === MAP_TYPE.PROG_ARRAY || t === MAP_TYPE.PERF_EVENT_ARRAY ||
  t === MAP_TYPE.RINGBUF || t === MAP_TYPE.DEVMAP || t === MAP_TYPE.DEVMAP_HASH || t === MAP_TYPE.CPUMAP || t === MAP_TYPE.XSKMAP;

/** Per-CPU value stride in the user-space view: each CPU's value rounded up to 8 bytes. */
export const percpuStride = (valueSize: number): number => (valueSize + 7) & ~7;

const keyOf = (b: Uint8Array): string => toHex(b);

/**
 * One map's contents. Values are Uint8Arrays that stay put while their element lives, so a value
 * pointer handed to a program aliases the map's storage like in the kernel.
 */
export class MapState {
  readonly spec: MapSpec;
  readonly ncpu: number;
  /** Array maps: one buffer per CPU of maxEntries * valueSize. */
  private arr: Uint8Array[] = [];
  /** Hash/LPM maps: key hex → [key bytes, value bytes (ncpu values for per-CPU maps)]. Insertion order = LRU order. */
  private table = new Map<string, [Uint8Array, Uint8Array]>();
  /** Set when a program looked up (and so may have written), updated or deleted an element. */
  touched = false;
  /** When set, the keys (hex) a program looked up, updated or deleted (for comparing big maps key by key). */
  touchedKeys: Set<string> | null = null;
  /** prog_array: index → program name. */
  readonly progs = new Map<number, string>();

  constructor(spec: MapSpec, ncpu: number) {
    this.spec = spec;
    this.ncpu = isPercpu(spec.type) ? ncpu : 1;
    if (isArrayLike(spec.type)) {
      for (let c = 0; c < this.ncpu; c++) this.arr.push(new Uint8Array(spec.maxEntries * spec.valueSize));
    }
  }

  get type(): number {
    return this.spec.type;
  }

  /** The value a program's lookup sees on `cpu`, or null. */
  lookup(key: Uint8Array, cpu = 0): Uint8Array | null {
    const { type, valueSize, maxEntries } = this.spec;
    this.touched = true;
    this.touchedKeys?.add(keyOf(key.subarray(0, this.spec.keySize)));
    if (isArrayLike(type)) {
      const i = u32(key);
      if (i >= maxEntries) return null;
      return this.arr[this.cpuIndex(cpu)]!.subarray(i * valueSize, (i + 1) * valueSize);
    }
    if (isHash(type)) {
      const k = keyOf(key);
      const e = this.table.get(k);
      if (!e) return null;
      if (type === MAP_TYPE.LRU_HASH || type === MAP_TYPE.LRU_PERCPU_HASH) {
        this.table.delete(k);
        this.table.set(k, e);
      }
      const c = this.cpuIndex(cpu);
      return e[1].subarray(c * valueSize, (c + 1) * valueSize);
    }
    if (type === MAP_TYPE.LPM_TRIE) return this.lpmLookup(key);
    return null;
  }

  /** Helper bpf_map_update_elem from a program: 0 or a negative errno. */
  update(key: Uint8Array, value: Uint8Array, flags: number, cpu = 0): number {
    const { type, valueSize, maxEntries } = this.spec;
    this.touched = true;
    this.touchedKeys?.add(keyOf(key.subarray(0, this.spec.keySize)));
    if (isArrayLike(type)) {
      if (flags > UPDATE.EXIST) return -ERRNO.EINVAL;
      const i = u32(key);
      if (i >= maxEntries) return -ERRNO.E2BIG;
      if (flags === UPDATE.NOEXIST) return -ERRNO.EEXIST;
      this.arr[this.cpuIndex(cpu)]!.set(value.subarray(0, valueSize), i * valueSize);
      return 0;
    }
    if (isHash(type)) {
      if (flags > UPDATE.EXIST) return -ERRNO.EINVAL;
      const k = keyOf(key);
      const old = this.table.get(k);
      if (old && flags === UPDATE.NOEXIST) return -ERRNO.EEXIST;
      if (!old && flags === UPDATE.EXIST) return -ERRNO.ENOENT;
      const lru = type === MAP_TYPE.LRU_HASH || type === MAP_TYPE.LRU_PERCPU_HASH;
      if (!old && this.table.size >= maxEntries) {
        if (!lru) return -ERRNO.E2BIG;
        const oldest = this.table.keys().next().value as string;
        this.table.delete(oldest);
      }
      const c = this.cpuIndex(cpu);
      let buf: Uint8Array;
      if (isPercpu(type)) {
        // An update from a program writes this CPU's value; a new element starts zeroed on the others.
        buf = old ? old[1] : new Uint8Array(valueSize * this.ncpu);
        buf.set(value.subarray(0, valueSize), c * valueSize);
      } else {
        // The kernel replaces the element: a pointer to the old value no longer sees the map.
        buf = new Uint8Array(valueSize);
        buf.set(value.subarray(0, valueSize));
      }
      if (old) this.table.delete(k);
      this.table.set(k, [copy(key), buf]);
      return 0;
    }
    if (type === MAP_TYPE.LPM_TRIE) return this.lpmUpdate(key, value, flags);
    return -ERRNO.EINVAL;
  }

  /** Helper bpf_map_delete_elem: 0 or a negative errno. */
  delete(key: Uint8Array): number {
    const { type } = this.spec;
    this.touched = true;
    this.touchedKeys?.add(keyOf(key.subarray(0, this.spec.keySize)));
    if (isArrayLike(type)) return -ERRNO.EINVAL;
    if (isHash(type)) return this.table.delete(keyOf(key)) ? 0 : -ERRNO.ENOENT;
    if (type === MAP_TYPE.LPM_TRIE) {
      const n = this.lpmNormal(key);
      if (n === null) return -ERRNO.EINVAL;
      return this.table.delete(n) ? 0 : -ERRNO.ENOENT;
    }
    return -ERRNO.EINVAL;
  }

  /** Sets an element from user space (all CPUs for per-CPU maps: `value` holds ncpu strided values). */
  set(key: Uint8Array, value: Uint8Array): void {
    const { type, valueSize } = this.spec;
    if (isArrayLike(type)) {
      const i = u32(key);
      for (let c = 0; c < this.ncpu; c++) {
        const at = isPercpu(type) ? c * percpuStride(valueSize) : 0;
        this.arr[c]!.set(value.subarray(at, at + valueSize), i * valueSize);
      }
      return;
    }
    if (isHash(type)) {
      const buf = new Uint8Array(valueSize * this.ncpu);
      for (let c = 0; c < this.ncpu; c++) {
        const at = isPercpu(type) ? c * percpuStride(valueSize) : 0;
        buf.set(value.subarray(at, at + valueSize), c * valueSize);
      }
      this.table.set(keyOf(key), [copy(key), buf]);
      return;
    }
    if (type === MAP_TYPE.LPM_TRIE) {
      this.lpmUpdate(key, value, UPDATE.ANY);
      return;
    }
    if (type === MAP_TYPE.PROG_ARRAY) throw new Error('use progs.set for prog_array');
  }

  /**
   * Element `key` as user space reads it (bpf_map_lookup_elem from a syscall: exact key, no LRU
   * update; per-CPU values joined, each padded to 8 bytes), or null.
   */
  userLookup(key: Uint8Array): Uint8Array | null {
    const { type, valueSize, maxEntries } = this.spec;
    const stride = isPercpu(type) ? percpuStride(valueSize) : valueSize;
    const out = new Uint8Array(stride * this.ncpu);
    if (isArrayLike(type)) {
      const i = u32(key);
      if (i >= maxEntries) return null;
      for (let c = 0; c < this.ncpu; c++) out.set(this.arr[c]!.subarray(i * valueSize, (i + 1) * valueSize), c * stride);
      return out;
    }
    let e: [Uint8Array, Uint8Array] | undefined;
    if (isHash(type)) e = this.table.get(keyOf(key));
    else if (type === MAP_TYPE.LPM_TRIE) {
      const n = this.lpmNormal(key);
      e = n === null ? undefined : this.table.get(n);
    }
    if (!e) return null;
    for (let c = 0; c < this.ncpu; c++) out.set(e[1].subarray(c * valueSize, (c + 1) * valueSize), c * stride);
    return out;
  }

  /** Deletes an element from user space (arrays: zeroes it). */
  userDelete(key: Uint8Array): void {
    const { type, valueSize, maxEntries } = this.spec;
    if (isArrayLike(type)) {
      const i = u32(key);
      if (i < maxEntries) for (const a of this.arr) a.fill(0, i * valueSize, (i + 1) * valueSize);
      return;
    }
    if (isHash(type)) this.table.delete(keyOf(key));
    else if (type === MAP_TYPE.LPM_TRIE) {
      const n = this.lpmNormal(key);
      if (n !== null) this.table.delete(n);
    }
  }

  /**
   * Array maps: elements [from, from + n) as user space reads them, written into `keys` (u32
   * indexes) and `values` (userLookup's layout, back to back) — a whole run in one copy.
   */
  copyArrayElements(from: number, n: number, keys: Uint8Array, values: Uint8Array): void {
    const { type, valueSize } = this.spec;
    const kv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
    for (let i = 0; i < n; i++) kv.setUint32(i * 4, from + i, true);
    if (!isPercpu(type)) {
      values.set(this.arr[0]!.subarray(from * valueSize, (from + n) * valueSize));
      return;
    }
    const stride = percpuStride(valueSize);
    const per = stride * this.ncpu;
    values.fill(0, 0, n * per);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < this.ncpu; c++) values.set(this.arr[c]!.subarray((from + i) * valueSize, (from + i + 1) * valueSize), i * per + c * stride);
    }
  }

  /** Every element as user space iterates it (arrays: every index), in `[key, value]` pairs as userLookup gives them. */
  *userElements(): Generator<[Uint8Array, Uint8Array]> {
    const { type, keySize, maxEntries } = this.spec;
    if (isArrayLike(type)) {
      for (let i = 0; i < maxEntries; i++) {
        const k = new Uint8Array(keySize);
        new DataView(k.buffer).setUint32(0, i, true);
        yield [k, this.userLookup(k)!];
      }
      return;
    }
    if (!isHash(type) && type !== MAP_TYPE.LPM_TRIE) return;
    for (const [key] of [...this.table.values()]) {
      const v = this.userLookup(key);
      if (v) yield [key, v];
    }
  }

  /** Same contents as `other` (same spec assumed): a byte comparison, no snapshot of every element. */
  sameContents(other: MapState): boolean {
    if (this.arr.length !== other.arr.length || this.table.size !== other.table.size) return false;
    for (let c = 0; c < this.arr.length; c++) if (Buffer.compare(this.arr[c]!, other.arr[c]!) !== 0) return false;
    for (const [k, [, v]] of this.table) {
      const w = other.table.get(k);
      if (!w || Buffer.compare(v, w[1]) !== 0) return false;
    }
    return true;
  }

  /** Contents as user space reads them, sorted by key. */
  snapshot(): MapSnapshot {
    const { type, valueSize, maxEntries, keySize } = this.spec;
    const entries: [string, string][] = [];
    const stride = isPercpu(type) ? percpuStride(valueSize) : valueSize;
    if (isArrayLike(type)) {
      for (let i = 0; i < maxEntries; i++) {
        const v = new Uint8Array(stride * this.ncpu);
        for (let c = 0; c < this.ncpu; c++) v.set(this.arr[c]!.subarray(i * valueSize, (i + 1) * valueSize), c * stride);
        const k = new Uint8Array(keySize);
        new DataView(k.buffer).setUint32(0, i, true);
        entries.push([toHex(k), toHex(v)]);
      }
    } else if (isHash(type) || type === MAP_TYPE.LPM_TRIE) {
      for (const [key, val] of this.table.values()) {
        const v = new Uint8Array(stride * this.ncpu);
        for (let c = 0; c < this.ncpu; c++) v.set(val.subarray(c * valueSize, (c + 1) * valueSize), c * stride);
        entries.push([toHex(key), toHex(v)]);
      }
      entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    }
    return { name: this.spec.name, type, entries };
  }

  /** A deep copy (for running many inputs from one initial state). */
  clone(): MapState {
    const m = new MapState(this.spec, this.ncpu);
    m.arr = this.arr.map((a) => a.slice());
    for (const [k, [kb, vb]] of this.table) m.table.set(k, [kb.slice(), vb.slice()]);
    for (const [i, p] of this.progs) m.progs.set(i, p);
    return m;
  }

  private cpuIndex(cpu: number): number {
    return this.ncpu === 1 ? 0 : cpu % this.ncpu;
  }

  // LPM trie: key = { u32 prefixlen (host order); u8 data[keySize - 4] }.
  private lpmNormal(key: Uint8Array): string | null {
    const bits = 8 * (this.spec.keySize - 4);
    const plen = u32(key);
    if (plen > bits) return null;
    const d = copy(key.subarray(4, this.spec.keySize));
    for (let i = 0; i < d.length; i++) {
      const keep = Math.max(0, Math.min(8, plen - 8 * i));
      d[i]! &= (0xff00 >> keep) & 0xff;
    }
    return `${plen}:${toHex(d)}`;
  }

  private lpmUpdate(key: Uint8Array, value: Uint8Array, flags: number): number {
    if (flags > UPDATE.EXIST) return -ERRNO.EINVAL;
    const n = this.lpmNormal(key);
    if (n === null) return -ERRNO.EINVAL;
    const old = this.table.get(n);
    if (old && flags === UPDATE.NOEXIST) return -ERRNO.EEXIST;
    if (!old && flags === UPDATE.EXIST) return -ERRNO.ENOENT;
    if (!old && this.table.size >= this.spec.maxEntries) return -ERRNO.ENOSPC;
    const buf = new Uint8Array(this.spec.valueSize);
    buf.set(value.subarray(0, this.spec.valueSize));
    this.table.delete(n);
    this.table.set(n, [copy(key.subarray(0, this.spec.keySize)), buf]);
    return 0;
  }

  private lpmLookup(key: Uint8Array): Uint8Array | null {
    const qlen = Math.min(u32(key), 8 * (this.spec.keySize - 4));
    let best: Uint8Array | null = null;
    let bestLen = -1;
    for (const [k, [kb, vb]] of this.table) {
      const plen = Number(k.slice(0, k.indexOf(':')));
      if (plen > qlen || plen <= bestLen) continue;
      if (prefixMatch(kb, key, plen)) {
        best = vb;
        bestLen = plen;
      }
    }
    return best;
  }
}

function prefixMatch(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff00 >> bits) & 0xff;
    if (((a[4 + i]! ^ b[4 + i]!) & mask) !== 0) return false;
  }
  return true;
}

const u32 = (b: Uint8Array): number => (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;

/** A copy that never shares memory (Buffer#slice would). */
const copy = (b: Uint8Array): Uint8Array => Uint8Array.prototype.slice.call(b);
