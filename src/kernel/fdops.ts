// Test runs and map access on raw fds, shared by every in-process loader (libbpf objects and k2's
// legacy-maps loader): the caller owns the fds; nothing here opens or closes one.
import { K2Error } from '../util/errors.js';
import { LAYOUT, type LibbpfApi, type Ptr } from './libbpf.js';
import { errnoName } from './fixups.js';
import type { MapEntry, MapInfo, RunInput, RunResult } from './types.js';

const ENOENT = 2;

export const PERCPU_MAP_TYPES = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage']);
export const KEYLESS_MAP_TYPES = new Set(['ringbuf', 'user_ringbuf', 'queue', 'stack', 'perf_event_array', 'prog_array']);

/** BPF_PROG_TEST_RUN of the program behind `fd` (see RunInput for the defaults). */
export function testRunFd(api: LibbpfApi, fd: number, progType: string, progName: string, input: RunInput, file: string): RunResult {
  const dataIn = input.dataIn ?? new Uint8Array(0);
  const dataSizeOut = input.dataSizeOut ?? (dataIn.length ? dataIn.length + 4096 : 0);
  const ctxIn = input.ctxIn ?? null;
  const ctxSizeOut = input.ctxSizeOut ?? (ctxIn ? ctxIn.length : 0);
  const repeat = input.repeat ?? 0; // 0: the kernel runs once (and some types refuse any other value)
  if (!Number.isInteger(repeat) || repeat < 0 || repeat > 0x7fffffff) throw new K2Error('usage', `repeat must be a positive integer (got ${repeat})`);
  const bufs: Ptr[] = [];
  const alloc = (n: number, init?: Uint8Array): Ptr => {
    if (n === 0) return 0n;
    const p = api.calloc(1, n);
    if (!p) throw new K2Error('internal', 'out of memory for test_run buffers');
    bufs.push(p);
    if (init) api.write(p, init);
    return p;
  };
  try {
    const o = Buffer.alloc(LAYOUT.testRunOptsSize);
    o.writeBigUInt64LE(BigInt(LAYOUT.testRunOptsSize), 0);
    o.writeBigUInt64LE(alloc(dataIn.length, dataIn), 8);
    const dataOut = alloc(dataSizeOut);
    o.writeBigUInt64LE(dataOut, 16);
    o.writeUInt32LE(dataIn.length, 24);
    o.writeUInt32LE(dataSizeOut, 28);
    o.writeBigUInt64LE(ctxIn ? alloc(ctxIn.length, ctxIn) : 0n, 32);
    const ctxOut = alloc(ctxSizeOut);
    o.writeBigUInt64LE(ctxOut, 40);
    o.writeUInt32LE(ctxIn ? ctxIn.length : 0, 48);
    o.writeUInt32LE(ctxSizeOut, 52);
    o.writeInt32LE(repeat, 60);
    const rc = api.progTestRun(fd, o);
    if (rc !== 0) {
      const errno = -rc;
      const hint =
        errno === 524 || errno === 95 ? `BPF_PROG_TEST_RUN is not supported for ${progType} programs` :
        errno === 22 ? `the kernel refused the run input (for ${progType}: data_in must hold at least an Ethernet header for packet programs; ctx_in must be a valid context layout)` :
        errno === 28 ? `data_out/ctx_out buffer too small (data_size_out ${dataSizeOut})` :
        api.strerror(errno);
      throw new K2Error('input', `test run of '${progName}' failed: ${hint} (${errnoName(errno)})`, { file });
    }
    const outLen = o.readUInt32LE(28);
    const ctxLen = o.readUInt32LE(52);
    return {
      retval: o.readUInt32LE(56),
      durationNs: o.readUInt32LE(64),
      dataOut: api.read(dataOut, Math.min(outLen, dataSizeOut)),
      ctxOut: ctxIn ? api.read(ctxOut, Math.min(ctxLen, ctxSizeOut)) : null,
    };
  } finally {
    for (const b of bufs) api.free(b);
  }
}

/** Every element of the map behind `fd`. */
export function readMapFd(api: LibbpfApi, fd: number, info: MapInfo, file: string): MapEntry[] {
  const name = info.name;
  if (KEYLESS_MAP_TYPES.has(info.type) || info.keySize === 0) throw new K2Error('unsupported', `map '${name}' (${info.type}) cannot be read element by element`, { file });
  const ncpu = info.perCpu ? api.numPossibleCpus() : 1;
  const slot = info.perCpu ? Math.ceil(info.valueSize / 8) * 8 : info.valueSize;
  const key = Buffer.alloc(info.keySize);
  const next = Buffer.alloc(info.keySize);
  const value = Buffer.alloc(slot * ncpu);
  const out: MapEntry[] = [];
  let first = true;
  for (let guard = 0; guard <= Math.max(info.maxEntries, 1) + 1; guard++) {
    const rc = api.mapNextKey(fd, first ? null : key, next);
    if (rc !== 0) {
      if (-rc === ENOENT) break;
      throw new K2Error('input', `reading map '${name}': ${api.strerror(-rc)} (${errnoName(-rc)})`, { file });
    }
    first = false;
    next.copy(key);
    const lr = api.mapLookup(fd, key, value);
    if (lr !== 0) {
      if (-lr === ENOENT) continue;
      throw new K2Error('input', `reading map '${name}': ${api.strerror(-lr)} (${errnoName(-lr)})`, { file });
    }
    const perCpu = info.perCpu ? Array.from({ length: ncpu }, (_, c) => new Uint8Array(value.subarray(c * slot, c * slot + info.valueSize))) : undefined;
    out.push({ key: new Uint8Array(key), value: new Uint8Array(value.subarray(0, info.valueSize)), ...(perCpu ? { perCpu } : {}) });
  }
  return out;
}

/** Creates or overwrites elements (per-CPU maps: `perCpu` if given, else `value` on every CPU). */
export function writeMapFd(api: LibbpfApi, fd: number, info: MapInfo, entries: MapEntry[], file: string): void {
  const name = info.name;
  const ncpu = info.perCpu ? api.numPossibleCpus() : 1;
  const slot = info.perCpu ? Math.ceil(info.valueSize / 8) * 8 : info.valueSize;
  for (const e of entries) {
    if (e.key.length !== info.keySize) throw new K2Error('usage', `map '${name}': key is ${e.key.length} bytes, the map wants ${info.keySize}`);
    const value = Buffer.alloc(slot * ncpu);
    for (let c = 0; c < ncpu; c++) {
      const v = e.perCpu?.[c] ?? e.value;
      if (v.length !== info.valueSize) throw new K2Error('usage', `map '${name}': value is ${v.length} bytes, the map wants ${info.valueSize}`);
      value.set(v, c * slot);
    }
    const rc = api.mapUpdate(fd, Buffer.from(e.key), value, 0);
    if (rc !== 0) throw new K2Error('input', `writing map '${name}': ${api.strerror(-rc)} (${errnoName(-rc)})`, { file });
  }
}

/** Deletes every element (arrays: zeroes every element). */
export function clearMapFd(api: LibbpfApi, fd: number, info: MapInfo, file: string): void {
  if (info.type.includes('array')) {
    // Array elements cannot be deleted: zero them.
    const zero = new Uint8Array(info.valueSize);
    writeMapFd(api, fd, info, readMapFd(api, fd, info, file).map((e) => ({ key: e.key, value: zero })), file);
    return;
  }
  for (const e of readMapFd(api, fd, info, file)) {
    const rc = api.mapDelete(fd, Buffer.from(e.key));
    if (rc !== 0 && -rc !== ENOENT) throw new K2Error('input', `clearing map '${info.name}': ${api.strerror(-rc)}`, { file });
  }
}

/** bpf_prog_info facts of a loaded program: verified_insns, xlated insns, jited bytes. */
export function progInfo(api: LibbpfApi, fd: number): { verified: number | null; xlated: number | null; jited: number | null } {
  const info = Buffer.alloc(LAYOUT.progInfoSize);
  const len = new Uint32Array([info.length]);
  if (api.objGetInfoByFd(fd, info, len) !== 0) return { verified: null, xlated: null, jited: null };
  const L = LAYOUT.progInfo;
  const got = len[0]!;
  return {
    verified: got >= L.verifiedInsns + 4 ? info.readUInt32LE(L.verifiedInsns) : null,
    xlated: info.readUInt32LE(L.xlatedLen) / 8,
    jited: info.readUInt32LE(L.jitedLen),
  };
}
