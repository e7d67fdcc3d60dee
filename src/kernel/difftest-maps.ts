// Direct, bounded-memory access to the maps of a loaded object, for `k2 difftest` and
// `k2 check-semantics` (src/testgen): element lookups, chunked reads (BPF_MAP_LOOKUP_BATCH where the
// map type has it, else get_next_key + lookup), updates and deletes, without ever holding a whole
// map in memory (LoadedObject.readMap returns every element at once: fine for small maps, not for
// a million-entry array).
//
// A handle works on a map fd the LoadedObject owns (LoadedObject.mapFd): it must not be used after
// the object's close().
import { libbpf, type LibbpfApi } from './libbpf.js';
import { K2Error } from '../util/errors.js';
import type { MapInfo } from './types.js';

const ENOENT = 2;

/** Map types BPF_MAP_LOOKUP_BATCH reads (kernel: array_map_ops / htab ops .map_lookup_batch). */
const BATCH_TYPES = new Set([1, 2, 5, 6, 9, 10]); // hash, array, percpu_hash, percpu_array, lru_hash, lru_percpu_hash
const ARRAY_TYPES = new Set([2, 6]);

type BatchFn = (fd: number, inBatch: Buffer | null, outBatch: Buffer, keys: Buffer, values: Buffer, count: Uint32Array, opts: null) => number;
let batchFn: BatchFn | null | undefined;

function lookupBatch(api: LibbpfApi): BatchFn | null {
  if (batchFn !== undefined) return batchFn;
  try {
    const lib = api.koffi.load(api.path);
    const f = lib.func('int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, const void *opts)');
    batchFn = (fd, inBatch, outBatch, keys, values, count, opts) => f(fd, inBatch, outBatch, keys, values, count, opts) as number;
  } catch {
    batchFn = null;
  }
  return batchFn;
}

/** One chunk of elements: `n` keys of keySize bytes and `n` values of valueBytes bytes, back to back. */
export interface MapChunk {
  n: number;
  keys: Buffer;
  values: Buffer;
}

/** A map of a loaded object, read and written element by element or chunk by chunk. */
export class MapHandle {
  readonly ncpu: number;
  /** Bytes of one element's value as the syscalls see it (per-CPU: every CPU, each padded to 8). */
  readonly valueBytes: number;
  readonly isArray: boolean;
  private readonly api: LibbpfApi;
  constructor(
    readonly info: MapInfo,
    readonly fd: number,
  ) {
    this.api = libbpf();
    this.ncpu = info.perCpu ? this.api.numPossibleCpus() : 1;
    this.valueBytes = info.perCpu ? Math.ceil(info.valueSize / 8) * 8 * this.ncpu : info.valueSize;
    this.isArray = ARRAY_TYPES.has(info.typeId);
  }

  private fail(what: string, rc: number): never {
    throw new K2Error('input', `${what} map '${this.info.name}': ${this.api.strerror(-rc)}`);
  }

  lookup(key: Uint8Array): Buffer | null {
    const v = Buffer.alloc(this.valueBytes);
    const rc = this.api.mapLookup(this.fd, Buffer.from(key.buffer, key.byteOffset, key.length), v);
    if (rc === 0) return v;
    if (-rc === ENOENT) return null;
    return this.fail('reading', rc);
  }

  update(key: Uint8Array, value: Uint8Array): void {
    if (value.length !== this.valueBytes) throw new K2Error('internal', `map '${this.info.name}': value of ${value.length} bytes, want ${this.valueBytes}`);
    const rc = this.api.mapUpdate(this.fd, Buffer.from(key.buffer, key.byteOffset, key.length), Buffer.from(value.buffer, value.byteOffset, value.length), 0);
    if (rc !== 0) this.fail('writing', rc);
  }

  /** Deletes one element (arrays: zeroes it). */
  delete(key: Uint8Array): void {
    if (this.isArray) return this.update(key, new Uint8Array(this.valueBytes));
    const rc = this.api.mapDelete(this.fd, Buffer.from(key.buffer, key.byteOffset, key.length));
    if (rc !== 0 && -rc !== ENOENT) this.fail('deleting from', rc);
  }

  /** Every element, `chunk` at a time; the buffers are reused from one chunk to the next. */
  *chunks(max = 8192): Generator<MapChunk> {
    const api = this.api;
    // Buffers no bigger than the map (most maps hold a handful of elements: allocating 8192 slots
    // per read was most of check-semantics' time).
    const chunk = Math.max(1, Math.min(max, this.info.maxEntries));
    const ks = this.info.keySize;
    const keys = Buffer.alloc(ks * chunk);
    const values = Buffer.alloc(this.valueBytes * chunk);
    const batch = BATCH_TYPES.has(this.info.typeId) ? lookupBatch(api) : null;
    if (batch) {
      const token = [Buffer.alloc(Math.max(8, ks)), Buffer.alloc(Math.max(8, ks))];
      let first = true;
      let flip = 0;
      for (;;) {
        const count = new Uint32Array([chunk]);
        const rc = batch(this.fd, first ? null : token[flip]!, token[1 - flip]!, keys, values, count, null);
        if (rc !== 0 && -rc !== ENOENT) {
          if (first) break; // not supported here: fall back to element by element
          this.fail('reading', rc);
        }
        if (count[0]! > 0) yield { n: count[0]!, keys, values };
        if (rc !== 0) return;
        first = false;
        flip = 1 - flip;
      }
    }
    // get_next_key + lookup.
    const key = Buffer.alloc(ks);
    const next = Buffer.alloc(ks);
    const value = Buffer.alloc(this.valueBytes);
    let n = 0;
    let started = false;
    for (let guard = 0; guard <= this.info.maxEntries + 1; guard++) {
      const rc = api.mapNextKey(this.fd, started ? key : null, next);
      if (rc !== 0) {
        if (-rc === ENOENT) break;
        this.fail('reading', rc);
      }
      started = true;
      next.copy(key);
      const lr = api.mapLookup(this.fd, key, value);
      if (lr !== 0) {
        if (-lr === ENOENT) continue; // deleted meanwhile
        this.fail('reading', lr);
      }
      key.copy(keys, n * ks);
      value.copy(values, n * this.valueBytes);
      if (++n === chunk) {
        yield { n, keys, values };
        n = 0;
      }
    }
    if (n > 0) yield { n, keys, values };
  }

  /** Number of elements (arrays: max_entries). */
  count(): number {
    if (this.isArray) return this.info.maxEntries;
    let n = 0;
    for (const c of this.chunks()) n += c.n;
    return n;
  }
}
