// The code as the kernel loader handed it to BPF_PROG_LOAD (LoadedObject.loadedInsns), mapped back
// onto k2's IR of the object, so that check-semantics runs the interpreter with the loader's own
// patches instead of recomputing them: CO-RE relocated immediates and offsets (libbpf resolves them
// against the running kernel's BTF, including `target type id`s k2 cannot compute), and ld_imm64 of
// `.kconfig` externs (libbpf points them into a read-only map of its own, holding the values it
// computed: LINUX_KERNEL_VERSION, CONFIG_*).
//
// A loaded program is its entry function followed by the functions it calls, each appended once
// (libbpf's bpf_object__reloc_code, the legacy loader's linkLegacyProgram). The walk starts at the
// entry function at slot 0 and follows every bpf-to-bpf call and ld_imm64 of a function in the loaded
// code (their imm is the pc-relative target) to where the callee was placed. Every instruction
// the loader does not relocate must have the same opcode and destination register on both sides;
// otherwise the program's mapping is given up (the interpreter falls back to k2's model).
import { CALL_PSEUDO, CLASS, JMP, LD_IMM64, PSEUDO, opClass, slotsOf } from '../isa/index.js';
import { STT, symType } from '../elf/types.js';
import type { BpfObject, CodeSection, ProgramRef } from '../ir/types.js';
import type { LoaderPatches, MapSpec, PatchedFields } from '../interp/index.js';

/** A map of the loaded object, found by the fd the loader put into an ld_imm64. */
export interface LoadedMap {
  name: string;
  valueSize: number;
  /** Element 0's value (the map's contents, for one-element global data / .kconfig arrays). */
  value: Uint8Array | null;
}

export interface LoadedProgram {
  prog: ProgramRef;
  /** The instructions as loaded, 8 bytes each. */
  insns: Uint8Array;
}

/** Why the loader poisons a CO-RE relocation: it does not resolve on this kernel (libbpf's bpf_core_poison_insn). */
export const POISONED =
  'CO-RE relocation the loader could not resolve on this kernel (it replaced the instruction with an invalid call; the verifier found it unreachable)';

interface Slot {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

function slotAt(b: Uint8Array, at: number): Slot {
  const v = new DataView(b.buffer, b.byteOffset + at * 8, 8);
  const regs = v.getUint8(1);
  return { code: v.getUint8(0), dst: regs & 0x0f, src: regs >> 4, off: v.getInt16(2, true), imm: v.getInt32(4, true) };
}

/** Index of each label's instruction in a section. */
function labelIndex(sec: CodeSection): Map<string, number> {
  const m = new Map<string, number>();
  sec.insns.forEach((insn, i) => insn.labels?.forEach((l) => m.set(l, i)));
  return m;
}

/**
 * The instructions [start, end) of the function starting at instruction `start` of `sec`: its
 * symbol's size when it has one, else up to the next function (or the section's end).
 */
function functionExtent(obj: BpfObject, sec: CodeSection, labels: Map<string, number>, start: number): number {
  const starts: number[] = [];
  let size = 0;
  for (const cs of sec.symbols) {
    const sym = obj.elf.symbols[cs.sym];
    if (!sym || symType(sym) !== STT.FUNC) continue;
    const at = labels.get(cs.start);
    if (at === undefined) continue;
    starts.push(at);
    if (at === start) size = Number(sym.size);
  }
  if (size > 0) {
    let slots = 0;
    let i = start;
    while (i < sec.insns.length && slots < size / 8) slots += slotsOf(sec.insns[i++]!);
    return i;
  }
  const next = starts.filter((s) => s > start).sort((a, b) => a - b)[0];
  return next ?? sec.insns.length;
}

/** Whether instruction `i` is an ld_imm64 of an undefined symbol (an extern the loader resolves). */
function externLoad(obj: BpfObject, insn: CodeSection['insns'][number]): boolean {
  if (insn.code !== LD_IMM64 || !insn.reloc) return false;
  const sym = obj.elf.symbols[insn.reloc.sym];
  return !!sym && sym.shndx === 0 && sym.name !== '';
}

/** The code section and slot an ld_imm64's relocation points at, or null when it is not code. */
function relocatedFunction(obj: BpfObject, insn: CodeSection['insns'][number]): { section: string; slot: number } | null {
  const sym = obj.elf.symbols[insn.reloc!.sym];
  if (!sym) return null;
  const sec = obj.code.find((c) => c.shndx === sym.shndx);
  if (!sec) return null;
  const bytes = Number(sym.value) + (symType(sym) === STT.SECTION ? insn.imm : 0);
  return bytes % 8 === 0 ? { section: sec.name, slot: bytes / 8 } : null;
}

/** Index of the instruction starting at `slot` of a section, or -1. */
function slotIndex(sec: CodeSection, slot: number): number {
  let at = 0;
  for (let i = 0; i < sec.insns.length; i++) {
    if (at === slot) return i;
    if (at > slot) return -1;
    at += slotsOf(sec.insns[i]!);
  }
  return -1;
}

const isCall = (code: number): boolean => opClass(code) === CLASS.JMP && (code & 0xf0) === JMP.CALL;

interface Found {
  core: Map<string, Map<number, PatchedFields | string>>;
  values: Map<string, Map<number, { fd: number; offset: number }>>;
}

/** Maps one loaded program onto the IR: the functions it placed, or a problem (string) when the two do not line up. */
function walkProgram(obj: BpfObject, p: LoadedProgram, found: Found): number | string {
  const n = Math.floor(p.insns.length / 8);
  const secs = new Map(obj.code.map((s) => [s.name, { sec: s, labels: labelIndex(s) }]));
  const entry = secs.get(p.prog.section);
  const start = entry?.labels.get(p.prog.entry);
  if (!entry || start === undefined) return `entry ${p.prog.entry} of ${p.prog.section} not found`;
  const queue: { sec: string; start: number; at: number }[] = [{ sec: p.prog.section, start, at: 0 }];
  const placed = new Map<string, number>(); // "section:start" → loaded slot
  const core = new Map<string, Map<number, PatchedFields | string>>();
  const values = new Map<string, Map<number, { fd: number; offset: number }>>();
  let covered = 0; // slots of the functions placed
  const put = <T>(m: Map<string, Map<number, T>>, sec: string, i: number, v: T): void => {
    let s = m.get(sec);
    if (!s) m.set(sec, (s = new Map()));
    s.set(i, v);
  };
  while (queue.length) {
    const f = queue.pop()!;
    const key = `${f.sec}:${f.start}`;
    const was = placed.get(key);
    if (was !== undefined) {
      if (was !== f.at) return `function at ${key} placed twice (slots ${was} and ${f.at})`;
      continue;
    }
    placed.set(key, f.at);
    const { sec, labels } = secs.get(f.sec)!;
    const end = functionExtent(obj, sec, labels, f.start);
    let at = f.at;
    for (let i = f.start; i < end; i++) {
      const ir = sec.insns[i]!;
      const width = slotsOf(ir);
      if (at + width > n) return `${f.sec} instruction ${i} lies past the loaded program's ${n} slots`;
      const ld = slotAt(p.insns, at);
      if (ir.core?.length) {
        // libbpf may change a load's size (field byte size) but never its class; a different class
        // is its poison (call 0xbad2310) for a relocation that does not resolve here.
        if (opClass(ld.code) !== opClass(ir.code) || ld.dst !== ir.dst) put(core, f.sec, i, POISONED);
        else put(core, f.sec, i, { code: ld.code, off: ld.off, imm: ld.imm, imm2: width === 2 ? slotAt(p.insns, at + 1).imm : 0 });
      } else if (ld.code !== ir.code || ld.dst !== ir.dst) {
        return `${f.sec} instruction ${i}: opcode 0x${ir.code.toString(16)} r${ir.dst} in the object, 0x${ld.code.toString(16)} r${ld.dst} as loaded`;
      } else if (ir.callee && ((isCall(ir.code) && ir.src === CALL_PSEUDO) || (ir.code === LD_IMM64 && ir.src === PSEUDO.FUNC))) {
        const callee = secs.get(ir.callee.section);
        const cstart = callee?.labels.get(ir.callee.label);
        if (!callee || cstart === undefined) return `callee ${ir.callee.section}:${ir.callee.label} not found`;
        queue.push({ sec: ir.callee.section, start: cstart, at: at + 1 + ld.imm });
      } else if (ir.code === LD_IMM64 && ld.src === PSEUDO.FUNC && ir.reloc) {
        // A function's address (a bpf_loop / for_each callback) through a relocation against the
        // code section's symbol plus a byte offset, or the function's own symbol.
        const target = relocatedFunction(obj, ir);
        if (!target) return `${f.sec} instruction ${i}: ld_imm64 of a function that is not in the object's code`;
        const tsec = secs.get(target.section)!;
        const tstart = slotIndex(tsec.sec, target.slot);
        if (tstart < 0) return `${f.sec} instruction ${i}: ld_imm64 of ${target.section} slot ${target.slot}, not an instruction start`;
        queue.push({ sec: target.section, start: tstart, at: at + 1 + ld.imm });
      } else if (externLoad(obj, ir) && ld.src === PSEUDO.MAP_VALUE) {
        put(values, f.sec, i, { fd: ld.imm, offset: slotAt(p.insns, at + 1).imm });
      }
      at += width;
    }
    covered += at - f.at;
  }
  if (covered !== n) return `the loaded program has ${n} slots, the functions it calls ${covered}`;
  merge(found.core, core);
  merge(found.values, values);
  return placed.size;
}

/** Adds `from` to `into`; an instruction two programs saw patched differently is refused. */
function merge<T>(into: Map<string, Map<number, T | string>>, from: Map<string, Map<number, T>>): void {
  for (const [sec, m] of from) {
    let dst = into.get(sec);
    if (!dst) into.set(sec, (dst = new Map()));
    for (const [i, v] of m) {
      const had = dst.get(i);
      if (had === undefined) dst.set(i, v);
      else if (JSON.stringify(had) !== JSON.stringify(v)) dst.set(i, 'the loader patched this instruction differently for two programs');
    }
  }
}

export interface LoaderMapping {
  patches: LoaderPatches;
  /** Program → why its loaded code could not be mapped onto the IR (k2's model is used instead). */
  problems: Map<string, string>;
  /** Program → functions found in its loaded code (the entry and each function it calls). */
  functions: Map<string, number>;
}

/**
 * The loader's patches of `programs` (each with its loaded instructions), with `mapsByFd` naming the
 * maps behind the fds the loader put into ld_imm64 instructions.
 */
export function loaderPatches(obj: BpfObject, programs: LoadedProgram[], mapsByFd: Map<number, LoadedMap>): LoaderMapping {
  const found: Found = { core: new Map(), values: new Map() };
  const problems = new Map<string, string>();
  const functions = new Map<string, number>();
  for (const p of programs) {
    const r = walkProgram(obj, p, found);
    if (typeof r === 'string') problems.set(p.prog.name, r);
    else functions.set(p.prog.name, r);
  }
  const patches: LoaderPatches = { insns: new Map(), values: new Map(), maps: [] };
  for (const [sec, m] of found.core) patches.insns.set(sec, m as Map<number, PatchedFields | string>);
  const mapIndex = new Map<string, number>();
  for (const [sec, m] of found.values) {
    const out = new Map<number, { map: number; offset: number }>();
    for (const [i, v] of m) {
      if (typeof v === 'string') continue; // seen differently: left to the interpreter's own resolution
      const km = mapsByFd.get((v as { fd: number }).fd);
      if (!km || !km.value) continue;
      let idx = mapIndex.get(km.name);
      if (idx === undefined) {
        idx = patches.maps.length;
        mapIndex.set(km.name, idx);
        const spec: MapSpec = { name: km.name, type: 2, keySize: 4, valueSize: km.valueSize, maxEntries: 1, flags: 0, readonly: true };
        patches.maps.push({ spec, init: km.value });
      }
      out.set(i, { map: idx, offset: (v as { offset: number }).offset });
    }
    if (out.size) patches.values.set(sec, out);
  }
  return { patches, problems, functions };
}
