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
