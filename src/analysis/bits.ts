// Forward "may be non-zero bits" analysis over one section: for each register, a mask outside of
// which its bits are known to be zero on every path into an instruction (after a u16 load only the
// low 16 bits can be set, after `&= 0xff` only the low 8...). Gives window preconditions, so a
// rewrite may drop a zero-extension or mask that clang repeats after a join point.
import { ALU, CLASS, LD_IMM64, MODE, SIZE, SRC_X, aluOp, imm64, memMode, opClass, srcBit } from '../isa/index.js';
import type { CodeSection } from '../ir/types.js';
import { forwardRegs } from './dataflow.js';
import { defUse } from './defuse.js';

const ALL = (1n << 64n) - 1n;
const LOW32 = 0xffff_ffffn;

/** Per register r0..r10: bits that may be non-zero (ALL = nothing known). */
export type NonzeroBits = bigint[];

const bitLength = (v: bigint): number => v.toString(2).length - (v === 0n ? 1 : 0);
/** All bits up to the highest possibly-set one: a bound on the value. */
const below = (m: bigint): bigint => (m === 0n ? 0n : (1n << BigInt(bitLength(m))) - 1n);

const LOAD_MASK: Record<number, bigint> = { [SIZE.B]: 0xffn, [SIZE.H]: 0xffffn, [SIZE.W]: LOW32, [SIZE.DW]: ALL };

function aluBits(op: number, a: bigint, b: bigint, bImm: bigint | null, bits: 32 | 64): bigint {
  const width = bits === 64 ? ALL : LOW32;
  switch (op) {
    case ALU.MOV: return b & width;
    case ALU.AND: return a & b & width;
    case ALU.OR:
    case ALU.XOR: return (a | b) & width;
    case ALU.RSH: return bImm === null ? below(a) & width : (a & width) >> (bImm & BigInt(bits - 1));
    case ALU.LSH: return bImm === null ? width : (a << (bImm & BigInt(bits - 1))) & width;
    case ALU.ADD: {
      // a sum is below 2^(max bit length + 1)
      const m = (1n << BigInt(Math.max(bitLength(below(a)), bitLength(below(b))) + 1)) - 1n;
      return m & width;
    }
    case ALU.MUL: {
      const m = (1n << BigInt(bitLength(below(a)) + bitLength(below(b)))) - 1n;
      return m & width;
    }
    case ALU.DIV: return below(a) & width; // unsigned quotient ≤ dividend (x/0 = 0)
    case ALU.MOD: return below(a) & width; // x%y < y and ≤ x (x%0 = x)
    default: return width;
  }
}

function transfer(insn: CodeSection['insns'][number], inState: NonzeroBits): NonzeroBits {
  const out = [...inState];
  const { def } = defUse(insn);
  for (let r = 0; r <= 10; r++) if (def & (1 << r)) out[r] = ALL;
  const cls = opClass(insn.code);
  // CO-RE: libbpf patches the immediate, the offset or a load's size at load time
  if (insn.core?.length) {
    out[10] = ALL;
    return out;
  }
  if (cls === CLASS.ALU || cls === CLASS.ALU64) {
    const op = aluOp(insn.code);
    const bits = cls === CLASS.ALU64 ? 64 : 32;
    // signed division/modulo and sign-extending moves (off != 0) are left unknown
    if (op === ALU.END) {
      // le/be/bswap of width w: only the low w bits can be set
      out[insn.dst] = insn.imm >= 64 ? ALL : (1n << BigInt(insn.imm)) - 1n;
    } else if (op === ALU.NEG || op === ALU.ARSH || insn.off !== 0) {
      out[insn.dst] = bits === 32 ? LOW32 : ALL;
    } else {
      const x = srcBit(insn.code) === SRC_X;
      const imm = bits === 64 ? BigInt.asUintN(64, BigInt(insn.imm)) : BigInt(insn.imm >>> 0);
      const b = x ? inState[insn.src]! : imm;
      out[insn.dst] = aluBits(op, inState[insn.dst]!, b, x ? null : imm, bits);
    }
  } else if (cls === CLASS.LDX && memMode(insn.code) === MODE.MEM) {
    out[insn.dst] = LOAD_MASK[insn.code & 0x18]!;
  } else if (insn.code === LD_IMM64 && insn.src === 0 && !insn.reloc) {
    out[insn.dst] = imm64(insn);
  }
  out[10] = ALL;
  return out;
}

/** nonzeroIn[i]: per register, the bits that may be set when instruction i starts. */
export function nonzeroBitsIn(sec: CodeSection): NonzeroBits[] {
  return forwardRegs(sec, new Array(11).fill(ALL), (i, before) => transfer(sec.insns[i]!, before), (a, b) => a | b);
}
