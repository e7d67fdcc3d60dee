// The soundness experiment shared by the test and the benchmark: random one-instruction mutants of
// a program are run against the original in the interpreter on generated inputs, and checked with
// the SMT checker. A mutant the interpreter tells apart must never be called equal; a "different"
// answer must come with a counterexample on which the interpreter shows the difference.
import type { BpfObject, ProgramRef } from '../ir/types.js';
import { mutant } from '../safety/mutate.js';
import { rng } from './decide.js';
import { generate } from '../testgen/index.js';
import { prepareObject, run, compareOutcomes, possibleCpus, type MapState, type Outcome } from '../interp/index.js';
import { K2Error } from '../util/errors.js';
import { checkPrograms } from './program.js';
import { replayPrograms } from './replay.js';
import type { CheckOptions, EquivResult } from './types.js';

export interface MutantReport {
  section: string;
  index: number;
  kind: string;
  /** The interpreter found an input with different outcomes (null: the interpreter could not run it). */
  interpDiffers: boolean | null;
  verdict: EquivResult['equivalent'];
  via: EquivResult['via'];
  reason?: string;
  ms: number;
  /**
   * For "different": the counterexample reproduced in the interpreter. null when it cannot be
   * replayed: it depends on helper results the interpreter computes its own way (clock, random
   * numbers, helper return values), on pointer values (the interpreter's addresses are its own) or
   * on a context the test run cannot make (`ctxDependent`), and the interpreter shows no difference.
   */
  reproduced: boolean | null;
  /** Unsound: the interpreter differs but the checker said equal. */
  unsound: boolean;
}

function loadMaps(maps: MapState[], init: { map: string; entries: { key: Uint8Array; value: Uint8Array }[] }[]): void {
  for (const mi of init) {
    const m = maps.find((x) => x.spec.name === mi.map);
    if (!m) continue;
    for (const e of mi.entries) {
      try {
        m.set(e.key, e.value);
      } catch {
        /* not preloadable */
      }
    }
  }
}

const differ = (a: Outcome, b: Outcome): boolean =>
  compareOutcomes(a, b, { effects: true }) !== null || (a.status === 'exit' && b.status === 'exit' && a.r0 !== b.r0);

/** Does the interpreter tell the two programs apart on `inputs` generated inputs? null when it cannot run them. */
export function interpDiffers(a: BpfObject, b: BpfObject, prog: ProgramRef, inputs: number, seed: number, extra: Uint8Array[] = []): boolean | null {
  try {
    const pa = prepareObject(a), pb = prepareObject(b);
    const sessions = generate({ progType: prog.progType, maps: pa.unit.maps, ncpu: possibleCpus(), inputs, seed, sessionLength: 4 });
    for (const p of extra) sessions.push({ maps: [], inputs: [{ packet: p }] });
    for (const s of sessions) {
      const ma = pa.initialMaps(), mb = pb.initialMaps();
      loadMaps(ma, s.maps);
      loadMaps(mb, s.maps);
      for (const inp of s.inputs) {
        // maps are compared byte for byte after each run (snapshots of big maps were the slow part)
        const oa = run(pa.unit, prog.name, prog.progType, { packet: inp.packet.slice(), ...(inp.ctx ? { ctx: inp.ctx.slice() } : {}) }, ma, { maxSteps: 100000, snapshotMaps: false });
        const ob = run(pb.unit, prog.name, prog.progType, { packet: inp.packet.slice(), ...(inp.ctx ? { ctx: inp.ctx.slice() } : {}) }, mb, { maxSteps: 100000, snapshotMaps: false });
        if (differ(oa, ob)) return true;
        if (ma.some((m, k) => !m.sameContents(mb[k]!))) return true;
      }
    }
    return false;
  } catch (e) {
    if (e instanceof K2Error) return null;
    throw e;
  }
}

/** Runs `count` mutants of program `prog` of `obj`. */
export async function mutantExperiment(obj: BpfObject, prog: ProgramRef, count: number, seed: number, opts: CheckOptions & { inputs?: number; samples?: Uint8Array[] } = {}): Promise<MutantReport[]> {
  const r = rng(seed);
  const out: MutantReport[] = [];
  const sections = [prog.section];
  for (let n = 0; n < count; n++) {
    const m = mutant(obj, r, sections);
    if (!m) break;
    const id = m.obj.programs.find((p) => p.name === prog.name)!;
    const diff = interpDiffers(obj, m.obj, prog, opts.inputs ?? 48, seed + n, opts.samples);
    const res = await checkPrograms(obj, prog, m.obj, id, { timeoutMs: 3000, ...opts });
    let reproduced: boolean | null = null;
    if (res.equivalent === false && res.counterexample) {
      try {
        reproduced = replayPrograms(obj, prog, m.obj, id, res.counterexample).reproduced;
        if (!reproduced && (Object.keys(res.counterexample.helpers).length || res.counterexample.addressDependent || res.counterexample.ctxDependent)) reproduced = null;
      } catch (e) {
        if (!(e instanceof K2Error)) throw e;
      }
    }
    out.push({
      section: m.section, index: m.index, kind: m.kind, interpDiffers: diff, verdict: res.equivalent, via: res.via,
      ...(res.reason ? { reason: res.reason } : {}), ms: res.ms, reproduced, unsound: diff === true && res.equivalent === true,
    });
  }
  return out;
}
