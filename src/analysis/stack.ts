// Byte-level liveness of each function's own stack frame across the control-flow graph: which of
// the 512 bytes below the frame pointer may be read, on some path, before being overwritten.
//
// Stack addresses are tracked as "r10 + k" through moves and constant adds/subs (a forward pass).
// A stack address that stops being tracked — spilled to memory, changed by another operation, or
// live at a join with different offsets — "escapes": then every load through an untracked pointer,
// and every call, may read any byte. Calls read from each tracked pointer argument up to the frame
// top (the helper's size argument is not needed for that bound). Exit ends the frame: nothing is
// live there. Gives the stack postcondition of windows and finds dead stores.
import { ALU, CLASS, MODE, SRC_X, aluOp, jmpOp, JMP, memMode, opClass, sizeBytes, srcBit } from '../isa/index.js';
import type { CodeSection, IrInsn } from '../ir/types.js';
import { successors } from './cfg.js';
import { callReads, type CallMemory } from './calls.js';
import { defUse, type CalleeReads } from './defuse.js';
import { forwardRegs } from './dataflow.js';

export const FRAME = 512;
const WORDS = FRAME / 32;

/** r10-relative offset each register holds, when it is a tracked stack address. */
export type StackPtrs = (number | undefined)[];

/** A 512-bit set; bit b stands for the byte at offset b - 512 from the frame pointer. */
export type ByteSet = Uint32Array;

export interface StackLiveness {
  /** Tracked stack addresses before each instruction. */
  ptrs: StackPtrs[];
  /** Some stack address was not tracked: untracked accesses and calls may read any byte. */
  escaped: boolean;
  /** Live bytes before each instruction. */
  liveIn: ByteSet[];
}

const isJump = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32;

function ptrTransfer(insn: IrInsn, inState: StackPtrs, escape: () => void): StackPtrs {
  const out = [...inState];
  const cls = opClass(insn.code);
  const { def } = defUse(insn);
  if (insn.core?.length && (cls === CLASS.ALU || cls === CLASS.ALU64)) {
    // a CO-RE-relocated immediate (patched at load time): a stack address it changes is lost
    if (inState[insn.dst] !== undefined) escape();
    for (let r = 0; r <= 9; r++) if (def & (1 << r)) out[r] = undefined;
    out[10] = 0;
    return out;
  }
  if (cls === CLASS.ALU64 && srcBit(insn.code) === SRC_X && aluOp(insn.code) === ALU.MOV && insn.off === 0) {
    out[insn.dst] = inState[insn.src];
  } else if (cls === CLASS.ALU64 && srcBit(insn.code) !== SRC_X && (aluOp(insn.code) === ALU.ADD || aluOp(insn.code) === ALU.SUB) && inState[insn.dst] !== undefined) {
    out[insn.dst] = inState[insn.dst]! + (aluOp(insn.code) === ALU.ADD ? insn.imm : -insn.imm);
  } else {
    // Any other write of a register holding a stack address (or derived from one) loses track of it.
    if (cls === CLASS.ALU || cls === CLASS.ALU64) {
      const x = srcBit(insn.code) === SRC_X && aluOp(insn.code) !== ALU.END && aluOp(insn.code) !== ALU.NEG;
      if ((x && inState[insn.src] !== undefined) || (aluOp(insn.code) !== ALU.MOV && inState[insn.dst] !== undefined)) escape();
    }
    for (let r = 0; r <= 9; r++) if (def & (1 << r)) out[r] = undefined;
  }
  // A stack address stored to memory (a spill) can come back untracked.
  if (cls === CLASS.STX && inState[insn.src] !== undefined) escape();
  out[10] = 0;
  return out;
}

const bitSet = (s: ByteSet, lo: number, hi: number): void => {
  for (let b = Math.max(0, lo + FRAME); b < Math.min(FRAME, hi + FRAME); b++) s[b >>> 5]! |= 1 << (b & 31);
};
const bitClear = (s: ByteSet, lo: number, hi: number): void => {
  for (let b = Math.max(0, lo + FRAME); b < Math.min(FRAME, hi + FRAME); b++) s[b >>> 5]! &= ~(1 << (b & 31));
};

/** Is any byte of [lo, hi) (r10-relative) in the set? */
export function anyLive(s: ByteSet, lo: number, hi: number): boolean {
  for (let b = Math.max(0, lo + FRAME); b < Math.min(FRAME, hi + FRAME); b++) if (s[b >>> 5]! & (1 << (b & 31))) return true;
  return false;
}

/** The live byte ranges of a set, as r10-relative {off, size} runs. */
export function liveRanges(s: ByteSet): { off: number; size: number }[] {
  const out: { off: number; size: number }[] = [];
  let start = -1;
  for (let b = 0; b <= FRAME; b++) {
    const on = b < FRAME && (s[b >>> 5]! & (1 << (b & 31))) !== 0;
    if (on && start < 0) start = b;
    if (!on && start >= 0) {
      out.push({ off: start - FRAME, size: b - start });
      start = -1;
    }
  }
  return out;
}

/** The set as 512 bytes of 0/1 (index = offset + 512), for the search's error function. */
export function byteMask(s: ByteSet): Uint8Array {
  const m = new Uint8Array(FRAME);
  for (let b = 0; b < FRAME; b++) m[b] = (s[b >>> 5]! >>> (b & 31)) & 1;
  return m;
}

/** Stack liveness of a section (`live`: register liveness, to ignore dead registers at joins). */
export function stackLiveness(sec: CodeSection, live: Uint16Array, callee?: CalleeReads, callMem?: (index: number) => CallMemory | null): StackLiveness {
  const insns = sec.insns;
  let escaped = false;
  const escape = (): void => { escaped = true; };
  const entry: StackPtrs = new Array(11).fill(undefined);
  entry[10] = 0;
  const ptrs = forwardRegs<number | undefined>(
    sec,
    entry,
    (i, before) => ptrTransfer(insns[i]!, before, escape),
    (a, b) => (a === b ? a : undefined),
  );
  // Joins that lose a tracked address in a live register: the forward pass merged it away.
  const succ = successors(sec);
  for (let i = 0; i < insns.length && !escaped; i++) {
    const after = ptrTransfer(insns[i]!, ptrs[i]!, escape);
    for (const s of succ[i]!) {
      for (let r = 0; r <= 9; r++) {
        if (after[r] !== undefined && ptrs[s]![r] !== after[r] && live[s]! & (1 << r)) escape();
      }
    }
  }
  const n = insns.length;
  const liveIn: ByteSet[] = Array.from({ length: n }, () => new Uint32Array(WORDS));
  const all = new Uint32Array(WORDS).fill(0xffffffff);
  const gen: (ByteSet | null)[] = new Array(n).fill(null);
  const kill: ([number, number][] | null)[] = new Array(n).fill(null);
  for (let i = 0; i < n; i++) {
    const insn = insns[i]!;
    const p = ptrs[i]!;
    const cls = opClass(insn.code);
    const g = (): ByteSet => (gen[i] ??= new Uint32Array(WORDS));
    if (insn.core?.length && (cls === CLASS.LDX || cls === CLASS.ST || cls === CLASS.STX)) {
      // CO-RE: libbpf patches the offset and size at load time; a load may read any byte, a
      // store kills none
      if (cls === CLASS.LDX && (p[insn.src] !== undefined || escaped)) gen[i] = all;
      continue;
    }
    if (cls === CLASS.LDX) {
      const k = p[insn.src];
      if (k !== undefined) bitSet(g(), k + insn.off, k + insn.off + sizeBytes(insn.code));
      else if (escaped) gen[i] = all;
    } else if (cls === CLASS.ST || cls === CLASS.STX) {
      const k = p[insn.dst];
      const atomic = cls === CLASS.STX && memMode(insn.code) === MODE.ATOMIC;
      if (k !== undefined) {
        if (atomic) bitSet(g(), k + insn.off, k + insn.off + sizeBytes(insn.code));
        else if (memMode(insn.code) === MODE.MEM) kill[i] = [[k + insn.off, k + insn.off + sizeBytes(insn.code)]];
      } else if (atomic && escaped) gen[i] = all;
    } else if (isJump(insn) && jmpOp(insn.code) === JMP.CALL) {
      if (escaped) gen[i] = all;
      else {
        // what the helper reads and writes through its arguments where known (map key/value
        // sizes, constant sizes), else everything from each stack pointer argument to the frame top
        const reads = callReads(insn, callee);
        const mem = insn.src === 0 ? callMem?.(i) ?? null : null;
        for (let r = 1; r <= 5; r++) {
          const k = p[r];
          if (!(reads & (1 << r)) || k === undefined) continue;
          const exact = mem?.reads.find(([reg]) => reg === r);
          if (exact) bitSet(g(), k, k + exact[1]);
          else if (!mem?.writes.some(([reg]) => reg === r)) bitSet(g(), k, 0);
        }
        const ws = (mem?.writes ?? []).flatMap(([r, size]): [number, number][] => (p[r] !== undefined ? [[p[r]!, p[r]! + size]] : []));
        if (ws.length) kill[i] = ws;
      }
    }
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = n - 1; i >= 0; i--) {
      const out = new Uint32Array(WORDS);
      for (const s of succ[i]!) {
        const l = liveIn[s]!;
        for (let w = 0; w < WORDS; w++) out[w]! |= l[w]!;
      }
      const kl = kill[i];
      if (kl) for (const [lo, hi] of kl) bitClear(out, lo, hi);
      const gn = gen[i];
      if (gn) for (let w = 0; w < WORDS; w++) out[w]! |= gn[w]!;
      const cur = liveIn[i]!;
      for (let w = 0; w < WORDS; w++) {
        if (cur[w] !== out[w]) {
          liveIn[i] = out;
          changed = true;
          break;
        }
      }
    }
  }
  return { ptrs, escaped, liveIn };
}

/** Stack bytes live after instruction i (union over its successors). */
export function stackLiveAfter(sl: StackLiveness, succ: number[][], i: number): ByteSet {
  const out = new Uint32Array(WORDS);
  for (const s of succ[i]!) {
    const l = sl.liveIn[s]!;
    for (let w = 0; w < WORDS; w++) out[w]! |= l[w]!;
  }
  return out;
}

/**
 * Stores into the frame none of whose bytes is read afterwards on any path (dead stores), as
 * instruction indices. Atomics and stores through untracked pointers are never dead.
 */
export function deadStackStores(sec: CodeSection, sl: StackLiveness, succ: number[][]): number[] {
  const out: number[] = [];
  sec.insns.forEach((insn, i) => {
    const cls = opClass(insn.code);
    if ((cls !== CLASS.ST && cls !== CLASS.STX) || memMode(insn.code) !== MODE.MEM || insn.pinned || insn.core?.length) return;
    const k = sl.ptrs[i]![insn.dst];
    if (k === undefined) return;
    const lo = k + insn.off, hi = lo + sizeBytes(insn.code);
    if (lo < -FRAME || hi > 0) return;
    if (!anyLive(stackLiveAfter(sl, succ, i), lo, hi)) out.push(i);
  });
  return out;
}
