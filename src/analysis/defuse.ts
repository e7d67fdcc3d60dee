// Which registers an instruction reads and writes (bit r = register r), following the ISA:
// calls read their argument registers (precisely: a helper's prototype arguments, see calls.ts)
// and leave r1-r5 clobbered, exit reads r0, legacy packet loads (ld_abs/ld_ind) read the context
// in r6 and clobber r0-r5.
import { ALU, ATOMIC, CLASS, JMP, LD_IMM64, MODE, SRC_X, aluOp, jmpOp, memMode, opClass, srcBit } from '../isa/index.js';
import type { Insn } from '../isa/index.js';
import { callReads } from './calls.js';

export type RegSet = number; // bitmask over r0..r10

export const R0 = 1;
export const ARGS = 0b111110; // r1-r5
export const ALL_REGS = 0x7ff;
const bit = (r: number): RegSet => (r <= 10 ? 1 << r : 0);

export interface DefUse {
  use: RegSet;
  def: RegSet;
}

/** What a bpf-to-bpf call reads (its callee's live-in arguments), when known. */
export type CalleeReads = (insn: Insn) => RegSet | undefined;

export function defUse(insn: Insn, callee?: CalleeReads): DefUse {
  let use = 0;
  let def = 0;
  switch (opClass(insn.code)) {
    case CLASS.ALU:
    case CLASS.ALU64: {
      const op = aluOp(insn.code);
      if (srcBit(insn.code) === SRC_X && op !== ALU.END && op !== ALU.NEG) use |= bit(insn.src);
      if (op !== ALU.MOV) use |= bit(insn.dst);
      def |= bit(insn.dst);
      break;
    }
    case CLASS.LDX:
      use |= bit(insn.src);
      def |= bit(insn.dst);
      break;
    case CLASS.ST:
      use |= bit(insn.dst);
      break;
    case CLASS.STX:
      use |= bit(insn.dst) | bit(insn.src);
      if (memMode(insn.code) === MODE.ATOMIC) {
        if (insn.imm === ATOMIC.CMPXCHG) { use |= R0; def |= R0; }
        else if (insn.imm & ATOMIC.FETCH) def |= bit(insn.src);
      }
      break;
    case CLASS.LD:
      if (insn.code === LD_IMM64) def |= bit(insn.dst);
      else {
        use |= bit(6) | (memMode(insn.code) === MODE.IND ? bit(insn.src) : 0);
        def |= R0 | ARGS;
      }
      break;
    case CLASS.JMP:
    case CLASS.JMP32: {
      const op = jmpOp(insn.code);
      if (op === JMP.EXIT) use |= R0;
      else if (op === JMP.CALL) { use |= callReads(insn, callee); def |= R0 | ARGS; }
      else if (op !== JMP.JA) {
        use |= bit(insn.dst);
        if (srcBit(insn.code) === SRC_X) use |= bit(insn.src);
      }
      break;
    }
  }
  return { use, def };
}

/** Writes memory (stores, atomics) — never removable without a proof about memory. */
export const writesMemory = (insn: Insn): boolean => opClass(insn.code) === CLASS.ST || opClass(insn.code) === CLASS.STX;
