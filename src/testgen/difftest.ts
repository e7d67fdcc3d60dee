// `k2 difftest ORIG.o OPT.o`: two objects side by side in the kernel (BPF_PROG_TEST_RUN) on the same
// generated inputs and map contents. A difference is reported only when it cannot be explained by
// nondeterminism: the original is loaded twice and run twice on every input (a1, a2); what differs
// between those two runs (clock, random numbers, pointers...) is nondeterministic, recorded per
// program (field and byte ranges) and not held against the other object (b). Everything else is
// compared byte for byte: return value, output packet, output context, and the maps (small maps
// after every session of inputs; big ones, read a chunk at a time, after the first and the last
// session of each program).
import { readObject } from '../ir/index.js';
import type { BpfObject, ProgramRef } from '../ir/types.js';
import { objectMaps, possibleCpus, toHex, type MapSpec } from '../interp/index.js';
import { K2Error } from '../util/errors.js';
import type { MapInit, TestInput } from './index.js';
import {
  kernelMapName, openForTest, withKernelType, pinToCpu0, probeInput, refusalReason, sessionsFor, tryRun, untestableType, verdictOf,
  type DiffOptions, type DiffReport, type KernelRun, type Mismatch, type ProgramResult, type Untestable,
} from './common.js';
import { COMPARED_MAP_TYPES, kobjectOf, type KMap, type KObject } from './kmaps.js';
import { compareMap, resetMap, type CompareSink } from './mapcompare.js';
import { diffOffsets, NondetFields, rangesText, without } from './nondet.js';

/** Mismatches listed per program (all are counted). */
const MISMATCH_LIST = 10;

/** One side of the comparison: a loaded object and its maps, by k2's map name. */
interface Side {
  ko: KObject;
  maps: Map<string, KMap>;
}

/** A map both objects have: its spec and, for global data, its initial bytes. */
interface Bound {
  spec: MapSpec;
  base: Uint8Array | null;
}

async function openSide(file: string, obj: BpfObject, ncpu: number, specs: MapSpec[]): Promise<Side> {
  const k = await openForTest(file, obj);
  try {
    const ko = await kobjectOf(k, ncpu);
    const infos = await k.maps();
    const maps = new Map<string, KMap>();
    for (const s of specs) {
      const name = kernelMapName(s, infos);
      const m = name ? ko.maps.get(name) : undefined;
      if (m) maps.set(s.name, m);
    }
    return { ko, maps };
  } catch (e) {
    await k.close();
    throw e;
  }
}

/** Maps difftest resets and compares: readable/writable types, not read-only data. */
function comparedSpecs(obj: BpfObject): { specs: MapSpec[]; base: Map<string, Uint8Array> } {
  const all = objectMaps(obj);
  const base = new Map<string, Uint8Array>();
  obj.data.forEach((d) => {
    const b = new Uint8Array(d.size);
    b.set(d.init.subarray(0, d.size));
    base.set(d.name, b);
  });
  return { specs: all.filter((s) => COMPARED_MAP_TYPES.has(s.type) && !s.readonly), base };
}

/** A difference between a1 and b, judged once every input has shown what is nondeterministic. */
interface Pending {
  input: number;
  field: string;
  offsets: number[] | null;
  m: Mismatch;
}

/** The state of one program's comparison. */
class ProgramRun {
  readonly nondet = new NondetFields();
  readonly pending: Pending[] = [];
  /** Inputs with a difference explained by this input's own a1/a2 difference. */
  readonly excused = new Set<number>();
  readonly res: ProgramResult;
  constructor(p: ProgramRef) {
    this.res = { section: p.section, name: p.name, type: p.progType, inputs: 0, mismatches: 0, nondetInputs: 0, refusedInputs: 0, firstMismatch: null };
  }

  /** A difference at `offsets` of `field` (null: all of it); `mask`: where a1 and a2 differed on this input (null: all of it). */
  differ(input: number, inp: TestInput, field: string, offsets: number[] | null, mask: number[] | null | undefined, a: unknown, b: unknown, after?: [number, number]): void {
    if (mask === null) {
      this.excused.add(input);
      return;
    }
    const rest = offsets === null ? null : without(offsets, mask ?? null);
    if (rest !== null && rest.length === 0) {
      this.excused.add(input);
      return;
    }
    const m: Mismatch = {
      input, packet: toHex(inp.packet), ctx: inp.ctx ? toHex(inp.ctx) : null, field: field.replace(/ (value|keys)$/, ''), a, b,
      ...(rest ? { bytes: rangesText(rest) } : {}), ...(after ? { after } : {}),
    };
    this.pending.push({ input, field, offsets: rest, m });
  }

  /** Compares one input's outputs: a1 (ran), a2 and b. */
  outputs(input: number, inp: TestInput, r1: KernelRun & { ok: true }, r2: KernelRun, rb: KernelRun): void {
    this.res.inputs++;
    if (!r2.ok) this.nondet.add('status', null, input);
    if (!rb.ok) {
      this.differ(input, inp, 'status', null, r2.ok ? undefined : null, 'ran', rb.error);
      return;
    }
    const a = r1.r;
    const b = rb.r;
    const a2 = r2.ok ? r2.r : null;
    // Return value.
    const retNondet = a2 !== null && a2.retval !== a.retval;
    if (retNondet) this.nondet.add('ret', null, input);
    if (b.retval !== a.retval) this.differ(input, inp, 'ret', null, retNondet || !a2 ? null : undefined, a.retval, b.retval);
    // Packet and context, byte by byte.
    const bytes = (field: string, x: Uint8Array | null, y: Uint8Array | null, z: Uint8Array | null | undefined): void => {
      if (!x || !z) return;
      let mask: number[] | null | undefined;
      if (y) {
        mask = diffOffsets(x, y);
        if (mask === null) this.nondet.add(field, null, input);
        else if (mask.length) this.nondet.add(field, mask, input);
      } else mask = null; // a2 did not run: nothing is known
      if (Buffer.compare(x, z) === 0) return;
      this.differ(input, inp, field, diffOffsets(x, z), mask, toHex(x), toHex(z));
    };
    bytes('packet', a.dataOut, a2?.dataOut ?? null, b.dataOut);
    bytes('ctx', a.ctxOut, a2?.ctxOut ?? null, b.ctxOut);
  }

  /** A sink for a map comparison after inputs [first, last]. */
  mapSink(first: number, last: number, inp: TestInput): CompareSink {
    return {
      nondet: (field, offsets) => this.nondet.add(field, offsets, last),
      diff: (field, offsets, a, b) => this.differ(last, inp, field, offsets, undefined, a, b, [first, last]),
    };
  }

  /** Judges the pending differences against every nondeterministic output seen. */
  finish(): ProgramResult {
    const bad = new Set<number>();
    const list: Mismatch[] = [];
    for (const d of this.pending) {
      if (this.nondet.covers(d.field, d.offsets)) {
        this.excused.add(d.input);
        continue;
      }
      bad.add(d.input);
      if (list.length < MISMATCH_LIST) list.push(d.m);
    }
    list.sort((x, y) => x.input - y.input);
    const res = this.res;
    res.mismatches = bad.size;
    res.nondetInputs = [...this.excused].filter((i) => !bad.has(i)).length;
    res.firstMismatch = list[0] ?? null;
    if (list.length) res.mismatchList = list;
    if (this.nondet.size) res.nondeterministic = this.nondet.list();
    return res;
  }
}

/** Session start: small maps emptied and set to the session's contents; big maps only get the latter. */
async function startSession(sides: Side[], bound: Bound[], inits: MapInit[]): Promise<void> {
  for (const b of bound) {
    const entries = inits.find((i) => i.map === b.spec.name)?.entries ?? [];
    for (const s of sides) {
      const m = s.maps.get(b.spec.name)!;
      if (m.big) for (const e of entries) await m.write(e.key, e.value);
      else await resetMap(m, entries, b.base);
    }
  }
}

async function compareMaps(bound: Bound[], big: boolean, a1: Side, a2: Side, b: Side, sink: CompareSink): Promise<void> {
  for (const x of bound) {
    const m1 = a1.maps.get(x.spec.name)!;
    if (m1.big !== big) continue;
    await compareMap(x.spec.name, m1, a2.maps.get(x.spec.name)!, b.maps.get(x.spec.name)!, sink);
  }
}

async function runProgram(p: ProgramRef, a1: Side, a2: Side, b: Side, bound: Bound[], specs: MapSpec[], opts: DiffOptions, ncpu: number): Promise<ProgramResult | Untestable> {
  const run = new ProgramRun(p);
  const sessions = sessionsFor(p, specs, opts, ncpu);
  let ran = false;
  let n = 0;
  const three = async (inp: TestInput, r1: KernelRun & { ok: true }): Promise<void> => {
    const idx = n++;
    // b before a2: a clock read by a2 is then at least as far from a1's as b's is, so every byte in
    // which b's clock value differs from a1's also differs in a2's (and is seen nondeterministic).
    const rb = await tryRun(b.ko.k, p.name, inp);
    const r2 = await tryRun(a2.ko.k, p.name, inp);
    run.outputs(idx, inp, r1, r2, rb);
  };
  try {
    for (let si = 0; si < sessions.length; si++) {
      const s = sessions[si]!;
      await startSession([a1, a2, b], bound, s.maps);
      const first = n;
      let lastInput: TestInput | null = null;
      for (const inp of s.inputs) {
        const r1 = await tryRun(a1.ko.k, p.name, inp);
        if (!r1.ok) {
          if (!ran) {
            // Is it this input, or every input? A well-formed packet tells, and stands in for it.
            const probe = probeInput();
            const rp = await tryRun(a1.ko.k, p.name, probe);
            if (!rp.ok) return { section: p.section, name: p.name, type: p.progType, why: refusalReason(p, rp.error) };
            ran = true;
            await three(probe, rp);
            lastInput = probe;
            continue;
          }
          n++;
          run.res.refusedInputs!++;
          continue;
        }
        ran = true;
        await three(inp, r1);
        lastInput = inp;
      }
      if (!lastInput) continue;
      const sink = run.mapSink(first, n - 1, lastInput);
      await compareMaps(bound, false, a1, a2, b, sink);
      if (si === 0 || si === sessions.length - 1) await compareMaps(bound, true, a1, a2, b, sink);
    }
  } finally {
    // Big maps are not reset between sessions: empty them for the next program.
    for (const x of bound) {
      for (const s of [a1, a2, b]) {
        const m = s.maps.get(x.spec.name)!;
        if (m.big) await resetMap(m, []);
      }
    }
  }
  return run.finish();
}

const isUntestable = (x: ProgramResult | Untestable): x is Untestable => 'why' in x;

/** A program of ORIG that OPT lacks or the kernel rejects in OPT: a mismatch. */
function loadMismatch(p: ProgramRef, why: string): ProgramResult {
  const m: Mismatch = { input: -1, packet: '', ctx: null, field: 'load', a: 'accepted', b: why };
  return { section: p.section, name: p.name, type: p.progType, inputs: 0, mismatches: 1, firstMismatch: m, mismatchList: [m] };
}

/** Two objects side by side in the kernel: every program of ORIG, matched by name in OPT, on the same inputs. */
export async function diffObjects(origFile: string, optFile: string, opts: DiffOptions = {}): Promise<DiffReport> {
  const orig = readObject(origFile);
  const opt = readObject(optFile);
  const { specs: compared, base } = comparedSpecs(orig);
  const specs = objectMaps(orig);
  pinToCpu0();
  const ncpu = possibleCpus();
  const wanted = orig.programs.filter((p) => !opts.programs || opts.programs.includes(p.name));
  const report: DiffReport = { file: origFile, programs: [], untestable: [] };
  const untestable = (p: ProgramRef, why: string): void => void report.untestable.push({ section: p.section, name: p.name, type: p.progType, why });

  const sides: Side[] = [];
  try {
    // The original, twice (what differs between its two runs is nondeterministic).
    let a1: Side;
    try {
      a1 = await openSide(origFile, orig, ncpu, compared);
    } catch (e) {
      if (!(e instanceof K2Error) || e.kind !== 'unsupported') throw e;
      for (const p of wanted) untestable(p, `the original cannot be loaded here: ${e.cause_}`);
      return report;
    }
    sides.push(a1);
    const a2 = await openSide(origFile, orig, ncpu, compared);
    sides.push(a2);
    let b: Side | null = null;
    let bError = '';
    try {
      b = await openSide(optFile, opt, ncpu, compared);
      sides.push(b);
    } catch (e) {
      if (!(e instanceof K2Error) || (e.kind !== 'unsupported' && e.kind !== 'input')) throw e;
      bError = e.cause_;
    }
    // Maps present in both objects (an optimized object keeps the original's maps).
    const bound: Bound[] = [];
    const missing: string[] = [];
    for (const s of compared) {
      if (!a1.maps.has(s.name) || !a2.maps.has(s.name)) continue;
      if (b && !b.maps.has(s.name)) missing.push(s.name);
      else bound.push({ spec: s, base: base.get(s.name) ?? null });
    }

    for (const p0 of wanted) {
      const v1 = verdictOf(a1.ko.k, p0);
      const p = withKernelType(p0, v1);
      const why = untestableType(p);
      if (!v1) untestable(p, 'the kernel loader does not list it');
      else if (!v1.accepted) untestable(p, `the original does not load here: ${v1.error ?? v1.verdict}`);
      else if (why) untestable(p, why);
      else if (!b) report.programs.push(loadMismatch(p, `the optimized object cannot be loaded: ${bError}`));
      else {
        const vb = verdictOf(b.ko.k, p);
        if (!vb || !vb.accepted) report.programs.push(loadMismatch(p, vb ? vb.error ?? vb.verdict : 'missing'));
        else if (missing.length) report.programs.push(loadMismatch(p, `the optimized object lacks map${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`));
        else {
          const r = await runProgram(p, a1, a2, b, bound, specs, opts, ncpu);
          if (isUntestable(r)) report.untestable.push(r);
          else report.programs.push(r);
        }
      }
    }
    return report;
  } finally {
    for (const s of sides) await s.ko.k.close();
  }
}
