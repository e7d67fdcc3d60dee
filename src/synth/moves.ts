// Proposal distribution of the stochastic search (K2 §4): replace an instruction by a random one,
// change one operand, turn an instruction into a no-op, swap two instructions.
import { ALU, CLASS, SIZE, SRC_K, SRC_X, MODE, REG_FP } from '../isa/index.js';
import type { Insn } from '../isa/index.js';
import type { Rng } from './rng.js';

/** A window slot: an instruction or nothing (removed). */
export type Slot = Insn | null;

export interface Pool {
  regs: number[]; // registers the candidates may use (the window's own and r0-r9 live ones)
  imms: number[]; // constants worth trying
  stackOffs: number[]; // r10-relative offsets the window touches
}

const ALU_OPS = [ALU.ADD, ALU.SUB, ALU.MUL, ALU.OR, ALU.AND, ALU.LSH, ALU.RSH, ALU.XOR, ALU.MOV, ALU.ARSH, ALU.NEG];
const SIZES = [SIZE.B, SIZE.H, SIZE.W, SIZE.DW];

export function randomInsn(rng: Rng, pool: Pool): Insn {
  const reg = () => rng.pick(pool.regs);
  const kind = rng.int(10);
  if (kind < 7 || pool.stackOffs.length === 0) {
    const op = rng.pick(ALU_OPS);
    const cls = rng.int(3) === 0 ? CLASS.ALU : CLASS.ALU64;
    const x = op !== ALU.NEG && rng.int(2) === 0;
    const shift = op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH;
    const imm = shift ? rng.pick([1, 2, 3, 4, 8, 16, 24, 31, 32, 48, 56, 63]) : rng.pick(pool.imms);
    return { code: cls | op | (x ? SRC_X : SRC_K), dst: reg(), src: x ? reg() : 0, off: 0, imm: x ? 0 : imm };
  }
  const size = rng.pick(SIZES);
  const off = rng.pick(pool.stackOffs);
  if (kind < 9) return { code: CLASS.LDX | MODE.MEM | size, dst: reg(), src: REG_FP, off, imm: 0 };
  return { code: CLASS.STX | MODE.MEM | size, dst: REG_FP, src: reg(), off, imm: 0 };
}

/** One operand of `insn` changed. */
export function mutateOperand(rng: Rng, insn: Insn, pool: Pool): Insn {
  const out = { ...insn };
  const cls = out.code & 0x07;
  const isAlu = cls === CLASS.ALU || cls === CLASS.ALU64;
  const x = (out.code & SRC_X) !== 0;
  switch (rng.int(3)) {
    case 0:
      if (out.dst !== REG_FP) out.dst = rng.pick(pool.regs);
      break;
    case 1:
      if (x && out.src !== REG_FP) out.src = rng.pick(pool.regs);
      else if (isAlu && !x) out.imm = rng.pick(pool.imms);
      break;
    default:
      // Only fields the instruction uses: the kernel rejects non-zero reserved fields.
      if (cls === CLASS.LDX || cls === CLASS.STX) out.off = rng.pick(pool.stackOffs.length ? pool.stackOffs : [out.off]);
      else if (isAlu && !x) out.imm = rng.pick(pool.imms);
  }
  return out;
}

export function propose(rng: Rng, cur: Slot[], pool: Pool): Slot[] {
  const next = [...cur];
  const i = rng.int(next.length);
  const r = rng.int(100);
  if (r < 35) next[i] = randomInsn(rng, pool);
  else if (r < 65) next[i] = next[i] ? mutateOperand(rng, next[i]!, pool) : randomInsn(rng, pool);
  else if (r < 85) next[i] = null;
  else {
    const j = rng.int(next.length);
    [next[i], next[j]] = [next[j]!, next[i]!];
  }
  return next;
}
