// Concrete evaluation of terms under an assignment. Used to test candidate counterexamples without
// the solver, to confirm the solver's models, and in tests as the reference for the simplifier.
import { mask, toSigned, type Term } from './term.js';

/** Concrete array value: explicit entries over a default (a function of the index). */
export interface ArrayVal {
  entries: Map<bigint, bigint>;
  dflt: (idx: bigint) => bigint;
}

/**
 * Values of variables. Variables not yet assigned are drawn from `sample` on first use and
 * remembered, so the assignment that was used can be read back as a counterexample.
 */
export class Env {
  readonly vars = new Map<string, bigint>();
  /** Array variables: entries read or given, plus the default for the rest. */
  readonly arrays = new Map<string, Map<bigint, bigint>>();
  constructor(
    readonly sample: (name: string, w: number) => bigint = () => 0n,
    readonly sampleArr: (name: string, idx: bigint, w: number) => bigint = () => 0n,
  ) {}
  get(name: string, w: number): bigint {
    let v = this.vars.get(name);
    if (v === undefined) {
      v = this.sample(name, w) & mask(w);
      this.vars.set(name, v);
    }
    return v;
  }
  getArr(name: string, idx: bigint, w: number): bigint {
    let m = this.arrays.get(name);
    if (!m) this.arrays.set(name, (m = new Map()));
    let v = m.get(idx);
    if (v === undefined) {
      v = this.sampleArr(name, idx, w) & mask(w);
      m.set(idx, v);
    }
    return v;
  }
}

type Val = bigint | ArrayVal;

/** Evaluates terms; memoised per evaluator instance (one per assignment). */
export class Evaluator {
  private memo = new Map<number, Val>();
  constructor(readonly env: Env) {}

  bv(t: Term): bigint {
    return this.ev(t) as bigint;
  }
  bool(t: Term): boolean {
    return (this.ev(t) as bigint) !== 0n;
  }

  private ev(t: Term): Val {
    const hit = this.memo.get(t.id);
    if (hit !== undefined) return hit;
    const v = this.compute(t);
    this.memo.set(t.id, v);
    return v;
  }

  private compute(t: Term): Val {
    const w = t.w;
    const m = mask(w);
    const A = (i: number): bigint => this.ev(t.a[i]!) as bigint;
    const b = (x: boolean): bigint => (x ? 1n : 0n);
    switch (t.op) {
      case 'const':
        return t.v;
      case 'var':
        return this.env.get(t.name, t.w === 0 ? 1 : t.w);
      case 'avar': {
        const name = t.name, ew = t.w;
        return { entries: new Map(), dflt: (i: bigint) => this.env.getArr(name, i, ew) };
      }
      case 'store': {
        const arr = this.ev(t.a[0]!) as ArrayVal;
        const entries = new Map(arr.entries);
        entries.set(A(1), A(2));
        return { entries, dflt: arr.dflt };
      }
      case 'select': {
        const arr = this.ev(t.a[0]!) as ArrayVal;
        const i = A(1);
        const e = arr.entries.get(i);
        return e !== undefined ? e : arr.dflt(i);
      }
      case 'add':
        return t.a.reduce((s, _x, i) => (s + A(i)) & m, 0n);
      case 'mul':
        return t.a.reduce((s, _x, i) => (s * A(i)) & m, 1n);
      case 'and':
        return t.a.reduce((s, _x, i) => s & A(i), m);
      case 'or':
        return t.a.reduce((s, _x, i) => s | A(i), 0n);
      case 'xor':
        return t.a.reduce((s, _x, i) => s ^ A(i), 0n);
      case 'udiv': {
        const y = A(1);
        return y === 0n ? m : A(0) / y;
      }
      case 'urem': {
        const x = A(0), y = A(1);
        return y === 0n ? x : x % y;
      }
      case 'sdiv': {
        const x = toSigned(A(0), w), y = toSigned(A(1), w);
        if (y === 0n) return (x < 0n ? 1n : -1n) & m;
        return (x / y) & m;
      }
      case 'srem': {
        const x = toSigned(A(0), w), y = toSigned(A(1), w);
        if (y === 0n) return x & m;
        return (x % y) & m;
      }
      case 'shl': {
        const s = A(1);
        return s >= BigInt(w) ? 0n : (A(0) << s) & m;
      }
      case 'lshr': {
        const s = A(1);
        return s >= BigInt(w) ? 0n : A(0) >> s;
      }
      case 'ashr': {
        const s = A(1);
        const x = toSigned(A(0), w);
        return (x >> (s >= BigInt(w) ? BigInt(w - 1) : s)) & m;
      }
      case 'concat': {
        let r = 0n;
        t.a.forEach((x, i) => (r = (r << BigInt(x.w)) | A(i)));
        return r;
      }
      case 'extract':
        return (A(0) >> BigInt(t.q)) & m;
      case 'sext':
        return toSigned(A(0), t.a[0]!.w) & m;
      case 'ite':
        return (this.ev(t.a[0]!) as bigint) ? this.ev(t.a[1]!) : this.ev(t.a[2]!);
      case 'eq': {
        const x = this.ev(t.a[0]!), y = this.ev(t.a[1]!);
        if (typeof x !== 'bigint' || typeof y !== 'bigint') throw new Error('array equality is not evaluated concretely');
        return b(x === y);
      }
      case 'ult':
        return b(A(0) < A(1));
      case 'ule':
        return b(A(0) <= A(1));
      case 'slt':
        return b(toSigned(A(0), t.a[0]!.w) < toSigned(A(1), t.a[1]!.w));
      case 'sle':
        return b(toSigned(A(0), t.a[0]!.w) <= toSigned(A(1), t.a[1]!.w));
      case 'band':
        for (let i = 0; i < t.a.length; i++) if (!A(i)) return 0n;
        return 1n;
      case 'bor':
        for (let i = 0; i < t.a.length; i++) if (A(i)) return 1n;
        return 0n;
      case 'bnot':
        return b(!A(0));
    }
  }
}
