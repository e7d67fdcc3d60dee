// Where the kernel's instruction numbers come from: libbpf links a program as its entry function
// followed by every subprogram it calls, each appended when the first call to it is relocated and
// then relocated itself, depth first (libbpf's bpf_object__reloc_code). The verifier log counts
// 8-byte slots of that linked program; this maps them back to IR positions.
import { findLabel } from '../ir/index.js';
import type { BpfObject, CodeSection, ProgramRef } from '../ir/types.js';
import { STT, symType } from '../elf/types.js';
import { slotsOf } from '../isa/index.js';

/** One function: instructions [start, end) of `section`. */
export interface FuncRange {
  section: string;
  start: number;
  end: number;
  name: string;
}

export interface LinkedLayout {
  funcs: (FuncRange & { linkedStart: number })[];
  /** Kernel instruction index (slot) → IR position; the second slot of an ld_imm64 maps to null. */
  at: ({ section: string; index: number } | null)[];
}

/** Instruction indices where functions start in `sec` (function symbols, program entries, call targets). */
function funcStarts(obj: BpfObject, sec: CodeSection): number[] {
  const starts = new Set<number>();
  for (const cs of sec.symbols) {
    const s = obj.elf.symbols[cs.sym];
    if (s && symType(s) === STT.FUNC) starts.add(findLabel(sec, cs.start));
  }
  for (const p of obj.programs) if (p.section === sec.name) starts.add(findLabel(sec, p.entry));
  for (const other of obj.code) {
    for (const i of other.insns) if (i.callee?.section === sec.name) starts.add(findLabel(sec, i.callee.label));
  }
  if (sec.insns.length && !starts.size) starts.add(0);
  return [...starts].filter((i) => i < sec.insns.length).sort((a, b) => a - b);
}

/** The function of `sec` that contains instruction `index`. */
export function funcAt(obj: BpfObject, section: string, index: number): FuncRange {
  const sec = obj.code.find((s) => s.name === section)!;
  const starts = funcStarts(obj, sec);
  let start = 0;
  for (const s of starts) if (s <= index) start = s;
  const next = starts.find((s) => s > start) ?? sec.insns.length;
  const own = sec.symbols.find((cs) => findLabel(sec, cs.start) === start && symType(obj.elf.symbols[cs.sym]!) === STT.FUNC);
  let end = next;
  if (own?.end) end = Math.min(end, findLabel(sec, own.end));
  const name = own ? obj.elf.symbols[own.sym]!.name : `${section}+${start}`;
  return { section, start, end: Math.max(end, index + 1), name };
}

/** Every function of the object (for inlining and liveness questions). */
export function allFuncs(obj: BpfObject): FuncRange[] {
  return obj.code.flatMap((sec) => funcStarts(obj, sec).map((s) => funcAt(obj, sec.name, s)));
}

/**
 * The program as libbpf links it: `depthFirst` (libbpf) or breadth-first (a fallback for loaders
 * that append callees in discovery order).
 */
export function linkedLayout(obj: BpfObject, prog: ProgramRef, depthFirst = true): LinkedLayout {
  const funcs: LinkedLayout['funcs'] = [];
  const at: LinkedLayout['at'] = [];
  const placed = new Set<string>();
  const queue: FuncRange[] = [];
  const place = (f: FuncRange): void => {
    placed.add(`${f.section}:${f.start}`);
    funcs.push({ ...f, linkedStart: at.length });
    const sec = obj.code.find((s) => s.name === f.section)!;
    for (let i = f.start; i < f.end; i++) {
      at.push({ section: f.section, index: i });
      if (slotsOf(sec.insns[i]!) === 2) at.push(null);
    }
  };
  const visit = (f: FuncRange): void => {
    const sec = obj.code.find((s) => s.name === f.section)!;
    for (let i = f.start; i < f.end; i++) {
      const c = sec.insns[i]!.callee;
      if (!c) continue;
      const target = obj.code.find((s) => s.name === c.section);
      if (!target) continue;
      const g = funcAt(obj, c.section, findLabel(target, c.label));
      if (placed.has(`${g.section}:${g.start}`)) continue;
      place(g);
      if (depthFirst) visit(g);
      else queue.push(g);
    }
  };
  const sec = obj.code.find((s) => s.name === prog.section)!;
  const main = funcAt(obj, prog.section, findLabel(sec, prog.entry));
  place(main);
  visit(main);
  while (queue.length) visit(queue.shift()!);
  return { funcs, at };
}

/** Does the layout agree with every instruction the log printed (index and opcode)? */
export function layoutMatches(obj: BpfObject, layout: LinkedLayout, seen: { insn: number; opcode: number }[]): boolean {
  return seen.every(({ insn, opcode }) => {
    const p = layout.at[insn];
    if (!p) return false;
    const code = obj.code.find((s) => s.name === p.section)!.insns[p.index]!.code;
    return code === opcode;
  });
}
