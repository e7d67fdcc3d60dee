// The interpreter's public door: compile an object (or hand-built IR) once, run its programs on
// packets and map states, get `Outcome`s (see outcome.ts).
import { readFileSync } from 'node:fs';
import type { BpfObject, IrInsn } from '../ir/types.js';
import { K2Error } from '../util/errors.js';
import { compile, compileObject, locate, progArrayInit, type CompileObjectOptions, type Unit, type RelocTarget } from './compile.js';
import { makeEnv, type PacketInput } from './ctx.js';
import { HELPERS, newHelperState, type HelperContext, type HelperOracle } from './helpers.js';
import { InterpFault, Machine, Unmodelled } from './machine.js';
import { MapState, type MapSpec } from './maps.js';
import { toHex, type Outcome } from './outcome.js';

export * from './outcome.js';
export {
  compile, compileObject, objectMaps, STRIDE, OP, type Unit, type CompileSource, type CompileObjectOptions, type RelocTarget, type LoaderPatches, type PatchedFields,
} from './compile.js';
export { MapState, MAP_TYPE, modelledMapType, percpuStride, type MapSpec } from './maps.js';
export { ctxKindOf, makeEnv, SKB, type PacketInput, type CtxKind } from './ctx.js';
export { Machine, InterpFault, Unmodelled, HELPER_NAMES } from './machine.js';
export { csumFold, csumAdd, csumPartialWords, type HelperOracle } from './helpers.js';

export interface RunOptions {
  /** Instruction budget (a fault when exhausted). Default 1,000,000. */
  maxSteps?: number;
  /** CPU the program runs on (per-CPU maps, get_smp_processor_id). Default 0. */
  cpu?: number;
  /** Seed of bpf_get_prandom_u32. */
  seed?: number;
  /** Results of side-effect-free helper calls, `h<id>#<n>` → value of the n-th call (replaying a counterexample). */
  helperResults?: Map<string, bigint>;
  /** Uninitialised stack reads: fault (default) or read zeros. */
  uninitStack?: 'fault' | 'zero';
  /** Snapshot maps into the outcome (default true). */
  snapshotMaps?: boolean;
  /** The host's answers for fib_lookup / get_hash_recalc (else their results are nondeterministic). */
  oracle?: HelperOracle | null;
}

let cpus: number | null = null;
/** Possible CPUs of this machine (the kernel keeps per-CPU map values for each). */
export function possibleCpus(): number {
  if (cpus !== null) return cpus;
  try {
    const s = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
    const last = s.split(',').pop()!.split('-').pop()!;
    cpus = Number(last) + 1;
  } catch {
    cpus = 1;
  }
  return cpus;
}

/** Fresh map states for a unit: zeroed maps, global data sections with their initial bytes. */
export function createMaps(specs: MapSpec[], init: (Uint8Array | null)[] = [], ncpu = possibleCpus()): MapState[] {
  return specs.map((s, i) => {
    const m = new MapState(s, ncpu);
    const bytes = init[i];
    if (bytes) m.set(new Uint8Array(4), bytes);
    return m;
  });
}

/** A compiled object with its initial map states. */
export interface Prepared {
  unit: Unit;
  obj: BpfObject | null;
  initialMaps: () => MapState[];
  /** A fresh state of map `i` alone (a global data section with its initial bytes). */
  initialMap: (i: number) => MapState;
}

export function prepareObject(obj: BpfObject, opts: CompileObjectOptions = {}): Prepared {
  const unit = compileObject(obj, obj.code, opts);
  const init: (Uint8Array | null)[] = unit.maps.map(() => null);
  obj.data.forEach((d, i) => {
    init[obj.maps.length + i] = d.init.length === d.size ? d.init : padTo(d.init, d.size);
  });
  // Maps of the loader's own (.kconfig), after the object's.
  const extra = opts.core === 'kernel' ? opts.loader?.maps ?? [] : [];
  extra.forEach((m, j) => {
    init[unit.maps.length - extra.length + j] = padTo(m.init, m.spec.valueSize);
  });
  const progs = progArrayInit(obj);
  return {
    unit,
    obj,
    initialMaps: () => {
      const maps = createMaps(unit.maps, init);
      for (const [mi, slots] of progs) for (const [i, name] of slots) maps[mi]!.progs.set(i, name);
      return maps;
    },
    initialMap: (i) => {
      const m = createMaps([unit.maps[i]!], [init[i] ?? null])[0]!;
      for (const [slot, name] of progs.get(i) ?? []) m.progs.set(slot, name);
      return m;
    },
  };
}

/** Compiles one hand-built instruction list as section "prog" with entry "prog". */
export function prepareInsns(
  insns: IrInsn[],
  opts: { maps?: MapSpec[]; resolveReloc?: (insn: IrInsn) => RelocTarget; subprograms?: { name: string; insns: IrInsn[] }[] } = {},
): Prepared {
  const maps = opts.maps ?? [];
  const unit = compile({
    sections: [{ name: 'prog', insns }, ...(opts.subprograms ?? [])],
    maps,
    entries: [{ name: 'prog', section: 'prog' }],
    resolveReloc: (i) => (opts.resolveReloc ? opts.resolveReloc(i) : { kind: 'map', map: i.reloc!.sym }),
  });
  return { unit, obj: null, initialMaps: () => createMaps(maps), initialMap: (i) => createMaps([maps[i]!])[0]! };
}

/** Runs programs of one unit, reusing its machine between runs. */
export class Runner {
  readonly unit: Unit;
  private m: Machine | null = null;
  constructor(unit: Unit) {
    this.unit = unit;
  }

  /**
   * Runs program `entry` (a program name of the unit) of type `progType` on `input`, mutating `maps`.
   * An unmodelled helper or instruction throws a K2Error naming it; faults are outcomes.
   */
  run(entry: string, progType: string, input: PacketInput, maps: MapState[], opts: RunOptions = {}): Outcome {
    const unit = this.unit;
    const pc = unit.entries.get(entry);
    if (pc === undefined) throw new K2Error('input', `no program ${entry}`);
    const maxSteps = opts.maxSteps ?? 1_000_000;
    let m = this.m;
    if (!m) m = this.m = new Machine(unit, maps, HELPERS);
    else m.setMaps(maps);
    const mm = m;
    const env = makeEnv(progType, input);
    let nested = 0;
    const hc: HelperContext = {
      env,
      progType,
      entries: unit.entries,
      oracle: opts.oracle ?? null,
      callback: (cpc, args) => {
        const saveLo = mm.lo.slice();
        const saveHi = mm.hi.slice();
        const outerPc = mm.pc;
        const outerSteps = mm.steps;
        const outerDepth = mm.depth;
        args.forEach((a, i) => mm.setRegBig(i + 1, a));
        mm.exec(cpc, maxSteps, outerDepth + 1);
        mm.depth = outerDepth;
        nested += mm.steps;
        const r0 = mm.reg(0);
        mm.lo.set(saveLo);
        mm.hi.set(saveHi);
        mm.pc = outerPc;
        mm.steps = outerSteps;
        return r0;
      },
    };
    m.hc = hc;
    m.hs = newHelperState();
    m.effects = [];
    m.nondet = [];
    m.pendingJump = -1;
    m.tailCalls = 0;
    m.steps = 0;
    m.clock = 0n;
    m.cpu = opts.cpu ?? 0;
    m.prng = (opts.seed ?? 0x2545f491) | 0 || 1;
    m.helperResults = opts.helperResults ?? null;
    m.helperCalls.clear();
    m.uninitStack = opts.uninitStack ?? 'fault';
    m.lo.fill(0);
    m.hi.fill(0);
    m.resetRegions();
    m.ctx = env;
    env.setup(m);
    let fault: Outcome['fault'] = null;
    try {
      m.exec(pc, maxSteps);
    } catch (e) {
      if (e instanceof InterpFault) {
        fault = { reason: e.message, ...locate(unit, m.pc) };
      } else if (e instanceof Unmodelled) {
        const w = locate(unit, m.pc);
        throw new K2Error('unsupported', `${e.message} (program ${entry})`, { section: w.section, insn: w.insn });
      } else throw e;
    }
    const snap = opts.snapshotMaps ?? true;
    const mapsOut = snap ? maps.map((x) => x.snapshot()) : [];
    if (fault) {
      return { status: 'fault', ret: 0, r0: '0', packet: null, ctx: null, maps: mapsOut, effects: m.effects, fault, steps: m.steps + nested };
    }
    const out = env.finish(m);
    const r0 = m.reg(0);
    return {
      status: 'exit',
      ret: m.lo[0]! >>> 0,
      r0: r0.toString(),
      packet: out.packet ? toHex(out.packet) : null,
      ctx: out.ctx ? toHex(out.ctx) : null,
      maps: mapsOut,
      effects: m.effects,
      fault: null,
      steps: m.steps + nested,
      ...(m.nondet.length ? { nondet: m.nondet.map(String) } : {}),
    };
  }
}

const runners = new WeakMap<Unit, Runner>();

/** Runs program `entry` of `unit` (see Runner.run); reuses one Runner per unit. */
export function run(unit: Unit, entry: string, progType: string, input: PacketInput, maps: MapState[], opts: RunOptions = {}): Outcome {
  let r = runners.get(unit);
  if (!r) runners.set(unit, (r = new Runner(unit)));
  return r.run(entry, progType, input, maps, opts);
}

function padTo(b: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  out.set(b.subarray(0, n));
  return out;
}
