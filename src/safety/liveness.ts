// Static register liveness per instruction (backward dataflow within each function). Registers
// that are dead at a pruning point cannot influence the rest of a path, so the explorer forgets
// them there (as the kernel's liveness marks do), which makes more paths prunable.
import { ALU, ATOMIC, CALL_PSEUDO, CLASS, JMP, LD_IMM64, MODE, SRC_X, aluOp, jmpOp, memMode, opClass, srcBit } from '../isa/index.js';
import type { SafetyProgram } from './program.js';

const R1_5 = 0b111110;

/** live[i]: bit r set when register r may be read on some path from instruction i before being written. */
export function liveness(prog: SafetyProgram): Uint16Array {
  const { insns, funcs } = prog;
  const n = insns.length;
  const use = new Uint16Array(n), def = new Uint16Array(n);
  const succ: number[][] = insns.map(() => []);
  for (const f of funcs) {
    for (let i = f.start; i < f.end; i++) {
      const insn = insns[i]!;
      const cls = opClass(insn.code);
      const b = (r: number) => (r <= 10 ? 1 << r : 0);
      let u = 0, d = 0;
      const next = i + 1 < f.end ? [i + 1] : [];
      let s: number[] = next;
      switch (cls) {
        case CLASS.ALU: case CLASS.ALU64: {
          const op = aluOp(insn.code);
          const x = srcBit(insn.code) === SRC_X && op !== ALU.END && op !== ALU.NEG;
          if (x) u |= b(insn.src);
          if (op !== ALU.MOV) u |= b(insn.dst);
          d |= b(insn.dst);
          break;
        }
        case CLASS.LDX: u |= b(insn.src); d |= b(insn.dst); break;
        case CLASS.ST: u |= b(insn.dst); break;
        case CLASS.STX:
          u |= b(insn.dst) | b(insn.src);
          if (memMode(insn.code) === MODE.ATOMIC) {
            if (insn.imm === ATOMIC.CMPXCHG) { u |= 1; d |= 1; }
            else if (insn.imm & ATOMIC.FETCH) d |= b(insn.src);
          }
          break;
        case CLASS.LD:
          if (insn.code === LD_IMM64) d |= b(insn.dst);
          else { u |= b(6) | (memMode(insn.code) === MODE.IND ? b(insn.src) : 0); d |= 1 | R1_5; }
          break;
        case CLASS.JMP: case CLASS.JMP32: {
          const op = jmpOp(insn.code);
          if (op === JMP.EXIT) { u |= 1; s = []; }
          else if (op === JMP.CALL) {
            u |= R1_5;
            d |= 1 | R1_5;
            if (insn.src === CALL_PSEUDO) u |= R1_5;
          } else if (op === JMP.JA) s = insn.tgt >= 0 ? [insn.tgt] : [];
          else {
            u |= b(insn.dst);
            if (srcBit(insn.code) === SRC_X) u |= b(insn.src);
            s = insn.tgt >= 0 ? [...next, insn.tgt] : next;
          }
          break;
        }
      }
      use[i] = u; def[i] = d; succ[i] = s;
    }
  }
  const live = new Uint16Array(n);
  let changed = true;
  while (changed) {
    changed = false;
    for (let i = n - 1; i >= 0; i--) {
      let out = 0;
      for (const s of succ[i]!) out |= live[s]!;
      const v = (use[i]! | (out & ~def[i]!)) & 0x7ff;
      if (v !== live[i]) { live[i] = v; changed = true; }
    }
  }
  return live;
}
