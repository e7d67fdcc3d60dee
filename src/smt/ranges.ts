// Value ranges of terms under a path's branch facts: a small interval analysis the symbolic machine
// uses to decide branch conditions the path already implies (a bound re-checked on a copy, a clamp
// that cannot trigger), so such branches do not fork and the two sides keep identical terms. Every
// range is a sound over-approximation: a fact comes from an atom of the path condition, a range
// from the term's structure; undecided conditions fork as before.
import { mask, toSigned, type Term, type Terms } from './term.js';

/** Unsigned [ulo, uhi] and signed [slo, shi] bounds of a w-bit value (both hold). */
export interface Iv {
  ulo: bigint;
  uhi: bigint;
  slo: bigint;
  shi: bigint;
}

export type Facts = ReadonlyMap<number, Iv>;

const half = (w: number): bigint => 1n << BigInt(w - 1);
const full = (w: number): Iv => ({ ulo: 0n, uhi: mask(w), slo: -half(w), shi: half(w) - 1n });

/** Both views made consistent (each narrowed by what the other implies). */
function norm(iv: Iv, w: number): Iv {
  let { ulo, uhi, slo, shi } = iv;
  // unsigned → signed
  if (uhi < half(w)) {
    slo = slo > ulo ? slo : ulo;
    shi = shi < uhi ? shi : uhi;
  } else if (ulo >= half(w)) {
    slo = slo > ulo - (1n << BigInt(w)) ? slo : ulo - (1n << BigInt(w));
    shi = shi < uhi - (1n << BigInt(w)) ? shi : uhi - (1n << BigInt(w));
  }
  // signed → unsigned
  if (slo >= 0n) {
    ulo = ulo > slo ? ulo : slo;
    uhi = uhi < shi ? uhi : shi;
  } else if (shi < 0n) {
    const lo = slo + (1n << BigInt(w)), hi = shi + (1n << BigInt(w));
    ulo = ulo > lo ? ulo : lo;
    uhi = uhi < hi ? uhi : hi;
  }
  return { ulo, uhi, slo, shi };
}

const meet = (a: Iv, b: Iv, w: number): Iv =>
  norm({ ulo: a.ulo > b.ulo ? a.ulo : b.ulo, uhi: a.uhi < b.uhi ? a.uhi : b.uhi, slo: a.slo > b.slo ? a.slo : b.slo, shi: a.shi < b.shi ? a.shi : b.shi }, w);
const hull = (a: Iv, b: Iv): Iv =>
  ({ ulo: a.ulo < b.ulo ? a.ulo : b.ulo, uhi: a.uhi > b.uhi ? a.uhi : b.uhi, slo: a.slo < b.slo ? a.slo : b.slo, shi: a.shi > b.shi ? a.shi : b.shi });
const empty = (iv: Iv): boolean => iv.ulo > iv.uhi || iv.slo > iv.shi;

/** The facts a (true) condition adds: bounds on the terms its atoms compare with constants. */
export function learnFacts(facts: Facts, cond: Term): Map<number, Iv> {
  const out = new Map(facts);
  const add = (x: Term, iv: Iv): void => {
    const cur = out.get(x.id) ?? full(x.w);
    out.set(x.id, meet(cur, norm(iv, x.w), x.w));
    // a bound on sext(y) / zext(y) that fits y's width is a bound on y
    const m = out.get(x.id)!;
    const cur2 = (lo: bigint, hi: bigint, a: bigint, b: bigint): [bigint, bigint] => [lo > a ? lo : a, hi < b ? hi : b];
    if (x.op === 'sext') {
      // sext(y) lies in y's signed range: the bound, clamped to it, holds for y
      const y = x.a[0]!;
      const [lo, hi] = cur2(m.slo, m.shi, -half(y.w), half(y.w) - 1n);
      if (lo > -half(y.w) || hi < half(y.w) - 1n) add(y, { ...full(y.w), slo: lo, shi: hi });
    } else if (x.op === 'concat' && x.a.length === 2 && x.a[0]!.op === 'const' && x.a[0]!.v === 0n) {
      const y = x.a[1]!;
      const [lo, hi] = cur2(m.ulo, m.uhi, 0n, mask(y.w));
      if (lo > 0n || hi < mask(y.w)) add(y, { ...full(y.w), ulo: lo, uhi: hi });
    }
  };
  const atoms = cond.op === 'band' ? cond.a : [cond];
  for (const atom of atoms) {
    const neg = atom.op === 'bnot';
    const a = neg ? atom.a[0]! : atom;
    if ((a.op !== 'ult' && a.op !== 'slt' && a.op !== 'eq') || a.a.length !== 2) continue;
    const [l, r] = a.a as [Term, Term];
    if (a.op === 'eq') {
      if (neg) continue;
      const [c, x] = l.op === 'const' ? [l, r] : r.op === 'const' ? [r, l] : [null, null];
      if (c && x && x.s === 1) add(x, norm({ ...full(x.w), ulo: c.v, uhi: c.v }, x.w));
      continue;
    }
    if (l.op !== 'const' || r.s !== 1) continue;
    const w = r.w;
    if (a.op === 'ult') add(r, neg ? { ...full(w), uhi: l.v } : { ...full(w), ulo: l.v + 1n });
    else add(r, neg ? { ...full(w), shi: toSigned(l.v, w) } : { ...full(w), slo: toSigned(l.v, w) + 1n });
  }
  return out;
}

/** Bounds of `t`'s value on every input satisfying `facts`. */
export function rangeOf(T: Terms, t: Term, facts: Facts, depth = 0): Iv {
  const w = t.w;
  let iv = full(w);
  if (t.s !== 1 || depth > 24) return iv;
  switch (t.op) {
    case 'const':
      iv = norm({ ...full(w), ulo: t.v, uhi: t.v }, w);
      break;
    case 'concat':
      if (t.a.length === 2 && t.a[0]!.op === 'const' && t.a[0]!.v === 0n) {
        const r = rangeOf(T, t.a[1]!, facts, depth + 1);
        iv = norm({ ...full(w), ulo: r.ulo, uhi: r.uhi }, w);
      }
      break;
    case 'sext': {
      const r = rangeOf(T, t.a[0]!, facts, depth + 1);
      iv = norm({ ...full(w), slo: r.slo, shi: r.shi }, w);
      break;
    }
    case 'extract': {
      const x = t.a[0]!;
      if (t.q !== 0) break;
      if (x.op === 'ite') {
        iv = rangeOf(T, T.ite(x.a[0]!, T.extract(t.p, 0, x.a[1]!), T.extract(t.p, 0, x.a[2]!)), facts, depth + 1);
        break;
      }
      const r = rangeOf(T, x, facts, depth + 1);
      if (r.uhi <= mask(w)) iv = norm({ ...full(w), ulo: r.ulo, uhi: r.uhi }, w);
      else if (r.slo >= -half(w) && r.shi < half(w)) iv = norm({ ...full(w), slo: r.slo, shi: r.shi }, w);
      break;
    }
    case 'ite': {
      const c = t.a[0]!;
      const a = rangeOf(T, t.a[1]!, learnFacts(facts, c), depth + 1);
      const b = rangeOf(T, t.a[2]!, learnFacts(facts, T.bnot(c)), depth + 1);
      iv = empty(a) ? b : empty(b) ? a : hull(a, b);
      break;
    }
    case 'and': {
      const c = t.a.find((x) => x.op === 'const');
      if (c) iv = norm({ ...full(w), ulo: 0n, uhi: c.v }, w);
      break;
    }
  }
  const f = facts.get(t.id);
  return f ? meet(iv, f, w) : iv;
}

/** true / false when the facts decide the condition, else null. */
export function decideByRanges(T: Terms, facts: Facts, cond: Term): boolean | null {
  if (cond.op === 'const') return cond.v !== 0n;
  if (cond.op === 'bnot') {
    const d = decideByRanges(T, facts, cond.a[0]!);
    return d === null ? null : !d;
  }
  if (cond.op === 'band' || cond.op === 'bor') {
    const ds = cond.a.map((x) => decideByRanges(T, facts, x));
    if (cond.op === 'band') return ds.some((d) => d === false) ? false : ds.every((d) => d === true) ? true : null;
    return ds.some((d) => d === true) ? true : ds.every((d) => d === false) ? false : null;
  }
  if ((cond.op !== 'ult' && cond.op !== 'slt' && cond.op !== 'eq') || cond.a.length !== 2) return null;
  const [l, r] = cond.a as [Term, Term];
  if (l.s !== 1) return null;
  const a = rangeOf(T, l, facts), b = rangeOf(T, r, facts);
  if (empty(a) || empty(b)) return null; // an infeasible path: leave it to the solver
  switch (cond.op) {
    case 'ult':
      if (a.uhi < b.ulo) return true;
      if (a.ulo >= b.uhi) return false;
      return null;
    case 'slt':
      if (a.shi < b.slo) return true;
      if (a.slo >= b.shi) return false;
      return null;
    case 'eq':
      if (a.ulo === a.uhi && b.ulo === b.uhi) return a.ulo === b.ulo;
      if (a.uhi < b.ulo || b.uhi < a.ulo) return false;
      return null;
  }
  return null;
}
