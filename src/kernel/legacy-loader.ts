// k2's loader for objects libbpf >= 1.0 refuses because of their legacy `maps` section (struct
// bpf_map_def / iproute2's struct bpf_elf_map in SEC("maps")): it does what samples/bpf's
// bpf_load.c and libbpf < 1.0 did, with libbpf.so's low-level bpf() wrappers only:
// 1. maps from the definitions with BPF_MAP_CREATE (map-in-map: the inner map named by
//    inner_map_idx / inner_id, see legacy-link.ts), global data (.data/.rodata/.bss) as one-element
//    arrays holding the section (.rodata read-only for programs and frozen, as libbpf does);
// 2. each program linked with the functions it calls (legacy-link.ts), map loads patched with
//    BPF_PSEUDO_MAP_FD / BPF_PSEUDO_MAP_VALUE, program type from the section name as libbpf and the
//    old loaders derived it, kern_version for kprobes, license from the `license` section;
// 3. BPF_PROG_LOAD per program, with the verifier log on failure and bpf_prog_info on success;
// 4. prog arrays filled as the old loaders did ("socket/N" → slot N; iproute2 "ID/N").
// Every fd is owned by one FdSet that is closed on every path; nothing is pinned.
import { release } from 'node:os';
import { encodeInsns, LD_IMM64, PSEUDO } from '../isa/index.js';
import { readObjectBytes, type BpfObject, type ProgramRef } from '../ir/index.js';
import { K2Error } from '../util/errors.js';
import { libbpf, LAYOUT, type LibbpfApi, type Ptr } from './libbpf.js';
import { prepareObject, scanElf } from './elfscan.js';
import { classifyLoadError, errnoName, legacySectionType, mapFixes, objectName, processedInsns, TRAMPOLINE_TYPES } from './fixups.js';
import { clearMapFd, PERCPU_MAP_TYPES, progInfo, readMapFd, testRunFd, writeMapFd } from './fdops.js';
import {
  dataMapName, isMapInMap, kernelObjName, kernelVersionCode, legacyMaps, linkLegacyProgram, objectKernVersion, progArraySlot,
  MAP_TYPE_PROG_ARRAY, type LegacyMap, type LinkedProgram,
} from './legacy-link.js';
import type { MapEntry, MapInfo, ProgramVerdict, RunInput, RunResult, VerifyOptions, VerifyReport } from './types.js';

const DEFAULT_LOG_SIZE = 1 << 20;
const EPERM = 1;
const BPF_F_RDONLY_PROG = 1 << 7;
const MAX_DATA_SECTION = 64 << 20;

/** The note every report of this loader carries, saying which path was taken and why. */
export const LEGACY_PATH_NOTE =
  "loaded by k2's legacy loader (maps created from the legacy 'maps' definitions with BPF_MAP_CREATE, programs linked and loaded with BPF_PROG_LOAD): libbpf >= 1.0 refuses legacy map definitions";

/** Every fd of one load; closed together. */
class FdSet {
  private fds: number[] = [];
  constructor(private readonly api: LibbpfApi) {}
  add(fd: number): number {
    this.fds.push(fd);
    return fd;
  }
  close(): void {
    for (const fd of this.fds.splice(0).reverse()) this.api.close(fd);
  }
}

interface CreatedMap {
  info: MapInfo;
  fd: number; // -1 when creation failed
  error: string | null;
}

interface ProgState {
  ref: ProgramRef;
  type: string; // libbpf type name
  typeId: number;
  attach: number;
  fd: number; // -1 unless loaded and kept
  verdict: ProgramVerdict;
  /** The linked, patched instructions handed to BPF_PROG_LOAD (kept with the fd). */
  insns: Uint8Array | null;
}

const progKey = (p: { section: string; name: string }) => `${p.section}\0${p.name}`;

function notAccepted(section: string, name: string, type: string, verdict: 'rejected' | 'cannot-load', error: string, fixups: string[], log = '', verified: number | null = null): ProgramVerdict {
  return { section, name, type, verdict, accepted: false, verifiedInsns: verified, xlatedInsns: null, jitedBytes: null, error, log, fixups };
}

/** The programs to load: the IR's, or — when the object has none outside .text — its .text functions
 * (PREVAIL-style test objects), which need --type like the libbpf path says. */
function programsOf(obj: BpfObject): ProgramRef[] {
  if (obj.programs.length > 0) return obj.programs;
  const text = obj.code.find((s) => s.name === '.text');
  if (!text) return [];
  const out: ProgramRef[] = [];
  for (const cs of text.symbols) {
    const sym = obj.elf.symbols[cs.sym]!;
    if ((sym.info & 0xf) === 2 /* STT_FUNC */ && sym.info >> 4 !== 0 /* not LOCAL */) out.push({ section: '.text', name: sym.name, entry: cs.start, progType: 'unspec' });
  }
  return out;
}

/** struct bpf_map_create_opts with only map_flags set. */
function emptyCreateOpts(flags: number): Buffer {
  const opts = Buffer.alloc(LAYOUT.mapCreateOptsSize);
  opts.writeBigUInt64LE(BigInt(LAYOUT.mapCreateOptsSize), 0);
  opts.writeUInt32LE(flags >>> 0, LAYOUT.mapCreateOpts.mapFlags);
  return opts;
}

/** The object's maps, created; `legacy` gives definitions and inner maps. */
function createMaps(api: LibbpfApi, fds: FdSet, obj: BpfObject, legacy: LegacyMap[], notes: string[]): Map<number, CreatedMap> {
  const out = new Map<number, CreatedMap>();
  const ncpu = api.numPossibleCpus();
  const order = [...legacy.filter((m) => !isMapInMap(m.def.type)), ...legacy.filter((m) => isMapInMap(m.def.type))];
  for (const m of order) {
    const d = m.def;
    const typeName = api.mapTypeStr(d.type) ?? `type ${d.type}`;
    const label = `map '${d.name}'`;
    const fix = mapFixes(label, { type: typeName, keySize: d.keySize, valueSize: d.valueSize, maxEntries: d.maxEntries });
    notes.push(...fix.notes);
    const shape = fix.shape;
    if (isMapInMap(d.type) && shape.valueSize !== 4) {
      // samples/bpf's bpf_create_map_in_map_node() always created outer maps with 4-byte values (map fds).
      notes.push(`${label}: value size ${shape.valueSize} of a map-in-map set to 4 (an inner map fd, as samples/bpf's loader did)`);
      shape.valueSize = 4;
    }
    if (typeName === 'perf_event_array' && shape.maxEntries === 0) {
      shape.maxEntries = ncpu; // libbpf sizes it to the possible CPUs
      notes.push(`${label}: max_entries 0 of a perf_event_array set to ${ncpu} (the possible CPUs, as libbpf does)`);
    }
    const info: MapInfo = { name: d.name, type: typeName, typeId: d.type, keySize: shape.keySize, valueSize: shape.valueSize, maxEntries: shape.maxEntries, flags: d.flags, perCpu: PERCPU_MAP_TYPES.has(typeName) };
    let innerFd = 0;
    if (isMapInMap(d.type) && m.layout === 'btf') {
      // As libbpf: a template map from the `values` definition, used only to shape the outer map.
      const t = m.def.innerMap;
      const tfd = t && !m.innerProblem ? api.mapCreate(t.type, kernelObjName(`${d.name}.inner`), t.keySize, t.valueSize, Math.max(1, t.maxEntries), emptyCreateOpts(t.flags)) : -22;
      if (tfd < 0) {
        out.set(m.index, { info, fd: -1, error: `map-in-map '${d.name}' has no usable inner map: ${m.innerProblem ?? `its inner map could not be created (${errnoName(-tfd)})`}` });
        continue;
      }
      innerFd = fds.add(tfd);
    } else if (isMapInMap(d.type)) {
      const inner = m.inner !== null ? out.get(m.inner) : undefined;
      if (!inner || inner.fd < 0) {
        const why = m.innerProblem ?? (inner ? `its inner map '${inner.info.name}' could not be created` : 'no inner map');
        out.set(m.index, { info, fd: -1, error: `map-in-map '${d.name}' has no usable inner map: ${why}` });
        continue;
      }
      innerFd = inner.fd;
      notes.push(`${label}: inner maps shaped like '${inner.info.name}' (${m.layout === 'bpf_elf_map' ? 'iproute2 inner_id' : 'bpf_map_def inner_map_idx'})`);
    }
    const opts = emptyCreateOpts(d.flags);
    opts.writeUInt32LE(innerFd, LAYOUT.mapCreateOpts.innerMapFd);
    if (m.numaNode !== null) opts.writeUInt32LE(m.numaNode, LAYOUT.mapCreateOpts.numaNode);
    const fd = api.mapCreate(d.type, kernelObjName(d.name), shape.keySize, shape.valueSize, shape.maxEntries, opts);
    if (fd < 0) {
      out.set(m.index, { info, fd: -1, error: `map '${d.name}' (${typeName}, key ${shape.keySize}, value ${shape.valueSize}, max_entries ${shape.maxEntries}, flags 0x${d.flags.toString(16)}) could not be created: ${api.strerror(-fd)} (${errnoName(-fd)})` });
      continue;
    }
    out.set(m.index, { info, fd: fds.add(fd), error: null });
  }
  return out;
}

/** Global data sections as one-element array maps holding the section, as libbpf creates them. */
function createDataMaps(api: LibbpfApi, fds: FdSet, obj: BpfObject, objName: string): Map<number, CreatedMap> {
  const out = new Map<number, CreatedMap>();
  obj.data.forEach((d, i) => {
    const name = dataMapName(objName, d.name);
    const info: MapInfo = { name, type: 'array', typeId: 2, keySize: 4, valueSize: d.size, maxEntries: 1, flags: d.readonly ? BPF_F_RDONLY_PROG : 0, perCpu: false };
    if (d.name.startsWith('.kconfig') || d.name.startsWith('.ksyms')) {
      out.set(i, { info, fd: -1, error: `extern data section ${d.name} is not resolved by k2's legacy loader` });
      return;
    }
    if (d.size === 0) {
      out.set(i, { info, fd: -1, error: `global data section ${d.name} is empty` });
      return;
    }
    if (d.size > MAX_DATA_SECTION) {
      // The kernel refuses such array values anyway (KMALLOC_MAX_SIZE); never allocate for them.
      out.set(i, { info, fd: -1, error: `global data section ${d.name} is ${d.size} bytes (more than ${MAX_DATA_SECTION})` });
      return;
    }
    const fd = api.mapCreate(2, name, 4, d.size, 1, emptyCreateOpts(info.flags));
    if (fd < 0) {
      out.set(i, { info, fd: -1, error: `global data map for ${d.name} could not be created: ${api.strerror(-fd)} (${errnoName(-fd)})` });
      return;
    }
    fds.add(fd);
    const value = Buffer.alloc(d.size);
    value.set(d.init.subarray(0, d.size));
    let rc = api.mapUpdate(fd, Buffer.alloc(4), value, 0);
    if (rc === 0 && d.readonly) rc = api.mapFreeze(fd); // the verifier then treats .rodata as constant
    if (rc !== 0) {
      out.set(i, { info, fd: -1, error: `global data map for ${d.name} could not be initialised: ${api.strerror(-rc)} (${errnoName(-rc)})` });
      return;
    }
    out.set(i, { info, fd, error: null });
  });
  return out;
}

/** Type of a program from its section, as the libbpf path decides it (libbpf's table, then --type,
 * then the prefixes of libbpf < 1.0 / samples/bpf). */
function resolveType(api: LibbpfApi, section: string, opts: VerifyOptions): { typeId: number; attach: number; fixup: string | null } | { cannot: string } {
  const direct = section === '.text' ? null : api.progTypeByName(section);
  if (direct) return { typeId: direct.type, attach: direct.attach, fixup: null };
  const legacy = legacySectionType(section);
  const wanted = opts.progType ?? legacy?.canonical ?? null;
  const resolved = wanted ? api.progTypeByName(wanted) : null;
  if (opts.progType && !resolved) throw new K2Error('usage', `unknown program type '${opts.progType}' (use a libbpf section name such as xdp, socket, tc, kprobe)`);
  if (!resolved) return { cannot: `cannot load here: no loader knows the program type of section '${section}'; pass --type TYPE (a libbpf section name: xdp, socket, tc, kprobe, ...)` };
  return { typeId: resolved.type, attach: resolved.attach, fixup: opts.progType ? `program type from --type ${opts.progType}` : `program type from section prefix '${legacy!.prefix}' (as libbpf < 1.0 / cilium/ebpf do)` };
}

/** Loads one linked program; returns the fd (>= 0) or the errno and verifier log. */
function loadProgram(api: LibbpfApi, typeId: number, attach: number, name: string, license: string, insnBytes: Uint8Array, kernVersion: number, logSize: number): { fd: number; errno: number; log: string; ms: number } {
  const logBuf: Ptr = api.calloc(1, logSize);
  if (!logBuf) throw new K2Error('internal', 'out of memory for a verifier log buffer');
  try {
    const o = Buffer.alloc(LAYOUT.progLoadOptsSize);
    const L = LAYOUT.progLoadOpts;
    o.writeBigUInt64LE(BigInt(LAYOUT.progLoadOptsSize), 0);
    o.writeUInt32LE(attach >>> 0, L.expectedAttachType);
    o.writeUInt32LE(kernVersion >>> 0, L.kernVersion);
    o.writeUInt32LE(0, L.logLevel); // libbpf retries with level 1 into log_buf on failure
    o.writeUInt32LE(logSize, L.logSize);
    o.writeBigUInt64LE(logBuf, L.logBuf);
    const insns = Buffer.from(insnBytes);
    const t0 = performance.now();
    const fd = api.progLoad(typeId, kernelObjName(name), license, insns, insnBytes.length / 8, o);
    const ms = performance.now() - t0;
    if (fd >= 0) return { fd, errno: 0, log: '', ms };
    return { fd: -1, errno: -fd, log: api.readCString(logBuf, logSize), ms };
  } finally {
    api.free(logBuf);
  }
}

/** Patches the map loads of a linked program with the created maps' fds. */
function patchLoads(linked: LinkedProgram, maps: Map<number, CreatedMap>, data: Map<number, CreatedMap>): { bytes: Uint8Array } | { cannot: string } {
  const insns = linked.insns.map((i) => ({ ...i }));
  for (const l of linked.loads) {
    const m = l.ref.kind === 'map' ? maps.get(l.ref.index) : data.get(l.ref.index);
    if (!m) return { cannot: `cannot load here: a map the program uses was not created` };
    if (m.fd < 0) return { cannot: `cannot load here: map setup failed (${m.error})` };
    const insn = insns[l.at]!;
    if (insn.code !== LD_IMM64) throw new K2Error('internal', 'map load patch on a non-ld_imm64 instruction');
    insn.src = l.ref.kind === 'map' ? PSEUDO.MAP_FD : PSEUDO.MAP_VALUE;
    insn.imm = m.fd;
    insn.imm2 = l.ref.kind === 'map' ? 0 : l.off;
  }
  return { bytes: encodeInsns(insns) };
}

export interface LegacyOutcome {
  report: VerifyReport;
  loaded: LegacyLoaded | null;
}

/**
 * Verdicts of every program of an object with legacy map definitions, loaded by k2's legacy loader.
 * With `keep`, the accepted programs and every map stay loaded in the returned LegacyLoaded.
 */
export function legacyVerify(input: Uint8Array, file: string, opts: VerifyOptions, keep: boolean, why: string): LegacyOutcome {
  const api = libbpf();
  const logSize = opts.logSize ?? DEFAULT_LOG_SIZE;
  const report: VerifyReport = { file, loader: 'legacy', malformed: false, objectError: null, fixups: [why], programs: [] };
  const scanned = scanElf(input);
  if (!scanned.ok) {
    report.malformed = true;
    report.objectError = `malformed BPF object: ${scanned.reason}`;
    return { report, loaded: null };
  }
  const prep = prepareObject(input, scanned.scan);
  report.fixups.push(...prep.notes);
  let obj: BpfObject;
  try {
    obj = readObjectBytes(prep.bytes, file);
  } catch (e) {
    if (!(e instanceof K2Error)) throw e;
    if (e.kind === 'input') {
      report.malformed = true;
      report.objectError = `malformed BPF object: ${e.cause_}`;
    } else {
      report.objectError = `cannot load here: k2 cannot read the object: ${e.cause_}`;
    }
    return { report, loaded: null };
  }
  const programs = programsOf(obj);
  if (programs.length === 0) {
    report.objectError = 'cannot load here: the object has no programs (no executable section with a function symbol)';
    return { report, loaded: null };
  }

  const fds = new FdSet(api);
  try {
    const legacy = legacyMaps(obj);
    const maps = createMaps(api, fds, obj, legacy, report.fixups);
    const data = createDataMaps(api, fds, obj, objectName(file));
    const license = obj.license ?? '';
    const kernVersion = objectKernVersion(obj) ?? kernelVersionCode(release());
    const states: ProgState[] = [];
    for (const ref of programs) {
      const t = resolveType(api, ref.section, opts);
      if ('cannot' in t) {
        states.push({ ref, type: 'unknown', typeId: 0, attach: 0, fd: -1, verdict: notAccepted(ref.section, ref.name, 'unknown', 'cannot-load', t.cannot, []), insns: null });
        continue;
      }
      const type = api.progTypeStr(t.typeId) ?? 'unknown';
      const fixups = t.fixup ? [t.fixup] : [];
      const st: ProgState = { ref, type, typeId: t.typeId, attach: t.attach, fd: -1, verdict: notAccepted(ref.section, ref.name, type, 'cannot-load', '', fixups), insns: null };
      states.push(st);
      if (TRAMPOLINE_TYPES.has(type)) {
        st.verdict.error = `cannot load here: ${type} programs need a BTF attach target, which k2's legacy loader does not resolve`;
        continue;
      }
      let linked: LinkedProgram;
      try {
        linked = linkLegacyProgram(obj, ref);
      } catch (e) {
        if (!(e instanceof K2Error)) throw e;
        st.verdict.error = `cannot load here: ${e.cause_}`;
        continue;
      }
      if (linked.insns.some((i) => i.code === LD_IMM64 && i.src === PSEUDO.FUNC)) {
        // The kernel wants BTF func_info for callbacks ("missing btf func_info"); this loader loads no BTF.
        st.verdict.error = "cannot load here: the program passes a callback (ld_imm64 of a function), which needs BTF func_info that k2's legacy loader does not load";
        continue;
      }
      if (linked.functions.length > 1) fixups.push(`linked with ${linked.functions.length - 1} called function(s): ${linked.functions.slice(1).join(', ')}`);
      const patched = patchLoads(linked, maps, data);
      if ('cannot' in patched) {
        st.verdict.error = patched.cannot;
        continue;
      }
      const r = loadProgram(api, t.typeId, t.attach, ref.name, license, patched.bytes, kernVersion, logSize);
      if (r.fd >= 0) {
        const i = progInfo(api, r.fd);
        st.verdict = { section: ref.section, name: ref.name, type, verdict: 'accepted', accepted: true, verifiedInsns: i.verified, xlatedInsns: i.xlated, jitedBytes: i.jited, error: null, log: '', fixups, loadMs: r.ms };
        if (keep) {
          st.fd = fds.add(r.fd);
          st.insns = patched.bytes;
        } else api.close(r.fd);
        continue;
      }
      if (r.errno === EPERM && !probeWorks(api)) throw new K2Error('bpf', 'bpf() not permitted: needs root or CAP_BPF (with CAP_NET_ADMIN/CAP_PERFMON for some program types)');
      const c = classifyLoadError({ errno: r.errno, log: r.log, type });
      st.verdict = { ...notAccepted(ref.section, ref.name, type, c.verdict, c.error, fixups, c.verdict === 'rejected' ? r.log : '', processedInsns(r.log)), loadMs: r.ms };
    }
    report.programs = states.map((s) => s.verdict);
    if (!keep) {
      fds.close();
      return { report, loaded: null };
    }
    // Prog arrays, filled as the old loaders did.
    for (const s of states) {
      if (s.fd < 0) continue;
      const slot = progArraySlot(s.ref.section, legacy);
      if (!slot) continue;
      const pa = maps.get(slot.map);
      if (!pa || pa.fd < 0 || pa.info.typeId !== MAP_TYPE_PROG_ARRAY) continue;
      const key = Buffer.alloc(4);
      key.writeUInt32LE(slot.slot);
      const val = Buffer.alloc(4);
      val.writeUInt32LE(s.fd);
      const rc = slot.slot < pa.info.maxEntries ? api.mapUpdate(pa.fd, key, val, 0) : -7;
      report.fixups.push(rc === 0 ? slot.rule : `${slot.rule}: not done (${errnoName(-rc)})`);
    }
    const loaded = new LegacyLoaded(file, report.programs, report.fixups, api, fds, states, [...maps.values(), ...data.values()]);
    return { report, loaded };
  } catch (e) {
    fds.close();
    throw e;
  }
}

let probeCache: boolean | null = null;
/** Whether a trivial socket filter loads (so that EPERM is about the program, not about bpf()). */
function probeWorks(api: LibbpfApi): boolean {
  if (probeCache !== null) return probeCache;
  const insns = Buffer.from([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
  const fd = api.progLoadRaw(1, 'k2_probe', 'GPL', insns, 2);
  if (fd >= 0) api.close(fd);
  probeCache = fd >= 0;
  return probeCache;
}

/** An object loaded by the legacy loader: test runs and map access, like LibbpfLoaded. */
export class LegacyLoaded {
  private closed = false;
  constructor(
    readonly file: string,
    readonly programs: ProgramVerdict[],
    readonly fixups: string[],
    private readonly api: LibbpfApi,
    private readonly fds: FdSet,
    private readonly states: ProgState[],
    private readonly maps: CreatedMap[],
  ) {}

  private live(): LibbpfApi {
    if (this.closed) throw new K2Error('internal', `${this.file}: object used after close()`);
    return this.api;
  }

  mapInfos(): MapInfo[] {
    this.live();
    return this.maps.filter((m) => m.fd >= 0).map((m) => ({ ...m.info }));
  }

  private map(name: string): CreatedMap {
    this.live();
    const m = this.maps.find((x) => x.info.name === name);
    if (!m) throw new K2Error('input', `no map named '${name}' (maps: ${this.maps.filter((x) => x.fd >= 0).map((x) => x.info.name).join(', ') || 'none'})`, { file: this.file });
    if (m.fd < 0) throw new K2Error('input', `map '${name}' was not created: ${m.error}`, { file: this.file });
    return m;
  }

  private prog(progName: string): ProgState {
    this.live();
    const s = this.states.find((x) => x.ref.name === progName);
    if (!s) throw new K2Error('input', `no program named '${progName}' (programs: ${this.states.map((x) => x.ref.name).join(', ')})`, { file: this.file });
    if (s.fd < 0) throw new K2Error('input', `program '${progName}' is not loaded: ${s.verdict.error ?? 'not accepted'}`, { file: this.file });
    return s;
  }

  testRun(progName: string, input: RunInput = {}): RunResult {
    const s = this.prog(progName);
    return testRunFd(this.api, s.fd, s.type, progName, input, this.file);
  }

  /** The program as linked (called functions appended) and patched (map fds) for BPF_PROG_LOAD. */
  loadedInsns(progName: string): Uint8Array {
    return this.prog(progName).insns!.slice();
  }

  /** The map's fd (owned by this object: valid until close()). */
  mapFd(name: string): number {
    return this.map(name).fd;
  }

  readMap(name: string): MapEntry[] {
    const m = this.map(name);
    return readMapFd(this.api, m.fd, m.info, this.file);
  }

  writeMap(name: string, entries: MapEntry[]): void {
    const m = this.map(name);
    writeMapFd(this.api, m.fd, m.info, entries, this.file);
  }

  clearMap(name: string): void {
    const m = this.map(name);
    clearMapFd(this.api, m.fd, m.info, this.file);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fds.close();
  }
}
