// Copy propagation across blocks: after `rA = rB`, the reads of rA that only this copy reaches,
// up to where rA is written again or dies, can read rB instead (while rB keeps its value), and the
// copy goes. The walk follows fall-through edges only; a conditional jump is a side exit where rA
// must be dead, a jump target (another path joins) ends the walk where rA must be dead.
import { ALU, ATOMIC, CLASS, JMP, MODE, SRC_X, aluOp, jmpOp, memMode, opClass, sizeBytes, srcBit } from '../isa/index.js';
import type { CodeSection, IrInsn } from '../ir/types.js';
import { defUse } from './defuse.js';
import { liveIn, successors } from './cfg.js';

/** A copy `sec.insns[mov]` whose readers `renamed` (index → rewritten instruction) can read the source. */
export interface CopyProp {
  mov: number;
  renamed: Map<number, IrInsn>;
}

const MOV64_X = CLASS.ALU64 | ALU.MOV | SRC_X;
const MOV32_X = CLASS.ALU | ALU.MOV | SRC_X;
/** Is register r's upper half known to be zero before instruction i? */
export type Zext = (i: number, r: number) => boolean;
const MAX_WALK = 64;

/** `insn` with its reads of register a turned into reads of b, or null when that is not possible. */
function renameUse(insn: IrInsn, a: number, b: number): IrInsn | null {
  if (insn.pinned) return null;
  const cls = opClass(insn.code);
  switch (cls) {
    case CLASS.ALU:
    case CLASS.ALU64: {
      // only a source operand can be renamed; `rA op= x` writes rA too
      if (insn.dst === a || srcBit(insn.code) !== SRC_X || insn.src !== a || b === 10) return null;
      const op = aluOp(insn.code);
      if (op === ALU.END || op === ALU.NEG) return null;
      return { ...insn, src: b };
    }
    case CLASS.LDX:
      if (memMode(insn.code) !== MODE.MEM && memMode(insn.code) !== MODE.MEMSX) return null;
      return insn.src === a ? { ...insn, src: b } : null;
    case CLASS.ST:
      return memMode(insn.code) === MODE.MEM && insn.dst === a ? { ...insn, dst: b } : null;
    case CLASS.STX:
      // atomics: only the plain read-modify-write forms (a fetch writes its source register back)
      if (memMode(insn.code) === MODE.ATOMIC && ![ATOMIC.ADD, ATOMIC.OR, ATOMIC.AND, ATOMIC.XOR].includes(insn.imm as 0)) return null;
      if (memMode(insn.code) !== MODE.MEM && memMode(insn.code) !== MODE.ATOMIC) return null;
      if (insn.src === a && b === 10) return null; // storing the frame pointer: a spill the verifier tracks
      return { ...insn, dst: insn.dst === a ? b : insn.dst, src: insn.src === a ? b : insn.src };
    case CLASS.JMP:
    case CLASS.JMP32: {
      const op = jmpOp(insn.code);
      if (op === JMP.CALL || op === JMP.EXIT || op === JMP.JA || b === 10) return null;
      return { ...insn, dst: insn.dst === a ? b : insn.dst, src: srcBit(insn.code) === SRC_X && insn.src === a ? b : insn.src };
    }
    default:
      return null; // ld_abs/ld_ind read r6 implicitly, ld_imm64 reads nothing
  }
}

const UNSIGNED_OR_EQ: number[] = [JMP.JEQ, JMP.JNE, JMP.JGT, JMP.JGE, JMP.JLT, JMP.JLE, JMP.JSET];

/**
 * `insn` reading only the low half of register a, rewritten to read b's instead (a = zext(w_b)), or
 * null. A 64-bit compare of a zero-extended value with a non-negative immediate is the 32-bit
 * compare of the low half for ==, !=, unsigned orders and &.
 */
function renameLow32(insn: IrInsn, a: number, b: number): IrInsn | null {
  if (insn.pinned || b === 10) return null;
  const cls = opClass(insn.code);
  if (cls === CLASS.ALU) {
    if (insn.dst === a || srcBit(insn.code) !== SRC_X || insn.src !== a) return null;
    const op = aluOp(insn.code);
    return op === ALU.END || op === ALU.NEG ? null : { ...insn, src: b };
  }
  if (cls === CLASS.JMP32) {
    const op = jmpOp(insn.code);
    if (op === JMP.CALL || op === JMP.EXIT || op === JMP.JA) return null;
    return { ...insn, dst: insn.dst === a ? b : insn.dst, src: srcBit(insn.code) === SRC_X && insn.src === a ? b : insn.src };
  }
  if (cls === CLASS.JMP) {
    const op = jmpOp(insn.code);
    if (srcBit(insn.code) === SRC_X || insn.dst !== a || insn.imm < 0 || !UNSIGNED_OR_EQ.includes(op)) return null;
    return { ...insn, code: CLASS.JMP32 | op, dst: b };
  }
  if (cls === CLASS.STX && memMode(insn.code) === MODE.MEM && insn.src === a && insn.dst !== a && sizeBytes(insn.code) <= 4) return { ...insn, src: b };
  return null;
}

/** The copy at `mov` propagated to its readers, or null. */
export function copyPropAt(sec: CodeSection, mov: number, live = liveIn(sec), succ = successors(sec), zext: Zext = () => false): CopyProp | null {
  const m = sec.insns[mov]!;
  // `wA = wB` copies the whole register when rB's upper half is known to be zero
  // `wA = wB` without that knowledge: rA = zext(wB), and readers of rA's low half only can read wB
  const full = m.code === MOV64_X || (m.code === MOV32_X && m.src !== 10 && zext(mov, m.src));
  const low = !full && m.code === MOV32_X && m.src !== 10;
  if ((!full && !low) || m.off !== 0 || m.pinned || (full && m.dst === m.src) || m.dst === 10) return null;
  const a = m.dst, b = m.src, A = 1 << a, B = 1 << b;
  const rename = full ? renameUse : renameLow32;
  const renamed = new Map<number, IrInsn>();
  const deadAt = (k: number): boolean => (live[k]! & A) === 0;
  const deadAfter = (k: number): boolean => succ[k]!.every((s) => deadAt(s));
  for (let k = mov + 1; k < sec.insns.length && k <= mov + MAX_WALK; k++) {
    let insn = sec.insns[k]!;
    if (insn.labels?.length || insn.funcInfo) return deadAt(k) ? { mov, renamed } : null; // another path joins here
    const du = defUse(insn);
    if (du.use & A) {
      const r = rename(insn, a, b);
      if (!r) return null;
      renamed.set(k, r);
      insn = r;
    }
    if (du.def & A) return { mov, renamed }; // rA's copied value is not read past here
    if (a !== b && du.def & B) return deadAfter(k) ? { mov, renamed } : null; // rB changes while rA may still be read
    const cls = opClass(insn.code);
    if (cls === CLASS.JMP || cls === CLASS.JMP32) {
      const op = jmpOp(insn.code);
      if (op === JMP.JA || op === JMP.EXIT) return deadAfter(k) ? { mov, renamed } : null;
      if (op !== JMP.CALL && !succ[k]!.filter((s) => s !== k + 1).every((s) => deadAt(s))) return null; // side exit
    }
    if (deadAfter(k)) return { mov, renamed };
  }
  return null;
}

/** Every copy that can be propagated to all its readers and removed. */
export function copyProps(sec: CodeSection, zext?: Zext): CopyProp[] {
  const live = liveIn(sec), succ = successors(sec);
  const out: CopyProp[] = [];
  sec.insns.forEach((_, i) => {
    const c = copyPropAt(sec, i, live, succ, zext);
    if (c) out.push(c);
  });
  return out;
}
