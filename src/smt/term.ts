// Hash-consed terms over bit-vectors, booleans and arrays, with a simplifier that puts them in a
// normal form while they are built. Two terms built by the same `Terms` table are semantically
// equal whenever they are the same object (`a === b`) — so many equivalence queries are answered
// without calling the solver — and the converse is left to Z3.
//
// Normal form (only what keeps common BPF rewrites syntactically equal):
//   sub/neg → add/mul by -1;  not → xor with all-ones;  zext → concat with zeros;
//   shl by a constant → mul by 2^k;  lshr/ashr by a constant → concat/sext of an extract;
//   and with a constant → concat of extracts and zeros;  add/mul/and/or/xor are flattened n-ary
//   nodes with sorted arguments and one folded constant; extracts are pushed through
//   concat/and/or/xor/ite and (low bits) through add/mul.

export type Op =
  | 'const' | 'var'
  | 'add' | 'mul' | 'udiv' | 'urem' | 'sdiv' | 'srem' | 'shl' | 'lshr' | 'ashr'
  | 'and' | 'or' | 'xor' | 'concat' | 'extract' | 'sext' | 'ite' | 'select'
  | 'eq' | 'ult' | 'ule' | 'slt' | 'sle' | 'band' | 'bor' | 'bnot'
  | 'avar' | 'store';

/** Sort: 0 = Bool, 1 = bit-vector of width `w`, 2 = array from BV(`iw`) to BV(`w`). */
export type SortKind = 0 | 1 | 2;

export interface Term {
  readonly id: number;
  readonly op: Op;
  readonly s: SortKind;
  readonly w: number; // bit width (BV), element width (array), 0 for Bool
  readonly iw: number; // index width for arrays, else 0
  readonly a: readonly Term[];
  readonly v: bigint; // constant value (BV const; Bool const is 0n/1n)
  readonly name: string; // var/avar name
  readonly p: number; // extract: hi; sext: extra bits
  readonly q: number; // extract: lo
}

export const mask = (w: number): bigint => (1n << BigInt(w)) - 1n;
export const toSigned = (v: bigint, w: number): bigint => (v >> BigInt(w - 1)) & 1n ? v - (1n << BigInt(w)) : v;

const isPow2 = (v: bigint): boolean => v > 0n && (v & (v - 1n)) === 0n;
const log2 = (v: bigint): number => v.toString(2).length - 1;
/** Number of low zero bits of a w-bit value (w for zero). */
const trailingZeros = (v: bigint, w: number): number => {
  if (v === 0n) return w;
  let n = 0;
  while (((v >> BigInt(n)) & 1n) === 0n) n++;
  return n;
};

/** A table of hash-consed terms. Use one per query (terms from different tables never mix). */
export class Terms {
  private table = new Map<string, Term>();
  private next = 0;
  readonly T: Term;
  readonly F: Term;
  private vars = new Map<string, Term>();

  constructor() {
    this.T = this.mk('const', 0, 0, [], 1n, '', 0, 0);
    this.F = this.mk('const', 0, 0, [], 0n, '', 0, 0);
  }

  get size(): number {
    return this.next;
  }

  private mk(op: Op, s: SortKind, w: number, a: readonly Term[], v = 0n, name = '', p = 0, q = 0, iw = 0): Term {
    let key = `${op}|${s}|${w}|${iw}|${v}|${name}|${p}|${q}`;
    for (const x of a) key += ',' + x.id;
    const hit = this.table.get(key);
    if (hit) return hit;
    const t: Term = { id: this.next++, op, s, w, iw, a, v, name, p, q };
    this.table.set(key, t);
    return t;
  }

  // ---------- leaves ----------
  bv(v: bigint | number, w: number): Term {
    return this.mk('const', 1, w, [], BigInt(v) & mask(w));
  }
  bool(b: boolean): Term {
    return b ? this.T : this.F;
  }
  /** A bit-vector (w > 0) or Bool (w = 0) variable. A name always has one sort. */
  var(name: string, w: number): Term {
    const old = this.vars.get(name);
    if (old) {
      if (old.w !== w || old.s !== (w === 0 ? 0 : 1)) throw new Error(`term variable ${name} used with two sorts`);
      return old;
    }
    const t = this.mk('var', w === 0 ? 0 : 1, w, [], 0n, name);
    this.vars.set(name, t);
    return t;
  }
  avar(name: string, iw: number, w: number): Term {
    const old = this.vars.get(name);
    if (old) {
      if (old.s !== 2 || old.w !== w || old.iw !== iw) throw new Error(`array variable ${name} used with two sorts`);
      return old;
    }
    const t = this.mk('avar', 2, w, [], 0n, name, 0, 0, iw);
    this.vars.set(name, t);
    return t;
  }
  /** Variables created so far (BV, Bool and arrays), by name. */
  variables(): Map<string, Term> {
    return this.vars;
  }

  isConst(t: Term): boolean {
    return t.op === 'const';
  }

  // ---------- bit-vector arithmetic ----------
  add(...xs: Term[]): Term {
    const w = xs[0]!.w;
    // Linear normal form: sum of coef*term + constant.
    const coef = new Map<number, [Term, bigint]>();
    let c = 0n;
    const addTerm = (t: Term, k: bigint): void => {
      if (t.op === 'const') {
        c += k * t.v;
        return;
      }
      if (t.op === 'add') {
        for (const u of t.a) addTerm(u, k);
        return;
      }
      if (t.op === 'mul' && t.a[t.a.length - 1]!.op === 'const') {
        const rest = t.a.slice(0, -1);
        addTerm(rest.length === 1 ? rest[0]! : this.mulRaw(rest, 1n, w), k * t.a[t.a.length - 1]!.v);
        return;
      }
      const sh = this.shifted(t);
      if (sh) {
        addTerm(sh[0], k << BigInt(sh[1]));
        return;
      }
      const e = coef.get(t.id);
      if (e) e[1] += k;
      else coef.set(t.id, [t, k]);
    };
    for (const x of xs) addTerm(x, 1n);
    const m = mask(w);
    const parts: Term[] = [];
    for (const [t, k0] of [...coef.values()].sort((p, q) => p[0].id - q[0].id)) {
      const k = k0 & m;
      if (k === 0n) continue;
      parts.push(k === 1n ? t : this.mulRaw(t.op === 'mul' ? [...t.a] : [t], k, w));
    }
    c &= m;
    if (parts.length === 0) return this.bv(c, w);
    if (c !== 0n) parts.push(this.bv(c, w));
    if (parts.length === 1) return parts[0]!;
    const merged = this.disjointMerge(parts);
    if (merged) return merged;
    return this.mk('add', 1, w, parts);
  }
  /** t = x << k written as concat(extract(w-1-k, 0, x), 0_k) or concat(P, 0_k): [x, k]. */
  private shifted(t: Term): [Term, number] | null {
    if (t.op !== 'concat') return null;
    const last = t.a[t.a.length - 1]!;
    if (last.op !== 'const' || last.v !== 0n) return null;
    const k = last.w;
    const head = t.a.slice(0, -1);
    if (head.length === 1 && head[0]!.op === 'extract' && head[0]!.q === 0 && head[0]!.a[0]!.w === t.w) return [head[0]!.a[0]!, k];
    return [this.concat(this.bv(0n, k), ...head), k];
  }
  /** Bits that may be non-zero. */
  nz(t: Term): bigint {
    switch (t.op) {
      case 'const':
        return t.v;
      case 'concat': {
        let r = 0n;
        for (const p of t.a) r = (r << BigInt(p.w)) | this.nz(p);
        return r;
      }
      case 'and':
        return t.a.reduce((acc, x) => acc & this.nz(x), mask(t.w));
      case 'or':
      case 'xor':
        return t.a.reduce((acc, x) => acc | this.nz(x), 0n);
      case 'ite':
        return this.nz(t.a[1]!) | this.nz(t.a[2]!);
      case 'add': {
        // a sum of terms whose low k bits are zero has its low k bits zero
        const tz = Math.min(...t.a.map((x) => trailingZeros(this.nz(x), x.w)));
        return mask(t.w) & ~mask(tz);
      }
      case 'mul': {
        const tz = Math.min(t.w, t.a.reduce((n, x) => n + trailingZeros(this.nz(x), x.w), 0));
        return mask(t.w) & ~mask(tz);
      }
      default:
        return mask(t.w);
    }
  }
  /** Terms with pairwise disjoint possibly-non-zero bits: their sum/or/xor as one concatenation. */
  private disjointMerge(xs: readonly Term[]): Term | null {
    if (xs.length < 2) return null;
    const w = xs[0]!.w;
    const masks = xs.map((x) => this.nz(x));
    let acc = 0n;
    for (const mk of masks) {
      if (acc & mk) return null;
      acc |= mk;
    }
    const owner = (bit: number): number => masks.findIndex((mk) => ((mk >> BigInt(bit)) & 1n) === 1n);
    const parts: Term[] = [];
    let i = w - 1;
    while (i >= 0) {
      const o = owner(i);
      let j = i;
      while (j - 1 >= 0 && owner(j - 1) === o) j--;
      parts.push(o < 0 ? this.bv(0n, i - j + 1) : this.extract(i, j, xs[o]!));
      i = j - 1;
    }
    return this.concat(...parts);
  }
  sub(a: Term, b: Term): Term {
    return this.add(a, this.neg(b));
  }
  neg(a: Term): Term {
    return this.mul(a, this.bv(-1n, a.w));
  }
  private mulRaw(ts: Term[], c: bigint, w: number): Term {
    c &= mask(w);
    if (c === 0n) return this.bv(0n, w);
    if (ts.length === 0) return this.bv(c, w);
    if (c === 1n && ts.length === 1) return ts[0]!;
    if (ts.length === 1 && isPow2(c)) {
      const k = log2(c);
      return this.concat(this.extract(w - 1 - k, 0, ts[0]!), this.bv(0n, k));
    }
    const args = [...ts].sort((p, q) => p.id - q.id);
    if (c !== 1n) args.push(this.bv(c, w));
    return this.mk('mul', 1, w, args);
  }
  mul(...xs: Term[]): Term {
    const w = xs[0]!.w;
    const m = mask(w);
    let c = 1n;
    const ts: Term[] = [];
    const walk = (t: Term): void => {
      if (t.op === 'const') c = (c * t.v) & m;
      else if (t.op === 'mul') t.a.forEach(walk);
      else ts.push(t);
    };
    xs.forEach(walk);
    if (c === 0n) return this.bv(0n, w);
    // c * (sum) with a single sum factor: distribute the constant (keeps linear forms linear).
    if (ts.length === 1 && ts[0]!.op === 'add' && c !== 1n) {
      return this.add(...ts[0]!.a.map((u) => this.mul(u, this.bv(c, w))));
    }
    return this.mulRaw(ts, c, w);
  }
  udiv(a: Term, b: Term): Term {
    const w = a.w;
    if (a.op === 'const' && b.op === 'const') return this.bv(b.v === 0n ? m1(w) : a.v / b.v, w);
    if (b.op === 'const' && b.v === 1n) return a;
    if (b.op === 'const' && isPow2(b.v)) return this.lshr(a, this.bv(BigInt(log2(b.v)), w));
    return this.mk('udiv', 1, w, [a, b]);
  }
  urem(a: Term, b: Term): Term {
    const w = a.w;
    if (a.op === 'const' && b.op === 'const') return this.bv(b.v === 0n ? a.v : a.v % b.v, w);
    if (b.op === 'const' && b.v === 1n) return this.bv(0n, w);
    if (b.op === 'const' && isPow2(b.v)) return this.and(a, this.bv(b.v - 1n, w));
    if (b.op === 'const' && b.v === 0n) return a;
    return this.mk('urem', 1, w, [a, b]);
  }
  /** Z3/SMT-LIB bvsdiv (x/0 = x<0 ? 1 : -1; INT_MIN/-1 = INT_MIN). */
  sdiv(a: Term, b: Term): Term {
    const w = a.w;
    if (a.op === 'const' && b.op === 'const') {
      const x = toSigned(a.v, w), y = toSigned(b.v, w);
      if (y === 0n) return this.bv(x < 0n ? 1n : -1n, w);
      return this.bv(x / y, w); // BigInt division truncates toward zero
    }
    if (b.op === 'const' && b.v === 1n) return a;
    return this.mk('sdiv', 1, w, [a, b]);
  }
  /** Z3/SMT-LIB bvsrem (sign follows the dividend; x rem 0 = x). */
  srem(a: Term, b: Term): Term {
    const w = a.w;
    if (a.op === 'const' && b.op === 'const') {
      const x = toSigned(a.v, w), y = toSigned(b.v, w);
      if (y === 0n) return a;
      return this.bv(x % y, w);
    }
    if (b.op === 'const' && (b.v === 1n || b.v === m1(w))) return this.bv(0n, w);
    if (b.op === 'const' && b.v === 0n) return a;
    return this.mk('srem', 1, w, [a, b]);
  }
  /** Shift left; amounts ≥ w give 0 (SMT-LIB semantics; callers mask BPF shift amounts). */
  shl(a: Term, b: Term): Term {
    const w = a.w;
    if (b.op === 'const') {
      if (b.v >= BigInt(w)) return this.bv(0n, w);
      return this.mul(a, this.bv(1n << b.v, w));
    }
    if (a.op === 'const' && a.v === 0n) return a;
    return this.mk('shl', 1, w, [a, b]);
  }
  lshr(a: Term, b: Term): Term {
    const w = a.w;
    if (b.op === 'const') {
      if (b.v >= BigInt(w)) return this.bv(0n, w);
      const k = Number(b.v);
      if (k === 0) return a;
      return this.zext(this.extract(w - 1, k, a), k);
    }
    if (a.op === 'const' && a.v === 0n) return a;
    return this.mk('lshr', 1, w, [a, b]);
  }
  ashr(a: Term, b: Term): Term {
    const w = a.w;
    if (b.op === 'const') {
      const k = b.v >= BigInt(w) ? w - 1 : Number(b.v);
      if (k === 0) return a;
      return this.sext(this.extract(w - 1, k, a), k);
    }
    if (a.op === 'const' && (a.v === 0n || a.v === mask(w))) return a;
    return this.mk('ashr', 1, w, [a, b]);
  }

  // ---------- bitwise ----------
  private bitwise(op: 'and' | 'or' | 'xor', xs: Term[]): Term {
    const w = xs[0]!.w;
    const m = mask(w);
    let c = op === 'and' ? m : 0n;
    const seen = new Map<number, [Term, number]>();
    const walk = (t: Term): void => {
      if (t.op === 'const') c = op === 'and' ? c & t.v : op === 'or' ? c | t.v : c ^ t.v;
      else if (t.op === op) t.a.forEach(walk);
      else {
        const e = seen.get(t.id);
        if (e) e[1]++;
        else seen.set(t.id, [t, 1]);
      }
    };
    xs.forEach(walk);
    let ts = [...seen.values()].filter(([, n]) => op !== 'xor' || n % 2 === 1).map(([t]) => t);
    ts.sort((p, q) => p.id - q.id);
    if (op === 'and' && c === 0n) return this.bv(0n, w);
    if (op === 'or' && c === m) return this.bv(m, w);
    // x op ~x
    if (op !== 'xor') {
      const ids = new Set(ts.map((t) => t.id));
      for (const t of ts) {
        const inner = this.notOf(t);
        if (inner && ids.has(inner.id)) return this.bv(op === 'and' ? 0n : m, w);
      }
    }
    if (ts.length === 0) return this.bv(c, w);
    // and with a constant mask over a single term: concat of extracts and zeros.
    if (op === 'and' && ts.length === 1 && c !== m) return this.maskBits(ts[0]!, c);
    if (op === 'or' && ts.length === 1 && c !== 0n) {
      const t = ts[0]!;
      // or with constant where t is known zero in those bits (t = concat with zero parts): merge.
      const merged = this.orConstIntoConcat(t, c);
      if (merged) return merged;
    }
    if (op === 'xor' && ts.length === 1 && c === 0n) return ts[0]!;
    if (op !== 'and') {
      const all = c !== 0n ? [...ts, this.bv(c, w)] : ts;
      const merged = this.disjointMerge(all);
      if (merged) return merged;
    }
    if ((op === 'and' || op === 'or') && ts.length === 1 && c === (op === 'and' ? m : 0n)) return ts[0]!;
    if (c !== (op === 'and' ? m : 0n)) ts = [...ts, this.bv(c, w)];
    if (ts.length === 1) return ts[0]!;
    return this.mk(op, 1, w, ts);
  }
  private notOf(t: Term): Term | null {
    if (t.op === 'xor' && t.a.length === 2 && t.a[1]!.op === 'const' && t.a[1]!.v === mask(t.w)) return t.a[0]!;
    return null;
  }
  /** t & c as a concatenation of extracts of t and zero runs. */
  private maskBits(t: Term, c: bigint): Term {
    const w = t.w;
    const parts: Term[] = []; // most significant first
    let i = w - 1;
    while (i >= 0) {
      const bit = (c >> BigInt(i)) & 1n;
      let j = i;
      while (j - 1 >= 0 && ((c >> BigInt(j - 1)) & 1n) === bit) j--;
      parts.push(bit ? this.extract(i, j, t) : this.bv(0n, i - j + 1));
      i = j - 1;
    }
    return this.concat(...parts);
  }
  private orConstIntoConcat(t: Term, c: bigint): Term | null {
    if (t.op !== 'concat') return null;
    let hi = t.w;
    const out: Term[] = [];
    let ok = true;
    for (const part of t.a) {
      const lo = hi - part.w;
      const cbits = (c >> BigInt(lo)) & mask(part.w);
      if (cbits === 0n) out.push(part);
      else if (part.op === 'const') out.push(this.bv(part.v | cbits, part.w));
      else ok = false;
      hi = lo;
    }
    return ok ? this.concat(...out) : null;
  }
  and(...xs: Term[]): Term {
    return this.bitwise('and', xs);
  }
  or(...xs: Term[]): Term {
    return this.bitwise('or', xs);
  }
  xor(...xs: Term[]): Term {
    return this.bitwise('xor', xs);
  }
  not(a: Term): Term {
    return this.xor(a, this.bv(mask(a.w), a.w));
  }

  // ---------- width changes ----------
  private extractMemo = new Map<string, Term>();
  extract(hi: number, lo: number, a: Term): Term {
    const w = hi - lo + 1;
    if (lo < 0 || hi >= a.w || w <= 0) throw new Error(`bad extract [${hi}:${lo}] of width ${a.w}`);
    if (lo === 0 && hi === a.w - 1) return a;
    const key = `${a.id}:${hi}:${lo}`;
    const hit = this.extractMemo.get(key);
    if (hit) return hit;
    const r = this.extractRaw(hi, lo, a, w);
    this.extractMemo.set(key, r);
    return r;
  }
  private extractRaw(hi: number, lo: number, a: Term, w: number): Term {
    switch (a.op) {
      case 'const':
        return this.bv(a.v >> BigInt(lo), w);
      case 'extract':
        return this.extract(hi + a.q, lo + a.q, a.a[0]!);
      case 'concat': {
        const out: Term[] = [];
        let top = a.w;
        for (const part of a.a) {
          const plo = top - part.w, phi = top - 1;
          top = plo;
          const h = Math.min(hi, phi), l = Math.max(lo, plo);
          if (h < l) continue;
          out.push(this.extract(h - plo, l - plo, part));
        }
        return this.concat(...out);
      }
      case 'sext': {
        const inner = a.a[0]!;
        if (hi < inner.w) return this.extract(hi, lo, inner);
        if (lo >= inner.w - 1) {
          // all copies of the sign bit
          const sign = this.extract(inner.w - 1, inner.w - 1, inner);
          return w === 1 ? sign : this.sext(sign, w - 1);
        }
        if (lo === 0) return this.sext(inner, hi - inner.w + 1);
        break;
      }
      case 'and':
      case 'or':
      case 'xor':
        return this.bitwise(a.op, a.a.map((x) => this.extract(hi, lo, x)));
      case 'add':
        if (lo === 0 || a.a.every((x) => (this.nz(x) & mask(lo)) === 0n)) return this.add(...a.a.map((x) => this.extract(hi, lo, x)));
        break;
      case 'mul': {
        if (lo === 0) return this.mul(...a.a.map((x) => this.extract(hi, 0, x)));
        // y * (c << lo): bits [hi:lo] are the low bits of y * c
        const c = a.a[a.a.length - 1]!;
        if (c.op === 'const' && trailingZeros(c.v, c.w) >= lo) {
          return this.mul(...a.a.slice(0, -1).map((x) => this.extract(hi - lo, 0, x)), this.bv(c.v >> BigInt(lo), w));
        }
        break;
      }
      case 'ite':
        return this.ite(a.a[0]!, this.extract(hi, lo, a.a[1]!), this.extract(hi, lo, a.a[2]!));
    }
    return this.mk('extract', 1, w, [a], 0n, '', hi, lo);
  }
  concat(...xs: Term[]): Term {
    // flatten, merge adjacent constants and adjacent extracts of one term
    const flat: Term[] = [];
    const push = (t: Term): void => {
      const last = flat[flat.length - 1];
      if (last && last.op === 'const' && t.op === 'const') {
        flat[flat.length - 1] = this.bv((last.v << BigInt(t.w)) | t.v, last.w + t.w);
        return;
      }
      if (last) {
        const [lb, lhi, llo] = asSlice(last);
        const [tb, thi, tlo] = asSlice(t);
        if (lb === tb && llo === thi + 1) {
          flat[flat.length - 1] = this.extract(lhi, tlo, lb);
          return;
        }
      }
      flat.push(t);
    };
    for (const x of xs) {
      if (x.op === 'concat') x.a.forEach(push);
      else push(x);
    }
    if (flat.length === 1) return flat[0]!;
    const w = flat.reduce((n, t) => n + t.w, 0);
    return this.mk('concat', 1, w, flat);
  }
  zext(a: Term, n: number): Term {
    if (n === 0) return a;
    return this.concat(this.bv(0n, n), a);
  }
  sext(a: Term, n: number): Term {
    if (n === 0) return a;
    if (a.op === 'const') return this.bv(toSigned(a.v, a.w), a.w + n);
    if (a.op === 'sext') return this.sext(a.a[0]!, a.p + n);
    // sign-extending a value whose top bit is a known zero is a zero extension
    if (a.op === 'concat' && a.a[0]!.op === 'const' && (a.a[0]!.v >> BigInt(a.a[0]!.w - 1)) === 0n) return this.zext(a, n);
    return this.mk('sext', 1, a.w + n, [a], 0n, '', n);
  }
  /** Low `w` bits, or zero-extension to `w`. */
  resize(a: Term, w: number): Term {
    if (a.w === w) return a;
    return a.w > w ? this.extract(w - 1, 0, a) : this.zext(a, w - a.w);
  }

  // ---------- ite / arrays ----------
  ite(c: Term, a: Term, b: Term): Term {
    if (c.op === 'const') return c.v ? a : b;
    if (a === b) return a;
    if (c.op === 'bnot') return this.ite(c.a[0]!, b, a);
    if (a.s === 0) {
      if (a === this.T && b === this.F) return c;
      if (a === this.F && b === this.T) return this.bnot(c);
      return this.bor(this.band(c, a), this.band(this.bnot(c), b));
    }
    // ite(c, ite(c, x, y), z) = ite(c, x, z)
    if (a.op === 'ite' && a.a[0] === c) return this.ite(c, a.a[1]!, b);
    if (b.op === 'ite' && b.a[0] === c) return this.ite(c, a, b.a[2]!);
    return this.mk('ite', a.s, a.w, [c, a, b], 0n, '', 0, 0, a.iw);
  }
  private selectMemo = new Map<string, Term>();
  select(arr: Term, idx: Term): Term {
    const key = `${arr.id}:${idx.id}`;
    const hit = this.selectMemo.get(key);
    if (hit) return hit;
    let r: Term;
    if (arr.op === 'ite') r = this.ite(arr.a[0]!, this.select(arr.a[1]!, idx), this.select(arr.a[2]!, idx));
    else if (arr.op === 'store') {
      // read-over-write with syntactically decidable index comparisons
      const d = this.sameIndex(arr.a[1]!, idx);
      r = d === true ? arr.a[2]! : d === false ? this.select(arr.a[0]!, idx) : this.mk('select', 1, arr.w, [arr, idx]);
    } else r = this.mk('select', 1, arr.w, [arr, idx]);
    this.selectMemo.set(key, r);
    return r;
  }
  store(arr: Term, idx: Term, val: Term): Term {
    return this.mk('store', 2, arr.w, [arr, idx, val], 0n, '', 0, 0, arr.iw);
  }
  /** true: same index; false: surely different; null: unknown. */
  private sameIndex(i: Term, j: Term): boolean | null {
    if (i === j) return true;
    const [bi, ci] = this.splitConst(i);
    const [bj, cj] = this.splitConst(j);
    if (bi === bj) return ci === cj;
    return null;
  }
  /** t = base + c with c constant (base null when t is constant). */
  splitConst(t: Term): [Term | null, bigint] {
    if (t.op === 'const') return [null, t.v];
    if (t.op === 'add' && t.a[t.a.length - 1]!.op === 'const') {
      const rest = t.a.slice(0, -1);
      return [rest.length === 1 ? rest[0]! : this.mk('add', 1, t.w, rest), t.a[t.a.length - 1]!.v];
    }
    return [t, 0n];
  }

  // ---------- predicates ----------
  eq(a: Term, b: Term): Term {
    if (a === b) return this.T;
    if (a.s === 0) {
      if (a.op === 'const') return a.v ? b : this.bnot(b);
      if (b.op === 'const') return b.v ? a : this.bnot(a);
    }
    if (a.op === 'const' && b.op === 'const') return this.bool(a.v === b.v);
    if (a.s === 1) {
      const ic = this.iteConst(a, b, (x, y) => this.eq(x, y));
      if (ic) return ic;
      // x + c1 == x + c2, concat splits, known-zero parts
      const [ba, ca] = this.splitConst(a), [bb, cb] = this.splitConst(b);
      if (ba === bb) return this.bool(ca === cb);
      if (a.op === 'concat' || b.op === 'concat') {
        const parts = this.splitEq(a, b);
        if (parts) return this.band(...parts);
      }
    }
    const [x, y] = a.id < b.id ? [a, b] : [b, a];
    return this.mk('eq', 0, 0, [x, y]);
  }
  /** a == b as a conjunction over the concat boundaries of either side, when that splits anything. */
  private splitEq(a: Term, b: Term): Term[] | null {
    const cuts = new Set<number>();
    for (const t of [a, b]) {
      if (t.op !== 'concat') continue;
      let top = t.w;
      for (const part of t.a) {
        top -= part.w;
        if (top > 0) cuts.add(top);
      }
    }
    if (cuts.size === 0) return null;
    const bounds = [...cuts].sort((p, q) => q - p);
    const out: Term[] = [];
    let hi = a.w - 1;
    for (const lo of [...bounds, 0]) {
      out.push(this.eq(this.extract(hi, lo, a), this.extract(hi, lo, b)));
      hi = lo - 1;
    }
    return out;
  }
  neq(a: Term, b: Term): Term {
    return this.bnot(this.eq(a, b));
  }
  /** cmp(ite(c, k1, k2), k) with constants: ite(c, cmp(k1, k), cmp(k2, k)) (folds loop counters of merged states). */
  private iteConst(a: Term, b: Term, f: (x: Term, y: Term) => Term): Term | null {
    const leafy = (t: Term): boolean => t.op === 'const' || (t.op === 'ite' && leafy(t.a[1]!) && leafy(t.a[2]!));
    if (a.op === 'ite' && b.op === 'const' && leafy(a)) return this.ite(a.a[0]!, f(a.a[1]!, b), f(a.a[2]!, b));
    if (b.op === 'ite' && a.op === 'const' && leafy(b)) return this.ite(b.a[0]!, f(a, b.a[1]!), f(a, b.a[2]!));
    return null;
  }
  // Comparisons with a constant are kept as `c < x` (or its negation): x < c = ¬(c-1 < x), etc.
  ult(a: Term, b: Term): Term {
    if (a.op === 'const' && b.op === 'const') return this.bool(a.v < b.v);
    const ic = this.iteConst(a, b, (x, y) => this.ult(x, y));
    if (ic) return ic;
    if (a === b) return this.F;
    if (b.op === 'const') return b.v === 0n ? this.F : this.bnot(this.ult(this.bv(b.v - 1n, b.w), a));
    if (a.op === 'const' && a.v === mask(a.w)) return this.F;
    return this.mk('ult', 0, 0, [a, b]);
  }
  ule(a: Term, b: Term): Term {
    if (a.op === 'const' && b.op === 'const') return this.bool(a.v <= b.v);
    if (a === b) return this.T;
    if (a.op === 'const') return a.v === 0n ? this.T : this.ult(this.bv(a.v - 1n, a.w), b);
    if (b.op === 'const') return b.v === mask(b.w) ? this.T : this.bnot(this.ult(b, a));
    return this.bnot(this.ult(b, a));
  }
  slt(a: Term, b: Term): Term {
    if (a.op === 'const' && b.op === 'const') return this.bool(toSigned(a.v, a.w) < toSigned(b.v, b.w));
    const ic = this.iteConst(a, b, (x, y) => this.slt(x, y));
    if (ic) return ic;
    if (a === b) return this.F;
    const smin = 1n << BigInt(a.w - 1), smax = smin - 1n;
    if (b.op === 'const') return b.v === smin ? this.F : this.bnot(this.slt(this.bv(b.v - 1n, b.w), a));
    if (a.op === 'const' && a.v === smax) return this.F;
    return this.mk('slt', 0, 0, [a, b]);
  }
  sle(a: Term, b: Term): Term {
    if (a.op === 'const' && b.op === 'const') return this.bool(toSigned(a.v, a.w) <= toSigned(b.v, b.w));
    if (a === b) return this.T;
    const smin = 1n << BigInt(a.w - 1), smax = smin - 1n;
    if (a.op === 'const') return a.v === smin ? this.T : this.slt(this.bv(a.v - 1n, a.w), b);
    if (b.op === 'const') return b.v === smax ? this.T : this.bnot(this.slt(b, a));
    return this.bnot(this.slt(b, a));
  }
  band(...xs: Term[]): Term {
    const out = new Map<number, Term>();
    const walk = (t: Term): boolean => {
      if (t === this.F) return false;
      if (t === this.T) return true;
      if (t.op === 'band') return t.a.every(walk);
      out.set(t.id, t);
      return true;
    };
    for (const x of xs) if (!walk(x)) return this.F;
    for (const t of out.values()) if (t.op === 'bnot' && out.has(t.a[0]!.id)) return this.F;
    if (out.size === 0) return this.T;
    if (out.size === 1) return [...out.values()][0]!;
    return this.mk('band', 0, 0, [...out.values()].sort((p, q) => p.id - q.id));
  }
  bor(...xs: Term[]): Term {
    const out = new Map<number, Term>();
    const walk = (t: Term): boolean => {
      if (t === this.T) return false;
      if (t === this.F) return true;
      if (t.op === 'bor') return t.a.every(walk);
      out.set(t.id, t);
      return true;
    };
    for (const x of xs) if (!walk(x)) return this.T;
    for (const t of out.values()) if (t.op === 'bnot' && out.has(t.a[0]!.id)) return this.T;
    if (out.size === 0) return this.F;
    if (out.size === 1) return [...out.values()][0]!;
    return this.mk('bor', 0, 0, [...out.values()].sort((p, q) => p.id - q.id));
  }
  bnot(a: Term): Term {
    if (a.op === 'const') return this.bool(!a.v);
    if (a.op === 'bnot') return a.a[0]!;
    return this.mk('bnot', 0, 0, [a]);
  }
  implies(a: Term, b: Term): Term {
    return this.bor(this.bnot(a), b);
  }
}

const m1 = (w: number): bigint => mask(w);

/** View a term as a bit slice [hi:lo] of a base term (an extract, or the whole term). */
function asSlice(t: Term): [Term, number, number] {
  if (t.op === 'extract') return [t.a[0]!, t.p, t.q];
  return [t, t.w - 1, 0];
}

/** Free variables (BV/Bool vars and array vars) of terms. */
export function freeVars(roots: readonly Term[]): Term[] {
  const seen = new Set<number>();
  const out: Term[] = [];
  const stack = [...roots];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    if (t.op === 'var' || t.op === 'avar') out.push(t);
    for (const x of t.a) stack.push(x);
  }
  return out;
}

/** Number of distinct nodes reachable from the roots. */
export function dagSize(roots: readonly Term[]): number {
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    for (const x of t.a) stack.push(x);
  }
  return seen.size;
}

/** A readable S-expression (for debugging and error messages). */
export function show(t: Term, depth = 6): string {
  if (t.op === 'const') return t.s === 0 ? (t.v ? 'true' : 'false') : `#x${t.v.toString(16)}:${t.w}`;
  if (t.op === 'var' || t.op === 'avar') return t.name;
  if (depth === 0) return '…';
  const head = t.op === 'extract' ? `extract[${t.p}:${t.q}]` : t.op === 'sext' ? `sext+${t.p}` : t.op;
  return `(${head} ${t.a.map((x) => show(x, depth - 1)).join(' ')})`;
}
