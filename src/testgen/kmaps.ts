// The maps of a loaded object as difftest and check-semantics use them: element lookups, writes,
// removal, and chunked reads that never hold a whole map in memory (through the object's map fds,
// LoadedObject.mapFd, and the kernel layer's MapHandle), with a fallback through
// LoadedObject.readMap when a map's fd cannot be had (it reads a map whole).
//
// Values are "raw": as the syscalls see them, per-CPU maps holding every possible CPU's value, each
// padded to 8 bytes (the interpreter's snapshot format and MapInit's).
import { MapHandle, openLoaded, type LoadedObject, type MapChunk, type MapInfo, type VerifyOptions } from '../kernel/index.js';
import { K2Error } from '../util/errors.js';
import { toHex } from '../interp/index.js';

/** Maps with more elements than this are "big": never reset or read whole after every session. */
export const BIG_MAP_ENTRIES = 4096;

/** Map types difftest and check-semantics read and write element by element. */
export const COMPARED_MAP_TYPES = new Set([1, 2, 5, 6, 9, 10, 11]); // hash, array, percpu hash/array, lru hash/percpu, lpm trie

export interface KMap {
  readonly info: MapInfo;
  /** Raw value bytes of one element. */
  readonly valueBytes: number;
  readonly isArray: boolean;
  /** maxEntries > BIG_MAP_ENTRIES. */
  readonly big: boolean;
  lookup(key: Uint8Array): Promise<Uint8Array | null>;
  write(key: Uint8Array, value: Uint8Array): Promise<void>;
  /** Deletes the element (arrays: zeroes it). */
  remove(key: Uint8Array): Promise<void>;
  /** Every element, a chunk at a time (buffers may be reused between chunks: copy what you keep). */
  chunks(): AsyncIterable<MapChunk>;
}

const stride = (valueSize: number): number => Math.ceil(valueSize / 8) * 8;

class FdMap implements KMap {
  readonly valueBytes: number;
  readonly isArray: boolean;
  readonly big: boolean;
  constructor(
    readonly info: MapInfo,
    private readonly h: MapHandle,
  ) {
    this.valueBytes = h.valueBytes;
    this.isArray = h.isArray;
    this.big = info.maxEntries > BIG_MAP_ENTRIES;
  }
  async lookup(key: Uint8Array): Promise<Uint8Array | null> {
    return this.h.lookup(key);
  }
  async write(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.h.update(key, value);
  }
  async remove(key: Uint8Array): Promise<void> {
    this.h.delete(key);
  }
  async *chunks(): AsyncIterable<MapChunk> {
    yield* this.h.chunks();
  }
}

/** Through LoadedObject's whole-map calls (fallback). */
class LoadedMap implements KMap {
  readonly valueBytes: number;
  readonly isArray: boolean;
  readonly big: boolean;
  private readonly ncpu: number;
  constructor(
    readonly info: MapInfo,
    private readonly k: LoadedObject,
    ncpu: number,
  ) {
    this.ncpu = info.perCpu ? ncpu : 1;
    this.valueBytes = info.perCpu ? stride(info.valueSize) * this.ncpu : info.valueSize;
    this.isArray = info.typeId === 2 || info.typeId === 6;
    this.big = info.maxEntries > BIG_MAP_ENTRIES;
  }
  private raw(e: { value: Uint8Array; perCpu?: Uint8Array[] }): Buffer {
    if (!this.info.perCpu) return Buffer.from(e.value);
    const v = Buffer.alloc(this.valueBytes);
    const s = stride(this.info.valueSize);
    (e.perCpu ?? [e.value]).forEach((x, c) => v.set(x, c * s));
    return v;
  }
  async lookup(key: Uint8Array): Promise<Uint8Array | null> {
    const want = toHex(key);
    const e = (await this.k.readMap(this.info.name)).find((x) => toHex(x.key) === want);
    return e ? this.raw(e) : null;
  }
  async write(key: Uint8Array, value: Uint8Array): Promise<void> {
    const s = stride(this.info.valueSize);
    const perCpu = this.info.perCpu ? Array.from({ length: this.ncpu }, (_, c) => value.slice(c * s, c * s + this.info.valueSize)) : undefined;
    await this.k.writeMap(this.info.name, [{ key, value: perCpu ? perCpu[0]! : value, ...(perCpu ? { perCpu } : {}) }]);
  }
  async remove(key: Uint8Array): Promise<void> {
    if (this.isArray) return this.write(key, new Uint8Array(this.valueBytes));
    // No single-element delete in LoadedObject: rewrite the map without the element.
    const want = toHex(key);
    const rest = (await this.k.readMap(this.info.name)).filter((x) => toHex(x.key) !== want);
    await this.k.clearMap(this.info.name);
    if (rest.length) await this.k.writeMap(this.info.name, rest);
  }
  async *chunks(): AsyncIterable<MapChunk> {
    const all = await this.k.readMap(this.info.name);
    if (!all.length) return;
    const ks = this.info.keySize;
    const keys = Buffer.alloc(ks * all.length);
    const values = Buffer.alloc(this.valueBytes * all.length);
    all.forEach((e, i) => {
      keys.set(e.key, i * ks);
      values.set(this.raw(e), i * this.valueBytes);
    });
    yield { n: all.length, keys, values };
  }
}

/** A loaded object with its maps as KMaps (by libbpf map name). */
export interface KObject {
  k: LoadedObject;
  maps: Map<string, KMap>;
  /** How the maps are reached: 'fd' (bounded memory) or 'loader' (whole-map reads). */
  access: 'fd' | 'loader';
}

export async function openKObject(file: string, ncpu: number, opts: VerifyOptions = {}): Promise<KObject> {
  const k = await openLoaded(file, opts);
  try {
    return await kobjectOf(k, ncpu);
  } catch (e) {
    await k.close();
    throw e;
  }
}

/** The fd of map `name`, or null when this loader cannot give one (bpftool without libbpf.so). */
function fdOf(k: LoadedObject, name: string): number | null {
  try {
    return k.mapFd(name);
  } catch (e) {
    if (e instanceof K2Error && e.kind === 'tool') return null;
    throw e;
  }
}

export async function kobjectOf(k: LoadedObject, ncpu: number): Promise<KObject> {
  const maps = new Map<string, KMap>();
  let access: 'fd' | 'loader' = 'fd';
  for (const info of await k.maps()) {
    if (!COMPARED_MAP_TYPES.has(info.typeId)) continue;
    const fd = fdOf(k, info.name);
    if (fd !== null) maps.set(info.name, new FdMap(info, new MapHandle(info, fd)));
    else {
      maps.set(info.name, new LoadedMap(info, k, ncpu));
      access = 'loader';
    }
  }
  return { k, maps, access };
}

export const isZero = (b: Uint8Array): boolean => {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
};

/** A growable run of fixed-size keys (no JS object per key). */
export class KeyList {
  private buf: Buffer;
  n = 0;
  constructor(readonly keySize: number) {
    this.buf = Buffer.alloc(Math.max(1, keySize) * 16);
  }
  push(key: Uint8Array): void {
    if ((this.n + 1) * this.keySize > this.buf.length) {
      const b = Buffer.alloc(this.buf.length * 2);
      this.buf.copy(b);
      this.buf = b;
    }
    this.buf.set(key, this.n * this.keySize);
    this.n++;
  }
  at(i: number): Buffer {
    return this.buf.subarray(i * this.keySize, (i + 1) * this.keySize);
  }
}
