// The IR stage's public door: read an object into symbolic IR, write it back.
import { readElf, readElfFile } from '../elf/read.js';
import { writeElf } from '../elf/write.js';
import { K2Error } from '../util/errors.js';
import { liftObject } from './lift.js';
import { lowerObject, type LowerOptions } from './lower.js';
import { END_LABEL, type BpfObject, type CodeSection, type IrInsn, type Label, type ProgramRef } from './types.js';
import { writeFileAtomic } from '../util/fs.js';

export * from './types.js';
export { liftObject, slotLabel, isPseudoCall, isPseudoFunc, isLongJump } from './lift.js';
export { lowerObject, lowerObjectWithInfo, layoutSection, dropDwarf, isDwarfSection, type LowerOptions, type LowerResult, type DwarfOutcome } from './lower.js';
export { progTypeOfSection, TEST_RUN_PACKET_TYPES } from './progtype.js';

export function readObject(path: string): BpfObject {
  try {
    return liftObject(readElfFile(path));
  } catch (e) {
    throw e instanceof K2Error ? e.inFile(path) : e;
  }
}

export function readObjectBytes(bytes: Uint8Array, name = '<memory>'): BpfObject {
  return liftObject(readElf(bytes, name));
}

export function objectBytes(obj: BpfObject, opts?: LowerOptions): Uint8Array {
  return writeElf(lowerObject(obj, opts));
}

/** Writes `obj` to `path` atomically (temporary file + rename). */
export function writeObject(obj: BpfObject, path: string, opts?: LowerOptions): void {
  writeFileAtomic(path, objectBytes(obj, opts));
}

export function sectionOf(obj: BpfObject, name: string): CodeSection {
  const sec = obj.code.find((s) => s.name === name);
  if (!sec) throw new K2Error('input', `no code section ${name}`, { file: obj.file });
  return sec;
}

/** Instruction index of `label` in `sec` (insns.length for END_LABEL). */
export function findLabel(sec: CodeSection, label: Label): number {
  if (label === END_LABEL) return sec.insns.length;
  const i = sec.insns.findIndex((insn) => insn.labels?.includes(label));
  if (i < 0) throw new K2Error('internal', `undefined label ${label}`, { section: sec.name });
  return i;
}

/** The code a program can execute: its own section first, then every section reachable by calls. */
export function programCode(obj: BpfObject, prog: ProgramRef): CodeSection[] {
  const out: CodeSection[] = [];
  const todo = [prog.section];
  while (todo.length) {
    const name = todo.pop()!;
    if (out.some((s) => s.name === name)) continue;
    const sec = sectionOf(obj, name);
    out.push(sec);
    for (const insn of sec.insns) if (insn.callee) todo.push(insn.callee.section);
  }
  return out;
}

/** Deep copy of the code of an object (ELF data is shared, it is never mutated). */
export function cloneCode(obj: BpfObject): BpfObject {
  return { ...obj, code: obj.code.map((s) => ({ ...s, insns: s.insns.map(cloneInsn), symbols: s.symbols.map((c) => ({ ...c })) })) };
}

export function cloneInsn(i: IrInsn): IrInsn {
  const c: IrInsn = { ...i };
  if (i.labels) c.labels = [...i.labels];
  if (i.lines) c.lines = i.lines.map((l) => ({ ...l }));
  if (i.core) c.core = i.core.map((r) => ({ ...r }));
  if (i.callee) c.callee = { ...i.callee };
  if (i.reloc) c.reloc = { ...i.reloc };
  if (i.funcInfo) c.funcInfo = { ...i.funcInfo };
  return c;
}
export { insertNops, replaceWindow, replaceRegion, nop } from './edit.js';
