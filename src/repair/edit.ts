// IR edits a repair makes, as pure functions on sections and objects: insert instructions before a
// position (the inserted code takes over the position's labels, func_info and line_info, so every
// path into the position runs it), append a block to a function, build small instructions.
import { ALU, CLASS, JMP, LD_IMM64, MODE, SIZE, SRC_K, SRC_X } from '../isa/index.js';
import type { BpfObject, CodeSection, IrInsn, Label } from '../ir/types.js';

/** A label not yet defined or used in `sec`. */
export function freshLabel(sec: CodeSection, hint = 'k2r'): Label {
  const used = new Set<string>();
  for (const i of sec.insns) {
    for (const l of i.labels ?? []) used.add(l);
    if (i.target) used.add(i.target);
  }
  for (let n = 0; ; n++) if (!used.has(`${hint}${n}`)) return `${hint}${n}`;
}

/**
 * `sec` with `insns` inserted before instruction `at`. With `takeOver` (the default), the first
 * inserted instruction takes `at`'s labels, func_info and line_info: jumps to `at` now run the
 * inserted code first. Without it, the code is only reached by falling through from `at - 1`
 * or by its own labels (blocks appended to a function).
 */
export function insertBefore(sec: CodeSection, at: number, insns: IrInsn[], takeOver = true): CodeSection {
  if (insns.length === 0) return sec;
  const fresh = insns.map((i) => ({ ...i }));
  const old = sec.insns[at];
  const rest = sec.insns.slice(at);
  if (takeOver && old) {
    const moved: IrInsn = { ...old };
    const first = fresh[0]!;
    if (old.labels?.length) first.labels = [...old.labels, ...(first.labels ?? [])];
    if (old.funcInfo) first.funcInfo = old.funcInfo;
    if (old.lines?.length) first.lines = old.lines;
    delete moved.labels;
    delete moved.funcInfo;
    // the original instruction keeps its own line too (line_info may repeat a line)
    rest[0] = moved;
  }
  return { ...sec, insns: [...sec.insns.slice(0, at), ...fresh, ...rest] };
}

/** `obj` with section `sec` replaced (other sections shared). */
export function withSection(obj: BpfObject, sec: CodeSection): BpfObject {
  return { ...obj, code: obj.code.map((s) => (s.name === sec.name ? sec : s)) };
}

export const sectionNamed = (obj: BpfObject, name: string): CodeSection => obj.code.find((s) => s.name === name)!;

// Small instruction builders (64-bit unless said otherwise).
export const movImm = (dst: number, imm: number): IrInsn => ({ code: CLASS.ALU64 | ALU.MOV | SRC_K, dst, src: 0, off: 0, imm });
export const movReg = (dst: number, src: number): IrInsn => ({ code: CLASS.ALU64 | ALU.MOV | SRC_X, dst, src, off: 0, imm: 0 });
/** `wDst = wSrc`: zero-extends the low 32 bits. */
export const mov32Reg = (dst: number, src: number): IrInsn => ({ code: CLASS.ALU | ALU.MOV | SRC_X, dst, src, off: 0, imm: 0 });
export const addImm = (dst: number, imm: number): IrInsn => ({ code: CLASS.ALU64 | ALU.ADD | SRC_K, dst, src: 0, off: 0, imm });
export const andImm = (dst: number, imm: number): IrInsn => ({ code: CLASS.ALU64 | ALU.AND | SRC_K, dst, src: 0, off: 0, imm });
export const exit = (): IrInsn => ({ code: CLASS.JMP | JMP.EXIT, dst: 0, src: 0, off: 0, imm: 0 });
export const ja = (target: Label): IrInsn => ({ code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0, target });
/** `if dst <op> imm goto target` (64-bit compare). */
export const jmpImm = (op: number, dst: number, imm: number, target: Label): IrInsn => ({ code: CLASS.JMP | op | SRC_K, dst, src: 0, off: 0, imm, target });
/** `if dst <op> src goto target` (64-bit compare). */
export const jmpReg = (op: number, dst: number, src: number, target: Label): IrInsn => ({ code: CLASS.JMP | op | SRC_X, dst, src, off: 0, imm: 0, target });
/** `if wDst <op> imm goto target` (32-bit compare). */
export const jmp32Imm = (op: number, dst: number, imm: number, target: Label): IrInsn => ({ code: CLASS.JMP32 | op | SRC_K, dst, src: 0, off: 0, imm, target });
/** `dst = *(u32 *)(src + off)`. */
export const ldxW = (dst: number, src: number, off: number): IrInsn => ({ code: CLASS.LDX | MODE.MEM | SIZE.W, dst, src, off, imm: 0 });
export const stxDw = (dst: number, off: number, src: number): IrInsn => ({ code: CLASS.STX | MODE.MEM | SIZE.DW, dst, src, off, imm: 0 });
export const ldxDw = (dst: number, src: number, off: number): IrInsn => ({ code: CLASS.LDX | MODE.MEM | SIZE.DW, dst, src, off, imm: 0 });
export const isLdImm64 = (i: IrInsn): boolean => i.code === LD_IMM64;
