// Scalar abstract values as the Linux verifier tracks them: a tnum (known bits) plus signed and
// unsigned bounds at 64 and 32 bits. Every transfer function here is sound and never more precise
// than the kernel's (kernel/bpf/verifier.c, kernel/bpf/tnum.c on 6.x): when k2 knows less than the
// kernel, it can only reject more, never accept something the kernel rejects.

export const U64 = (1n << 64n) - 1n;
export const U32 = 0xffffffffn;
export const S64_MIN = -(1n << 63n);
export const S64_MAX = (1n << 63n) - 1n;
export const S32_MIN = -(1n << 31n);
export const S32_MAX = (1n << 31n) - 1n;

const u64 = (x: bigint): bigint => BigInt.asUintN(64, x);
const s64 = (x: bigint): bigint => BigInt.asIntN(64, x);
const u32 = (x: bigint): bigint => BigInt.asUintN(32, x);
const s32 = (x: bigint): bigint => BigInt.asIntN(32, x);
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);
const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);

/** Known bits: bit i is known to equal bit i of `v` when bit i of `m` is 0. Invariant: v & m == 0. */
export interface Tnum {
  readonly v: bigint;
  readonly m: bigint;
}

export const tnumConst = (c: bigint): Tnum => ({ v: u64(c), m: 0n });
export const TNUM_UNKNOWN: Tnum = { v: 0n, m: U64 };

export function tnumRange(lo: bigint, hi: bigint): Tnum {
  const chi = lo ^ hi;
  const hi32 = Number(chi >> 32n);
  const bits = chi === 0n ? 0 : hi32 ? 64 - Math.clz32(hi32) : 32 - Math.clz32(Number(chi));
  if (bits > 63) return TNUM_UNKNOWN;
  const delta = (1n << BigInt(bits)) - 1n;
  return { v: lo & ~delta & U64, m: delta };
}

export function tnumAdd(a: Tnum, b: Tnum): Tnum {
  const sm = u64(a.m + b.m);
  const sv = u64(a.v + b.v);
  const sigma = u64(sm + sv);
  const chi = sigma ^ sv;
  const mu = chi | a.m | b.m;
  return { v: sv & ~mu & U64, m: mu };
}

export function tnumSub(a: Tnum, b: Tnum): Tnum {
  const dv = u64(a.v - b.v);
  const alpha = u64(dv + a.m);
  const beta = u64(dv - b.m);
  const chi = alpha ^ beta;
  const mu = chi | a.m | b.m;
  return { v: dv & ~mu & U64, m: mu };
}

export function tnumAnd(a: Tnum, b: Tnum): Tnum {
  const alpha = a.v | a.m;
  const beta = b.v | b.m;
  const v = a.v & b.v;
  return { v, m: alpha & beta & ~v & U64 };
}

export function tnumOr(a: Tnum, b: Tnum): Tnum {
  const v = a.v | b.v;
  const mu = a.m | b.m;
  return { v, m: mu & ~v & U64 };
}

export function tnumXor(a: Tnum, b: Tnum): Tnum {
  const v = a.v ^ b.v;
  const mu = a.m | b.m;
  return { v: v & ~mu & U64, m: mu };
}

export const tnumLsh = (a: Tnum, k: number): Tnum => ({ v: u64(a.v << BigInt(k)), m: u64(a.m << BigInt(k)) });
export const tnumRsh = (a: Tnum, k: number): Tnum => ({ v: a.v >> BigInt(k), m: a.m >> BigInt(k) });
/** Arithmetic right shift at `width` bits (64 or 32); the result is zero-extended to 64 bits. */
export function tnumArsh(a: Tnum, k: number, width: 32 | 64): Tnum {
  const sx = width === 64 ? s64 : s32;
  const ux = width === 64 ? u64 : u32;
  return { v: ux(sx(a.v) >> BigInt(k)), m: ux(sx(a.m) >> BigInt(k)) };
}
export function tnumIntersect(a: Tnum, b: Tnum): Tnum {
  const v = a.v | b.v;
  const mu = a.m & b.m;
  return { v: v & ~mu & U64, m: mu };
}
export const tnumSubreg = (a: Tnum): Tnum => ({ v: a.v & U32, m: a.m & U32 });
export const tnumIsConst = (a: Tnum): boolean => a.m === 0n;
/** Whether every value of `b` is a value of `a`. */
export function tnumIn(a: Tnum, b: Tnum): boolean {
  if (b.m & ~a.m) return false;
  return a.v === (b.v & ~a.m);
}
export const tnumIsAligned = (a: Tnum, size: number): boolean => ((a.v | a.m) & BigInt(size - 1)) === 0n;

/** A scalar: tnum plus bounds. Unsigned bounds are in [0, 2^64) / [0, 2^32), signed ones in range. */
export interface Scalar {
  readonly t: Tnum;
  readonly smin: bigint;
  readonly smax: bigint;
  readonly umin: bigint;
  readonly umax: bigint;
  readonly s32min: bigint;
  readonly s32max: bigint;
  readonly u32min: bigint;
  readonly u32max: bigint;
}

export const UNKNOWN: Scalar = {
  t: TNUM_UNKNOWN, smin: S64_MIN, smax: S64_MAX, umin: 0n, umax: U64,
  s32min: S32_MIN, s32max: S32_MAX, u32min: 0n, u32max: U32,
};

export function scalarConst(c: bigint): Scalar {
  const u = u64(c);
  const l = u32(u);
  return { t: { v: u, m: 0n }, smin: s64(u), smax: s64(u), umin: u, umax: u, s32min: s32(l), s32max: s32(l), u32min: l, u32max: l };
}
export const ZERO = scalarConst(0n);

export const isConst = (s: Scalar): boolean => s.t.m === 0n;
export const isConst32 = (s: Scalar): boolean => (s.t.m & U32) === 0n;
export const constValue = (s: Scalar): bigint => s.t.v;

/** The scalar holding any value that fits in `bytes` bytes, zero-extended (narrow load result). */
export function unknownOfSize(bytes: number): Scalar {
  if (bytes >= 8) return UNKNOWN;
  return (UNKNOWN_OF_SIZE[bytes] ??= unknownOfSizeSlow(bytes));
}
const UNKNOWN_OF_SIZE: (Scalar | undefined)[] = [];
function unknownOfSizeSlow(bytes: number): Scalar {
  const hi = (1n << BigInt(8 * bytes)) - 1n;
  return sync({ ...UNKNOWN, t: { v: 0n, m: hi }, umin: 0n, umax: hi, smin: 0n, smax: hi });
}

/** A value in [lo, hi] (unsigned 64-bit). */
export const scalarURange = (lo: bigint, hi: bigint): Scalar =>
  sync({ ...UNKNOWN, t: tnumRange(lo, hi), umin: lo, umax: hi });

// ---- bounds synchronisation (reg_bounds_sync) ----

function updateFromTnum(s: Scalar): Scalar {
  const t = s.t;
  const t32 = tnumSubreg(t);
  return {
    t,
    smin: max(s.smin, s64(t.v | (t.m & (1n << 63n)))),
    smax: min(s.smax, s64(t.v | (t.m & S64_MAX))),
    umin: max(s.umin, t.v),
    umax: min(s.umax, t.v | t.m),
    s32min: max(s.s32min, s32(t32.v | (t32.m & (1n << 31n)))),
    s32max: min(s.s32max, s32(t32.v | (t32.m & S32_MAX))),
    u32min: max(s.u32min, t32.v),
    u32max: min(s.u32max, t32.v | t32.m),
  };
}

function deduce(s: Scalar): Scalar {
  let { smin, smax, umin, umax, s32min, s32max, u32min, u32max } = s;
  // 64-bit view -> 32-bit view when the upper halves are equal.
  if (umin >> 32n === umax >> 32n) {
    u32min = max(u32min, umin & U32);
    u32max = min(u32max, umax & U32);
    if (s32(umin & U32) <= s32(umax & U32)) {
      s32min = max(s32min, s32(umin & U32));
      s32max = min(s32max, s32(umax & U32));
    }
  }
  if (smin >> 32n === smax >> 32n) {
    if (s32(smin & U32) <= s32(smax & U32)) {
      s32min = max(s32min, s32(u64(smin) & U32));
      s32max = min(s32max, s32(u64(smax) & U32));
    }
  }
  // 32-bit signed <-> unsigned.
  if (s32min >= 0n || s32max < 0n) {
    const lo = max(u32(s32min), u32min);
    const hi = min(u32(s32max), u32max);
    s32min = s32(lo); s32max = s32(hi); u32min = lo; u32max = hi;
  } else if (s32(u32max) >= 0n) {
    s32min = u32min; s32max = min(s32max, u32max); u32max = s32max;
  } else if (s32(u32min) < 0n) {
    s32min = max(s32min, s32(u32min)); u32min = u32(s32min); s32max = s32(u32max);
  }
  // 64-bit signed <-> unsigned.
  if (smin >= 0n || smax < 0n) {
    const lo = max(u64(smin), umin);
    const hi = min(u64(smax), umax);
    smin = s64(lo); smax = s64(hi); umin = lo; umax = hi;
  } else if (s64(umax) >= 0n) {
    smin = umin; smax = min(smax, umax); umax = smax;
  } else if (s64(umin) < 0n) {
    smin = max(smin, s64(umin)); umin = u64(smin); smax = s64(umax);
  }
  // 32-bit view -> 64-bit view when the upper half is a single value.
  if (umin >> 32n === umax >> 32n) {
    const hi = umin & ~U32 & U64;
    const lo2 = hi | u32min;
    const hi2 = hi | u32max;
    if (lo2 > umin) umin = lo2;
    if (hi2 < umax) umax = hi2;
  }
  return { t: s.t, smin, smax, umin, umax, s32min, s32max, u32min, u32max };
}

function boundOffset(s: Scalar): Scalar {
  // Full ranges tell the tnum nothing (intersecting with an unknown tnum is the identity).
  const full64 = s.umin === 0n && s.umax === U64, full32 = s.u32min === 0n && s.u32max === U32;
  if (full64 && full32) return s;
  const t64 = full64 ? s.t : tnumIntersect(s.t, tnumRange(s.umin, s.umax));
  const t32 = full32 ? tnumSubreg(t64) : tnumIntersect(tnumSubreg(t64), tnumRange(s.u32min, s.u32max));
  return { ...s, t: { v: (t64.v & ~U32 & U64) | t32.v, m: (t64.m & ~U32 & U64) | t32.m } };
}

/** Whether the bounds describe no value (a contradiction: the path is infeasible). */
export const isEmpty = (s: Scalar): boolean =>
  s.smin > s.smax || s.umin > s.umax || s.s32min > s.s32max || s.u32min > s.u32max || (s.t.v & s.t.m) !== 0n;

export function sync(s: Scalar): Scalar {
  // Constants whose bounds agree need no work (the common case).
  const tv = s.t.v, tm = s.t.m;
  if (tm === 0n) {
    const c = tv;
    const sc = s64(c), l = c & U32, sl = s32(l);
    if (s.umin <= c && c <= s.umax && s.smin <= sc && sc <= s.smax && s.u32min <= l && l <= s.u32max && s.s32min <= sl && sl <= s.s32max) {
      return { t: s.t, smin: sc, smax: sc, umin: c, umax: c, s32min: sl, s32max: sl, u32min: l, u32max: l };
    }
  }
  let r = updateFromTnum(s);
  if (isEmpty(r)) return r;
  r = deduce(r);
  if (isEmpty(r)) return r;
  r = boundOffset(r);
  // A second pass from the refined tnum only tightens further; skip it when the tnum did not change.
  if (r.t.v === tv && r.t.m === tm) return r;
  return updateFromTnum(r);
}

/** The 64-bit value is the zero-extension of the low 32 bits (after any 32-bit ALU op). */
export function zext32(s: Scalar): Scalar {
  return sync({
    t: tnumSubreg(s.t), umin: s.u32min, umax: s.u32max, smin: s.u32min, smax: s.u32max,
    s32min: s.s32min, s32max: s.s32max, u32min: s.u32min, u32max: s.u32max,
  });
}

/** Low 32 bits as a scalar whose 64-bit bounds are unknown (only meaningful before zext32). */
const unbounded64 = (t: Tnum, s32min: bigint, s32max: bigint, u32min: bigint, u32max: bigint): Scalar =>
  ({ t, smin: S64_MIN, smax: S64_MAX, umin: 0n, umax: U64, s32min, s32max, u32min, u32max });

/** Truncation to `bytes` bytes, zero-extended (coerce_reg_to_size). */
export function truncate(s: Scalar, bytes: number): Scalar {
  if (bytes >= 8) return s;
  const mask = (1n << BigInt(8 * bytes)) - 1n;
  const t = { v: s.t.v & mask, m: s.t.m & mask };
  if ((s.umin & ~mask & U64) === (s.umax & ~mask & U64)) {
    const lo = s.umin & mask;
    const hi = s.umax & mask;
    if (lo <= hi) return sync({ ...UNKNOWN, t, umin: lo, umax: hi, smin: lo, smax: hi });
  }
  return sync({ ...UNKNOWN, t, umin: 0n, umax: mask, smin: 0n, smax: mask });
}

// ---- ALU ----

export type AluOp = 'add' | 'sub' | 'mul' | 'and' | 'or' | 'xor' | 'lsh' | 'rsh' | 'arsh';

function add64(a: Scalar, b: Scalar): [bigint, bigint, bigint, bigint] {
  let smin = a.smin + b.smin, smax = a.smax + b.smax;
  if (smin < S64_MIN || smax > S64_MAX || smin > S64_MAX || smax < S64_MIN) { smin = S64_MIN; smax = S64_MAX; }
  let umin = a.umin + b.umin, umax = a.umax + b.umax;
  if (umin > U64 || umax > U64) { umin = 0n; umax = U64; }
  return [smin, smax, umin, umax];
}
function add32(a: Scalar, b: Scalar): [bigint, bigint, bigint, bigint] {
  let smin = a.s32min + b.s32min, smax = a.s32max + b.s32max;
  if (smin < S32_MIN || smax > S32_MAX || smin > S32_MAX || smax < S32_MIN) { smin = S32_MIN; smax = S32_MAX; }
  let umin = a.u32min + b.u32min, umax = a.u32max + b.u32max;
  if (umin > U32 || umax > U32) { umin = 0n; umax = U32; }
  return [smin, smax, umin, umax];
}
function sub64(a: Scalar, b: Scalar): [bigint, bigint, bigint, bigint] {
  let smin = a.smin - b.smax, smax = a.smax - b.smin;
  if (smin < S64_MIN || smax > S64_MAX || smin > S64_MAX || smax < S64_MIN) { smin = S64_MIN; smax = S64_MAX; }
  let umin = a.umin - b.umax, umax = a.umax - b.umin;
  if (umin < 0n || umax < 0n) { umin = 0n; umax = U64; }
  return [smin, smax, umin, umax];
}
function sub32(a: Scalar, b: Scalar): [bigint, bigint, bigint, bigint] {
  let smin = a.s32min - b.s32max, smax = a.s32max - b.s32min;
  if (smin < S32_MIN || smax > S32_MAX || smin > S32_MAX || smax < S32_MIN) { smin = S32_MIN; smax = S32_MAX; }
  let umin = a.u32min - b.u32max, umax = a.u32max - b.u32min;
  if (umin < 0n || umax < 0n) { umin = 0n; umax = U32; }
  return [smin, smax, umin, umax];
}

/** Result of `dst op src` on two scalars, or UNKNOWN-ish when k2 does not track the operation. */
export function alu64(op: AluOp, a: Scalar, b: Scalar): Scalar {
  switch (op) {
    case 'add': {
      const [smin, smax, umin, umax] = add64(a, b);
      const [s32min, s32max, u32min, u32max] = add32(a, b);
      return sync({ t: tnumAdd(a.t, b.t), smin, smax, umin, umax, s32min, s32max, u32min, u32max });
    }
    case 'sub': {
      const [smin, smax, umin, umax] = sub64(a, b);
      const [s32min, s32max, u32min, u32max] = sub32(a, b);
      return sync({ t: tnumSub(a.t, b.t), smin, smax, umin, umax, s32min, s32max, u32min, u32max });
    }
    case 'mul': {
      if (isConst(a) && isConst(b)) return scalarConst(a.t.v * b.t.v);
      if (a.smin < 0n || b.smin < 0n || a.umax > U32 || b.umax > U32) return UNKNOWN;
      const umin = a.umin * b.umin, umax = a.umax * b.umax;
      return sync({ ...UNKNOWN, umin, umax, smin: umin, smax: umax });
    }
    case 'and': {
      const t = tnumAnd(a.t, b.t);
      const t32 = tnumSubreg(t);
      const umin = t.v, umax = min(a.umax, b.umax);
      const pos = a.smin >= 0n && b.smin >= 0n;
      const pos32 = a.s32min >= 0n && b.s32min >= 0n;
      const u32max = min(a.u32max, b.u32max);
      return sync({
        t, umin, umax, smin: pos ? umin : S64_MIN, smax: pos ? umax : S64_MAX,
        u32min: t32.v, u32max, s32min: pos32 ? t32.v : S32_MIN, s32max: pos32 ? u32max : S32_MAX,
      });
    }
    case 'or': {
      const t = tnumOr(a.t, b.t);
      const t32 = tnumSubreg(t);
      const umin = max(a.umin, b.umin), umax = t.v | t.m;
      const u32min = max(a.u32min, b.u32min), u32max = t32.v | t32.m;
      const pos = a.smin >= 0n && b.smin >= 0n;
      const pos32 = a.s32min >= 0n && b.s32min >= 0n;
      return sync({
        t, umin, umax, smin: pos ? umin : S64_MIN, smax: pos ? umax : S64_MAX,
        u32min, u32max, s32min: pos32 ? u32min : S32_MIN, s32max: pos32 ? u32max : S32_MAX,
      });
    }
    case 'xor': {
      const t = tnumXor(a.t, b.t);
      const t32 = tnumSubreg(t);
      const umin = t.v, umax = t.v | t.m;
      const u32min = t32.v, u32max = t32.v | t32.m;
      const pos = a.smin >= 0n && b.smin >= 0n;
      const pos32 = a.s32min >= 0n && b.s32min >= 0n;
      return sync({
        t, umin, umax, smin: pos ? umin : S64_MIN, smax: pos ? umax : S64_MAX,
        u32min, u32max, s32min: pos32 ? u32min : S32_MIN, s32max: pos32 ? u32max : S32_MAX,
      });
    }
    case 'lsh': {
      if (!isConst(b) || b.t.v >= 64n) return UNKNOWN;
      const k = Number(b.t.v);
      let smin = S64_MIN, smax = S64_MAX;
      if (k === 32 && a.s32max >= 0n) smax = a.s32max << 32n;
      if (k === 32 && a.s32min >= 0n) smin = a.s32min << 32n;
      let umin = 0n, umax = U64;
      if (a.umax <= 1n << BigInt(63 - k)) { umin = a.umin << BigInt(k); umax = a.umax << BigInt(k); }
      return sync({ ...UNKNOWN, t: tnumLsh(a.t, k), smin, smax, umin, umax });
    }
    case 'rsh': {
      if (!isConst(b) || b.t.v >= 64n) return UNKNOWN;
      const k = Number(b.t.v);
      return sync({ ...UNKNOWN, t: tnumRsh(a.t, k), umin: a.umin >> BigInt(k), umax: a.umax >> BigInt(k) });
    }
    case 'arsh': {
      if (!isConst(b) || b.t.v >= 64n) return UNKNOWN;
      const k = Number(b.t.v);
      return sync({ ...UNKNOWN, t: tnumArsh(a.t, k, 64), smin: a.smin >> BigInt(k), smax: a.smax >> BigInt(k) });
    }
  }
}

/** Result of the 32-bit `dst op src` (ALU class), zero-extended to 64 bits. */
export function alu32(op: AluOp, a: Scalar, b: Scalar): Scalar {
  const ta = tnumSubreg(a.t), tb = tnumSubreg(b.t);
  let r: Scalar;
  switch (op) {
    case 'add': {
      const [s32min, s32max, u32min, u32max] = add32(a, b);
      r = unbounded64(tnumAdd(ta, tb), s32min, s32max, u32min, u32max);
      break;
    }
    case 'sub': {
      const [s32min, s32max, u32min, u32max] = sub32(a, b);
      r = unbounded64(tnumSub(ta, tb), s32min, s32max, u32min, u32max);
      break;
    }
    case 'mul': {
      if (isConst32(a) && isConst32(b)) return scalarConst(u32(ta.v * tb.v));
      if (a.s32min < 0n || b.s32min < 0n || a.u32max > 0xffffn || b.u32max > 0xffffn) return zext32(UNKNOWN);
      const lo = a.u32min * b.u32min, hi = a.u32max * b.u32max;
      r = unbounded64(TNUM_UNKNOWN, lo, hi, lo, hi);
      break;
    }
    case 'and': {
      const t = tnumAnd(ta, tb);
      const u32max = min(a.u32max, b.u32max);
      const pos = a.s32min >= 0n && b.s32min >= 0n;
      r = unbounded64(t, pos ? t.v : S32_MIN, pos ? u32max : S32_MAX, t.v, u32max);
      break;
    }
    case 'or': {
      const t = tnumOr(ta, tb);
      const lo = max(a.u32min, b.u32min), hi = t.v | t.m;
      const pos = a.s32min >= 0n && b.s32min >= 0n;
      r = unbounded64(t, pos ? lo : S32_MIN, pos ? hi : S32_MAX, lo, hi);
      break;
    }
    case 'xor': {
      const t = tnumXor(ta, tb);
      const lo = t.v, hi = t.v | t.m;
      const pos = a.s32min >= 0n && b.s32min >= 0n;
      r = unbounded64(t, pos ? lo : S32_MIN, pos ? hi : S32_MAX, lo, hi);
      break;
    }
    case 'lsh': {
      if (!isConst32(b) || tb.v >= 32n) return zext32(UNKNOWN);
      const k = Number(tb.v);
      let lo = 0n, hi = U32;
      if (a.u32max <= 1n << BigInt(31 - k)) { lo = a.u32min << BigInt(k); hi = a.u32max << BigInt(k); }
      r = unbounded64(tnumSubreg(tnumLsh(ta, k)), S32_MIN, S32_MAX, lo, hi);
      break;
    }
    case 'rsh': {
      if (!isConst32(b) || tb.v >= 32n) return zext32(UNKNOWN);
      const k = Number(tb.v);
      r = unbounded64(tnumRsh(ta, k), S32_MIN, S32_MAX, a.u32min >> BigInt(k), a.u32max >> BigInt(k));
      break;
    }
    case 'arsh': {
      if (!isConst32(b) || tb.v >= 32n) return zext32(UNKNOWN);
      const k = Number(tb.v);
      r = unbounded64(tnumArsh(ta, k, 32), a.s32min >> BigInt(k), a.s32max >> BigInt(k), 0n, U32);
      break;
    }
  }
  // Keep 64-bit bounds unknown; zext32 derives them from the 32-bit ones.
  return zext32(syncLow(r));
}

/** Sync the 32-bit half only (64-bit bounds are about to be replaced by zext32). */
function syncLow(s: Scalar): Scalar {
  const r = sync({ ...s, t: { v: s.t.v & U32, m: (s.t.m & U32) | (U64 & ~U32) } });
  return r;
}

// ---- comparisons ----

export type CmpOp = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le' | 'sgt' | 'sge' | 'slt' | 'sle' | 'set';

interface View { smin: bigint; smax: bigint; umin: bigint; umax: bigint; t: Tnum; konst: boolean }
const view = (s: Scalar, is32: boolean): View =>
  is32
    ? { smin: s.s32min, smax: s.s32max, umin: s.u32min, umax: s.u32max, t: tnumSubreg(s.t), konst: isConst32(s) }
    : { smin: s.smin, smax: s.smax, umin: s.umin, umax: s.umax, t: s.t, konst: isConst(s) };

/** 1: always taken, 0: never taken, -1: unknown (is_branch_taken for scalars). */
export function branchTaken(op: CmpOp, a: Scalar, b: Scalar, is32: boolean): 0 | 1 | -1 {
  const x = view(a, is32), y = view(b, is32);
  switch (op) {
    case 'eq':
    case 'ne': {
      let r: 0 | 1 | -1 = -1;
      if (x.konst && y.konst) r = x.t.v === y.t.v ? 1 : 0;
      else if (x.umin > y.umax || x.umax < y.umin || x.smin > y.smax || x.smax < y.smin) r = 0;
      else if (!is32 && (a.u32min > b.u32max || a.u32max < b.u32min || a.s32min > b.s32max || a.s32max < b.s32min)) r = 0;
      if (r === -1 || op === 'eq') return r;
      return r === 1 ? 0 : 1;
    }
    case 'gt': return x.umin > y.umax ? 1 : x.umax <= y.umin ? 0 : -1;
    case 'ge': return x.umin >= y.umax ? 1 : x.umax < y.umin ? 0 : -1;
    case 'lt': return x.umax < y.umin ? 1 : x.umin >= y.umax ? 0 : -1;
    case 'le': return x.umax <= y.umin ? 1 : x.umin > y.umax ? 0 : -1;
    case 'sgt': return x.smin > y.smax ? 1 : x.smax <= y.smin ? 0 : -1;
    case 'sge': return x.smin >= y.smax ? 1 : x.smax < y.smin ? 0 : -1;
    case 'slt': return x.smax < y.smin ? 1 : x.smin >= y.smax ? 0 : -1;
    case 'sle': return x.smax <= y.smin ? 1 : x.smin > y.smax ? 0 : -1;
    case 'set': {
      if (!y.konst) return -1;
      const k = y.t.v;
      if (x.t.v & k) return 1;
      if (((x.t.v | x.t.m) & k) === 0n) return 0;
      return -1;
    }
  }
}

/** The negation of a comparison (what holds on the fall-through edge); null for `set`. */
export const negate = (op: CmpOp): CmpOp | null =>
  (({ eq: 'ne', ne: 'eq', gt: 'le', ge: 'lt', lt: 'ge', le: 'gt', sgt: 'sle', sge: 'slt', slt: 'sge', sle: 'sgt', set: null }) as const)[op];

/** `a op b` with the operands swapped: b op' a. */
const flip = (op: CmpOp): CmpOp =>
  (({ eq: 'eq', ne: 'ne', gt: 'lt', ge: 'le', lt: 'gt', le: 'ge', sgt: 'slt', sge: 'sle', slt: 'sgt', sle: 'sge', set: 'set' }) as const)[op];

function refineOne(a: Scalar, b: Scalar, op: CmpOp, is32: boolean): Scalar {
  // Narrow `a` knowing `a op b` holds.
  if (is32) {
    let { u32min, u32max, s32min, s32max } = a;
    switch (op) {
      case 'eq': u32min = max(u32min, b.u32min); u32max = min(u32max, b.u32max); s32min = max(s32min, b.s32min); s32max = min(s32max, b.s32max); break;
      case 'gt': u32min = max(u32min, b.u32min + 1n); break;
      case 'ge': u32min = max(u32min, b.u32min); break;
      case 'lt': u32max = min(u32max, b.u32max - 1n); break;
      case 'le': u32max = min(u32max, b.u32max); break;
      case 'sgt': s32min = max(s32min, b.s32min + 1n); break;
      case 'sge': s32min = max(s32min, b.s32min); break;
      case 'slt': s32max = min(s32max, b.s32max - 1n); break;
      case 'sle': s32max = min(s32max, b.s32max); break;
      default: return a;
    }
    let t = a.t;
    if (op === 'eq') {
      const i = tnumIntersect(tnumSubreg(a.t), tnumSubreg(b.t));
      t = { v: (a.t.v & ~U32 & U64) | i.v, m: (a.t.m & ~U32 & U64) | i.m };
    }
    return sync({ ...a, t, u32min, u32max, s32min, s32max });
  }
  let { umin, umax, smin, smax } = a;
  switch (op) {
    case 'eq': umin = max(umin, b.umin); umax = min(umax, b.umax); smin = max(smin, b.smin); smax = min(smax, b.smax); break;
    case 'gt': umin = max(umin, b.umin + 1n); break;
    case 'ge': umin = max(umin, b.umin); break;
    case 'lt': umax = min(umax, b.umax - 1n); break;
    case 'le': umax = min(umax, b.umax); break;
    case 'sgt': smin = max(smin, b.smin + 1n); break;
    case 'sge': smin = max(smin, b.smin); break;
    case 'slt': smax = min(smax, b.smax - 1n); break;
    case 'sle': smax = min(smax, b.smax); break;
    default: return a;
  }
  const t = op === 'eq' ? tnumIntersect(a.t, b.t) : a.t;
  return sync({ ...a, t, umin, umax, smin, smax });
}

/** Both operands narrowed knowing `a op b` holds (reg_set_min_max). May return empty scalars. */
export function refine(op: CmpOp, a: Scalar, b: Scalar, is32: boolean): [Scalar, Scalar] {
  if (op === 'ne' || op === 'set') return [a, b];
  // An empty result means the kernel may still explore this edge; keep the unrefined value then.
  const ra = refineOne(a, b, op, is32);
  const rb = refineOne(b, a, flip(op), is32);
  return [isEmpty(ra) ? a : ra, isEmpty(rb) ? b : rb];
}

export const fmtScalar = (s: Scalar): string =>
  isConst(s) ? `${s64(s.t.v)}` : `[s ${s.smin}..${s.smax} u ${s.umin}..${s.umax} u32 ${s.u32min}..${s.u32max}]`;

/** range_within(old, cur) && tnum_in(old, cur): every value of `cur` is a value of `old`. */
export const scalarWithin = (old: Scalar, cur: Scalar): boolean =>
  old.umin <= cur.umin && old.umax >= cur.umax && old.smin <= cur.smin && old.smax >= cur.smax &&
  old.u32min <= cur.u32min && old.u32max >= cur.u32max && old.s32min <= cur.s32min && old.s32max >= cur.s32max &&
  tnumIn(old.t, cur.t);
