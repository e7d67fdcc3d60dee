// Differential testing: the interpreter against the kernel's BPF_PROG_TEST_RUN (check-semantics), and
// two objects against each other in the kernel (difftest), on the same generated inputs and maps.
// The kernel is the reference: every difference is reported as a mismatch.
import koffi from 'koffi';
import { readObject, TEST_RUN_PACKET_TYPES } from '../ir/index.js';
import type { BpfObject, ProgramRef } from '../ir/types.js';
import { openLoaded, type LoadedObject, type MapEntry, type MapInfo } from '../kernel/index.js';
import {
  compareOutcomes, ctxKindOf, MAP_TYPE, percpuStride, possibleCpus, prepareObject, Runner, toHex,
  type MapSnapshot, type MapSpec, type MapState, type Outcome, type Prepared,
} from '../interp/index.js';
import { K2Error } from '../util/errors.js';
import { generate, type MapInit, type Session, type TestInput } from './index.js';

export interface Mismatch {
  input: number; // index of the input among the program's inputs
  packet: string; // the input packet, hex
  ctx: string | null;
  field: string; // what differed: ret, packet, ctx, map NAME, status
  a: unknown; // reference side (kernel / original)
  b: unknown; // other side (interpreter / optimized)
}

export interface ProgramResult {
  section: string;
  name: string;
  type: string;
  inputs: number; // inputs compared
  mismatches: number;
  /** Inputs on which the interpreter faulted (uninitialised stack, out of bounds): not comparable. */
  undefinedInputs?: number;
  /**
   * Inputs whose run consulted a nondeterministic helper (ktime, prandom) and whose outcome differed:
   * exactly in the bytes holding that helper's result, or in values derived from it. Not mismatches.
   */
  nondetInputs?: number;
  firstMismatch: Mismatch | null;
}

export interface Untestable {
  section: string;
  name: string;
  type: string;
  why: string;
}

export interface DiffReport {
  file: string;
  programs: ProgramResult[];
  untestable: Untestable[];
}

export interface DiffOptions {
  inputs?: number;
  seed?: number;
  /** Only these programs (by name). */
  programs?: string[];
}

/** Map types whose contents both sides can read and write. */
const COMPARED = new Set<number>([
  MAP_TYPE.HASH, MAP_TYPE.ARRAY, MAP_TYPE.PERCPU_HASH, MAP_TYPE.PERCPU_ARRAY, MAP_TYPE.LRU_HASH, MAP_TYPE.LRU_PERCPU_HASH, MAP_TYPE.LPM_TRIE,
]);
const PERCPU = new Set<number>([MAP_TYPE.PERCPU_ARRAY, MAP_TYPE.PERCPU_HASH, MAP_TYPE.LRU_PERCPU_HASH]);

let pinned: boolean | null = null;
/** Pins this thread to CPU 0, so per-CPU map values and get_smp_processor_id are the same in both runs. */
export function pinToCpu0(): boolean {
  if (pinned !== null) return pinned;
  try {
    const libc = koffi.load('libc.so.6');
    const setaff = libc.func('int sched_setaffinity(int pid, size_t size, const uint8_t *mask)');
    const mask = new Uint8Array(128);
    mask[0] = 1;
    pinned = setaff(0, mask.length, mask) === 0;
  } catch {
    pinned = false;
  }
  return pinned;
}

const LIBBPF_SECTION: Record<string, string> = { socket_filter: 'socket', sched_cls: 'tc', sched_act: 'action', xdp: 'xdp', cgroup_skb: 'cgroup_skb/ingress' };

/**
 * Loads `file`; when libbpf does not know the section of some packet programs (old names like
 * "filter", "tc_mark") and k2 derived one type for all of them, loads again with that type and
 * keeps the load that accepts more programs.
 */
async function openForTest(file: string, obj: BpfObject): Promise<LoadedObject> {
  const k = await openLoaded(file);
  const unknown = k.programs.filter((p) => !p.accepted && /does not know the program type/.test(p.error ?? ''));
  const types = new Set(unknown.map((u) => obj.programs.find((p) => p.name === u.name)?.progType ?? 'unspec'));
  if (unknown.length === 0 || types.size !== 1) return k;
  const sec = LIBBPF_SECTION[[...types][0]!];
  if (!sec) return k;
  const again = await openLoaded(file, { progType: sec });
  // The type applies to every program: keep whichever load has more programs accepted.
  const accepted = (x: LoadedObject): number => x.programs.filter((p) => p.accepted).length;
  if (accepted(again) > accepted(k)) {
    await k.close();
    return again;
  }
  await again.close();
  return k;
}

/** The kernel map standing for interpreter map `spec` (global data maps carry an object-name prefix). */
function kernelMapName(spec: MapSpec, infos: MapInfo[]): string | null {
  const exact = infos.find((i) => i.name === spec.name);
  if (exact) return exact.name;
  if (!spec.name.startsWith('.')) return null;
  const hit = infos.find((i) => {
    const dot = i.name.indexOf('.');
    return dot >= 0 && spec.name.startsWith(i.name.slice(dot)) && i.name.slice(dot).length >= Math.min(spec.name.length, 2);
  });
  return hit?.name ?? null;
}

interface MapBinding {
  index: number; // in the unit's maps
  spec: MapSpec;
  kernel: string; // kernel map name
  init: Uint8Array | null; // initial contents of a global data map
}

function bindings(prep: Prepared, infos: MapInfo[]): MapBinding[] {
  const out: MapBinding[] = [];
  const fresh = prep.initialMaps();
  prep.unit.maps.forEach((spec, index) => {
    if (!COMPARED.has(spec.type)) return;
    const kernel = kernelMapName(spec, infos);
    if (!kernel) return;
    let init: Uint8Array | null = null;
    if (spec.name.startsWith('.')) init = fresh[index]!.lookup(new Uint8Array(4))!.slice();
    out.push({ index, spec, kernel, init });
  });
  return out;
}

function toEntries(spec: MapSpec, init: MapInit | undefined, ncpu: number): MapEntry[] {
  if (!init) return [];
  const percpu = PERCPU.has(spec.type);
  const stride = percpuStride(spec.valueSize);
  return init.entries.map((e) => {
    if (!percpu) return { key: e.key, value: e.value };
    const perCpu = Array.from({ length: ncpu }, (_, c) => e.value.slice(c * stride, c * stride + spec.valueSize));
    return { key: e.key, value: perCpu[0]!, perCpu };
  });
}

/** Kernel map contents in the interpreter's snapshot format. */
function kernelSnapshot(spec: MapSpec, entries: MapEntry[]): MapSnapshot {
  const percpu = PERCPU.has(spec.type);
  const stride = percpuStride(spec.valueSize);
  const rows: [string, string][] = entries.map((e) => {
    if (!percpu || !e.perCpu) return [toHex(e.key), toHex(e.value)];
    const v = new Uint8Array(stride * e.perCpu.length);
    e.perCpu.forEach((x, c) => v.set(x, c * stride));
    return [toHex(e.key), toHex(v)];
  });
  rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { name: spec.name, type: spec.type, entries: rows };
}

/** Last known kernel contents of each map (by kernel name), to reset maps with few writes. */
type KernelState = Map<string, MapSnapshot>;

async function resetKernelMaps(k: LoadedObject, binds: MapBinding[], inits: MapInit[], ncpu: number, known: KernelState): Promise<void> {
  for (const b of binds) {
    if (b.spec.readonly) continue;
    const entries = toEntries(b.spec, inits.find((i) => i.map === b.spec.name), ncpu);
    if (b.init) entries.unshift({ key: new Uint8Array(4), value: b.init });
    const cur = known.get(b.kernel);
    if (!cur) {
      await k.clearMap(b.kernel);
      if (entries.length) await k.writeMap(b.kernel, entries);
      continue;
    }
    // Write only what differs from the last contents read back.
    const want = new Map<string, MapEntry>();
    for (const e of entries) want.set(toHex(e.key), e);
    const isArray = b.spec.type === MAP_TYPE.ARRAY || b.spec.type === MAP_TYPE.PERCPU_ARRAY;
    const writes: MapEntry[] = [];
    for (const [key, val] of cur.entries) {
      const w = want.get(key);
      const wantHex = w ? kernelSnapshot(b.spec, [w]).entries[0]![1] : null;
      if (wantHex === val) {
        want.delete(key);
        continue;
      }
      if (!w) {
        if (isArray) {
          const zero = new Uint8Array(b.spec.valueSize);
          writes.push(PERCPU.has(b.spec.type) ? { key: Buffer.from(key, 'hex'), value: zero, perCpu: Array.from({ length: ncpu }, () => zero) } : { key: Buffer.from(key, 'hex'), value: zero });
        } else {
          await k.clearMap(b.kernel); // a stale element: start this map over
          known.delete(b.kernel);
          writes.length = 0;
          want.clear();
          for (const e of entries) want.set(toHex(e.key), e);
          break;
        }
      }
    }
    for (const w of want.values()) writes.push(w);
    if (writes.length) await k.writeMap(b.kernel, writes);
  }
}

function resetInterpMaps(prep: Prepared, inits: MapInit[]): MapState[] {
  const maps = prep.initialMaps();
  for (const init of inits) {
    const mi = prep.unit.maps.findIndex((s) => s.name === init.map);
    if (mi < 0) continue;
    for (const e of init.entries) maps[mi]!.set(e.key, e.value);
  }
  return maps;
}

async function kernelOutcome(k: LoadedObject, prog: string, input: TestInput, binds: MapBinding[], known?: KernelState): Promise<Outcome> {
  const r = await k.testRun(prog, { dataIn: input.packet, ...(input.ctx ? { ctxIn: input.ctx } : {}) });
  const maps: MapSnapshot[] = [];
  for (const b of binds) {
    const snap = kernelSnapshot(b.spec, await k.readMap(b.kernel));
    known?.set(b.kernel, snap);
    maps.push(snap);
  }
  return {
    status: 'exit', ret: r.retval, r0: String(r.retval), packet: toHex(r.dataOut), ctx: r.ctxOut ? toHex(r.ctxOut) : null,
    maps, effects: [], fault: null, steps: 0,
  };
}

/** Programs of an object that BPF_PROG_TEST_RUN can run with a packet, and why the others cannot. */
function partition(obj: BpfObject, k: LoadedObject): { testable: ProgramRef[]; untestable: Untestable[] } {
  const testable: ProgramRef[] = [];
  const untestable: Untestable[] = [];
  for (const p of obj.programs) {
    const u = (why: string): void => void untestable.push({ section: p.section, name: p.name, type: p.progType, why });
    if (!TEST_RUN_PACKET_TYPES.has(p.progType) || ctxKindOf(p.progType) === 'none') {
      u(`BPF_PROG_TEST_RUN cannot run ${p.progType} programs with a packet`);
      continue;
    }
    const v = k.programs.find((x) => x.name === p.name);
    if (!v) u('the kernel loader does not list it');
    else if (!v.accepted) u(`not loaded here: ${v.error ?? v.verdict}`);
    else testable.push(p);
  }
  return { testable, untestable };
}

/** Input sessions of one program (the same for both sides and for repeated calls with one seed). */
function sessionsFor(p: ProgramRef, prep: Prepared, opts: DiffOptions, ncpu: number): Session[] {
  let h = opts.seed ?? 1;
  for (const ch of p.name) h = (Math.imul(h, 31) + ch.charCodeAt(0)) | 0;
  return generate({ progType: p.progType, maps: prep.unit.maps, ncpu, inputs: opts.inputs ?? 2000, seed: h });
}

/** Interpreter vs kernel on every testable program of `file`. */
export async function checkSemantics(file: string, opts: DiffOptions = {}): Promise<DiffReport> {
  const obj = readObject(file);
  const prep = prepareObject(obj);
  pinToCpu0();
  const ncpu = possibleCpus();
  const k = await openForTest(file, obj);
  try {
    const { testable: all, untestable } = partition(obj, k);
    const testable = opts.programs ? all.filter((p) => opts.programs!.includes(p.name)) : all;
    const infos = await k.maps();
    const binds = bindings(prep, infos);
    const programs: ProgramResult[] = [];
    const runner = new Runner(prep.unit);
    for (const p of testable) {
      const res: ProgramResult = { section: p.section, name: p.name, type: p.progType, inputs: 0, mismatches: 0, undefinedInputs: 0, firstMismatch: null };
      let n = 0;
      const known: KernelState = new Map();
      try {
        for (const s of sessionsFor(p, prep, opts, ncpu)) {
          await resetKernelMaps(k, binds, s.maps, ncpu, known);
          let maps = resetInterpMaps(prep, s.maps);
          for (let j = 0; j < s.inputs.length; j++) {
            const input = s.inputs[j]!;
            const idx = n++;
            for (const mp of maps) mp.touched = false;
            const mine = runner.run(p.name, p.progType, { packet: input.packet, ...(input.ctx ? { ctx: input.ctx } : {}) }, maps, { cpu: 0, snapshotMaps: false });
            // Maps are compared after every input the interpreter touched them, and all of them at
            // the end of each session (so a map only the kernel changed is caught there).
            const sel = j === s.inputs.length - 1 ? binds : binds.filter((b) => maps[b.index]!.touched);
            const kern = await kernelOutcome(k, p.name, input, sel, j === s.inputs.length - 1 ? known : undefined);
            if (mine.status === 'fault') {
              // Undefined behaviour per the interpreter (e.g. reading uninitialised stack): the kernel's
              // answer depends on leftover memory. Not comparable; resynchronise the maps.
              res.undefinedInputs!++;
              maps = resetInterpMapsFromKernel(prep, maps, kern.maps, sel);
              continue;
            }
            res.inputs++;
            let mineMaps: Outcome = { ...mine, maps: sel.map((b) => ({ ...maps[b.index]!.snapshot(), name: b.spec.name })) };
            let masked = false;
            if (mine.nondet?.length) {
              const mk = maskNondet(kern, mineMaps, mine.nondet.map(BigInt));
              mineMaps = mk.outcome;
              masked = mk.masked;
            }
            const d = compareOutcomes(kern, mineMaps);
            if (masked || (d && mine.nondet?.length)) {
              // The run consulted ktime/prandom: a difference is explained by the kernel's values
              // (exactly, when masked; through derived values otherwise). Continue from the kernel's state.
              res.nondetInputs = (res.nondetInputs ?? 0) + 1;
              maps = resetInterpMapsFromKernel(prep, maps, kern.maps, sel);
              if (d) continue;
            }
            if (d) {
              res.mismatches++;
              if (!res.firstMismatch) res.firstMismatch = { input: idx, packet: toHex(input.packet), ctx: input.ctx ? toHex(input.ctx) : null, ...d };
              maps = resetInterpMapsFromKernel(prep, maps, kern.maps, sel);
            }
          }
        }
      } catch (e) {
        if (e instanceof K2Error && e.kind === 'unsupported') {
          untestable.push({ section: p.section, name: p.name, type: p.progType, why: `interpreter: ${e.cause_}` });
          continue;
        }
        throw e;
      }
      programs.push(res);
    }
    return { file, programs, untestable };
  } finally {
    await k.close();
  }
}

/** Byte windows of `mine` holding a nondeterministic helper result (LE, 8 or 4 bytes). */
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

/** `b` equal to `a` wherever b's bytes differ only inside windows holding a nondeterministic value. */
function maskHex(a: string, b: string, values: bigint[]): string | null {
  if (a.length !== b.length) return null;
  const cover = nondetWindows(b, values);
  for (let i = 0; i < a.length; i += 2) if (a.slice(i, i + 2) !== b.slice(i, i + 2) && !cover[i / 2]) return null;
  return a;
}

function maskNondet(kern: Outcome, mine: Outcome, values: bigint[]): { outcome: Outcome; masked: boolean } {
  let masked = false;
  const out: Outcome = { ...mine };
  if (kern.packet !== null && mine.packet !== null && kern.packet !== mine.packet) {
    const m = maskHex(kern.packet, mine.packet, values);
    if (m !== null) { out.packet = m; masked = true; }
  }
  if (kern.ret !== mine.ret && values.some((v) => Number(v & 0xffffffffn) === mine.ret)) { out.ret = kern.ret; masked = true; }
  out.maps = mine.maps.map((snap) => {
    const ks = kern.maps.find((x) => x.name === snap.name);
    if (!ks) return snap;
    const kv = new Map(ks.entries);
    const entries = snap.entries.map(([k, v]): [string, string] => {
      const w = kv.get(k);
      if (w === undefined || w === v) return [k, v];
      const m = maskHex(w, v, values);
      if (m === null) return [k, v];
      masked = true;
      return [k, m];
    });
    return { ...snap, entries };
  });
  return { outcome: out, masked };
}

/** After a divergence, continue from the kernel's contents of the maps in `binds`. */
function resetInterpMapsFromKernel(prep: Prepared, cur: MapState[], snaps: MapSnapshot[], binds: MapBinding[]): MapState[] {
  const fresh = prep.initialMaps();
  const maps = cur.map((m, i) => (binds.some((b) => b.index === i) ? fresh[i]! : m));
  binds.forEach((b, i) => {
    const snap = snaps[i];
    if (!snap) return;
    for (const [k, v] of snap.entries) maps[b.index]!.set(Buffer.from(k, 'hex'), Buffer.from(v, 'hex'));
  });
  return maps;
}

const KTIME_HELPERS = new Set([5, 125, 160, 208]); // ktime_get_ns, _boot_ns, _coarse_ns, _tai_ns
const RANDOM_HELPERS = new Set([7]); // get_prandom_u32

function callsHelper(obj: BpfObject, ids: Set<number>): boolean {
  return obj.code.some((s) => s.insns.some((i) => i.code === 0x85 && i.src === 0 && ids.has(i.imm)));
}

/**
 * Kernel vs kernel: `b` with every 8-byte window where a and b both hold nearby ktime-like values
 * (>= 1 s, less than 100 s apart) replaced by a's bytes; null when other bytes differ.
 */
function maskKtime(a: string, b: string): string | null {
  if (a.length !== b.length) return null;
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  for (let i = 0; i < x.length; i++) {
    if (x[i] === y[i]) continue;
    const at = i - (i % 8);
    if (at + 8 > x.length) return null;
    const u = x.readBigUInt64LE(at);
    const v = y.readBigUInt64LE(at);
    const d = u > v ? u - v : v - u;
    if (u < 1_000_000_000n || v < 1_000_000_000n || d > 100_000_000_000n) return null;
    x.copy(y, at, at, at + 8);
    i = at + 7;
  }
  return y.toString('hex');
}

function maskKtimeOutcome(a: Outcome, b: Outcome): { outcome: Outcome; masked: boolean } {
  let masked = false;
  const maps = b.maps.map((snap) => {
    const as = a.maps.find((x) => x.name === snap.name);
    if (!as) return snap;
    const av = new Map(as.entries);
    return {
      ...snap,
      entries: snap.entries.map(([k, v]): [string, string] => {
        const w = av.get(k);
        if (w === undefined || w === v) return [k, v];
        const m = maskKtime(w, v);
        if (m === null) return [k, v];
        masked = true;
        return [k, m];
      }),
    };
  });
  return { outcome: { ...b, maps }, masked };
}

/** Two objects side by side in the kernel: every program of ORIG that OPT also has, same inputs. */
export async function diffObjects(origFile: string, optFile: string, opts: DiffOptions = {}): Promise<DiffReport> {
  const orig = readObject(origFile);
  const opt = readObject(optFile);
  const prep = prepareObject(orig);
  pinToCpu0();
  const ncpu = possibleCpus();
  const ka = await openForTest(origFile, orig);
  let kb: LoadedObject | null = null;
  try {
    kb = await openForTest(optFile, opt);
    const { testable: all, untestable } = partition(orig, ka);
    const testable = opts.programs ? all.filter((p) => opts.programs!.includes(p.name)) : all;
    const bindA = bindings(prep, await ka.maps());
    const bindB = bindings(prepareObject(opt), await kb.maps());
    const programs: ProgramResult[] = [];
    // Outcomes of programs that read the clock or random numbers differ from run to run.
    const ktime = callsHelper(orig, KTIME_HELPERS) || callsHelper(opt, KTIME_HELPERS);
    const random = callsHelper(orig, RANDOM_HELPERS) || callsHelper(opt, RANDOM_HELPERS);
    for (const p of testable) {
      const vb = kb.programs.find((x) => x.name === p.name);
      if (!vb || !vb.accepted) {
        programs.push({
          section: p.section, name: p.name, type: p.progType, inputs: 0, mismatches: 1,
          firstMismatch: { input: -1, packet: '', ctx: null, field: 'load', a: 'accepted', b: vb ? vb.error ?? vb.verdict : 'missing' },
        });
        continue;
      }
      const res: ProgramResult = { section: p.section, name: p.name, type: p.progType, inputs: 0, mismatches: 0, firstMismatch: null };
      let n = 0;
      const knownA: KernelState = new Map();
      const knownB: KernelState = new Map();
      for (const s of sessionsFor(p, prep, opts, ncpu)) {
        await resetKernelMaps(ka, bindA, s.maps, ncpu, knownA);
        await resetKernelMaps(kb, bindB, s.maps, ncpu, knownB);
        for (let j = 0; j < s.inputs.length; j++) {
          const input = s.inputs[j]!;
          const idx = n++;
          // Maps are read at the end of each session (reading big maps after every run is slow).
          const last = j === s.inputs.length - 1;
          const a = await kernelOutcome(ka, p.name, input, last ? bindA : [], knownA);
          const b = await kernelOutcome(kb, p.name, input, last ? bindB : [], knownB);
          res.inputs++;
          let bb = b;
          if (ktime) {
            const mk = maskKtimeOutcome(a, b);
            bb = mk.outcome;
            if (mk.masked) res.nondetInputs = (res.nondetInputs ?? 0) + 1;
          }
          const d = compareOutcomes(a, bb);
          if (d && random) {
            res.nondetInputs = (res.nondetInputs ?? 0) + 1;
            continue;
          }
          if (d) {
            res.mismatches++;
            if (!res.firstMismatch) res.firstMismatch = { input: idx, packet: toHex(input.packet), ctx: input.ctx ? toHex(input.ctx) : null, ...d };
          }
        }
      }
      programs.push(res);
    }
    return { file: origFile, programs, untestable };
  } finally {
    await ka.close();
    if (kb) await kb.close();
  }
}
