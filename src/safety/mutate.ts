// Random single-instruction mutants of an object, for agreement tests of the checker against the
// kernel: change an operand, drop or flip a bounds check, change an access size or offset, swap a
// register. Deterministic for a given seed.
import { CLASS, JMP, LD_IMM64, SIZE, aluOp, jmpOp, opClass, memMode, MODE, ALU } from '../isa/index.js';
import { cloneCode } from '../ir/index.js';
import type { BpfObject, IrInsn } from '../ir/types.js';

export interface Mutant {
  obj: BpfObject;
  section: string;
  index: number; // instruction index in `section`
  kind: string; // what was changed
}

/** xorshift32: a small deterministic PRNG. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

const COND = [JMP.JEQ, JMP.JGT, JMP.JGE, JMP.JSET, JMP.JNE, JMP.JSGT, JMP.JSGE, JMP.JLT, JMP.JLE, JMP.JSLT, JMP.JSLE];
const SIZES = [SIZE.B, SIZE.H, SIZE.W, SIZE.DW];

const isCond = (i: IrInsn) => {
  const c = opClass(i.code);
  if (c !== CLASS.JMP && c !== CLASS.JMP32) return false;
  const op = jmpOp(i.code);
  return op !== JMP.JA && op !== JMP.CALL && op !== JMP.EXIT;
};
const isMem = (i: IrInsn) => {
  const c = opClass(i.code);
  return (c === CLASS.LDX || c === CLASS.ST || c === CLASS.STX) && memMode(i.code) === MODE.MEM;
};

/** One mutation of `insn` (a new object), or null when none applies. */
function mutateInsn(insn: IrInsn, r: () => number): { insn: IrInsn; kind: string } | null {
  const c = opClass(insn.code);
  const m: IrInsn = { ...insn };
  const choices: string[] = [];
  if (isCond(insn)) choices.push('drop-check', 'flip-check', 'jump-operand', 'swap-reg');
  if (isMem(insn)) choices.push('access-size', 'access-offset', 'swap-reg');
  if (c === CLASS.ALU || c === CLASS.ALU64) choices.push('alu-operand', 'swap-reg', 'alu-op');
  if (insn.code === LD_IMM64 && !insn.reloc) choices.push('alu-operand');
  if (insn.code === LD_IMM64 && insn.reloc) choices.push('swap-reg');
  if (c === CLASS.JMP && jmpOp(insn.code) === JMP.CALL && insn.src === 0) choices.push('helper-id');
  if (!choices.length) return null;
  const kind = pick(r, choices);
  const reg = () => Math.floor(r() * 11);
  const small = () => pick(r, [-8, -4, -2, -1, 1, 2, 4, 8, 16]);
  switch (kind) {
    case 'drop-check':
      // Always fall through (ja +0), or always jump.
      if (r() < 0.5) return { insn: { code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0, labels: insn.labels, lines: insn.lines }, kind: 'drop-check(nop)' };
      return { insn: { code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0, target: insn.target, labels: insn.labels, lines: insn.lines }, kind: 'drop-check(ja)' };
    case 'flip-check':
      m.code = (insn.code & 0x0f) | pick(r, COND.filter((o) => o !== jmpOp(insn.code)));
      break;
    case 'jump-operand':
      if (insn.code & 0x08) m.src = reg();
      else m.imm = insn.imm + small();
      break;
    case 'swap-reg':
      if (r() < 0.5) m.dst = reg();
      else if (c !== CLASS.ST && insn.code !== LD_IMM64 && ((insn.code & 0x08) || c === CLASS.LDX || c === CLASS.STX)) m.src = reg();
      else m.dst = reg();
      break;
    case 'access-size':
      m.code = (insn.code & ~0x18) | pick(r, SIZES.filter((s) => s !== (insn.code & 0x18)));
      break;
    case 'access-offset':
      m.off = insn.off + small();
      break;
    case 'alu-operand':
      if (insn.code === LD_IMM64) { m.imm = insn.imm + small(); break; }
      if ((insn.code & 0x08) && aluOp(insn.code) !== ALU.END) m.src = reg();
      else if (aluOp(insn.code) === ALU.END || aluOp(insn.code) === ALU.NEG) m.dst = reg();
      else m.imm = r() < 0.3 ? Math.floor((r() - 0.5) * 2 ** 32) | 0 : insn.imm + small();
      break;
    case 'alu-op': {
      const ops = [ALU.ADD, ALU.SUB, ALU.MUL, ALU.OR, ALU.AND, ALU.LSH, ALU.RSH, ALU.XOR, ALU.ARSH, ALU.MOV];
      if (aluOp(insn.code) === ALU.END || aluOp(insn.code) === ALU.NEG) return null;
      m.code = (insn.code & 0x0f) | pick(r, ops.filter((o) => o !== aluOp(insn.code)));
      if (m.off !== 0) m.off = 0;
      break;
    }
    case 'helper-id':
      m.imm = pick(r, [1, 2, 3, 4, 5, 6, 7, 8, 12, 14, 15, 16, 23, 25, 26, 35, 42, 44, 46, 51, 112, 113, 114, 115, 118, 122, 125, 130, 131]);
      break;
  }
  if (m.code === insn.code && m.dst === insn.dst && m.src === insn.src && m.off === insn.off && m.imm === insn.imm) return null;
  return { insn: m, kind };
}

/** A random mutant of one of the object's code sections, or null after a few failed tries. */
export function mutant(obj: BpfObject, r: () => number, sections?: string[]): Mutant | null {
  const secs = obj.code.filter((s) => s.insns.length && (!sections || sections.includes(s.name)));
  if (!secs.length) return null;
  for (let tries = 0; tries < 20; tries++) {
    const sec = pick(r, secs);
    const index = Math.floor(r() * sec.insns.length);
    const res = mutateInsn(sec.insns[index]!, r);
    if (!res) continue;
    const copy = cloneCode(obj);
    const s = copy.code.find((x) => x.name === sec.name)!;
    const old = s.insns[index]!;
    s.insns[index] = { ...old, ...res.insn, labels: old.labels, lines: old.lines, funcInfo: old.funcInfo, core: old.core };
    if (!res.insn.target) delete s.insns[index]!.target;
    return { obj: copy, section: sec.name, index, kind: res.kind };
  }
  return null;
}
