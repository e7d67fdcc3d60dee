// The libbpf binding (libbpf.so.1 through koffi). This file is the only place that knows C types,
// struct layouts and pointers; everything it returns is plain data or an opaque handle (a bigint).
//
// Rules kept here:
// - Only synchronous koffi calls. libbpf calls our print callback from inside those calls, and
//   koffi async calls must never be mixed with callbacks.
// - Structs whose size libbpf checks (`sz` field) are built by hand in Buffers with the layout of
//   libbpf 1.1 (the oldest version we support); libbpf accepts a smaller struct from an older caller.
// - Native memory handed to libbpf for longer than one call (object bytes, verifier log buffers,
//   test_run buffers) is malloc'd here and freed by the caller through `free`.
import { createRequire } from 'node:module';
import { K2Error } from '../util/errors.js';

// koffi is CommonJS with a native addon; load it lazily so that merely importing k2 never fails.
type Koffi = typeof import('koffi');
const require = createRequire(import.meta.url);

export type Ptr = bigint; // an opaque native pointer (0n is NULL)

export const PRINT_LEVEL = { WARN: 0, INFO: 1, DEBUG: 2 } as const;

/** Layout facts of libbpf 1.1 / Linux UAPI that this binding relies on. */
export const LAYOUT = {
  openOptsSize: 80, // struct bpf_object_open_opts
  testRunOptsSize: 80, // struct bpf_test_run_opts
  progInfoSize: 232, // struct bpf_prog_info (we read only fields below)
  progInfo: { type: 0, id: 4, tag: 8, jitedLen: 16, xlatedLen: 20, nrMapIds: 52, name: 64, verifiedInsns: 216 },
  mapInfoSize: 88,
  mapCreateOptsSize: 48, // struct bpf_map_create_opts
  mapCreateOpts: { innerMapFd: 24, mapFlags: 28, mapExtra: 32, numaNode: 40 },
  progLoadOptsSize: 104, // struct bpf_prog_load_opts
  progLoadOpts: { expectedAttachType: 12, progFlags: 20, kernVersion: 28, logLevel: 88, logSize: 92, logBuf: 96 },
  mapInfo: { type: 0, id: 4, keySize: 8, valueSize: 12, maxEntries: 16, flags: 20, name: 24 },
} as const;

/** The functions of libbpf and libc k2 uses, with JS-friendly types. */
export interface LibbpfApi {
  koffi: Koffi;
  path: string;
  // libc
  malloc(n: number): Ptr;
  calloc(n: number, size: number): Ptr;
  free(p: Ptr): void;
  close(fd: number): number;
  errno(): number;
  strerror(errno: number): string;
  /** Copies `bytes` into native memory at `p`. */
  write(p: Ptr, bytes: Uint8Array, offset?: number): void;
  /** Copies `len` bytes of native memory at `p` into a new Uint8Array. */
  read(p: Ptr, len: number): Uint8Array;
  /** Reads a NUL-terminated string of at most `max` bytes at `p`. */
  readCString(p: Ptr, max: number): string;
  // libbpf: object
  setPrint(fn: Ptr): Ptr;
  objectOpenMem(buf: Ptr, size: number, opts: Buffer): Ptr;
  objectLoad(obj: Ptr): number;
  objectClose(obj: Ptr): void;
  nextProgram(obj: Ptr, prev: Ptr): Ptr;
  nextMap(obj: Ptr, prev: Ptr): Ptr;
  // libbpf: program
  progName(p: Ptr): string;
  progSectionName(p: Ptr): string;
  progType(p: Ptr): number;
  progSetType(p: Ptr, type: number): number;
  progExpectedAttachType(p: Ptr): number;
  progSetExpectedAttachType(p: Ptr, type: number): number;
  progAutoload(p: Ptr): boolean;
  progSetAutoload(p: Ptr, on: boolean): number;
  progSetLogBuf(p: Ptr, buf: Ptr, size: number): number;
  progSetLogLevel(p: Ptr, level: number): number;
  progFd(p: Ptr): number;
  progInsnCnt(p: Ptr): number;
  /** bpf_program__insns(): the program's instructions (after bpf_object__load: as libbpf loaded them). */
  progInsns(p: Ptr): Ptr;
  progTypeStr(type: number): string | null;
  progTypeByName(name: string): { type: number; attach: number } | null;
  // libbpf: map
  mapName(m: Ptr): string;
  mapType(m: Ptr): number;
  mapTypeStr(type: number): string | null;
  mapMaxEntries(m: Ptr): number;
  mapSetMaxEntries(m: Ptr, n: number): number;
  mapKeySize(m: Ptr): number;
  mapSetKeySize(m: Ptr, n: number): number;
  mapSetValueSize(m: Ptr, n: number): number;
  mapValueSize(m: Ptr): number;
  mapFlags(m: Ptr): number;
  mapFd(m: Ptr): number;
  mapPinPath(m: Ptr): string | null;
  mapSetPinPath(m: Ptr, path: string | null): number;
  mapInner(m: Ptr): Ptr;
  mapAutocreate(m: Ptr): boolean;
  // bpf(2) wrappers
  progTestRun(fd: number, opts: Buffer): number;
  objGetInfoByFd(fd: number, info: Buffer, len: Uint32Array): number;
  mapLookup(fd: number, key: Buffer, value: Buffer): number;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): number;
  mapDelete(fd: number, key: Buffer): number;
  mapNextKey(fd: number, key: Buffer | null, next: Buffer): number;
  progLoadRaw(type: number, name: string | null, license: string, insns: Buffer, cnt: number): number;
  /** bpf_prog_load() with a struct bpf_prog_load_opts built by `progLoadOpts`; fd or -errno. */
  progLoad(type: number, name: string | null, license: string, insns: Buffer, cnt: number, opts: Buffer): number;
  /** bpf_map_create() with a struct bpf_map_create_opts built by `mapCreateOpts`; fd or -errno. */
  mapCreate(type: number, name: string | null, keySize: number, valueSize: number, maxEntries: number, opts: Buffer): number;
  /** bpf_map_freeze(): no more writes from user space (read-only global data). 0 or -errno. */
  mapFreeze(fd: number): number;
  /** bpf_obj_get(): an fd for a pinned object, or -errno. */
  objGet(path: string): number;
  numPossibleCpus(): number;
  /** libbpf_strerror(): message for libbpf's own errno values (4000+) as well as the usual ones. */
  libbpfStrerror(err: number): string;
}

const LIB_CANDIDATES = ['libbpf.so.1', 'libbpf.so'];
let cached: LibbpfApi | null = null;
let loadError: string | null = null;

/** The libbpf binding, or a K2Error('tool') saying why it cannot be loaded. */
export function libbpf(): LibbpfApi {
  if (cached) return cached;
  if (loadError) throw new K2Error('tool', loadError);
  try {
    cached = bind();
    return cached;
  } catch (e) {
    loadError = `cannot use libbpf through koffi: ${(e as Error).message} (install libbpf1, or use --loader bpftool)`;
    throw new K2Error('tool', loadError);
  }
}

/** Like `libbpf()` but returns the reason instead of throwing. */
export function libbpfStatus(): { ok: true; api: LibbpfApi } | { ok: false; reason: string } {
  try {
    return { ok: true, api: libbpf() };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

function bind(): LibbpfApi {
  const koffi = require('koffi') as Koffi;
  let lib: ReturnType<Koffi['load']> | null = null;
  let path = '';
  const errors: string[] = [];
  for (const cand of [process.env.K2_LIBBPF, ...LIB_CANDIDATES].filter((x): x is string => !!x)) {
    try {
      lib = koffi.load(cand);
      path = cand;
      break;
    } catch (e) {
      errors.push(`${cand}: ${(e as Error).message}`);
    }
  }
  if (!lib) throw new Error(errors.join('; '));
  const libc = koffi.load('libc.so.6');

  const f = (decl: string) => lib!.func(decl);
  const c = (decl: string) => libc.func(decl);

  const malloc = c('void *malloc(size_t n)');
  const calloc = c('void *calloc(size_t n, size_t size)');
  const free = c('void free(void *p)');
  const close = c('int close(int fd)');
  const strerror = c('const char *strerror(int errnum)');
  const memcpyIn = c('void *memcpy(void *dst, const void *src, size_t n)');

  const libbpf_set_print = f('void *libbpf_set_print(void *fn)');
  const open_mem = f('void *bpf_object__open_mem(const void *buf, size_t size, const void *opts)');
  const obj_load = f('int bpf_object__load(void *obj)');
  const obj_close = f('void bpf_object__close(void *obj)');
  const next_program = f('void *bpf_object__next_program(void *obj, void *prev)');
  const next_map = f('void *bpf_object__next_map(void *obj, void *prev)');
  const prog_name = f('const char *bpf_program__name(void *p)');
  const prog_sec = f('const char *bpf_program__section_name(void *p)');
  const prog_type = f('int bpf_program__type(void *p)');
  const prog_set_type = f('int bpf_program__set_type(void *p, int type)');
  const prog_eat = f('int bpf_program__expected_attach_type(void *p)');
  const prog_set_eat = f('int bpf_program__set_expected_attach_type(void *p, int type)');
  const prog_autoload = f('bool bpf_program__autoload(void *p)');
  const prog_set_autoload = f('int bpf_program__set_autoload(void *p, bool on)');
  const prog_set_log_buf = f('int bpf_program__set_log_buf(void *p, void *buf, size_t size)');
  const prog_set_log_level = f('int bpf_program__set_log_level(void *p, uint32_t level)');
  const prog_fd = f('int bpf_program__fd(void *p)');
  const prog_insn_cnt = f('size_t bpf_program__insn_cnt(void *p)');
  const prog_insns = f('const void *bpf_program__insns(void *p)');
  const prog_type_str = f('const char *libbpf_bpf_prog_type_str(int t)');
  const prog_type_by_name = f('int libbpf_prog_type_by_name(const char *name, _Out_ int *type, _Out_ int *attach)');
  const map_name = f('const char *bpf_map__name(void *m)');
  const map_type = f('int bpf_map__type(void *m)');
  const map_type_str = f('const char *libbpf_bpf_map_type_str(int t)');
  const map_max = f('uint32_t bpf_map__max_entries(void *m)');
  const map_set_max = f('int bpf_map__set_max_entries(void *m, uint32_t n)');
  const map_key = f('uint32_t bpf_map__key_size(void *m)');
  const map_set_key = f('int bpf_map__set_key_size(void *m, uint32_t size)');
  const map_set_value = f('int bpf_map__set_value_size(void *m, uint32_t size)');
  const map_value = f('uint32_t bpf_map__value_size(void *m)');
  const map_flags = f('uint32_t bpf_map__map_flags(void *m)');
  const map_fd = f('int bpf_map__fd(void *m)');
  const map_pin_path = f('const char *bpf_map__pin_path(void *m)');
  const map_set_pin_path = f('int bpf_map__set_pin_path(void *m, const char *path)');
  const map_inner = f('void *bpf_map__inner_map(void *m)');
  const map_autocreate = f('bool bpf_map__autocreate(void *m)');
  const test_run = f('int bpf_prog_test_run_opts(int fd, void *opts)');
  const get_info = f('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)');
  const lookup = f('int bpf_map_lookup_elem(int fd, const void *key, void *value)');
  const update = f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)');
  const del = f('int bpf_map_delete_elem(int fd, const void *key)');
  const next_key = f('int bpf_map_get_next_key(int fd, const void *key, void *next)');
  const prog_load = f('int bpf_prog_load(int type, const char *name, const char *license, const void *insns, size_t cnt, const void *opts)');
  const map_create = f('int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)');
  const map_freeze = f('int bpf_map_freeze(int fd)');
  const obj_get = f('int bpf_obj_get(const char *pathname)');
  const num_cpus = f('int libbpf_num_possible_cpus()');
  const strerror_r = f('int libbpf_strerror(int err, _Out_ uint8_t *buf, size_t size)');

  const view = (p: Ptr, len: number) => new Uint8Array(koffi.view(p, len));

  return {
    koffi,
    path,
    malloc: (n) => malloc(n) as Ptr,
    calloc: (n, size) => calloc(n, size) as Ptr,
    free: (p) => free(p),
    close: (fd) => close(fd) as number,
    errno: () => koffi.errno(),
    strerror: (e) => strerror(e) as string,
    write: (p, bytes, offset = 0) => {
      if (bytes.length) memcpyIn(p + BigInt(offset), bytes, bytes.length);
    },
    read: (p, len) => (len > 0 ? view(p, len).slice() : new Uint8Array(0)),
    readCString: (p, max) => {
      const bytes = view(p, max);
      const end = bytes.indexOf(0);
      return Buffer.from(bytes.subarray(0, end < 0 ? max : end)).toString('utf8');
    },
    setPrint: (fn) => libbpf_set_print(fn) as Ptr,
    objectOpenMem: (buf, size, opts) => (open_mem(buf, size, opts) as Ptr | null) ?? 0n,
    objectLoad: (obj) => obj_load(obj) as number,
    objectClose: (obj) => obj_close(obj),
    nextProgram: (obj, prev) => (next_program(obj, prev || null) as Ptr | null) ?? 0n,
    nextMap: (obj, prev) => (next_map(obj, prev || null) as Ptr | null) ?? 0n,
    progName: (p) => prog_name(p) as string,
    progSectionName: (p) => prog_sec(p) as string,
    progType: (p) => prog_type(p) as number,
    progSetType: (p, t) => prog_set_type(p, t) as number,
    progExpectedAttachType: (p) => prog_eat(p) as number,
    progSetExpectedAttachType: (p, t) => prog_set_eat(p, t) as number,
    progAutoload: (p) => prog_autoload(p) as boolean,
    progSetAutoload: (p, on) => prog_set_autoload(p, on) as number,
    progSetLogBuf: (p, buf, size) => prog_set_log_buf(p, buf, size) as number,
    progSetLogLevel: (p, level) => prog_set_log_level(p, level) as number,
    progFd: (p) => prog_fd(p) as number,
    progInsnCnt: (p) => Number(prog_insn_cnt(p)),
    progInsns: (p) => (prog_insns(p) as Ptr | null) ?? 0n,
    progTypeStr: (t) => (prog_type_str(t) as string | null) ?? null,
    progTypeByName: (name) => {
      const type = [0];
      const attach = [0];
      const r = prog_type_by_name(name, type, attach) as number;
      return r === 0 ? { type: type[0]!, attach: attach[0]! } : null;
    },
    mapName: (m) => map_name(m) as string,
    mapType: (m) => map_type(m) as number,
    mapTypeStr: (t) => (map_type_str(t) as string | null) ?? null,
    mapMaxEntries: (m) => map_max(m) as number,
    mapSetMaxEntries: (m, n) => map_set_max(m, n) as number,
    mapKeySize: (m) => map_key(m) as number,
    mapSetKeySize: (m, n) => map_set_key(m, n) as number,
    mapSetValueSize: (m, n) => map_set_value(m, n) as number,
    mapValueSize: (m) => map_value(m) as number,
    mapFlags: (m) => map_flags(m) as number,
    mapFd: (m) => map_fd(m) as number,
    mapPinPath: (m) => (map_pin_path(m) as string | null) ?? null,
    mapSetPinPath: (m, path) => map_set_pin_path(m, path) as number,
    mapInner: (m) => (map_inner(m) as Ptr | null) ?? 0n,
    mapAutocreate: (m) => map_autocreate(m) as boolean,
    progTestRun: (fd, opts) => test_run(fd, opts) as number,
    objGetInfoByFd: (fd, info, len) => get_info(fd, info, len) as number,
    mapLookup: (fd, key, value) => lookup(fd, key, value) as number,
    mapUpdate: (fd, key, value, flags) => update(fd, key, value, flags) as number,
    mapDelete: (fd, key) => del(fd, key) as number,
    mapNextKey: (fd, key, next) => next_key(fd, key, next) as number,
    progLoadRaw: (type, name, license, insns, cnt) => prog_load(type, name, license, insns, cnt, null) as number,
    progLoad: (type, name, license, insns, cnt, opts) => prog_load(type, name, license, insns, cnt, opts) as number,
    mapCreate: (type, name, k, v, n, opts) => map_create(type, name, k, v, n, opts) as number,
    mapFreeze: (fd) => map_freeze(fd) as number,
    objGet: (path) => obj_get(path) as number,
    numPossibleCpus: () => num_cpus() as number,
    libbpfStrerror: (err) => {
      const buf = new Uint8Array(256);
      strerror_r(err, buf, buf.length);
      const end = buf.indexOf(0);
      return Buffer.from(buf.subarray(0, end < 0 ? buf.length : end)).toString('utf8');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// libbpf's messages. libbpf reports through a printf-style callback that receives a `va_list`;
// we format it with libc vsnprintf (a `va_list` argument is passed as a pointer on x86-64 and
// arm64 alike) and collect the lines while a capture is open. Outside a capture, messages are
// dropped unless K2_DEBUG is set.

let printInstalled = false;
let sink: { level: number; text: string }[] | null = null;

function installPrint(api: LibbpfApi): void {
  if (printInstalled) return;
  const koffi = api.koffi;
  const libc = koffi.load('libc.so.6');
  const vsnprintf = libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t n, void *fmt, void *ap)');
  const proto = koffi.proto('int k2_libbpf_print_fn(int level, void *fmt, void *ap)');
  const out = new Uint8Array(16384);
  const debug = !!process.env.K2_DEBUG;
  const cb = koffi.register((level: number, fmt: Ptr, ap: Ptr) => {
    if (level === PRINT_LEVEL.DEBUG && !debug) return 0;
    try {
      const n = vsnprintf(out, out.length, fmt, ap) as number;
      const text = Buffer.from(out.subarray(0, Math.max(0, Math.min(n, out.length - 1)))).toString('utf8');
      if (sink && level !== PRINT_LEVEL.DEBUG) sink.push({ level, text });
      if (debug) process.stderr.write(`libbpf[${level}]: ${text}`);
    } catch {
      /* never let an exception cross into C */
    }
    return 0;
  }, koffi.pointer(proto));
  api.setPrint(cb);
  printInstalled = true;
}

/** Runs `fn` while collecting libbpf's warning and info messages (one entry per message). */
export function withLibbpfMessages<T>(api: LibbpfApi, fn: () => T): { value: T; messages: string[] } {
  installPrint(api);
  const prev = sink;
  const mine: { level: number; text: string }[] = [];
  sink = mine;
  try {
    const value = fn();
    return { value, messages: mine.map((m) => m.text.replace(/\n+$/, '')) };
  } finally {
    sink = prev;
  }
}
