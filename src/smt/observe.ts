// What two runs must agree on, as terms: the end kind (exit / fault / tail call / leaving a window
// by a label), r0 at exit, live-out registers when leaving a window, every memory byte either side
// wrote (except stack bytes nobody reads later), map presence, and the helper effect trace. Each
// observable is merged over a side's paths with ite on the path conditions (they partition inputs).
import type { Term } from './term.js';
import { FALLTHROUGH, type Machine, type PathEnd } from './machine.js';

export interface ObserveSpec {
  /** Registers compared when a window is left (by falling through or jumping out). */
  liveOut: number[];
  /** Stack bytes (offsets from the entry frame pointer) read after a window; 'all' = every written byte. */
  stack: 'all' | 'none' | { off: number; size: number }[];
  /** Bits of r0 compared at exit. */
  retBits: 32 | 64;
}

export interface Observable {
  name: string;
  a: Term;
  b: Term;
  /** Memory observables: the index (evaluated in counterexamples). */
  index?: Term;
}

const KIND_CODE: Record<string, number> = { exit: 0, fault: 1, tail: 2 };

/** The observables of two path sets and the formula "they differ somewhere". */
export function differences(M: Machine, endsA: PathEnd[], endsB: PathEnd[], spec: ObserveSpec): { diff: Term; obs: Observable[] } {
  const T = M.T;
  const labels = [...new Set([...endsA, ...endsB].filter((e) => e.kind === 'leave').map((e) => e.label!))].sort();
  const kindOf = (e: PathEnd): Term => T.bv(BigInt(e.kind === 'leave' ? 3 + labels.indexOf(e.label!) : KIND_CODE[e.kind]!), 16);
  const live = (e: PathEnd): boolean => e.kind !== 'fault';
  // Observables other than the end kind only matter when the run did not fault: merge them over
  // the live ends only (the formula below guards them with "no fault").
  const merge = (ends0: PathEnd[], f: (e: PathEnd) => Term): Term => {
    const ends = ends0.filter(live);
    if (ends.length === 0) return f(ends0[0]!);
    let acc = f(ends[ends.length - 1]!);
    for (let i = ends.length - 2; i >= 0; i--) acc = T.ite(ends[i]!.pc, f(ends[i]!), acc);
    return acc;
  };
  // The end kind: ite over the kinds (each guarded by the disjunction of its paths' conditions).
  const kindTerm = (ends: PathEnd[]): Term => {
    const groups = new Map<number, { code: Term; pcs: Term[] }>();
    for (const e of ends) {
      const code = kindOf(e);
      const g = groups.get(code.id) ?? { code, pcs: [] };
      g.pcs.push(e.pc);
      groups.set(code.id, g);
    }
    const gs = [...groups.values()];
    let acc = gs[gs.length - 1]!.code;
    for (let i = gs.length - 2; i >= 0; i--) acc = T.ite(T.bor(...gs[i]!.pcs), gs[i]!.code, acc);
    return acc;
  };
  const obs: Observable[] = [];
  const both = (name: string, f: (e: PathEnd) => Term): void => {
    obs.push({ name, a: merge(endsA, f), b: merge(endsB, f) });
  };
  const kindA = kindTerm(endsA), kindB = kindTerm(endsB);
  obs.push({ name: 'end', a: kindA, b: kindB });
  const z64 = T.bv(0n, 64);
  both('r0', (e) => (e.kind === 'exit' ? T.resize(e.state.regs[0]!, spec.retBits) : T.bv(0n, spec.retBits)));
  if (labels.length) {
    for (const r of spec.liveOut) {
      both(`r${r}`, (e) => (e.kind === 'leave' ? e.state.regs[r]! : z64));
    }
  }

  // Memory: every index any live end wrote, per memory.
  const all = [...endsA, ...endsB].filter(live);
  const memIds = new Set<string>();
  for (const e of all) for (const id of e.state.mems.keys()) memIds.add(id);
  const fp0 = M.stackRegion(0).base;
  for (const id of [...memIds].sort()) {
    const isStack = id.startsWith('stack');
    if (isStack && (spec.stack === 'none' || id !== 'stack0')) continue;
    const idx = new Map<number, Term>();
    let iw = 64;
    for (const e of all) {
      const m = e.state.mems.get(id);
      if (!m) continue;
      iw = m.iw;
      for (const i of M.writtenIndices(m)) idx.set(i.id, i);
    }
    for (const i of [...idx.values()].sort((p, q) => p.id - q.id)) {
      let cond: Term = T.T;
      const listed = spec.stack;
      if (isStack && listed !== 'all' && listed !== 'none') {
        if (i.op === 'const') {
          const o = BigInt.asIntN(64, i.v);
          if (!listed.some((s) => o >= BigInt(s.off) && o < BigInt(s.off + s.size))) continue;
        }
      }
      if (id === 'flat') cond = flatObserved(M, i, spec, fp0);
      if (cond === T.F) continue;
      const byte = (e: PathEnd): Term => {
        if (!live(e)) return T.bv(0n, 8);
        const m = e.state.mems.get(id);
        const v = m ? M.peek(m, i) : T.select(T.avar(`mem:${id}`, iw, 8), i);
        return cond === T.T ? v : T.ite(cond, v, T.bv(0n, 8));
      };
      both(`${id}[${i.op === 'const' ? BigInt.asIntN(64, i.v) : '?'}]`, byte);
      obs[obs.length - 1]!.index = i;
    }
  }

  // Map presence.
  const presIds = new Set<string>();
  for (const e of all) for (const id of e.state.present.keys()) presIds.add(id);
  for (const name of [...presIds].sort()) {
    const idx = new Map<number, Term>();
    for (const e of all) {
      const p = e.state.present.get(name);
      if (p) for (const i of storeIndices(p)) idx.set(i.id, i);
    }
    for (const i of idx.values()) {
      const w = i.w;
      both(`present:${name}`, (e) => {
        if (!live(e)) return T.bv(0n, 1);
        return T.select(e.state.present.get(name) ?? T.avar(`present:${name}`, w, 1), i);
      });
    }
  }

  // Effect trace: slot k holds (length, id, args..., bytes...) or zeros when absent.
  const maxLen = Math.max(0, ...all.map((e) => e.state.effects.length));
  for (let k = 0; k < maxLen; k++) {
    const width = Math.max(...all.map((e) => e.state.effects[k]?.length ?? 0));
    both(`effect${k}.len`, (e) => T.bv(live(e) ? BigInt(e.state.effects[k]?.length ?? 0) : 0n, 16));
    for (let j = 0; j < width; j++) {
      both(`effect${k}[${j}]`, (e) => (live(e) ? e.state.effects[k]?.[j] ?? z64 : z64));
    }
  }

  const rest = obs.slice(1).map((o) => T.neq(o.a, o.b));
  const faulted = T.eq(kindA, T.bv(BigInt(KIND_CODE.fault!), 16));
  return { diff: T.bor(T.neq(kindA, kindB), T.band(T.bnot(faulted), T.bor(...rest))), obs };
}

/** Flat memory: a written address is observed unless it is a stack byte nobody reads later. */
function flatObserved(M: Machine, addr: Term, spec: ObserveSpec, fp0: Term): Term {
  const T = M.T;
  const inFrame = (base: Term): Term => {
    const off = T.sub(addr, base);
    return T.band(T.sle(T.bv(-512n, 64), off), T.slt(off, T.bv(0n, 64)));
  };
  const stacks = M.regions().filter((r) => r.kind === 'stack');
  const conds: Term[] = [];
  for (const r of stacks) {
    if (r.base === fp0 && spec.stack !== 'none') {
      if (spec.stack === 'all') continue;
      const off = T.sub(addr, fp0);
      const listed = spec.stack.map((s) => T.band(T.sle(T.bv(BigInt(s.off), 64), off), T.slt(off, T.bv(BigInt(s.off + s.size), 64))));
      conds.push(T.implies(inFrame(r.base), T.bor(...listed)));
    } else conds.push(T.bnot(inFrame(r.base)));
  }
  return T.band(...conds);
}

function storeIndices(arr: Term): Term[] {
  const out: Term[] = [];
  const seen = new Set<number>();
  const stack = [arr];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    if (t.op === 'store') {
      out.push(t.a[1]!);
      stack.push(t.a[0]!);
    } else if (t.op === 'ite') stack.push(t.a[1]!, t.a[2]!);
  }
  return out;
}

export { FALLTHROUGH };
