// k2's door to the kernel: load BPF objects, get the verifier's verdict per program, run programs
// with BPF_PROG_TEST_RUN, read and write their maps. Plain data in, plain data out.
//
// Two interchangeable loaders give the same verdicts and run results:
//   'libbpf'  (default) libbpf.so.1 in-process through koffi — fast, full verifier logs, verified_insns;
//   'bpftool' the bpftool command — for machines without a loadable libbpf.so (verifiedInsns is
//             null for accepted programs unless bpftool reports it; pins live in a private bpffs).
// Objects with legacy `maps` sections (struct bpf_map_def), which libbpf >= 1.0 refuses, are loaded
// by k2's legacy loader (legacy-loader.ts: BPF_MAP_CREATE/BPF_PROG_LOAD through libbpf.so's
// low-level calls, as samples/bpf and libbpf < 1.0 did) — automatically when libbpf refuses the
// object for that reason, or always with loader 'legacy'. The report's `loader` is then 'legacy'
// and its first fixup says why.
//
// Typical use:
//
//   import { bpfAvailable, verifyObject, openLoaded } from '../kernel/index.js';
//   const avail = await bpfAvailable();            // { ok, reason } — needs root / CAP_BPF
//   const report = await verifyObject('prog.o');   // per program: verdict, verifiedInsns, error, log
//   const obj = await openLoaded('prog.o');        // programs stay loaded until obj.close()
//   try {
//     await obj.writeMap('counts', [{ key, value }]);
//     const r = await obj.testRun('xdp_prog', { dataIn: packet, repeat: 1 });  // { retval, dataOut, ... }
//     const after = await obj.readMap('counts');
//   } finally {
//     await obj.close();                           // closes every fd / removes every pin
//   }
//
// Verdicts: 'accepted' (verifier said yes), 'rejected' (the kernel said no; `log` has the verifier
// log), 'cannot-load' (never judged on its code here: unknown program type, missing attach target,
// kfunc or kernel feature, trampolines not permitted; `error` says which). Loader fixups (legacy section names,
// map max_entries 0, pinning, old-clang symbols, static programs) are applied and listed in `fixups`.
// Every error meant for users is a K2Error (src/util/errors.ts).

import { readFileSync } from 'node:fs';
import { K2Error } from '../util/errors.js';
import { libbpfStatus } from './libbpf.js';
import { libbpfOpenLoaded, libbpfProbe, libbpfVerify } from './libbpf-loader.js';
import { bpftoolOpenLoaded, bpftoolProbe, bpftoolVerify, findBpftool } from './bpftool-loader.js';
import { legacyVerify, LEGACY_PATH_NOTE } from './legacy-loader.js';
import type { BpfAvailability, LoaderKind, MapEntry, MapInfo, ProgramVerdict, RunInput, RunResult, VerifyOptions, VerifyReport } from './types.js';

export type {
  BpfAvailability, LoaderKind, MapEntry, MapInfo, ProgramVerdict, RunInput, RunResult, Verdict, VerifyOptions, VerifyReport,
} from './types.js';
export { PIN_PREFIX, livePinDirs } from './bpffs.js';
export { findBpftool } from './bpftool-loader.js';
export { lastLines, verifierComplaint, processedInsns, classifyLoadError, type LoadError } from './fixups.js';
// For difftest / check-semantics (src/testgen): chunked map access through LoadedObject.mapFd, the
// host's answers for host-dependent helpers, and the prog-array slots the legacy loader fills.
export { MapHandle, type MapChunk } from './difftest-maps.js';
export { openHelperOracle, type ClosableOracle } from './helper-oracle.js';
export { legacyMaps, progArraySlot } from './legacy-link.js';

/** A loaded object. Its programs and maps live in the kernel until `close()`. */
export interface LoadedObject {
  readonly file: string;
  readonly loader: LoaderKind;
  /** Verdict of every program of the object; only accepted ones can be run. */
  readonly programs: readonly ProgramVerdict[];
  /** Loader fixups applied to the object. */
  readonly fixups: readonly string[];
  /** The object's maps, named as libbpf names them (including "<obj>.bss"-style global data
   * maps); the order is not specified. */
  maps(): Promise<MapInfo[]>;
  /** BPF_PROG_TEST_RUN of program `progName` (see RunInput for defaults). */
  testRun(progName: string, input?: RunInput): Promise<RunResult>;
  /** Every element of map `name` (hash, array, per-CPU and LRU maps). */
  readMap(name: string): Promise<MapEntry[]>;
  /** Creates or overwrites elements (per-CPU maps: `perCpu` if given, else `value` on every CPU). */
  writeMap(name: string, entries: MapEntry[]): Promise<void>;
  /** Deletes every element (arrays: zeroes every element). */
  clearMap(name: string): Promise<void>;
  /**
   * The fd of map `name` (a name `maps()` lists), for element-by-element or batched access through
   * bpf(). The object owns it: valid until `close()`, never to be closed by the caller.
   */
  mapFd(name: string): number;
  /**
   * Program `progName`'s instructions as they were handed to BPF_PROG_LOAD (8 bytes each): after
   * the loader's CO-RE relocations, subprogram linking (called functions appended), map fds in
   * ld_imm64 and extern (.kconfig) resolution — libbpf's bpf_program__insns() after the load, or
   * the legacy loader's linked and patched program. null when the loader cannot tell (bpftool).
   */
  loadedInsns(progName: string): Uint8Array | null;
  /** Closes every fd / removes every pin. Idempotent. */
  close(): Promise<void>;
}

function readInput(input: string | Uint8Array, opts: VerifyOptions): { bytes: Uint8Array; file: string } {
  if (typeof input !== 'string') return { bytes: input, file: opts.name ?? '<memory>' };
  try {
    return { bytes: new Uint8Array(readFileSync(input)), file: input };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new K2Error('input', `cannot read: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, { file: input });
  }
}

const loaderOf = (opts: VerifyOptions): LoaderKind => {
  const l = opts.loader ?? 'libbpf';
  if (l !== 'libbpf' && l !== 'bpftool' && l !== 'legacy') throw new K2Error('usage', `unknown loader '${String(l)}' (libbpf, bpftool or legacy)`);
  return l;
};

const FORCED_LEGACY_NOTE = "loaded by k2's legacy loader (--loader legacy): maps created from the object's map definitions with BPF_MAP_CREATE, programs linked and loaded with BPF_PROG_LOAD";

/** libbpf (or bpftool, which uses libbpf) refused the object for its legacy map definitions, and
 * k2's legacy loader can take it (it needs libbpf.so in-process). */
const refusedForLegacyMaps = (r: VerifyReport): boolean =>
  !r.malformed && /^cannot load here: legacy maps section/.test(r.objectError ?? '') && libbpfStatus().ok;

/**
 * Can this process load BPF programs? Checks the given loader (default libbpf) by loading a
 * two-instruction socket filter. Never throws.
 */
export async function bpfAvailable(loader: LoaderKind = 'libbpf'): Promise<BpfAvailability> {
  const lib = libbpfStatus();
  const bpftool = findBpftool();
  try {
    if (loader === 'libbpf' || loader === 'legacy') {
      if (!lib.ok) return { ok: false, reason: lib.reason, libbpf: false, bpftool };
      const p = libbpfProbe();
      return { ok: p.ok, reason: p.reason, libbpf: true, bpftool };
    }
    const p = await bpftoolProbe();
    return { ok: p.ok, reason: p.reason, libbpf: lib.ok, bpftool };
  } catch (e) {
    return { ok: false, reason: (e as Error).message, libbpf: lib.ok, bpftool };
  }
}

/**
 * The verdict of the kernel on every program of an object (a path or the object's bytes).
 * Nothing stays loaded. Malformed input gives `malformed: true` (not an exception), so that whole
 * corpora can be checked; K2Errors are thrown only for k2/machine problems (no bpf(), no tool).
 */
export async function verifyObject(input: string | Uint8Array, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const loader = loaderOf(opts);
  const { bytes, file } = readInput(input, opts);
  if (loader === 'legacy') return legacyVerify(bytes, file, opts, false, FORCED_LEGACY_NOTE).report;
  const report = loader === 'libbpf' ? libbpfVerify(bytes, file, opts, false).report : (await bpftoolVerify(bytes, file, opts, false)).report;
  if (refusedForLegacyMaps(report)) return legacyVerify(bytes, file, opts, false, LEGACY_PATH_NOTE).report;
  return report;
}

/**
 * Loads an object and keeps its accepted programs loaded for test runs and map access. Throws a
 * K2Error when the object cannot be loaded at all (malformed: kind 'input'; cannot load here:
 * kind 'unsupported'). Programs the verifier rejected are listed with their verdict but not loaded.
 * Always `close()` the result (try/finally).
 */
export async function openLoaded(input: string | Uint8Array, opts: VerifyOptions = {}): Promise<LoadedObject> {
  const loader = loaderOf(opts);
  const { bytes, file } = readInput(input, opts);
  if (loader === 'legacy') return openLegacy(bytes, file, opts, FORCED_LEGACY_NOTE);
  if (loader === 'libbpf') {
    const { report, loaded } = libbpfOpenLoaded(bytes, file, opts);
    if (!loaded && refusedForLegacyMaps(report)) return openLegacy(bytes, file, opts, LEGACY_PATH_NOTE);
    if (!loaded) return notLoaded(report);
    return {
      file, loader, programs: report.programs, fixups: report.fixups,
      maps: async () => loaded.mapInfos(),
      testRun: async (p, i) => loaded.testRun(p, i),
      readMap: async (n) => loaded.readMap(n),
      writeMap: async (n, e) => loaded.writeMap(n, e),
      clearMap: async (n) => loaded.clearMap(n),
      mapFd: (n) => loaded.mapFd(n),
      loadedInsns: (p) => loaded.loadedInsns(p),
      close: async () => loaded.close(),
    };
  }
  const { report, loaded } = await bpftoolOpenLoaded(bytes, file, opts);
  if (!loaded && refusedForLegacyMaps(report)) return openLegacy(bytes, file, opts, LEGACY_PATH_NOTE);
  if (!loaded) return notLoaded(report);
  return {
    file, loader, programs: report.programs, fixups: report.fixups,
    maps: () => loaded.mapInfos(),
    testRun: (p, i) => loaded.testRun(p, i),
    readMap: (n) => loaded.readMap(n),
    writeMap: (n, e) => loaded.writeMap(n, e),
    clearMap: (n) => loaded.clearMap(n),
    mapFd: (n) => loaded.mapFd(n),
    loadedInsns: () => null,
    close: async () => loaded.close(),
  };
}

function openLegacy(bytes: Uint8Array, file: string, opts: VerifyOptions, why: string): LoadedObject {
  const { report, loaded } = legacyVerify(bytes, file, opts, true, why);
  if (!loaded) return notLoaded(report);
  return {
    file, loader: 'legacy', programs: report.programs, fixups: report.fixups,
    maps: async () => loaded.mapInfos(),
    testRun: async (p, i) => loaded.testRun(p, i),
    readMap: async (n) => loaded.readMap(n),
    writeMap: async (n, e) => loaded.writeMap(n, e),
    clearMap: async (n) => loaded.clearMap(n),
    mapFd: (n) => loaded.mapFd(n),
    loadedInsns: (p) => loaded.loadedInsns(p),
    close: async () => loaded.close(),
  };
}

/** An object none of whose programs could be loaded: throws, or returns a handle that explains. */
function notLoaded(report: VerifyReport): LoadedObject {
  if (report.malformed) throw new K2Error('input', report.objectError ?? 'malformed BPF object', { file: report.file });
  if (report.objectError) throw new K2Error('unsupported', report.objectError, { file: report.file });
  const why = (name: string): never => {
    const v = report.programs.find((p) => p.name === name);
    if (!v) throw new K2Error('input', `no program named '${name}' (programs: ${report.programs.map((p) => p.name).join(', ')})`, { file: report.file });
    throw new K2Error('input', `program '${name}' is not loaded: ${v.error ?? 'not accepted'}`, { file: report.file });
  };
  const noMaps = (name: string): never => {
    throw new K2Error('input', `no map named '${name}': no program of the object could be loaded`, { file: report.file });
  };
  return {
    file: report.file, loader: report.loader, programs: report.programs, fixups: report.fixups,
    maps: async () => [],
    testRun: async (p) => why(p),
    readMap: async (n) => noMaps(n),
    writeMap: async (n) => noMaps(n),
    clearMap: async (n) => noMaps(n),
    mapFd: (n) => noMaps(n),
    loadedInsns: (p) => why(p),
    close: async () => {},
  };
}

/** Verdict counts of a report, for summaries. */
export function countVerdicts(report: VerifyReport): { accepted: number; rejected: number; cannotLoad: number } {
  let accepted = 0;
  let rejected = 0;
  let cannotLoad = 0;
  for (const p of report.programs) {
    if (p.verdict === 'accepted') accepted++;
    else if (p.verdict === 'rejected') rejected++;
    else cannotLoad++;
  }
  return { accepted, rejected, cannotLoad };
}
