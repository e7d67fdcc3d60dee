// Window preconditions from the safety checker's abstract states (src/safety): what the verifier
// model knows about each register at a window's entry becomes a RegFact. Weaker facts are always
// sound (they only make the checker less complete), so anything not mapped is left unknown.
import { RT, SB, type Reg, type State } from '../safety/state.js';
import type { RegFact, WindowPre } from './types.js';

const isConst = (r: Reg): boolean => r.s.umin === r.s.umax;

function factOf(r: Reg, frame: number): RegFact {
  switch (r.t) {
    case RT.SCALAR: {
      if (isConst(r)) return { kind: 'scalar', value: r.s.umin };
      const f: RegFact = { kind: 'scalar', umin: r.s.umin, umax: r.s.umax, smin: r.s.smin, smax: r.s.smax };
      if (r.s.t.m !== (1n << 64n) - 1n) f.tnum = { value: r.s.t.v, mask: r.s.t.m };
      return f;
    }
    case RT.CTX:
      return isConst(r) ? { kind: 'ctx', off: r.off + Number(r.s.umin) } : { kind: 'unknown' };
    case RT.STACK:
      return r.frame === frame && isConst(r) ? { kind: 'stack', off: r.off + Number(r.s.umin) } : { kind: 'unknown' };
    case RT.PKT:
      // range: bytes verified from the packet start when the variable part is zero
      if (isConst(r)) return { kind: 'packet', off: r.off + Number(r.s.umin), ...(r.s.umin === 0n && r.range > 0 ? { minLen: r.range } : {}) };
      return { kind: 'unknown' };
    case RT.PKT_END:
      return { kind: 'packet_end' };
    case RT.MAP_PTR:
      return r.map ? { kind: 'map', map: r.map.name } : { kind: 'unknown' };
    case RT.MAP_VALUE:
      return r.map && !r.nul && isConst(r) ? { kind: 'map_value', map: r.map.name, off: r.off + Number(r.s.umin) } : { kind: 'unknown' };
    case RT.MEM:
      return { kind: 'mem', size: r.range };
    default:
      return { kind: 'unknown' };
  }
}

/** The precondition an abstract state gives for a window of its current frame. */
export function preFromSafety(st: State): WindowPre {
  const frame = st.frames.length - 1;
  const regs = st.frames[frame]!.regs;
  const pre: WindowPre = { regs: {} };
  for (let r = 0; r <= 9; r++) {
    const f = factOf(regs[r]!, frame);
    if (f.kind !== 'unknown') pre.regs![r] = f;
  }
  // spilled 8-byte registers of the current frame
  const stack: NonNullable<WindowPre['stack']> = [];
  st.frames[frame]!.stack.forEach((slot, k) => {
    if (!slot?.spill || !slot.b.every((x) => x === SB.SPILL)) return;
    const f = factOf(slot.spill, frame);
    if (f.kind === 'ctx' || (f.kind === 'scalar' && f.value !== undefined)) stack.push({ off: -8 * k - 8, size: 8, fact: f });
  });
  if (stack.length) pre.stack = stack;
  return pre;
}

/** Registers live after a window, from the checker's liveness bits. */
export function liveRegs(bits: number): number[] {
  const out: number[] = [];
  for (let r = 0; r <= 9; r++) if (bits & (1 << r)) out.push(r);
  return out;
}

const M64 = (1n << 64n) - 1n;
type Scalar = Extract<RegFact, { kind: 'scalar' }>;

/** A scalar fact as explicit bounds and known bits (a constant is all of them at once). */
function bounds(f: Scalar): { umin: bigint; umax: bigint; smin: bigint; smax: bigint; tv: bigint; tm: bigint } {
  if (f.value !== undefined) {
    const s = BigInt.asIntN(64, f.value);
    return { umin: f.value, umax: f.value, smin: s, smax: s, tv: f.value, tm: 0n };
  }
  return {
    umin: f.umin ?? 0n, umax: f.umax ?? M64, smin: f.smin ?? -(1n << 63n), smax: f.smax ?? (1n << 63n) - 1n,
    tv: f.tnum ? f.tnum.value & ~f.tnum.mask & M64 : 0n, tm: f.tnum ? f.tnum.mask : M64,
  };
}

/** The weakest fact both `a` and `b` imply (what holds on either of two paths). */
export function joinFact(a: RegFact, b: RegFact): RegFact {
  const unknown: RegFact = { kind: 'unknown' };
  if (a.kind !== b.kind) return unknown;
  switch (a.kind) {
    case 'unknown':
    case 'packet_end':
      return a;
    case 'scalar': {
      const x = bounds(a), y = bounds(b as Scalar);
      if (a.value !== undefined && a.value === (b as Scalar).value) return a;
      const tm = x.tm | y.tm | (x.tv ^ y.tv);
      const out: Scalar = { kind: 'scalar' };
      const umin = x.umin < y.umin ? x.umin : y.umin, umax = x.umax > y.umax ? x.umax : y.umax;
      const smin = x.smin < y.smin ? x.smin : y.smin, smax = x.smax > y.smax ? x.smax : y.smax;
      if (umin !== 0n) out.umin = umin;
      if (umax !== M64) out.umax = umax;
      if (smin !== -(1n << 63n)) out.smin = smin;
      if (smax !== (1n << 63n) - 1n) out.smax = smax;
      if (tm !== M64) out.tnum = { value: x.tv & y.tv & ~tm & M64, mask: tm };
      return Object.keys(out).length > 1 ? out : unknown;
    }
    case 'stack':
      return a.off === (b as typeof a).off ? a : unknown;
    case 'ctx':
      return (a.off ?? 0) === ((b as typeof a).off ?? 0) ? a : unknown;
    case 'packet': {
      const c = b as typeof a;
      const minLen = a.minLen === undefined || c.minLen === undefined ? undefined : Math.min(a.minLen, c.minLen);
      return { kind: 'packet', ...(a.off === c.off && a.off !== undefined ? { off: a.off } : {}), ...(minLen !== undefined ? { minLen } : {}) };
    }
    case 'map':
      return a.map === (b as typeof a).map ? a : unknown;
    case 'map_value': {
      const c = b as typeof a;
      return a.map === c.map && (a.off ?? 0) === (c.off ?? 0) ? a : unknown;
    }
    case 'mem':
      return a.size === (b as typeof a).size ? a : { kind: 'mem' };
  }
}

/** The precondition that holds whenever `a` or `b` does. */
export function joinPre(a: WindowPre, b: WindowPre): WindowPre {
  const regs: NonNullable<WindowPre['regs']> = {};
  for (let r = 0; r <= 9; r++) {
    const fa = a.regs?.[r], fb = b.regs?.[r];
    if (!fa || !fb) continue;
    const f = joinFact(fa, fb);
    if (f.kind !== 'unknown') regs[r] = f;
  }
  const out: WindowPre = { regs };
  const stack: NonNullable<WindowPre['stack']> = [];
  for (const s of a.stack ?? []) {
    const t = b.stack?.find((x) => x.off === s.off && x.size === s.size);
    if (!t) continue;
    const f = joinFact(s.fact, t.fact);
    if (f.kind !== 'unknown') stack.push({ off: s.off, size: s.size, fact: f });
  }
  if (stack.length) out.stack = stack;
  if (a.packetMinLen !== undefined && b.packetMinLen !== undefined) out.packetMinLen = Math.min(a.packetMinLen, b.packetMinLen);
  return out;
}
