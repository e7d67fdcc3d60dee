// Precision tracking and stack liveness along explored paths (the kernel's mark_chain_precision,
// backtrack_insn, propagate_precision and mark_reg_read for stack slots).
//
// Each path keeps a trail of the instructions it processed since its last stored state. When a
// scalar's value decides something, the trail is walked back and the registers and spill slots
// the value came from are marked precise in every stored state on the way; a stored state's
// unmarked scalars then cover any scalar when pruning. Stack reads are marked back the same way.
import { ALU, ATOMIC, CALL_PSEUDO, CLASS, JMP, LD_IMM64, MODE, memMode, opClass } from '../isa/index.js';
import { RT, slotMarked, slotRead, type Precision, type State } from './state.js';
import { sizeBytes } from './env.js';
import { HELPER_FOR_EACH } from './calls.js';
import type { SafetyProgram } from './program.js';

/** A stored state on a path, with the marks later paths put on it. */
export interface Checkpoint {
  pc: number;
  state: State;
  parent: Checkpoint | null;
  branches: number;
  done: boolean;
  /** Instructions the path processed from `parent` to this state (see TRAIL_PC); null if not kept. */
  trail: number[] | null;
  prec: Precision;
}

/**
 * Trail entries: `pc * TRAIL_PC + note` for each processed instruction, where note is 0 or, for
 * an access to a stack slot, 1 + frame * 64 + slot (the kernel's jump history with stack flags).
 */
export const TRAIL_PC = 1024;
/** Longer trails are dropped: the states before them then count as exact (all scalars precise). */
export const MAX_TRAIL = 4096;
/** Trail notes of callback frames: the helper call that entered one, and the callback's exit. */
export const NOTE_CB_CALL = 1023, NOTE_CB_EXIT = 1022;
export const slotNote = (frame: number, slot: number): number => 1 + frame * 64 + slot;

export const newPrecision = (st: State): Precision => ({
  exact: false, regs: new Array<number>(st.frames.length).fill(0), slots: new Array<number>(2 * st.frames.length).fill(0),
  read: new Array<number>(2 * st.frames.length).fill(0),
});

/** Registers and stack slots, per frame, whose values are being traced back (the kernel's backtrack_state). */
interface Backtrack { regs: number[]; slots: number[] }
function btEmpty(bt: Backtrack): boolean {
  for (let i = 0; i < bt.regs.length; i++) if (bt.regs[i] !== 0) return false;
  for (let i = 0; i < bt.slots.length; i++) if (bt.slots[i] !== 0) return false;
  return true;
}

/** Every stored state from `cp` back counts as exact (all its scalars precise). */
export function markExact(cp: Checkpoint | null): void {
  for (let c = cp; c && !c.prec.exact; c = c.parent) c.prec.exact = true;
}

export class PrecisionTracker {
  constructor(private readonly prog: SafetyProgram, private readonly fnAt: Int32Array) {}

  /** Registers `regs` of the current (innermost) frame of `st` decide something: mark them back along the path. */
  markRegs(st: State, regs: number[], trail: number[] | null, cp: Checkpoint | null): void {
    const n = st.frames.length;
    const bt: Backtrack = { regs: new Array<number>(n).fill(0), slots: new Array<number>(2 * n).fill(0) };
    for (const r of regs) if (r < 10) bt.regs[n - 1]! |= 1 << r;
    this.backtrack(bt, n - 1, trail, cp);
  }

  /** A path pruned against `old` relies on the scalars `old` relied on: mark them along the path. */
  propagate(old: Checkpoint, cs: State, trail: number[] | null, cp: Checkpoint | null): void {
    const n = cs.frames.length;
    const bt: Backtrack = { regs: new Array<number>(n).fill(0), slots: new Array<number>(2 * n).fill(0) };
    const p = old.prec;
    old.state.frames.forEach((fr, f) => {
      for (let r = 0; r < 10; r++) {
        const reg = fr.regs[r]!;
        if (reg.t !== RT.SCALAR) continue;
        if (p.exact || (p.regs[f]! & (1 << r)) || (reg.id && p.ids?.has(reg.id))) bt.regs[f]! |= 1 << r;
      }
      fr.stack.forEach((sl, k) => {
        if (!sl?.spill || sl.spill.t !== RT.SCALAR) return;
        if (p.exact || slotMarked(p, f, k) || (sl.spill.id && p.ids?.has(sl.spill.id))) bt.slots[2 * f + (k >> 5)]! |= 1 << (k & 31);
      });
    });
    if (!btEmpty(bt)) this.backtrack(bt, n - 1, trail, cp);
    // ... and read what its paths read (propagate_liveness).
    old.state.frames.forEach((fr, f) => {
      for (let k = 0; k < fr.stack.length; k++) if (fr.stack[k] && (p.exact || slotRead(p, f, k))) this.markStackRead(f, k, trail, cp);
    });
  }

  /** Stack slot `k` of frame `f` is read: every stored state since its last full write depends on it (mark_reg_read). */
  markStackRead(f: number, k: number, trail: number[] | null, cp: Checkpoint | null): void {
    const insns = this.prog.insns;
    const note = slotNote(f, k);
    const w = k >> 5, bit = 1 << (k & 31);
    for (;;) {
      if (!trail) { markExact(cp); return; }
      for (let i = trail.length - 1; i >= 0; i--) {
        const e = trail[i]!;
        if (e % TRAIL_PC !== note) continue;
        const insn = insns[Math.floor(e / TRAIL_PC)]!;
        const cls = opClass(insn.code);
        // A full 8-byte store (not an atomic) hides the older contents.
        if ((cls === CLASS.ST || (cls === CLASS.STX && memMode(insn.code) === MODE.MEM)) && sizeBytes(insn.code) === 8) return;
      }
      if (!cp) return;
      const p = cp.prec;
      if (p.exact || f >= cp.state.frames.length || p.read[2 * f + w]! & bit) return;
      p.read[2 * f + w]! |= bit;
      trail = cp.trail;
      cp = cp.parent;
    }
  }

  /** Walks the path backwards from its current point, marking what `bt` depends on in each stored state. */
  private backtrack(bt: Backtrack, depth: number, trail: number[] | null, cp: Checkpoint | null): void {
    for (;;) {
      if (!trail) { markExact(cp); return; }
      for (let i = trail.length - 1; i >= 0; i--) {
        depth = this.backtrackInsn(bt, depth, trail[i]!);
        if (depth < 0) { markExact(cp); return; }
        if (btEmpty(bt)) return;
      }
      if (!cp) return;
      const p = cp.prec;
      if (p.exact) return;
      const frames = cp.state.frames;
      if (frames.length !== depth + 1) { markExact(cp); return; }
      for (let f = 0; f <= depth; f++) {
        let m = bt.regs[f]!;
        for (let r = 0; m && r < 11; r++) {
          if (!(m & (1 << r))) continue;
          // Already precise: its history was marked when it became so. Not a scalar: compared exactly anyway.
          if (frames[f]!.regs[r]!.t !== RT.SCALAR || p.regs[f]! & (1 << r)) m &= ~(1 << r);
          else p.regs[f]! |= 1 << r;
        }
        bt.regs[f] = m;
        for (let h = 0; h < 2; h++) {
          let sm = bt.slots[2 * f + h]!;
          for (let b = 0; sm && b < 32; b++) {
            if (!((sm >>> b) & 1)) continue;
            const sl = frames[f]!.stack[h * 32 + b];
            if (!sl?.spill || sl.spill.t !== RT.SCALAR || (p.slots[2 * f + h]! >>> b) & 1) sm &= ~(1 << b);
            else p.slots[2 * f + h]! |= 1 << b;
          }
          bt.slots[2 * f + h] = sm;
        }
      }
      if (btEmpty(bt)) return;
      trail = cp.trail;
      cp = cp.parent;
    }
  }

  private backtrackInsn(bt: Backtrack, depth: number, e: number): number {
    const pc = Math.floor(e / TRAIL_PC);
    const note = e - pc * TRAIL_PC;
    const insn = this.prog.insns[pc]!;
    const code = insn.code;
    const cls = code & 7;
    const R = bt.regs;
    let m = R[depth]!; // registers of the current frame
    const dbit = insn.dst < 10 ? 1 << insn.dst : 0;
    const sbit = insn.src < 10 ? 1 << insn.src : 0;
    switch (cls) {
      case CLASS.ALU:
      case CLASS.ALU64: {
        if (!(m & dbit)) return depth;
        const op = code & 0xf0;
        const x = (code & 8) !== 0;
        if (op === ALU.MOV) { m &= ~dbit; if (x) m |= sbit; }
        else if (op !== ALU.END && op !== ALU.NEG && x) m |= sbit;
        R[depth] = m;
        return depth;
      }
      case CLASS.LDX:
        if (!(m & dbit)) return depth;
        R[depth] = m & ~dbit;
        if (note) {
          const sf = (note - 1) >> 6, sk = (note - 1) & 63;
          if (sf < R.length) bt.slots[2 * sf + (sk >> 5)]! |= 1 << (sk & 31);
        }
        return depth;
      case CLASS.ST:
      case CLASS.STX: {
        if (!note) return depth;
        const sf = (note - 1) >> 6, sk = (note - 1) & 63;
        const wi = 2 * sf + (sk >> 5), bit = 1 << (sk & 31);
        const slotSet = sf < R.length && (bt.slots[wi]! & bit) !== 0;
        if (cls === CLASS.STX && memMode(code) === MODE.ATOMIC) {
          // Results of atomics are unknown values: nothing before them decides them.
          if (slotSet) bt.slots[wi]! &= ~bit;
          if (insn.imm === ATOMIC.CMPXCHG) R[depth] = m & ~1;
          else if (insn.imm & ATOMIC.FETCH) R[depth] = m & ~sbit;
          return depth;
        }
        if (!slotSet) return depth;
        bt.slots[wi]! &= ~bit;
        if (cls === CLASS.STX) R[depth] = m | sbit;
        return depth;
      }
      case CLASS.LD:
        R[depth] = code === LD_IMM64 ? m & ~dbit : m & ~0b111111;
        return depth;
      case CLASS.JMP:
      case CLASS.JMP32: {
        const op = code & 0xf0;
        if (op === JMP.EXIT && note === NOTE_CB_EXIT) {
          // A callback's exit: the caller's registers were untouched; going back, enter the callback.
          depth++;
          while (R.length <= depth) { R.push(0); bt.slots.push(0, 0); }
          R[depth] = 0;
          bt.slots[2 * depth] = 0;
          bt.slots[2 * depth + 1] = 0;
          return depth;
        }
        if (op === JMP.CALL && note === NOTE_CB_CALL) {
          // The helper call that entered a callback: the context (bpf_loop's R2, for_each's R4) was the
          // caller's R3; the other arguments are fresh values or pointers.
          R[depth] = 0;
          bt.slots[2 * depth] = 0;
          bt.slots[2 * depth + 1] = 0;
          depth--;
          if (depth < 0) return -1;
          if (m & (insn.imm === HELPER_FOR_EACH ? 16 : 4)) R[depth]! |= 8;
          return depth;
        }
        if (op === JMP.EXIT) {
          // Returned from a callee into this frame: going back, enter the callee.
          const r0 = m & 1;
          R[depth] = m & ~0b111111;
          depth++;
          while (R.length <= depth) { R.push(0); bt.slots.push(0, 0); }
          R[depth] = r0;
          bt.slots[2 * depth] = 0;
          bt.slots[2 * depth + 1] = 0;
          return depth;
        }
        if (op === JMP.CALL) {
          const fn = insn.src === CALL_PSEUDO ? this.fnAt[insn.tgt] ?? -1 : -1;
          if (fn >= 0 && !this.prog.funcs[fn]!.global) {
            // Back out of the callee's frame into the caller's: arguments were the caller's R1-R5.
            R[depth] = 0;
            bt.slots[2 * depth] = 0;
            bt.slots[2 * depth + 1] = 0;
            depth--;
            if (depth < 0) return -1;
            R[depth]! |= m & 0b111110;
          } else R[depth] = m & ~0b111111;
          return depth;
        }
        if (op === JMP.JA) return depth;
        if ((code & 8) !== 0 && m & (dbit | sbit)) R[depth] = m | dbit | sbit;
        return depth;
      }
    }
    return depth;
  }
}
