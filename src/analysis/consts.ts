// Forward constant propagation over one section: which registers hold the same known constant on
// every path into an instruction. Gives window preconditions ("r0 is 2 here"), so a rewrite may rely
// on values established before the window.
import { ALU, CLASS, LD_IMM64, SRC_X, aluOp, imm64, opClass, srcBit } from '../isa/index.js';
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

/** constsIn[i]: registers with a known constant value when instruction i starts. */
export function constantsIn(sec: CodeSection): ConstRegs[] {
  const unknown: ConstRegs = new Array(11).fill(undefined);
  return forwardRegs(sec, unknown, (i, before) => transfer(sec, i, before), (a, b) => (a !== undefined && a === b ? a : undefined));
}
