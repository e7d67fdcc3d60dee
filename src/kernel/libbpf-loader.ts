// The libbpf backend: verify and load objects in-process through libbpf.so (see libbpf.ts).
//
// Verdicts per program: the whole object is loaded once; when that fails, every program is loaded
// alone (the others get autoload=false) so that each gets its own verdict and verifier log.
// Verifier logs: each program gets a custom log buffer with log level 0, so libbpf loads without a
// log first and, only on failure, retries with log level 1 into our buffer (the kernel keeps the
// tail when the buffer is too small). Nothing is ever pinned: maps that ask for pinning get their
// pin path cleared. Every fd belongs to a bpf_object that is closed on every path.

import { K2Error } from '../util/errors.js';
import { libbpf, withLibbpfMessages, LAYOUT, type LibbpfApi, type Ptr } from './libbpf.js';
import { scanElf, prepareObject, type ElfScan } from './elfscan.js';
import {
  classifyFailure, classifyOpenFailure, mapFixes, legacySectionType, objectName, processedInsns, errnoName, cleanMessage,
} from './fixups.js';
import { clearMapFd, PERCPU_MAP_TYPES, progInfo, readMapFd, testRunFd, writeMapFd } from './fdops.js';
import type { MapEntry, MapInfo, ProgramVerdict, RunInput, RunResult, VerifyOptions, VerifyReport } from './types.js';

const DEFAULT_LOG_SIZE = 1 << 20;
const EPERM = 1;

/** One bpf_object opened from memory, with the native memory it owns. */
class NativeObject {
  readonly logBufs = new Map<Ptr, Ptr>(); // program → log buffer
  private closed = false;
  private constructor(
    readonly api: LibbpfApi,
    readonly obj: Ptr,
    private readonly mem: Ptr,
  ) {}

  static open(api: LibbpfApi, bytes: Uint8Array, name: string, relaxedMaps: boolean):
    | { ok: true; obj: NativeObject; messages: string[] }
    | { ok: false; errno: number; messages: string[] } {
    const mem = api.malloc(Math.max(1, bytes.length));
    if (!mem) throw new K2Error('internal', 'out of memory copying the object');
    api.write(mem, bytes);
    const opts = Buffer.alloc(LAYOUT.openOptsSize);
    opts.writeBigUInt64LE(BigInt(LAYOUT.openOptsSize), 0);
    // object_name (offset 8) must outlive the call only; libbpf copies it.
    const nameBuf = Buffer.from(objectName(name) + '\0', 'utf8');
    const nameMem = api.malloc(nameBuf.length);
    api.write(nameMem, nameBuf);
    opts.writeBigUInt64LE(nameMem, 8);
    opts.writeUInt8(relaxedMaps ? 1 : 0, 16); // relaxed_maps: ignore map definition fields libbpf does not know
    const { value: obj, messages } = withLibbpfMessages(api, () => api.objectOpenMem(mem, bytes.length, opts));
    const errno = api.errno();
    api.free(nameMem);
    if (!obj) {
      api.free(mem);
      return { ok: false, errno, messages };
    }
    return { ok: true, obj: new NativeObject(api, obj, mem), messages };
  }

  programs(): Ptr[] {
    const out: Ptr[] = [];
    for (let p = this.api.nextProgram(this.obj, 0n); p; p = this.api.nextProgram(this.obj, p)) out.push(p);
    return out;
  }

  maps(): Ptr[] {
    const out: Ptr[] = [];
    for (let m = this.api.nextMap(this.obj, 0n); m; m = this.api.nextMap(this.obj, m)) out.push(m);
    return out;
  }

  setLogBuffer(prog: Ptr, size: number): void {
    const buf = this.api.calloc(1, size);
    if (!buf) throw new K2Error('internal', 'out of memory for a verifier log buffer');
    this.logBufs.set(prog, buf);
    this.api.progSetLogBuf(prog, buf, size);
    this.api.progSetLogLevel(prog, 0); // libbpf retries with level 1 into our buffer on failure
  }

  log(prog: Ptr, size: number): string {
    const buf = this.logBufs.get(prog);
    return buf ? this.api.readCString(buf, size) : '';
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.api.objectClose(this.obj); // closes every program and map fd of the object
    this.api.free(this.mem);
    for (const b of this.logBufs.values()) this.api.free(b);
    this.logBufs.clear();
  }
}

/** How one program will be loaded (decided on a freshly opened object). */
interface ProgPlan {
  name: string;
  section: string;
  type: string;
  loadable: boolean;
  fixups: string[];
  cannot: string | null; // reason it will not be tried
}

/** Applies k2's loader fixups to a freshly opened object; returns per-program plans and object notes. */
function applyFixups(o: NativeObject, opts: VerifyOptions): { plans: Map<Ptr, ProgPlan>; notes: string[] } {
  const api = o.api;
  const notes: string[] = [];
  const fixMap = (m: Ptr, label: string) => {
    if (api.mapPinPath(m)) {
      api.mapSetPinPath(m, null);
      notes.push(`${label}: pinning disabled (k2 never pins maps)`);
    }
    const shape = { type: api.mapTypeStr(api.mapType(m)) ?? `type ${api.mapType(m)}`, keySize: api.mapKeySize(m), valueSize: api.mapValueSize(m), maxEntries: api.mapMaxEntries(m) };
    const fix = mapFixes(label, shape);
    if (fix.shape.keySize !== shape.keySize) api.mapSetKeySize(m, fix.shape.keySize);
    if (fix.shape.valueSize !== shape.valueSize) api.mapSetValueSize(m, fix.shape.valueSize);
    if (fix.shape.maxEntries !== shape.maxEntries) api.mapSetMaxEntries(m, fix.shape.maxEntries);
    notes.push(...fix.notes);
  };
  for (const m of o.maps()) {
    const name = api.mapName(m);
    fixMap(m, `map '${name}'`);
    const inner = api.mapInner(m);
    if (inner) fixMap(inner, `inner map of '${name}'`);
  }
  const plans = new Map<Ptr, ProgPlan>();
  for (const p of o.programs()) {
    const plan: ProgPlan = { name: api.progName(p), section: api.progSectionName(p), type: '', loadable: true, fixups: [], cannot: null };
    if (api.progType(p) === 0) {
      const legacy = legacySectionType(plan.section);
      const wanted = opts.progType ?? legacy?.canonical ?? null;
      const resolved = wanted ? api.progTypeByName(wanted) : null;
      if (opts.progType && !resolved) throw new K2Error('usage', `unknown program type '${opts.progType}' (use a libbpf section name such as xdp, socket, tc, kprobe)`);
      if (resolved) {
        api.progSetType(p, resolved.type);
        api.progSetExpectedAttachType(p, resolved.attach);
        plan.fixups.push(opts.progType
          ? `program type from --type ${opts.progType}`
          : `program type from section prefix '${legacy!.prefix}' (as libbpf < 1.0 / cilium/ebpf do)`);
      } else {
        plan.loadable = false;
        plan.cannot = `cannot load here: libbpf does not know the program type of section '${plan.section}'; pass --type TYPE (a libbpf section name: xdp, socket, tc, kprobe, ...)`;
        api.progSetAutoload(p, false);
      }
    }
    if (!api.progAutoload(p) && plan.loadable) {
      plan.loadable = false;
      plan.cannot = `cannot load here: the object marks it not to be loaded by default (SEC("?${plan.section}"))`;
    }
    plan.type = api.progType(p) === 0 ? 'unknown' : api.progTypeStr(api.progType(p)) ?? 'unknown';
    plans.set(p, plan);
  }
  return { plans, notes };
}

function acceptedVerdict(api: LibbpfApi, plan: ProgPlan, fd: number): ProgramVerdict {
  const i = progInfo(api, fd);
  return {
    section: plan.section, name: plan.name, type: plan.type, verdict: 'accepted', accepted: true,
    verifiedInsns: i.verified, xlatedInsns: i.xlated, jitedBytes: i.jited, error: null, log: '', fixups: plan.fixups,
  };
}

function notAccepted(plan: ProgPlan, verdict: 'rejected' | 'cannot-load', error: string, log = '', verified: number | null = null): ProgramVerdict {
  return {
    section: plan.section, name: plan.name, type: plan.type, verdict, accepted: false,
    verifiedInsns: verified, xlatedInsns: null, jitedBytes: null, error, log, fixups: plan.fixups,
  };
}

function permissionError(messages: string[]): K2Error {
  const m = messages.map(cleanMessage).find((x) => /Operation not permitted|EPERM/.test(x));
  return new K2Error('bpf', `bpf() not permitted: needs root or CAP_BPF (with CAP_NET_ADMIN/CAP_PERFMON for some program types)${m ? ` (${m})` : ''}`);
}

const progKey = (p: { section: string; name: string }) => `${p.section}\0${p.name}`;

/** Result of the libbpf verify pass; `kept` is the loaded object when asked to keep it. */
interface LibbpfOutcome {
  report: VerifyReport;
  kept: { native: NativeObject; plans: Map<Ptr, ProgPlan> } | null;
}

/** Program type name libbpf gives a section name, for objects that cannot even be opened. */
function sectionTypeName(api: LibbpfApi, section: string): string {
  const legacy = legacySectionType(section);
  const r = api.progTypeByName(section) ?? (legacy ? api.progTypeByName(legacy.canonical) : null);
  return r ? api.progTypeStr(r.type) ?? 'unknown' : 'unknown';
}

export function libbpfVerify(input: Uint8Array, file: string, opts: VerifyOptions, keep: boolean): LibbpfOutcome {
  const api = libbpf();
  const logSize = opts.logSize ?? DEFAULT_LOG_SIZE;
  const report: VerifyReport = { file, loader: 'libbpf', malformed: false, objectError: null, fixups: [], programs: [] };
  let bytes = input;
  const scanned = scanElf(bytes);
  if (!scanned.ok) {
    report.malformed = true;
    report.objectError = `malformed BPF object: ${scanned.reason}`;
    return { report, kept: null };
  }
  const prep = prepareObject(bytes, scanned.scan);
  bytes = prep.bytes;
  const rescanned = scanElf(bytes);
  if (!rescanned.ok) throw new K2Error('internal', `${file}: fixed-up object no longer scans: ${rescanned.reason}`);
  const scan: ElfScan = rescanned.scan;
  const name = file;
  const relaxed = prep.relaxedMaps;

  const first = NativeObject.open(api, bytes, name, relaxed);
  if (!first.ok) {
    const c = classifyOpenFailure(first.errno, first.messages);
    report.malformed = c.malformed;
    report.objectError = c.error;
    report.fixups = prep.notes;
    report.programs = scan.programs.map((p) => ({
      section: p.section, name: p.name, type: sectionTypeName(api, p.section), verdict: 'cannot-load', accepted: false,
      verifiedInsns: null, xlatedInsns: null, jitedBytes: null, error: c.error, log: '', fixups: [],
    }));
    return { report, kept: null };
  }

  // Pass 1: everything at once.
  const whole = first.obj;
  let plans: Map<Ptr, ProgPlan>;
  try {
    const fx = applyFixups(whole, opts);
    plans = fx.plans;
    report.fixups = [...prep.notes, ...fx.notes];
  } catch (e) {
    whole.close();
    throw e;
  }
  if (opts.only) {
    // the programs asked for, only: the others are neither loaded nor reported
    const wanted = new Set(opts.only.map(progKey));
    for (const [p, plan] of [...plans]) {
      if (wanted.has(progKey(plan))) continue;
      api.progSetAutoload(p, false);
      plans.delete(p);
    }
  }
  const order = [...plans.values()];
  const loadable = order.filter((p) => p.loadable);
  if (order.length === 0) {
    whole.close();
    if (opts.only) return { report: { ...report, programs: [] }, kept: null }; // none of those asked for is in the object
    report.objectError = 'cannot load here: the object has no programs (no executable section with a function symbol)';
    return { report, kept: null };
  }
  for (const [p, plan] of plans) if (plan.loadable) whole.setLogBuffer(p, logSize);
  const verdicts = new Map<string, ProgramVerdict>(); // key: progKey(plan)
  for (const plan of order) if (!plan.loadable) verdicts.set(progKey(plan), notAccepted(plan, 'cannot-load', plan.cannot!));

  if (loadable.length > 0) {
    // With `timing` (and nothing to keep), every program is loaded on its own so that its load time is its own.
    if (!opts.timing || keep) {
      const res = withLibbpfMessages(api, () => api.objectLoad(whole.obj));
      if (res.value === 0) {
        for (const [p, plan] of plans) if (plan.loadable) verdicts.set(progKey(plan), acceptedVerdict(api, plan, api.progFd(p)));
        report.programs = order.map((p) => verdicts.get(progKey(p))!);
        if (keep) return { report, kept: { native: whole, plans } };
        whole.close();
        return { report, kept: null };
      }
      if (-res.value === EPERM && !libbpfProbe().ok) {
        whole.close();
        throw permissionError(res.messages);
      }
    }
    whole.close();

    // Pass 2: one program at a time.
    for (const target of loadable) {
      const o = NativeObject.open(api, bytes, name, relaxed);
      if (!o.ok) throw new K2Error('internal', `libbpf opened ${file} once but not twice (${errnoName(o.errno)})`);
      const n = o.obj;
      try {
        const fx = applyFixups(n, opts);
        let tp: Ptr = 0n;
        for (const [p, plan] of fx.plans) {
          if (plan.name === target.name && plan.section === target.section) tp = p;
          else api.progSetAutoload(p, false);
        }
        if (!tp) throw new K2Error('internal', `program ${target.name} vanished on reopen`);
        n.setLogBuffer(tp, logSize);
        const t0 = performance.now();
        const r = withLibbpfMessages(api, () => api.objectLoad(n.obj));
        const loadMs = performance.now() - t0;
        if (r.value === 0) verdicts.set(progKey(target), { ...acceptedVerdict(api, target, api.progFd(tp)), loadMs });
        else {
          const errno = -r.value;
          if (errno === EPERM && !libbpfProbe().ok) throw permissionError(r.messages);
          const log = n.log(tp, logSize);
          const c = classifyFailure({ name: target.name, type: target.type, errno, log, messages: r.messages });
          verdicts.set(progKey(target), { ...notAccepted(target, c.verdict, c.error, c.verdict === 'rejected' ? log : '', processedInsns(log)), loadMs });
        }
      } finally {
        n.close();
      }
    }
  }
  report.programs = order.map((p) => verdicts.get(progKey(p))!);
  if (!keep) return { report, kept: null };

  // Keep: load once more with only the accepted programs. Each of them loaded on its own, so a
  // failure here is the host's (memory for the maps of a big object under memory-cgroup pressure,
  // seen once on cilium's bpf_lxc.o): tried a second time, and said with the errno and libbpf's
  // reasons when it fails again.
  let firstFailure: string | null = null;
  for (let attempt = 0; attempt < 2; attempt++) {
    const o = NativeObject.open(api, bytes, name, relaxed);
    if (!o.ok) throw new K2Error('internal', `libbpf opened ${file} once but not again (${errnoName(o.errno)})`);
    const k = o.obj;
    let fx: ReturnType<typeof applyFixups>;
    try {
      fx = applyFixups(k, opts);
      for (const [p, plan] of fx.plans) if (!verdicts.get(progKey(plan))?.accepted) api.progSetAutoload(p, false);
    } catch (e) {
      k.close();
      throw e;
    }
    const r = withLibbpfMessages(api, () => api.objectLoad(k.obj));
    if (r.value === 0) {
      if (firstFailure) report.fixups.push(`the accepted programs failed to load together once (${firstFailure}) and loaded on a second try`);
      return { report, kept: { native: k, plans: fx.plans } };
    }
    k.close();
    const reasons = r.messages.map(cleanMessage).filter((m) => !/^failed to load object/.test(m)).slice(-3);
    const why = `${errnoName(-r.value)}${reasons.length ? `: ${reasons.join('; ')}` : ''}`;
    if (!report.programs.some((p) => p.accepted)) return { report, kept: null };
    if (firstFailure) throw new K2Error('internal', `${file}: accepted programs failed to load together twice: ${firstFailure}; then ${why}`);
    firstFailure = why;
  }
  throw new K2Error('internal', `${file}: unreachable`);
}

// ---------------------------------------------------------------------------------------------
// A loaded object: test runs and map access.


export class LibbpfLoaded {
  private closedFlag = false;
  constructor(
    readonly file: string,
    readonly programs: ProgramVerdict[],
    readonly fixups: string[],
    private readonly native: NativeObject,
    private readonly plans: Map<Ptr, ProgPlan>,
  ) {}

  private get api(): LibbpfApi {
    if (this.closedFlag) throw new K2Error('internal', `${this.file}: object used after close()`);
    return this.native.api;
  }

  private progFd(name: string): { fd: number; plan: ProgPlan } {
    for (const [p, plan] of this.plans) {
      if (plan.name !== name) continue;
      const fd = this.api.progFd(p);
      if (fd < 0) {
        const v = this.programs.find((x) => x.name === name);
        throw new K2Error('input', `program '${name}' is not loaded: ${v?.error ?? 'not accepted'}`, { file: this.file });
      }
      return { fd, plan };
    }
    throw new K2Error('input', `no program named '${name}' (programs: ${[...this.plans.values()].map((p) => p.name).join(', ')})`, { file: this.file });
  }

  mapInfos(): MapInfo[] {
    const api = this.api;
    return this.native.maps().map((m) => {
      const typeId = api.mapType(m);
      const type = api.mapTypeStr(typeId) ?? `type ${typeId}`;
      return { name: api.mapName(m), type, typeId, keySize: api.mapKeySize(m), valueSize: api.mapValueSize(m), maxEntries: api.mapMaxEntries(m), flags: api.mapFlags(m), perCpu: PERCPU_MAP_TYPES.has(type) };
    });
  }

  private map(name: string): { fd: number; info: MapInfo } {
    const api = this.api;
    const infos = this.mapInfos();
    const maps = this.native.maps();
    const i = infos.findIndex((m) => m.name === name);
    if (i < 0) throw new K2Error('input', `no map named '${name}' (maps: ${infos.map((m) => m.name).join(', ') || 'none'})`, { file: this.file });
    const fd = api.mapFd(maps[i]!);
    if (fd < 0) throw new K2Error('input', `map '${name}' was not created`, { file: this.file });
    return { fd, info: infos[i]! };
  }

  testRun(progName: string, input: RunInput = {}): RunResult {
    const { fd, plan } = this.progFd(progName);
    return testRunFd(this.api, fd, plan.type, progName, input, this.file);
  }

  readMap(name: string): MapEntry[] {
    const { fd, info } = this.map(name);
    return readMapFd(this.api, fd, info, this.file);
  }

  writeMap(name: string, entries: MapEntry[]): void {
    const { fd, info } = this.map(name);
    writeMapFd(this.api, fd, info, entries, this.file);
  }

  clearMap(name: string): void {
    const { fd, info } = this.map(name);
    clearMapFd(this.api, fd, info, this.file);
  }

  /** The map's fd (owned by the bpf_object: valid until close()). */
  mapFd(name: string): number {
    return this.map(name).fd;
  }

  /**
   * The program's instructions after bpf_object__load (bpf_program__insns): libbpf keeps them as it
   * handed them to the kernel — CO-RE relocated, subprograms appended, map fds and .kconfig
   * offsets patched in.
   */
  loadedInsns(progName: string): Uint8Array {
    this.progFd(progName); // loaded, or a K2Error saying why not
    for (const p of this.plans.keys()) {
      if (this.api.progName(p) !== progName) continue;
      const n = this.api.progInsnCnt(p);
      const at = this.api.progInsns(p);
      if (!at || n <= 0) throw new K2Error('internal', `${this.file}: libbpf has no instructions for loaded program '${progName}'`);
      return this.api.read(at, n * 8);
    }
    throw new K2Error('internal', `${this.file}: program '${progName}' vanished`);
  }

  close(): void {
    if (this.closedFlag) return;
    this.native.close();
    this.closedFlag = true;
  }
}

export function libbpfOpenLoaded(bytes: Uint8Array, file: string, opts: VerifyOptions): { report: VerifyReport; loaded: LibbpfLoaded | null } {
  const { report, kept } = libbpfVerify(bytes, file, opts, true);
  if (!kept) return { report, loaded: null };
  return { report, loaded: new LibbpfLoaded(file, report.programs, report.fixups, kept.native, kept.plans) };
}

let probed: { ok: boolean; reason: string } | null = null;

/** Loads "r0 = 0; exit" as a socket filter: the cheapest proof that bpf() works here (cached). */
export function libbpfProbe(): { ok: boolean; reason: string } {
  if (probed) return probed;
  probed = probe();
  return probed;
}

function probe(): { ok: boolean; reason: string } {
  const api = libbpf();
  const insns = Buffer.from([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
  const fd = api.progLoadRaw(1, 'k2_probe', 'GPL', insns, 2);
  if (fd >= 0) {
    api.close(fd);
    return { ok: true, reason: `bpf() works (${api.path})` };
  }
  const errno = -fd;
  if (errno === EPERM || errno === 13) return { ok: false, reason: `bpf() not permitted (${errnoName(errno)}): needs root or CAP_BPF` };
  return { ok: false, reason: `bpf() unavailable: ${api.strerror(errno)} (${errnoName(errno)})` };
}
