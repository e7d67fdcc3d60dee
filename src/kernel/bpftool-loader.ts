// The bpftool backend (`--loader bpftool`): the same verdicts and runs as the libbpf backend, through
// the bpftool command, for machines where libbpf.so cannot be loaded in-process.
//
// bpftool keeps loaded programs alive only by pinning them, so every load pins into a private bpffs
// (bpffs.ts) that is removed when the object is closed or the process ends. Per-program verdicts:
// `prog loadall` of the whole object first; when it fails, each program is loaded from a copy of
// the object in which only that program is visible (elfscan.isolatePrograms). Verifier logs and
// reasons come from the libbpf messages bpftool prints on stderr, classified by fixups.ts exactly as
// the libbpf backend classifies them. Map fixups (max_entries 0, ringbuf/perf_event_array sizes)
// cannot be asked of bpftool: k2 creates such maps itself, from the object's BTF map definitions,
// and hands them over with `map name NAME pinned PATH` (BTF-defined maps only).

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { K2Error } from '../util/errors.js';
import { makePinDir, listPins, type PinDir } from './bpffs.js';
import { libbpf } from './libbpf.js';
import { isolatePrograms, prepareObject, scanElf, type ElfScan, type ScannedProgram } from './elfscan.js';
import { readBtfMapDefs, MAP_TYPE_NAMES } from './btfmaps.js';
import {
  objectName, mapFixes, classifyFailure, classifyOpenFailure, cleanMessage, legacySectionType, processedInsns, sectionProgType, sectionTypeOrLegacy,
} from './fixups.js';
import type { MapEntry, MapInfo, ProgramVerdict, RunInput, RunResult, VerifyOptions, VerifyReport } from './types.js';

const TIMEOUT_MS = 10 * 60 * 1000;
const MAX_OUTPUT = 512 * 1024 * 1024;

/** Path of bpftool, or null when absent. */
export function findBpftool(): string | null {
  const cands = [process.env.K2_BPFTOOL, ...(process.env.PATH ?? '').split(':').map((d) => join(d, 'bpftool')), '/usr/sbin/bpftool', '/sbin/bpftool', '/usr/local/sbin/bpftool'];
  for (const c of cands) {
    if (!c) continue;
    try {
      if (statSync(c).isFile()) return c;
    } catch {
      /* next */
    }
  }
  return null;
}

function tool(): string {
  const t = findBpftool();
  if (!t) throw new K2Error('tool', 'bpftool not found (install the bpftool package, or set K2_BPFTOOL)');
  return t;
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function bpftool(args: string[]): Promise<Ran> {
  const r = await execa(tool(), args, { reject: false, timeout: TIMEOUT_MS, maxBuffer: MAX_OUTPUT, stdin: 'ignore', encoding: 'utf8' });
  if (r.timedOut) throw new K2Error('tool', `bpftool ${args.slice(0, 3).join(' ')} timed out`);
  if (r.exitCode === undefined && r.signal) throw new K2Error('tool', `bpftool killed by ${r.signal}`);
  return { code: r.exitCode ?? 1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

/** libbpf's messages and verifier logs as bpftool prints them on stderr. */
interface ParsedStderr {
  messages: string[];
  logs: Map<string, string>; // program → verifier log
  errnos: Map<string, number>; // program → errno of its failed load
}

export function parseStderr(stderr: string): ParsedStderr {
  const messages: string[] = [];
  const logs = new Map<string, string>();
  const errnos = new Map<string, number>();
  const lines = stderr.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const begin = /^libbpf: prog '([^']*)': -- BEGIN PROG LOAD LOG --$/.exec(l);
    if (begin) {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== '-- END PROG LOAD LOG --'; i++) body.push(lines[i]!);
      logs.set(begin[1]!, body.join('\n') + '\n');
      continue;
    }
    const failed = /^libbpf: prog '([^']*)': failed to load: -(\d+)/.exec(l);
    if (failed) errnos.set(failed[1]!, Number(failed[2]));
    if (l.startsWith('libbpf: ') || l.startsWith('Error: ')) messages.push(l);
  }
  return { messages, logs, errnos };
}

function errnoOf(messages: string[]): number {
  for (const m of messages) {
    const x = /: -(\d+)\b/.exec(m) ?? /\((-?\d+)\)/.exec(m);
    if (x) return Math.abs(Number(x[1]));
  }
  return 0;
}

interface ProgShow {
  type: string;
  xlated: number | null;
  jited: number | null;
  verified: number | null;
}

async function progShow(pin: string): Promise<ProgShow> {
  const r = await bpftool(['-j', 'prog', 'show', 'pinned', pin]);
  if (r.code !== 0) throw new K2Error('tool', `bpftool prog show pinned ${pin} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  const j = JSON.parse(r.stdout) as { type?: string; bytes_xlated?: number; bytes_jited?: number; verified_insns?: number };
  return {
    type: j.type ?? 'unknown',
    xlated: typeof j.bytes_xlated === 'number' ? j.bytes_xlated / 8 : null,
    jited: typeof j.bytes_jited === 'number' ? j.bytes_jited : null,
    verified: typeof j.verified_insns === 'number' ? j.verified_insns : null,
  };
}

/** A temporary copy of an object under its own basename (libbpf names maps after it). */
class TempObject {
  readonly dir: string;
  constructor(readonly base: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'k2-obj-'));
  }
  /** Writes `bytes` as <dir>/<tag>/<basename> (the basename names the object and its maps). */
  write(bytes: Uint8Array, tag = 'obj'): string {
    const sub = join(this.dir, tag);
    mkdirSync(sub, { recursive: true });
    const path = join(sub, this.base);
    writeFileSync(path, bytes);
    return path;
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface Plan {
  prog: ScannedProgram;
  typeArg: string | null; // bpftool `type` override
  fixups: string[];
  cannot: string | null;
}

function plan(p: ScannedProgram, opts: VerifyOptions): Plan {
  if (sectionProgType(p.section)) return { prog: p, typeArg: null, fixups: [], cannot: null };
  const legacy = legacySectionType(p.section);
  const wanted = opts.progType ?? legacy?.canonical ?? null;
  if (!wanted) {
    return {
      prog: p, typeArg: null, fixups: [],
      cannot: `cannot load here: libbpf does not know the program type of section '${p.section}'; pass --type TYPE (a libbpf section name: xdp, socket, tc, kprobe, ...)`,
    };
  }
  return {
    prog: p,
    typeArg: wanted,
    fixups: [opts.progType ? `program type from --type ${opts.progType}` : `program type from section prefix '${legacy!.prefix}' (as libbpf < 1.0 / cilium/ebpf do)`],
    cannot: null,
  };
}

const baseName = (file: string) => objectName(file) + '.o';

interface LoadAttempt {
  ok: boolean;
  pins: string; // directory holding the program pins
  maps: string; // directory holding the map pins
  err: ParsedStderr;
  openFailed: boolean;
}

async function loadall(objPath: string, pinRoot: PinDir, tag: string, typeArg: string | null, mapcompat: boolean, mapArgs: string[]): Promise<LoadAttempt> {
  const pins = join(pinRoot.path, `${tag}-progs`);
  const maps = join(pinRoot.path, `${tag}-maps`);
  const args = [...(mapcompat ? ['--mapcompat'] : []), 'prog', 'loadall', objPath, pins, ...(typeArg ? ['type', typeArg] : []), ...mapArgs, 'pinmaps', maps];
  const r = await bpftool(args);
  const err = parseStderr(r.stderr);
  const openFailed = err.messages.some((m) => /Error: failed to open object file/.test(m));
  return { ok: r.code === 0, pins, maps, err, openFailed };
}

function verdictFromFailure(pl: Plan, err: ParsedStderr, logSize: number): ProgramVerdict {
  const name = pl.prog.name;
  const type = pl.typeArg ? sectionProgType(pl.typeArg) ?? 'unknown' : sectionTypeOrLegacy(pl.prog.section);
  const log = (err.logs.get(name) ?? '').slice(-logSize); // the tail, like the kernel's rotating log
  const errno = err.errnos.get(name) ?? errnoOf(err.messages);
  const c = classifyFailure({ name, type, errno, log, messages: err.messages });
  return {
    section: pl.prog.section, name, type, verdict: c.verdict, accepted: false, verifiedInsns: processedInsns(log),
    xlatedInsns: null, jitedBytes: null, error: c.error, log: c.verdict === 'rejected' ? log : '', fixups: pl.fixups,
  };
}

async function acceptedFrom(pl: Plan, pinPath: string): Promise<ProgramVerdict> {
  const s = await progShow(pinPath);
  return {
    section: pl.prog.section, name: pl.prog.name, type: s.type, verdict: 'accepted', accepted: true,
    verifiedInsns: s.verified, xlatedInsns: s.xlated, jitedBytes: s.jited, error: null, log: '', fixups: pl.fixups,
  };
}

/** Number of possible CPUs, from /sys/devices/system/cpu/possible ("0-1", "0,2-3"). */
function possibleCpus(): number {
  try {
    let n = 0;
    for (const part of readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split(',')) {
      const [a, b] = part.split('-').map(Number);
      n += b === undefined ? 1 : b! - a! + 1;
    }
    return Math.max(1, n);
  } catch {
    return 1;
  }
}

/**
 * Creates, pinned in the private bpffs, the maps the kernel would refuse as declared (same rules as
 * the libbpf backend, fixups.mapFixes); returns the `map name NAME pinned PATH` arguments that make
 * bpftool use them, and the notes.
 */
async function premadeMaps(bytes: Uint8Array, scan: ElfScan, pinDir: PinDir): Promise<{ args: string[]; notes: string[] }> {
  const args: string[] = [];
  const notes: string[] = [];
  for (const def of readBtfMapDefs(bytes, scan)) {
    const type = MAP_TYPE_NAMES[def.type] ?? `type ${def.type}`;
    const fix = mapFixes(`map '${def.name}'`, { type, keySize: def.keySize, valueSize: def.valueSize, maxEntries: def.maxEntries });
    if (fix.notes.length === 0 || def.hasInner) continue;
    const entries = fix.shape.maxEntries === 0 && type === 'perf_event_array' ? possibleCpus() : fix.shape.maxEntries;
    const path = join(pinDir.path, `premade-${def.name}`);
    const r = await bpftool(['map', 'create', path, 'type', type, 'key', String(fix.shape.keySize), 'value', String(fix.shape.valueSize),
      'entries', String(entries), 'name', def.name.slice(0, 15), 'flags', String(def.flags)]);
    if (r.code !== 0) continue; // leave the map to bpftool: the load then reports why it fails
    args.push('map', 'name', def.name, 'pinned', path);
    notes.push(...fix.notes);
  }
  return { args, notes };
}

interface Outcome {
  report: VerifyReport;
  kept: { pinDir: PinDir; progs: string; maps: string; loaded: Set<string> } | null;
}

export async function bpftoolVerify(input: Uint8Array, file: string, opts: VerifyOptions, keep: boolean): Promise<Outcome> {
  const report: VerifyReport = { file, loader: 'bpftool', malformed: false, objectError: null, fixups: [], programs: [] };
  const scanned = scanElf(input);
  if (!scanned.ok) {
    report.malformed = true;
    report.objectError = `malformed BPF object: ${scanned.reason}`;
    return { report, kept: null };
  }
  const prep = prepareObject(input, scanned.scan);
  const rescanned = scanElf(prep.bytes);
  if (!rescanned.ok) throw new K2Error('internal', `${file}: fixed-up object no longer scans: ${rescanned.reason}`);
  const scan: ElfScan = rescanned.scan;
  report.fixups = [...prep.notes];
  const tmp = new TempObject(baseName(file));
  const pinDir = makePinDir();
  let keepPins = false;
  try {
    const plans = scan.programs.map((p) => plan(p, opts));
    const objPath = tmp.write(prep.bytes);
    const premade = await premadeMaps(prep.bytes, scan, pinDir);
    report.fixups.push(...premade.notes);

    // Pass 1: the whole object (only when no program needs a type override).
    const whole = plans.every((p) => !p.typeArg && !p.cannot) ? await loadall(objPath, pinDir, 'all', null, prep.relaxedMaps, premade.args) : null;
    if (whole?.ok) {
      report.programs = [];
      for (const pl of plans) report.programs.push(await acceptedFrom(pl, join(whole.pins, pl.prog.name)));
      if (plans.length === 0) report.objectError = 'cannot load here: the object has no programs (no executable section with a function symbol)';
      if (keep && plans.length > 0) {
        keepPins = true;
        return { report, kept: { pinDir, progs: whole.pins, maps: whole.maps, loaded: new Set(plans.map((p) => p.prog.name)) } };
      }
      return { report, kept: null };
    }
    if (whole?.openFailed && !whole.err.messages.some((m) => /failed to guess program type/.test(m))) {
      const c = classifyOpenFailure(errnoOf(whole.err.messages), whole.err.messages);
      report.malformed = c.malformed;
      report.objectError = c.error;
      report.programs = plans.map((pl) => ({
        section: pl.prog.section, name: pl.prog.name, type: sectionTypeOrLegacy(pl.prog.section), verdict: 'cannot-load', accepted: false,
        verifiedInsns: null, xlatedInsns: null, jitedBytes: null, error: c.error, log: '', fixups: [],
      }));
      return { report, kept: null };
    }
    if (plans.length === 0) {
      report.objectError = 'cannot load here: the object has no programs (no executable section with a function symbol)';
      return { report, kept: null };
    }

    // Pass 2: each program alone.
    const verdicts: ProgramVerdict[] = [];
    for (let i = 0; i < plans.length; i++) {
      const pl = plans[i]!;
      if (pl.cannot) {
        verdicts.push({
          section: pl.prog.section, name: pl.prog.name, type: 'unknown', verdict: 'cannot-load', accepted: false,
          verifiedInsns: null, xlatedInsns: null, jitedBytes: null, error: pl.cannot, log: '', fixups: pl.fixups,
        });
        continue;
      }
      const path = tmp.write(isolatePrograms(prep.bytes, scan, [pl.prog]), `p${i}`);
      const r = await loadall(path, pinDir, `p${i}`, pl.typeArg, prep.relaxedMaps, premade.args);
      if (r.ok) verdicts.push(await acceptedFrom(pl, join(r.pins, pl.prog.name)));
      else if (r.openFailed && !r.err.messages.some((m) => /prog '/.test(m))) {
        // The object itself cannot be opened: the same for every program.
        rmSync(r.pins, { recursive: true, force: true });
        rmSync(r.maps, { recursive: true, force: true });
        const c = classifyOpenFailure(errnoOf(r.err.messages), r.err.messages);
        report.malformed = c.malformed;
        report.objectError = c.error;
        report.programs = plans.map((q) => ({
          section: q.prog.section, name: q.prog.name, type: sectionTypeOrLegacy(q.prog.section), verdict: 'cannot-load', accepted: false,
          verifiedInsns: null, xlatedInsns: null, jitedBytes: null, error: c.error, log: '', fixups: [],
        }));
        return { report, kept: null };
      } else verdicts.push(verdictFromFailure(pl, r.err, opts.logSize ?? 1 << 20));
      rmSync(r.pins, { recursive: true, force: true });
      rmSync(r.maps, { recursive: true, force: true });
    }
    report.programs = verdicts;
    if (!keep) return { report, kept: null };

    // Keep: one load of the accepted programs (bpftool's `type` applies to all of them, so programs
    // needing an override are kept only when they all share it and no other program is loaded).
    const accepted = plans.filter((pl) => verdicts.find((v) => v.name === pl.prog.name && v.section === pl.prog.section)?.accepted);
    const plain = accepted.filter((pl) => !pl.typeArg);
    const overrides = [...new Set(accepted.filter((pl) => pl.typeArg).map((pl) => pl.typeArg))];
    const chosen = plain.length > 0 || overrides.length !== 1 ? plain : accepted;
    if (chosen.length === 0) return { report, kept: null };
    const path = tmp.write(isolatePrograms(prep.bytes, scan, chosen.map((c) => c.prog)), 'keep');
    const r = await loadall(path, pinDir, 'keep', chosen[0]!.typeArg, prep.relaxedMaps, premade.args);
    if (!r.ok) throw new K2Error('internal', `${file}: accepted programs failed to load together: ${r.err.messages.map(cleanMessage).pop() ?? ''}`);
    keepPins = true;
    return { report, kept: { pinDir, progs: r.pins, maps: r.maps, loaded: new Set(chosen.map((c) => c.prog.name)) } };
  } finally {
    tmp.remove();
    if (!keepPins) pinDir.remove();
  }
}

// ---------------------------------------------------------------------------------------------

const hexArgs = (b: Uint8Array): string[] => Array.from(b, (x) => x.toString(16).padStart(2, '0'));
const fromHexList = (a: unknown): Uint8Array => new Uint8Array((a as string[]).map((x) => parseInt(x, 16)));

export class BpftoolLoaded {
  private closed = false;
  /** Map fds opened from the pins by mapFd(), closed by close(). */
  private readonly fds = new Map<string, number>();
  constructor(
    readonly file: string,
    readonly programs: ProgramVerdict[],
    readonly fixups: string[],
    private readonly pinDir: PinDir,
    private readonly progDir: string,
    private readonly mapDir: string,
    private readonly loaded: Set<string>,
  ) {}

  private check(): void {
    if (this.closed) throw new K2Error('internal', `${this.file}: object used after close()`);
  }

  private progPin(name: string): string {
    this.check();
    const v = this.programs.find((p) => p.name === name);
    if (!v) throw new K2Error('input', `no program named '${name}' (programs: ${this.programs.map((p) => p.name).join(', ')})`, { file: this.file });
    if (!v.accepted) throw new K2Error('input', `program '${name}' is not loaded: ${v.error}`, { file: this.file });
    if (!this.loaded.has(name)) throw new K2Error('unsupported', `program '${name}' was accepted alone but bpftool could not load it together with the others (its type needs a separate override)`, { file: this.file });
    return join(this.progDir, name);
  }

  /** libbpf pins map NAME as NAME with dots replaced by underscores. */
  private mapPin(name: string): string {
    this.check();
    const pins = listPins(this.mapDir);
    const pin = name.replace(/\./g, '_');
    if (!pins.includes(pin)) throw new K2Error('input', `no map named '${name}' (maps: ${pins.join(', ') || 'none'})`, { file: this.file });
    return join(this.mapDir, pin);
  }

  async mapInfos(): Promise<MapInfo[]> {
    this.check();
    const out: MapInfo[] = [];
    for (const pin of listPins(this.mapDir)) {
      const r = await bpftool(['-j', 'map', 'show', 'pinned', join(this.mapDir, pin)]);
      if (r.code !== 0) continue;
      const j = JSON.parse(r.stdout) as { name?: string; type: string; bytes_key: number; bytes_value: number; max_entries: number; flags: number };
      // The kernel's name is libbpf's name when it was short enough to keep (".data.quota",
      // "obj.bss"); otherwise the pin name is (longer names have no dots).
      const name = j.name && j.name.replace(/\./g, '_') === pin ? j.name : pin;
      out.push({ name, type: j.type, typeId: -1, keySize: j.bytes_key, valueSize: j.bytes_value, maxEntries: j.max_entries, flags: j.flags, perCpu: /percpu/.test(j.type) });
    }
    return out;
  }

  async testRun(progName: string, input: RunInput = {}): Promise<RunResult> {
    const pin = this.progPin(progName);
    const dir = mkdtempSync(join(tmpdir(), 'k2-run-'));
    try {
      const dataIn = input.dataIn ?? new Uint8Array(0);
      const dataSizeOut = input.dataSizeOut ?? (dataIn.length ? dataIn.length + 4096 : 0);
      writeFileSync(join(dir, 'data_in'), dataIn);
      const args = ['-j', 'prog', 'run', 'pinned', pin, 'data_in', join(dir, 'data_in')];
      if (dataSizeOut > 0) args.push('data_out', join(dir, 'data_out'), 'data_size_out', String(dataSizeOut));
      if (input.ctxIn) {
        writeFileSync(join(dir, 'ctx_in'), input.ctxIn);
        args.push('ctx_in', join(dir, 'ctx_in'));
        const ctxSizeOut = input.ctxSizeOut ?? input.ctxIn.length;
        if (ctxSizeOut > 0) args.push('ctx_out', join(dir, 'ctx_out'), 'ctx_size_out', String(ctxSizeOut));
      }
      if (input.repeat !== undefined) args.push('repeat', String(input.repeat));
      const r = await bpftool(args);
      if (r.code !== 0) {
        const why = (() => {
          try {
            return (JSON.parse(r.stdout) as { error?: string }).error ?? r.stderr.trim();
          } catch {
            return r.stderr.trim() || r.stdout.trim();
          }
        })();
        const hint = dataIn.length === 0 ? ' (bpftool always passes data_in, which raw_tracepoint/syscall programs refuse: use the libbpf loader for them)' : '';
        throw new K2Error('input', `test run of '${progName}' failed: ${why}${hint}`, { file: this.file });
      }
      const j = JSON.parse(r.stdout) as { retval: number; duration: number };
      const read = (f: string) => (existsSync(join(dir, f)) ? new Uint8Array(readFileSync(join(dir, f))) : new Uint8Array(0));
      return { retval: j.retval >>> 0, durationNs: j.duration, dataOut: read('data_out'), ctxOut: input.ctxIn ? read('ctx_out') : null };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async readMap(name: string): Promise<MapEntry[]> {
    const pin = this.mapPin(name);
    const r = await bpftool(['-j', 'map', 'dump', 'pinned', pin]);
    if (r.code !== 0) throw new K2Error('input', `reading map '${name}': ${r.stderr.trim() || r.stdout.trim()}`, { file: this.file });
    const j = JSON.parse(r.stdout) as { key: string[]; value?: string[]; values?: { cpu: number; value: string[] }[] }[];
    return j.map((e) => {
      if (e.values) {
        const perCpu = e.values.sort((a, b) => a.cpu - b.cpu).map((v) => fromHexList(v.value));
        return { key: fromHexList(e.key), value: perCpu[0] ?? new Uint8Array(0), perCpu };
      }
      return { key: fromHexList(e.key), value: fromHexList(e.value ?? []) };
    });
  }

  async writeMap(name: string, entries: MapEntry[]): Promise<void> {
    const pin = this.mapPin(name);
    const info = (await this.mapInfos()).find((m) => m.name.replace(/\./g, '_') === name.replace(/\./g, '_'))!;
    for (const e of entries) {
      if (e.key.length !== info.keySize) throw new K2Error('usage', `map '${name}': key is ${e.key.length} bytes, the map wants ${info.keySize}`);
      // bpftool writes one value to every CPU of a per-CPU map
      const value = e.perCpu?.[0] ?? e.value;
      if (e.perCpu && e.perCpu.some((v) => Buffer.compare(v, value) !== 0))
        throw new K2Error('unsupported', `map '${name}': bpftool can only write the same value on every CPU (use --loader libbpf)`, { file: this.file });
      if (value.length !== info.valueSize) throw new K2Error('usage', `map '${name}': value is ${value.length} bytes, the map wants ${info.valueSize}`);
      const r = await bpftool(['map', 'update', 'pinned', pin, 'key', 'hex', ...hexArgs(e.key), 'value', 'hex', ...hexArgs(value)]);
      if (r.code !== 0) throw new K2Error('input', `writing map '${name}': ${r.stderr.trim() || r.stdout.trim()}`, { file: this.file });
    }
  }

  async clearMap(name: string): Promise<void> {
    const pin = this.mapPin(name);
    const entries = await this.readMap(name);
    const info = (await this.mapInfos()).find((m) => m.name.replace(/\./g, '_') === name.replace(/\./g, '_'));
    if (info?.type.includes('array')) {
      await this.writeMap(name, entries.map((e) => ({ key: e.key, value: new Uint8Array(info.valueSize) })));
      return;
    }
    for (const e of entries) {
      const r = await bpftool(['map', 'delete', 'pinned', pin, 'key', 'hex', ...hexArgs(e.key)]);
      if (r.code !== 0) throw new K2Error('input', `clearing map '${name}': ${r.stderr.trim()}`, { file: this.file });
    }
  }

  /** An fd for map `name`, opened from its pin (BPF_OBJ_GET through libbpf.so) and kept until close(). */
  mapFd(name: string): number {
    const have = this.fds.get(name);
    if (have !== undefined) return have;
    const pin = this.mapPin(name);
    const api = libbpf();
    const fd = api.objGet(pin);
    if (fd < 0) throw new K2Error('input', `opening map '${name}': ${api.strerror(-fd)}`, { file: this.file });
    this.fds.set(name, fd);
    return fd;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fds.size) {
      const api = libbpf();
      for (const fd of this.fds.values()) api.close(fd);
      this.fds.clear();
    }
    this.pinDir.remove();
  }
}

export async function bpftoolOpenLoaded(bytes: Uint8Array, file: string, opts: VerifyOptions): Promise<{ report: VerifyReport; loaded: BpftoolLoaded | null }> {
  const { report, kept } = await bpftoolVerify(bytes, file, opts, true);
  if (!kept) return { report, loaded: null };
  return { report, loaded: new BpftoolLoaded(file, report.programs, report.fixups, kept.pinDir, kept.progs, kept.maps, kept.loaded) };
}

/** Whether bpftool can use bpf() here. */
export async function bpftoolProbe(): Promise<{ ok: boolean; reason: string }> {
  const t = findBpftool();
  if (!t) return { ok: false, reason: 'bpftool not found' };
  const r = await bpftool(['-j', 'prog', 'show']);
  if (r.code === 0) return { ok: true, reason: `bpf() works (${t})` };
  const msg = (r.stderr + r.stdout).trim();
  if (/not permitted|EPERM|permission/i.test(msg)) return { ok: false, reason: `bpf() not permitted: needs root or CAP_BPF (${msg})` };
  return { ok: false, reason: `bpftool cannot use bpf(): ${msg}` };
}
