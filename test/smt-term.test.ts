import test from 'ava';
import { Terms, mask, toSigned, type Term } from '../src/smt/term.js';
import { Env, Evaluator } from '../src/smt/eval.js';
import { rng } from '../src/smt/decide.js';
import { solve, shutdownZ3 } from '../src/smt/z3.js';

test.after.always(async () => {
  await shutdownZ3();
});

// Random expressions with a reference semantics written independently of the simplifier: every
// simplification the term table makes while building must preserve the value, and Z3 must agree
// with the evaluator on the translated terms.
type E =
  | { op: 'var'; name: string; w: number }
  | { op: 'const'; v: bigint; w: number }
  | { op: 'bin'; f: string; a: E; b: E; w: number }
  | { op: 'un'; f: 'not' | 'neg'; a: E; w: number }
  | { op: 'extract'; hi: number; lo: number; a: E; w: number }
  | { op: 'ext'; f: 'zext' | 'sext'; n: number; a: E; w: number }
  | { op: 'concat'; a: E; b: E; w: number }
  | { op: 'ite'; c: P; a: E; b: E; w: number };
type P = { op: 'cmp'; f: string; a: E; b: E } | { op: 'and' | 'or'; a: P; b: P } | { op: 'not'; a: P };

const BINS = ['add', 'sub', 'mul', 'udiv', 'urem', 'sdiv', 'srem', 'shl', 'lshr', 'ashr', 'and', 'or', 'xor'];
const CMPS = ['eq', 'ult', 'ule', 'slt', 'sle'];
const WIDTHS = [8, 16, 32, 64];

function gen(r: () => number, w: number, depth: number): E {
  const int = (n: number): number => Math.floor(r() * n);
  if (depth <= 0 || int(5) === 0) {
    if (int(2) === 0) return { op: 'var', name: `v${w}_${int(3)}`, w };
    const pick = [0n, 1n, mask(w), 1n << BigInt(w - 1), BigInt(int(300)), BigInt(int(w)), (BigInt(int(1 << 30)) * 7919n) & mask(w)];
    return { op: 'const', v: pick[int(pick.length)]! & mask(w), w };
  }
  switch (int(8)) {
    case 0:
    case 1:
    case 2:
      return { op: 'bin', f: BINS[int(BINS.length)]!, a: gen(r, w, depth - 1), b: gen(r, w, depth - 1), w };
    case 3:
      return { op: 'un', f: int(2) ? 'not' : 'neg', a: gen(r, w, depth - 1), w };
    case 4: {
      const from = WIDTHS.filter((x) => x > w);
      if (!from.length) return gen(r, w, depth - 1);
      const fw = from[int(from.length)]!;
      const lo = int(fw - w + 1);
      return { op: 'extract', hi: lo + w - 1, lo, a: gen(r, fw, depth - 1), w };
    }
    case 5: {
      const to = WIDTHS.filter((x) => x < w);
      if (!to.length) return gen(r, w, depth - 1);
      const tw = to[int(to.length)]!;
      return { op: 'ext', f: int(2) ? 'zext' : 'sext', n: w - tw, a: gen(r, tw, depth - 1), w };
    }
    case 6: {
      const to = WIDTHS.filter((x) => x < w);
      if (!to.length) return gen(r, w, depth - 1);
      const hw = to[int(to.length)]!;
      if (!WIDTHS.includes(w - hw)) return gen(r, w, depth - 1);
      return { op: 'concat', a: gen(r, hw, depth - 1), b: gen(r, w - hw, depth - 1), w };
    }
    default:
      return { op: 'ite', c: genP(r, depth - 1), a: gen(r, w, depth - 1), b: gen(r, w, depth - 1), w };
  }
}
function genP(r: () => number, depth: number): P {
  const int = (n: number): number => Math.floor(r() * n);
  if (depth <= 0 || int(3) > 0) {
    const w = WIDTHS[int(4)]!;
    return { op: 'cmp', f: CMPS[int(CMPS.length)]!, a: gen(r, w, depth - 1), b: gen(r, w, depth - 1) };
  }
  if (int(3) === 0) return { op: 'not', a: genP(r, depth - 1) };
  return { op: int(2) ? 'and' : 'or', a: genP(r, depth - 1), b: genP(r, depth - 1) };
}

// Reference semantics (SMT-LIB bit-vectors).
function ref(e: E, env: Map<string, bigint>): bigint {
  const m = mask(e.w);
  switch (e.op) {
    case 'var': return env.get(e.name)!;
    case 'const': return e.v;
    case 'un': return e.f === 'not' ? ~ref(e.a, env) & m : -ref(e.a, env) & m;
    case 'extract': return (ref(e.a, env) >> BigInt(e.lo)) & m;
    case 'ext': return e.f === 'zext' ? ref(e.a, env) : toSigned(ref(e.a, env), e.a.w) & m;
    case 'concat': return (ref(e.a, env) << BigInt(e.b.w)) | ref(e.b, env);
    case 'ite': return refP(e.c, env) ? ref(e.a, env) : ref(e.b, env);
    case 'bin': {
      const x = ref(e.a, env), y = ref(e.b, env), w = BigInt(e.w);
      const sx = toSigned(x, e.w), sy = toSigned(y, e.w);
      switch (e.f) {
        case 'add': return (x + y) & m;
        case 'sub': return (x - y) & m;
        case 'mul': return (x * y) & m;
        case 'udiv': return y === 0n ? m : x / y;
        case 'urem': return y === 0n ? x : x % y;
        case 'sdiv': return y === 0n ? (sx < 0n ? 1n : m) : (sx / sy) & m;
        case 'srem': return y === 0n ? x : (sx % sy) & m;
        case 'shl': return y >= w ? 0n : (x << y) & m;
        case 'lshr': return y >= w ? 0n : x >> y;
        case 'ashr': return (sx >> (y >= w ? w - 1n : y)) & m;
        case 'and': return x & y;
        case 'or': return x | y;
        case 'xor': return x ^ y;
      }
    }
  }
  throw new Error('bad expression');
}
function refP(p: P, env: Map<string, bigint>): boolean {
  switch (p.op) {
    case 'not': return !refP(p.a, env);
    case 'and': return refP(p.a, env) && refP(p.b, env);
    case 'or': return refP(p.a, env) || refP(p.b, env);
    case 'cmp': {
      const x = ref(p.a, env), y = ref(p.b, env), w = p.a.w;
      switch (p.f) {
        case 'eq': return x === y;
        case 'ult': return x < y;
        case 'ule': return x <= y;
        case 'slt': return toSigned(x, w) < toSigned(y, w);
        case 'sle': return toSigned(x, w) <= toSigned(y, w);
      }
    }
  }
  throw new Error('bad predicate');
}

function build(T: Terms, e: E): Term {
  switch (e.op) {
    case 'var': return T.var(e.name, e.w);
    case 'const': return T.bv(e.v, e.w);
    case 'un': return e.f === 'not' ? T.not(build(T, e.a)) : T.neg(build(T, e.a));
    case 'extract': return T.extract(e.hi, e.lo, build(T, e.a));
    case 'ext': return e.f === 'zext' ? T.zext(build(T, e.a), e.n) : T.sext(build(T, e.a), e.n);
    case 'concat': return T.concat(build(T, e.a), build(T, e.b));
    case 'ite': return T.ite(buildP(T, e.c), build(T, e.a), build(T, e.b));
    case 'bin': {
      const a = build(T, e.a), b = build(T, e.b);
      switch (e.f) {
        case 'add': return T.add(a, b);
        case 'sub': return T.sub(a, b);
        case 'mul': return T.mul(a, b);
        case 'udiv': return T.udiv(a, b);
        case 'urem': return T.urem(a, b);
        case 'sdiv': return T.sdiv(a, b);
        case 'srem': return T.srem(a, b);
        case 'shl': return T.shl(a, b);
        case 'lshr': return T.lshr(a, b);
        case 'ashr': return T.ashr(a, b);
        case 'and': return T.and(a, b);
        case 'or': return T.or(a, b);
        case 'xor': return T.xor(a, b);
      }
    }
  }
  throw new Error('bad expression');
}
function buildP(T: Terms, p: P): Term {
  switch (p.op) {
    case 'not': return T.bnot(buildP(T, p.a));
    case 'and': return T.band(buildP(T, p.a), buildP(T, p.b));
    case 'or': return T.bor(buildP(T, p.a), buildP(T, p.b));
    case 'cmp': {
      const a = build(T, p.a), b = build(T, p.b);
      switch (p.f) {
        case 'eq': return T.eq(a, b);
        case 'ult': return T.ult(a, b);
        case 'ule': return T.ule(a, b);
        case 'slt': return T.slt(a, b);
        case 'sle': return T.sle(a, b);
      }
    }
  }
  throw new Error('bad predicate');
}

function randomEnvFor(r: () => number): Map<string, bigint> {
  const env = new Map<string, bigint>();
  for (const w of WIDTHS) {
    for (let i = 0; i < 3; i++) {
      const k = Math.floor(r() * 6);
      const v = k === 0 ? 0n : k === 1 ? mask(w) : k === 2 ? BigInt(Math.floor(r() * 300)) : k === 3 ? 1n << BigInt(w - 1) : BigInt(Math.floor(r() * 2 ** 32)) * BigInt(Math.floor(r() * 2 ** 32));
      env.set(`v${w}_${i}`, v & mask(w));
    }
  }
  return env;
}

test('the simplifier preserves the value of random expressions', (t) => {
  const r = rng(12345);
  let checked = 0;
  for (let n = 0; n < 4000; n++) {
    const w = WIDTHS[Math.floor(r() * 4)]!;
    const e = gen(r, w, 5);
    const T = new Terms();
    const term = build(T, e);
    t.is(term.w, w);
    for (let k = 0; k < 4; k++) {
      const env = randomEnvFor(r);
      const got = new Evaluator(new Env((name) => env.get(name)!)).bv(term);
      const want = ref(e, env);
      if (got !== want) {
        t.fail(`expression ${JSON.stringify(e, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))} env ${[...env].join(';')}: got ${got} want ${want}`);
        return;
      }
      checked++;
    }
  }
  t.is(checked, 16000);
});

test('high bits of products with shifted constants and of sums of shifted terms', (t) => {
  // extract(hi, lo, y * (c << lo)) is rewritten to the low bits of y * c; sums of terms with k
  // zero low bits keep them zero (both used to prove 64-bit arithmetic + truncation = 32-bit ALU)
  const r = rng(4242);
  let checked = 0;
  for (let n = 0; n < 2000; n++) {
    const T = new Terms();
    const x = T.var('x', 64), y = T.var('y', 64);
    const lo = 1 + Math.floor(r() * 40), hi = lo + Math.floor(r() * (64 - lo));
    const c = ((BigInt(Math.floor(r() * 2 ** 30)) << BigInt(lo)) | (r() < 0.2 ? 1n : 0n)) & mask(64);
    const k = Math.floor(r() * 33);
    const sum = T.add(T.mul(y, T.bv(c, 64)), T.shl(x, T.bv(BigInt(k), 64)));
    const term = T.extract(hi, lo, sum);
    const xv = BigInt(Math.floor(r() * 2 ** 32)) * BigInt(Math.floor(r() * 2 ** 32)) & mask(64);
    const yv = BigInt(Math.floor(r() * 2 ** 32)) * BigInt(Math.floor(r() * 2 ** 32)) & mask(64);
    const env = new Map([['x', xv], ['y', yv]]);
    const got = new Evaluator(new Env((name) => env.get(name)!)).bv(term);
    const want = ((((yv * c) + (xv << BigInt(k))) & mask(64)) >> BigInt(lo)) & mask(hi - lo + 1);
    if (got !== want) return t.fail(`lo ${lo} hi ${hi} c ${c} k ${k}: got ${got} want ${want}`);
    checked++;
  }
  t.is(checked, 2000);
});

test('the simplifier preserves random predicates', (t) => {
  const r = rng(777);
  for (let n = 0; n < 3000; n++) {
    const p = genP(r, 4);
    const T = new Terms();
    const term = buildP(T, p);
    for (let k = 0; k < 3; k++) {
      const env = randomEnvFor(r);
      const got = new Evaluator(new Env((name) => env.get(name)!)).bool(term);
      if (got !== refP(p, env)) {
        t.fail(`predicate ${JSON.stringify(p, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))} disagrees`);
        return;
      }
    }
  }
  t.pass();
});

test('Z3 agrees with the evaluator on translated terms', async (t) => {
  const r = rng(4242);
  for (let n = 0; n < 60; n++) {
    const w = WIDTHS[Math.floor(r() * 4)]!;
    const e = gen(r, w, 4);
    const T = new Terms();
    const term = build(T, e);
    const env = randomEnvFor(r);
    const value = ref(e, env);
    // vars = env ∧ term ≠ value must be unsat
    const fix = [...env].map(([name, v]) => T.eq(T.var(name, Number(name.slice(1).split('_')[0])), T.bv(v, Number(name.slice(1).split('_')[0]))));
    const f = T.band(...fix, T.neq(term, T.bv(value, w)));
    const res = await solve(f, 20000);
    t.is(res.result, "unsat", `Z3 disagrees (${JSON.stringify(res)}) on ${JSON.stringify(e, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
  }
});

test('hash-consing makes equal normal forms identical', (t) => {
  const T = new Terms();
  const x = T.var('x', 64), y = T.var('y', 64);
  t.is(T.add(x, y), T.add(y, x));
  t.is(T.add(x, x), T.shl(x, T.bv(1n, 64)));
  t.is(T.mul(x, T.bv(8n, 64)), T.shl(x, T.bv(3n, 64)));
  t.is(T.sub(T.add(x, y), y), x);
  t.is(T.ule(T.bv(6n, 64), x), T.ult(T.bv(5n, 64), x));
  t.is(T.extract(31, 0, T.add(x, T.bv(1n, 64))), T.add(T.extract(31, 0, x), T.bv(1n, 32)));
  t.not(T.add(x, T.bv(1n, 64)), T.add(y, T.bv(1n, 64)));
});
