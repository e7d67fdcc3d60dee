// Proposal distribution of the stochastic search (K2 §4, STOKE): replace an instruction by a random
// one, change one operand, delete, swap two instructions, replace two consecutive ones, exchange a
// memory access (its width, or load/store-immediate/atomic kind), all over the registers,
// constants and memory (base register + offset) the window uses.
import { ALU, ATOMIC, CLASS, SIZE, SRC_K, SRC_X, MODE, REG_FP, memMode, opClass } from '../isa/index.js';
import type { Insn } from '../isa/index.js';
import type { Rng } from './rng.js';
import { SHIFTS } from './fastpaths.js';

/** A window slot: an instruction or nothing (removed). */
export type Slot = Insn | null;

export interface Pool {
  regs: number[]; // registers the candidates may use (the window's own and r0-r9 live ones)
  imms: number[]; // constants worth trying
  stackOffs: number[]; // r10-relative offsets the window touches
  /** Memory the window touches: base register → offsets (r10 included). */
  mem?: Map<number, number[]>;
  /** ld_abs/ld_ind the window uses (size and offset), for proposals of the same kind. */
  ldAbs?: Insn[];
}

const ALU_OPS = [ALU.ADD, ALU.SUB, ALU.MUL, ALU.OR, ALU.AND, ALU.LSH, ALU.RSH, ALU.XOR, ALU.MOV, ALU.ARSH, ALU.NEG];
const SIZES = [SIZE.B, SIZE.H, SIZE.W, SIZE.DW];
const ATOMIC_OPS = [ATOMIC.ADD, ATOMIC.OR, ATOMIC.AND, ATOMIC.XOR];

/** Registers, constants and memory a window's rewrites may draw from. */
export function poolOf(window: readonly Insn[], liveOut: readonly number[]): Pool {
  const regs = new Set<number>(liveOut.filter((r) => r !== REG_FP));
  const imms = new Set<number>([0, 1, -1, 2, 4, 8, 16, 32, 0xff, 0xffff]);
  const stackOffs = new Set<number>();
  const mem = new Map<number, Set<number>>();
  const written = new Set<number>();
  for (const i of window) {
    if (i.dst !== REG_FP) regs.add(i.dst);
    if (i.src !== REG_FP && i.src <= 9) regs.add(i.src);
    if (i.imm2 === undefined) imms.add(i.imm);
    if (i.src === REG_FP || i.dst === REG_FP) stackOffs.add(i.off);
    const cls = opClass(i.code);
    const base = cls === CLASS.LDX ? i.src : cls === CLASS.ST || cls === CLASS.STX ? i.dst : -1;
    if (base >= 0 && !written.has(base)) {
      if (!mem.has(base)) mem.set(base, new Set());
      mem.get(base)!.add(i.off);
    }
    if (cls === CLASS.LDX || cls === CLASS.ALU || cls === CLASS.ALU64 || i.code === 0x18) written.add(i.dst);
  }
  const ldAbs = window.filter((i) => opClass(i.code) === CLASS.LD && (memMode(i.code) === MODE.ABS || memMode(i.code) === MODE.IND));
  return {
    regs: [...regs].filter((r) => r <= 9),
    imms: [...imms],
    stackOffs: [...stackOffs],
    mem: new Map([...mem].map(([b, o]) => [b, [...o].sort((x, y) => x - y)])),
    ...(ldAbs.length ? { ldAbs } : {}),
  };
}

function randomAlu(rng: Rng, pool: Pool): Insn {
  const reg = () => rng.pick(pool.regs);
  const op = rng.pick(ALU_OPS);
  const cls = rng.int(3) === 0 ? CLASS.ALU : CLASS.ALU64;
  const x = op !== ALU.NEG && rng.int(2) === 0;
  const shift = op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH;
  const imm = shift ? rng.pick(SHIFTS.filter((k) => k < (cls === CLASS.ALU ? 32 : 64))) : rng.pick(pool.imms);
  return { code: cls | op | (x ? SRC_X : SRC_K), dst: reg(), src: x ? reg() : 0, off: 0, imm: x ? 0 : imm };
}

/** A memory access through a base the window uses, near an offset it uses. */
function randomMem(rng: Rng, pool: Pool): Insn | null {
  const bases = pool.mem && pool.mem.size ? [...pool.mem.keys()] : pool.stackOffs.length ? [REG_FP] : [];
  if (!bases.length) return null;
  const base = rng.pick(bases);
  const offs = pool.mem?.get(base) ?? pool.stackOffs;
  const size = rng.pick(SIZES);
  const bytes = { [SIZE.B]: 1, [SIZE.H]: 2, [SIZE.W]: 4, [SIZE.DW]: 8 }[size]!;
  let off = rng.pick(offs);
  if (rng.int(4) === 0) off -= off % bytes; // an aligned neighbour
  const reg = () => rng.pick(pool.regs);
  switch (rng.int(6)) {
    case 0: case 1: case 2: return { code: CLASS.LDX | MODE.MEM | size, dst: reg(), src: base, off, imm: 0 };
    case 3: return { code: CLASS.STX | MODE.MEM | size, dst: base, src: reg(), off, imm: 0 };
    case 4: return { code: CLASS.ST | MODE.MEM | size, dst: base, src: 0, off, imm: rng.pick(pool.imms) };
    default: {
      const w = rng.int(2) === 0 ? SIZE.W : SIZE.DW;
      return { code: CLASS.STX | MODE.ATOMIC | w, dst: base, src: reg(), off: off - (off % (w === SIZE.W ? 4 : 8)), imm: rng.pick(ATOMIC_OPS) };
    }
  }
}

export function randomInsn(rng: Rng, pool: Pool): Insn {
  if (pool.ldAbs && rng.int(8) === 0) {
    // a packet load like the window's, through another register or offset
    const l = rng.pick(pool.ldAbs);
    const ind = rng.int(2) === 0;
    return { ...l, code: (l.code & ~0xe0) | (ind ? MODE.IND : MODE.ABS), src: ind ? rng.pick(pool.regs) : 0, imm: rng.int(2) ? l.imm : rng.pick(pool.imms) };
  }
  if (rng.int(10) < 7) return randomAlu(rng, pool);
  return randomMem(rng, pool) ?? randomAlu(rng, pool);
}

/** One operand of `insn` changed. */
export function mutateOperand(rng: Rng, insn: Insn, pool: Pool): Insn {
  const out = { ...insn };
  const cls = out.code & 0x07;
  const isAlu = cls === CLASS.ALU || cls === CLASS.ALU64;
  const x = (out.code & SRC_X) !== 0;
  switch (rng.int(3)) {
    case 0:
      if (out.dst !== REG_FP && (isAlu || cls === CLASS.LDX)) out.dst = rng.pick(pool.regs);
      break;
    case 1:
      if ((x || cls === CLASS.STX) && out.src !== REG_FP && cls !== CLASS.LDX) out.src = rng.pick(pool.regs);
      else if ((isAlu && !x) || cls === CLASS.ST) out.imm = rng.pick(pool.imms);
      break;
    default: {
      // Only fields the instruction uses: the kernel rejects non-zero reserved fields.
      const base = cls === CLASS.LDX ? out.src : out.dst;
      const offs = pool.mem?.get(base) ?? (base === REG_FP ? pool.stackOffs : []);
      if ((cls === CLASS.LDX || cls === CLASS.STX || cls === CLASS.ST) && offs.length) out.off = rng.pick(offs);
      else if (isAlu && !x) out.imm = rng.pick(pool.imms);
    }
  }
  return out;
}

/** A memory access with another width, or of another kind (load ↔ sign-extending load, store ↔ atomic). */
export function exchangeMem(rng: Rng, insn: Insn): Insn | null {
  const cls = opClass(insn.code);
  if (cls !== CLASS.LDX && cls !== CLASS.ST && cls !== CLASS.STX) return null;
  const mode = memMode(insn.code);
  if (rng.int(2) === 0 || mode === MODE.ATOMIC) {
    if (mode === MODE.ATOMIC) return { ...insn, code: CLASS.STX | MODE.MEM | (insn.code & 0x18), imm: 0 };
    return { ...insn, code: (insn.code & ~0x18) | rng.pick(SIZES) };
  }
  if (cls === CLASS.LDX) return { ...insn, code: CLASS.LDX | (mode === MODE.MEM ? MODE.MEMSX : MODE.MEM) | ((insn.code & 0x18) === SIZE.DW ? SIZE.W : insn.code & 0x18) };
  if (cls === CLASS.STX && ((insn.code & 0x18) === SIZE.W || (insn.code & 0x18) === SIZE.DW)) return { ...insn, code: CLASS.STX | MODE.ATOMIC | (insn.code & 0x18), imm: rng.pick(ATOMIC_OPS) };
  return null;
}

/** Move probabilities (percent, cumulative order: replace, operand, delete, swap, two, memory). */
export interface MoveMix {
  replace: number;
  operand: number;
  delete: number;
  swap: number;
  two: number;
  mem: number;
}

export const DEFAULT_MIX: MoveMix = { replace: 30, operand: 30, delete: 16, swap: 10, two: 7, mem: 7 };

/**
 * One move from `cur`. Slots marked in `pinned` (a superblock's side exits) are never changed or
 * moved; the other instructions may still be swapped across them.
 */
export function propose(rng: Rng, cur: Slot[], pool: Pool, mix: MoveMix = DEFAULT_MIX, pinned?: readonly boolean[]): Slot[] {
  const next = [...cur];
  const free = pinned ? next.map((_, k) => k).filter((k) => !pinned[k]) : null;
  if (free && free.length === 0) return next;
  const pick = (): number => (free ? free[rng.int(free.length)]! : rng.int(next.length));
  const i = pick();
  const total = mix.replace + mix.operand + mix.delete + mix.swap + mix.two + mix.mem;
  let r = rng.int(total);
  if ((r -= mix.replace) < 0) next[i] = randomInsn(rng, pool);
  else if ((r -= mix.operand) < 0) next[i] = next[i] ? mutateOperand(rng, next[i]!, pool) : randomInsn(rng, pool);
  else if ((r -= mix.delete) < 0) next[i] = null;
  else if ((r -= mix.swap) < 0) {
    const j = pick();
    [next[i], next[j]] = [next[j]!, next[i]!];
  } else if ((r -= mix.two) < 0) {
    next[i] = randomInsn(rng, pool);
    if (i + 1 < next.length && !pinned?.[i + 1]) next[i + 1] = rng.int(3) === 0 ? null : randomInsn(rng, pool);
  } else {
    const e = next[i] ? exchangeMem(rng, next[i]!) : null;
    next[i] = e ?? randomMem(rng, pool) ?? randomInsn(rng, pool);
  }
  return next;
}
