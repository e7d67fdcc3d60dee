// Forward constant propagation over one section: which registers hold the same known constant on
// every path into an instruction. Gives window preconditions ("r0 is 2 here"), so a rewrite may rely
// on values established before the window.
import { ALU, CLASS, JMP, LD_IMM64, SRC_X, aluOp, imm64, jmpOp, opClass, srcBit } from '../isa/index.js';
import type { CodeSection } from '../ir/types.js';
import { forwardRegs } from './dataflow.js';
import { defUse } from './defuse.js';

/** Per register: a known unsigned 64-bit value, or undefined (unknown). r10 is never a constant. */
export type ConstRegs = (bigint | undefined)[];

function transfer(sec: CodeSection, i: number, inState: ConstRegs): ConstRegs {
  const insn = sec.insns[i]!;
  const out = [...inState];
  const { def } = defUse(insn);
  for (let r = 0; r <= 10; r++) if (def & (1 << r)) out[r] = undefined;
  const cls = opClass(insn.code);
  // a CO-RE-relocated immediate is whatever libbpf patches in at load time: not a constant
  if (insn.core?.length) {
    out[10] = undefined;
    return out;
  }
  if (cls === CLASS.ALU64 && aluOp(insn.code) === ALU.MOV && insn.off === 0) {
    out[insn.dst] = srcBit(insn.code) === SRC_X ? inState[insn.src] : BigInt.asUintN(64, BigInt(insn.imm));
  } else if (cls === CLASS.ALU && aluOp(insn.code) === ALU.MOV && insn.off === 0) {
    const v = srcBit(insn.code) === SRC_X ? inState[insn.src] : BigInt(insn.imm >>> 0);
    out[insn.dst] = v === undefined ? undefined : v & 0xffff_ffffn;
  } else if (insn.code === LD_IMM64 && insn.src === 0 && !insn.reloc) {
    out[insn.dst] = imm64(insn);
  }
  out[10] = undefined;
  return out;
}

/**
 * On the edge where `if rA == c` is taken (or `if rA != c` falls through), rA is c. Only 64-bit
 * compares: a 32-bit one fixes the low half only.
 */
function branchFact(sec: CodeSection, from: number, to: number, out: ConstRegs): ConstRegs {
  const insn = sec.insns[from]!;
  if (opClass(insn.code) !== CLASS.JMP || insn.target === undefined) return out;
  const op = jmpOp(insn.code);
  if (op !== JMP.JEQ && op !== JMP.JNE) return out;
  const taken = to !== from + 1;
  if (to === from + 1 && sec.insns[from + 1]?.labels?.includes(insn.target)) return out; // both edges go there
  if ((op === JMP.JEQ) !== taken) return out;
  const x = srcBit(insn.code) === SRC_X;
  const c = x ? out[insn.src] : BigInt.asUintN(64, BigInt(insn.imm));
  const d = out[insn.dst];
  if (c !== undefined && d === undefined && insn.dst !== 10) {
    const r = [...out];
    r[insn.dst] = c;
    return r;
  }
  if (x && d !== undefined && c === undefined && insn.src !== 10) {
    const r = [...out];
    r[insn.src] = d;
    return r;
  }
  return out;
}

/** constsIn[i]: registers with a known constant value when instruction i starts (branch conditions included). */
export function constantsIn(sec: CodeSection): ConstRegs[] {
  const unknown: ConstRegs = new Array(11).fill(undefined);
  return forwardRegs(sec, unknown, (i, before) => transfer(sec, i, before), (a, b) => (a !== undefined && a === b ? a : undefined), (f, t, o) => branchFact(sec, f, t, o));
}
