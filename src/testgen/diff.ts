// Differential testing of k2's interpreter against the kernel's BPF_PROG_TEST_RUN (check-semantics):
// every packet program the kernel can test-run, on the same generated inputs and map contents. The
// kernel is the reference: every difference is a mismatch, except bytes holding the result of a
// clock/random helper (the interpreter's values are its own). Maps are compared key by key where the
// interpreter touched them after every input, and whole (a chunk at a time) after every session of
// inputs — big maps only after the first and the last session, so memory stays bounded.
// Kernel against kernel (`k2 difftest`) is in difftest.ts.
import { readObject } from '../ir/index.js';
import type { BpfObject, ProgramRef } from '../ir/types.js';
import { legacyMaps, openHelperOracle, progArraySlot, type ClosableOracle, type LoadedObject, type MapChunk } from '../kernel/index.js';
import {
  compareOutcomes, objectMaps, possibleCpus, prepareObject, Runner, toHex,
  type MapSpec, type MapState, type Outcome, type Prepared,
} from '../interp/index.js';
import { K2Error } from '../util/errors.js';
import type { MapInit, TestInput } from './index.js';
import {
  interpretable, kernelMapName, withKernelType, openForTest, pinToCpu0, probeInput, refusalReason, sessionsFor, tryRun, untestableType, verdictOf,
  type DiffOptions, type DiffReport, type KernelRun, type ProgramResult, type Untestable,
} from './common.js';
import { COMPARED_MAP_TYPES, kobjectOf, type KMap, type KObject } from './kmaps.js';
import { compareMap, resetMap, type CompareSink } from './mapcompare.js';
import { loaderPatches, type LoadedMap, type LoadedProgram, type LoaderMapping } from './loaded.js';

export type { DiffOptions, DiffReport, Mismatch, ProgramResult, Untestable } from './common.js';
export { pinToCpu0 } from './common.js';
export { diffObjects } from './difftest.js';

const LPM_TRIE = 11;

/** The interpreter's state of one map, seen as a kernel map (user-space lookups, chunked reads). */
class InterpMap implements KMap {
  readonly valueBytes: number;
  readonly isArray: boolean;
  constructor(
    readonly info: KMap['info'],
    readonly big: boolean,
    private readonly state: () => MapState,
  ) {
    const s = info.perCpu ? Math.ceil(info.valueSize / 8) * 8 : info.valueSize;
    this.valueBytes = s * (info.perCpu ? state().ncpu : 1);
    this.isArray = info.typeId === 2 || info.typeId === 6;
  }
  async lookup(key: Uint8Array): Promise<Uint8Array | null> {
    return this.state().userLookup(key);
  }
  async write(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.state().set(key, value);
  }
  async remove(key: Uint8Array): Promise<void> {
    this.state().userDelete(key);
  }
  async *chunks(): AsyncIterable<MapChunk> {
    const ks = this.info.keySize;
    const vs = this.valueBytes;
    const max = Math.max(1, Math.min(8192, this.info.maxEntries));
    const keys = Buffer.alloc(ks * max);
    const values = Buffer.alloc(vs * max);
    const state = this.state();
    const spec = state.spec;
    if (this.isArray && ks === 4 && spec.keySize === 4 && spec.valueSize === this.info.valueSize && spec.maxEntries === this.info.maxEntries) {
      for (let from = 0; from < spec.maxEntries; from += max) {
        const n = Math.min(max, spec.maxEntries - from);
        state.copyArrayElements(from, n, keys, values);
        yield { n, keys, values };
      }
      return;
    }
    let n = 0;
    for (const [k, v] of state.userElements()) {
      keys.set(k, n * ks);
      values.set(v, n * vs);
      if (++n === max) {
        yield { n, keys, values };
        n = 0;
      }
    }
    if (n) yield { n, keys, values };
  }
}

/** A map the kernel and the interpreter both have. */
interface Bound {
  index: number; // in the unit's maps (objectMaps order)
  spec: MapSpec;
  kernel: KMap;
  base: Uint8Array | null; // a global data section's initial bytes
}

/** Maps check-semantics resets and compares (readable/writable types, not read-only data). */
function bind(obj: BpfObject, ko: KObject, infos: Awaited<ReturnType<KObject['k']['maps']>>): Bound[] {
  const out: Bound[] = [];
  objectMaps(obj).forEach((spec, index) => {
    if (!COMPARED_MAP_TYPES.has(spec.type) || spec.readonly) return;
    const name = kernelMapName(spec, infos);
    const kernel = name ? ko.maps.get(name) : undefined;
    if (!kernel) return;
    const d = index >= obj.maps.length ? obj.data[index - obj.maps.length] : undefined;
    let base: Uint8Array | null = null;
    if (d) {
      base = new Uint8Array(d.size);
      base.set(d.init.subarray(0, d.size));
    }
    out.push({ index, spec, kernel, base });
  });
  return out;
}

/** Byte windows of `hex` holding a nondeterministic helper result (LE, 8 or 4 bytes). */
function nondetWindows(hex: string, values: bigint[]): boolean[] {
  const b = Buffer.from(hex, 'hex');
  const cover = new Array<boolean>(b.length).fill(false);
  for (const v of values) {
    for (const w of [8, 4]) {
      if (w === 4 && v > 0xffffffffn && (v & 0xffffffffn) === 0n) continue;
      const pat = Buffer.alloc(8);
      pat.writeBigUInt64LE(BigInt.asUintN(64, v));
      const needle = pat.subarray(0, w);
      for (let at = b.indexOf(needle); at >= 0; at = b.indexOf(needle, at + 1)) for (let i = 0; i < w; i++) cover[at + i] = true;
    }
  }
  return cover;
}

/** Whether `b` differs from `a` only inside windows of `b` holding a nondeterministic value. */
function onlyNondet(a: string, b: string, values: bigint[]): boolean {
  if (a.length !== b.length) return false;
  const cover = nondetWindows(b, values);
  for (let i = 0; i < a.length; i += 2) if (a.slice(i, i + 2) !== b.slice(i, i + 2) && !cover[i / 2]) return false;
  return true;
}

/** The kernel's run as an Outcome (maps are compared separately). */
function kernelOutcome(r: KernelRun & { ok: true }): Outcome {
  return {
    status: 'exit', ret: r.r.retval, r0: String(r.r.retval), packet: toHex(r.r.dataOut), ctx: r.r.ctxOut ? toHex(r.r.ctxOut) : null,
    maps: [], effects: [], fault: null, steps: 0,
  };
}

/** One program: interpreter and kernel side by side. */
class Check {
  readonly res: ProgramResult;
  /** Interpreter map states, indexed like the unit's maps. */
  maps: MapState[];
  constructor(
    p: ProgramRef,
    private readonly prep: Prepared,
    private readonly bound: Bound[],
    private readonly slots: Map<number, Map<number, string>>,
  ) {
    this.res = { section: p.section, name: p.name, type: p.progType, inputs: 0, mismatches: 0, undefinedInputs: 0, refusedInputs: 0, firstMismatch: null };
    this.maps = prep.unit.maps.map((_, i) => this.fresh(i));
    for (const b of bound) if (b.kernel.big) this.maps[b.index]!.touchedKeys = new Set();
  }

  /** A fresh state of map `i`; prog arrays hold what the kernel loader put there. */
  fresh(i: number): MapState {
    const m = this.prep.initialMap(i);
    for (const [slot, name] of this.slots.get(i) ?? []) m.progs.set(slot, name);
    return m;
  }

  interpMap(b: Bound): InterpMap {
    return new InterpMap(b.kernel.info, b.kernel.big, () => this.maps[b.index]!);
  }

  /** Session start: small maps fresh with the session's contents, big ones keep theirs plus those. */
  async startSession(inits: MapInit[]): Promise<void> {
    for (const b of this.bound) {
      const entries = inits.find((i) => i.map === b.spec.name)?.entries ?? [];
      if (b.kernel.big) for (const e of entries) await b.kernel.write(e.key, e.value);
      else {
        await resetMap(b.kernel, entries, b.base);
        this.maps[b.index] = this.fresh(b.index);
      }
      for (const e of entries) this.maps[b.index]!.set(e.key, e.value);
    }
    // Maps neither side compares (prog arrays, .rodata...) start over too.
    const fresh = new Set(this.bound.map((b) => b.index));
    this.maps = this.maps.map((m, i) => (fresh.has(i) ? m : this.fresh(i)));
  }

  /**
   * The interpreter's state of `b` set to the kernel's (after a divergence): whole, or the touched
   * keys of a big map. Not key by key for an LPM trie: the kernel's lookup of a key there (from user
   * space too, trie_lookup_elem) answers with the longest matching prefix's value, so copying it
   * under the looked-up key would invent an element the kernel does not hold.
   */
  async resync(b: Bound): Promise<void> {
    const m = this.maps[b.index]!;
    if (b.kernel.big && m.touchedKeys && b.spec.type !== LPM_TRIE) {
      for (const k of m.touchedKeys) {
        const key = Buffer.from(k, 'hex');
        const v = await b.kernel.lookup(key);
        if (v) m.set(key, v);
        else m.userDelete(key);
      }
      return;
    }
    const fresh = this.fresh(b.index);
    fresh.touchedKeys = m.touchedKeys;
    const ks = b.spec.keySize;
    const vs = b.kernel.valueBytes;
    for await (const c of b.kernel.chunks()) {
      for (let i = 0; i < c.n; i++) fresh.set(c.keys.subarray(i * ks, (i + 1) * ks), c.values.subarray(i * vs, (i + 1) * vs));
    }
    this.maps[b.index] = fresh;
  }

  /** The first map difference after a run, or null: touched keys (big maps), whole maps (the others touched, or `all`). */
  async mapDiff(all: boolean, big: boolean): Promise<{ field: string; a: unknown; b: unknown; bound: Bound } | null> {
    let found: { field: string; a: unknown; b: unknown; bound: Bound } | null = null;
    for (const b of this.bound) {
      const m = this.maps[b.index]!;
      const sink: CompareSink = {
        nondet: () => {},
        diff: (field, _offsets, a, x) => {
          found ??= { field: field.replace(/ (value|keys)$/, ''), a, b: x, bound: b };
        },
      };
      if (b.kernel.big && !(all && big)) {
        if (!m.touchedKeys || b.spec.type === LPM_TRIE) continue;
        for (const k of m.touchedKeys) {
          const key = Buffer.from(k, 'hex');
          const kv = await b.kernel.lookup(key);
          const iv = m.userLookup(key);
          if ((kv === null) !== (iv === null) || (kv && iv && Buffer.compare(kv, iv) !== 0)) {
            sink.diff(`map ${b.spec.name}`, null, { key: k, value: kv ? toHex(kv) : null }, { key: k, value: iv ? toHex(iv) : null });
          }
        }
      } else if (b.kernel.big || all || m.touched) {
        await compareMap(b.spec.name, b.kernel, b.kernel, this.interpMap(b), sink);
      }
      if (found) return found;
    }
    return null;
  }
}

/** Whether a map difference is only in bytes of the interpreter's value holding a nondeterministic result. */
function mapDiffNondet(d: { a: unknown; b: unknown }, values: bigint[]): boolean {
  const a = (d.a as { value: string | null }).value;
  const b = (d.b as { value: string | null }).value;
  return a !== null && b !== null && onlyNondet(a, b, values);
}

/**
 * Prog array slots the kernel loader filled (k2's legacy loader, as samples/bpf's bpf_load.c did:
 * "socket/N" goes into slot N), for the interpreter's prog arrays: map index → slot → program.
 */
function loaderSlots(obj: BpfObject, k: KObject['k']): Map<number, Map<number, string>> {
  const out = new Map<number, Map<number, string>>();
  if (k.loader !== 'legacy') return out;
  const maps = legacyMaps(obj);
  for (const p of obj.programs) {
    if (!verdictOf(k, p)?.accepted) continue;
    const slot = progArraySlot(p.section, maps);
    if (!slot || slot.slot >= (obj.maps[slot.map]?.maxEntries ?? 0)) continue;
    let m = out.get(slot.map);
    if (!m) out.set(slot.map, (m = new Map()));
    m.set(slot.slot, p.name);
  }
  return out;
}

async function checkProgram(p: ProgramRef, k: KObject, prep: Prepared, bound: Bound[], slots: Map<number, Map<number, string>>, runner: Runner, oracle: ClosableOracle, opts: DiffOptions, ncpu: number): Promise<ProgramResult | Untestable> {
  const c = new Check(p, prep, bound, slots);
  const res = c.res;
  const sessions = sessionsFor(p, prep.unit.maps, opts, ncpu);
  let ran = false;
  let n = 0;
  try {
    for (let si = 0; si < sessions.length; si++) {
      const s = sessions[si]!;
      await c.startSession(s.maps);
      const last = si === sessions.length - 1;
      for (let j = 0; j < s.inputs.length; j++) {
        let input = s.inputs[j]!;
        let kr = await tryRun(k.k, p.name, input);
        if (!kr.ok) {
          if (ran) {
            n++;
            res.refusedInputs!++;
            continue;
          }
          // Is it this input, or every input? A well-formed packet tells, and stands in for it.
          input = probeInput();
          kr = await tryRun(k.k, p.name, input);
          if (!kr.ok) return { section: p.section, name: p.name, type: p.progType, why: refusalReason(p, kr.error) };
        }
        ran = true;
        const idx = n++;
        for (const m of c.maps) {
          m.touched = false;
          m.touchedKeys?.clear();
        }
        const mine = runner.run(p.name, p.progType, { packet: input.packet, ...(input.ctx ? { ctx: input.ctx } : {}) }, c.maps, { cpu: 0, snapshotMaps: false, oracle });
        const endOfSession = j === s.inputs.length - 1;
        if (mine.status === 'fault') {
          // Undefined behaviour per the interpreter (e.g. reading uninitialised stack): the kernel's
          // answer depends on leftover memory. Not comparable; continue from the kernel's maps.
          res.undefinedInputs!++;
          for (const b of bound) await c.resync(b);
          continue;
        }
        res.inputs++;
        const kern = kernelOutcome(kr);
        const nondet = (mine.nondet ?? []).map(BigInt);
        // Fields that differ only in bytes holding a clock/random result the interpreter chose are
        // taken from the kernel, one field at a time, and the rest compared.
        let excused = false;
        let cur: Outcome = mine;
        let d = compareOutcomes(kern, cur);
        while (d && nondet.length) {
          const field = d.field;
          if (field === 'ret' && nondet.some((v) => Number(v & 0xffffffffn) === d!.b)) cur = { ...cur, ret: kern.ret, r0: kern.r0 };
          else if ((field === 'packet' || field === 'ctx') && typeof d.a === 'string' && typeof d.b === 'string' && onlyNondet(d.a, d.b, nondet)) cur = { ...cur, [field]: kern[field] };
          else break;
          excused = true;
          d = compareOutcomes(kern, cur);
        }
        let md = d ? null : await c.mapDiff(endOfSession, endOfSession && (si === 0 || last));
        if (md && nondet.length && mapDiffNondet(md, nondet)) {
          md = null;
          excused = true;
        }
        const diff = d ?? md;
        if (diff && nondet.length) {
          // The run consulted the clock, random numbers or another result the interpreter cannot
          // know: a difference may come from values derived from them. Not held against the
          // interpreter; continue from the kernel's state.
          excused = true;
        }
        if (excused) {
          res.nondetInputs = (res.nondetInputs ?? 0) + 1;
          for (const b of bound) await c.resync(b);
          if (diff) continue;
        }
        if (diff) {
          res.mismatches++;
          res.firstMismatch ??= { input: idx, packet: toHex(input.packet), ctx: input.ctx ? toHex(input.ctx) : null, field: diff.field, a: diff.a, b: diff.b };
          for (const b of bound) await c.resync(b);
        }
      }
    }
  } catch (e) {
    if (e instanceof K2Error && e.kind === 'unsupported') return { section: p.section, name: p.name, type: p.progType, why: `interpreter: ${e.cause_}` };
    throw e;
  } finally {
    // Big maps keep their contents from session to session: empty them for the next program.
    for (const b of bound) if (b.kernel.big) await resetMap(b.kernel, [], b.base);
  }
  return res;
}

/**
 * What the loader patched into the accepted programs of `wanted` (CO-RE values, .kconfig externs),
 * from the instructions it loaded; null when this loader cannot tell.
 */
export async function loaderMapping(obj: BpfObject, k: LoadedObject, wanted: ProgramRef[]): Promise<LoaderMapping | null> {
  const programs: LoadedProgram[] = [];
  for (const p of wanted) {
    if (!verdictOf(k, p)?.accepted) continue;
    const insns = k.loadedInsns(p.name);
    if (insns) programs.push({ prog: p, insns });
  }
  if (!programs.length) return null;
  // The maps an ld_imm64 may point into, by fd; one-element arrays (global data, .kconfig) with
  // their contents.
  const byFd = new Map<number, LoadedMap>();
  for (const info of await k.maps()) {
    let fd: number;
    try {
      fd = k.mapFd(info.name);
    } catch (e) {
      if (e instanceof K2Error && e.kind === 'tool') continue;
      throw e;
    }
    const one = info.typeId === 2 && info.maxEntries === 1;
    const value = one ? ((await k.readMap(info.name))[0]?.value ?? null) : null;
    byFd.set(fd, { name: info.name, valueSize: info.valueSize, value });
  }
  return loaderPatches(obj, programs, byFd);
}

/** Interpreter vs kernel on every testable program of `file`. */
export async function checkSemantics(file: string, opts: DiffOptions = {}): Promise<DiffReport> {
  const obj = readObject(file);
  pinToCpu0();
  const ncpu = possibleCpus();
  const wanted = obj.programs.filter((p) => !opts.programs || opts.programs.includes(p.name));
  const report: DiffReport = { file, programs: [], untestable: [] };
  const untestable = (p: ProgramRef, why: string): void => void report.untestable.push({ section: p.section, name: p.name, type: p.progType, why });
  let ko: KObject;
  let oracle: ClosableOracle | null = null;
  try {
    const k = await openForTest(file, obj);
    try {
      ko = await kobjectOf(k, ncpu);
    } catch (e) {
      await k.close();
      throw e;
    }
  } catch (e) {
    if (!(e instanceof K2Error) || e.kind !== 'unsupported') throw e;
    for (const p of wanted) untestable(p, `cannot be loaded here: ${e.cause_}`);
    return report;
  }
  try {
    // CO-RE relocations and .kconfig externs run with the values the loader patched in; where its
    // code cannot be mapped onto the object's, with k2's model's (exact values only).
    const mapping = await loaderMapping(obj, ko.k, wanted);
    const prep = prepareObject(obj, { core: 'kernel', ...(mapping ? { loader: mapping.patches } : {}) });
    const bound = bind(obj, ko, await ko.k.maps());
    const slots = loaderSlots(obj, ko.k);
    const runner = new Runner(prep.unit);
    oracle = openHelperOracle();
    for (const p0 of wanted) {
      const v = verdictOf(ko.k, p0);
      const p = withKernelType(p0, v);
      const why = untestableType(p) ?? (interpretable(p) ? null : `k2's interpreter does not model the ${p.progType} context`);
      if (!v) untestable(p, 'the kernel loader does not list it');
      else if (!v.accepted) untestable(p, `not loaded here: ${v.error ?? v.verdict}`);
      else if (why) untestable(p, why);
      else {
        const r = await checkProgram(p, ko, prep, bound, slots, runner, oracle, opts, ncpu);
        if ('why' in r) report.untestable.push(r);
        else report.programs.push(r);
      }
    }
    return report;
  } finally {
    oracle?.close();
    await ko.k.close();
  }
}
