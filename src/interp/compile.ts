// Precompiles IR code sections into one flat Int32Array the interpreter loop walks: every jump and
// call target resolved to an absolute instruction number, every ld_imm64 relocation resolved to a map
// or global-data reference. Each section is followed by a sentinel that faults ("fell off the end").
import type { BpfObject, CodeSection, IrInsn } from '../ir/types.js';
import { END_LABEL } from '../ir/types.js';
import { CALL_HELPER, CALL_KFUNC, CALL_PSEUDO, CLASS, JMP, LD_IMM64, PSEUDO, opClass } from '../isa/opcodes.js';
import { STT, symType } from '../elf/types.js';
import { slotsOf } from '../isa/codec.js';
import { K2Error } from '../util/errors.js';
import type { MapSpec } from './maps.js';
import { coreRelocated } from './core.js';

/** Words per compiled instruction: op, dst, src, off, imm, aux. */
export const STRIDE = 6;

// Pseudo opcodes (beyond the 8-bit ISA) produced by the compiler.
export const OP = {
  LDDW_MAP: 0x100, // dst = pointer to map aux
  LDDW_VALUE: 0x101, // dst = pointer into value of element 0 of map aux, at byte imm
  LDDW_FUNC: 0x102, // dst = code pointer to instruction aux
  CALL_LOCAL: 0x103, // bpf-to-bpf call to instruction aux
  BAD: 0x104, // fault with message aux
} as const;

export interface CompiledSection {
  name: string;
  start: number; // first instruction number
  count: number; // instructions (without the sentinel)
}

export interface Unit {
  code: Int32Array;
  len: number; // instructions, sentinels included
  sections: CompiledSection[];
  maps: MapSpec[];
  /** Program name (or `section` for hand-built units) → entry instruction number. */
  entries: Map<string, number>;
  messages: string[]; // for OP.BAD
}

/** A reference from an ld_imm64 relocation, as resolved by the caller. */
export type RelocTarget =
  | { kind: 'map'; map: number }
  | { kind: 'value'; map: number; offset: number }
  | { kind: 'func'; section: string; insn: number }
  | { kind: 'error'; message: string };

export interface CompileSource {
  sections: { name: string; insns: IrInsn[] }[];
  maps: MapSpec[];
  entries: { name: string; section: string; label?: string }[];
  resolveReloc: (insn: IrInsn, section: string) => RelocTarget;
  /** Instructions the interpreter must not run (why), e.g. CO-RE relocations it cannot resolve. */
  refuse?: Map<IrInsn, string>;
  /** Name of an ELF symbol (for messages). */
  symbolName?: (sym: number) => string;
}

export function compile(src: CompileSource): Unit {
  const sections: CompiledSection[] = [];
  let n = 0;
  for (const s of src.sections) {
    sections.push({ name: s.name, start: n, count: s.insns.length });
    n += s.insns.length + 1;
  }
  const labelPc = new Map<string, Map<string, number>>();
  src.sections.forEach((s, k) => {
    const m = new Map<string, number>();
    s.insns.forEach((insn, i) => insn.labels?.forEach((l) => m.set(l, sections[k]!.start + i)));
    m.set(END_LABEL, sections[k]!.start + s.insns.length);
    labelPc.set(s.name, m);
  });
  const messages: string[] = [];
  const code = new Int32Array(n * STRIDE);
  const pcOf = (section: string, label: string, where: string): number | string => {
    const m = labelPc.get(section);
    if (!m) return `${where}: code section ${section} is not available`;
    const pc = m.get(label);
    return pc ?? `${where}: undefined label ${label} in ${section}`;
  };
  const bad = (at: number, message: string): void => {
    code[at] = OP.BAD;
    code[at + 5] = messages.length;
    messages.push(message);
  };

  src.sections.forEach((s, k) => {
    const base = sections[k]!.start;
    s.insns.forEach((insn, i) => {
      const at = (base + i) * STRIDE;
      code[at] = insn.code;
      code[at + 1] = insn.dst;
      code[at + 2] = insn.src;
      code[at + 3] = insn.off;
      code[at + 4] = insn.imm;
      const refused = src.refuse?.get(insn);
      if (refused) return bad(at, refused);
      const cls = opClass(insn.code);
      if (insn.code === LD_IMM64) {
        if (insn.callee || insn.src === PSEUDO.FUNC) {
          const pc = insn.callee ? pcOf(insn.callee.section, insn.callee.label, 'ld_imm64 func') : 'ld_imm64 func without target';
          if (typeof pc === 'string') bad(at, pc);
          else {
            code[at] = OP.LDDW_FUNC;
            code[at + 5] = pc;
          }
        } else if (insn.reloc) {
          const r = src.resolveReloc(insn, s.name);
          if (r.kind === 'error') bad(at, r.message);
          else if (r.kind === 'func') {
            const sec = sections.find((x) => x.name === r.section);
            if (!sec || r.insn < 0 || r.insn >= sec.count) bad(at, `ld_imm64 of a function outside ${r.section}`);
            else {
              code[at] = OP.LDDW_FUNC;
              code[at + 5] = sec.start + r.insn;
            }
          } else if (r.kind === 'map') {
            code[at] = OP.LDDW_MAP;
            code[at + 5] = r.map;
          } else {
            code[at] = OP.LDDW_VALUE;
            code[at + 4] = r.offset;
            code[at + 5] = r.map;
          }
        } else if (insn.src !== 0) {
          bad(at, `ld_imm64 with src_reg ${insn.src} and no relocation`);
        } else {
          code[at + 5] = insn.imm2 ?? 0;
        }
      } else if (cls === CLASS.JMP && (insn.code & 0xf0) === JMP.CALL) {
        if (insn.src === CALL_PSEUDO) {
          const pc = insn.callee
            ? pcOf(insn.callee.section, insn.callee.label, 'call')
            : insn.reloc
              ? `call of extern function ${src.symbolName?.(insn.reloc.sym) ?? `symbol #${insn.reloc.sym}`} (a kernel function the loader resolves: kfunc) is not modelled`
              : 'bpf-to-bpf call without target';
          if (typeof pc === 'string') bad(at, pc);
          else {
            code[at] = OP.CALL_LOCAL;
            code[at + 5] = pc;
          }
        } else if (insn.src === CALL_KFUNC) {
          bad(at, `kfunc call (BTF id ${insn.imm}) is not modelled`);
        } else if (insn.src !== CALL_HELPER) bad(at, `call with src_reg ${insn.src}`);
      } else if ((cls === CLASS.JMP || cls === CLASS.JMP32) && (insn.code & 0xf0) !== JMP.EXIT) {
        if (insn.target === undefined) bad(at, 'jump without target label');
        else {
          const pc = pcOf(s.name, insn.target, 'jump');
          if (typeof pc === 'string') bad(at, pc);
          else code[at + 5] = pc;
        }
      }
    });
    bad((base + s.insns.length) * STRIDE, `fell off the end of section ${s.name}`);
  });

  const entries = new Map<string, number>();
  for (const e of src.entries) {
    const pc = e.label === undefined ? sections.find((s) => s.name === e.section)?.start : pcOf(e.section, e.label, 'entry');
    if (typeof pc !== 'number') throw new K2Error('internal', `entry ${e.name}: ${pc ?? 'no section ' + e.section}`);
    entries.set(e.name, pc);
  }
  return { code, len: n, sections, maps: src.maps, entries, messages };
}

/** The section and instruction index of instruction number `pc`. */
export function locate(unit: Unit, pc: number): { section: string; insn: number } {
  for (const s of unit.sections) if (pc >= s.start && pc <= s.start + s.count) return { section: s.name, insn: pc - s.start };
  return { section: '?', insn: pc };
}

/** Maps of an object as the interpreter sees them: its map definitions, then one per global data section. */
export function objectMaps(obj: BpfObject): MapSpec[] {
  const maps: MapSpec[] = obj.maps.map((m) => ({
    name: m.name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, flags: m.flags,
  }));
  for (const d of obj.data) {
    maps.push({ name: d.name, type: 2, keySize: 4, valueSize: d.size, maxEntries: 1, flags: 0, readonly: d.readonly });
  }
  return maps;
}

/** Fields of an instruction as the kernel loader patched them (a CO-RE relocation). */
export interface PatchedFields {
  code: number;
  off: number;
  imm: number;
  imm2: number; // ld_imm64: the second slot's imm
}

/**
 * What the kernel loader patched into an object's code, mapped back onto its sections (see
 * src/testgen/loaded.ts), for runs compared with the kernel.
 */
export interface LoaderPatches {
  /** Section → instruction index → the CO-RE relocated instruction as loaded, or why it cannot run. */
  insns: Map<string, Map<number, PatchedFields | string>>;
  /** Section → instruction index → an ld_imm64 of an extern the loader pointed into `maps[map]` at `offset`. */
  values: Map<string, Map<number, { map: number; offset: number }>>;
  /** Maps the loader made that the object does not define (libbpf's .kconfig map): read-only, with their contents. */
  maps: { spec: MapSpec; init: Uint8Array }[];
}

export interface CompileObjectOptions {
  /**
   * CO-RE relocated instructions: 'placeholder' (default) runs clang's values as written in the
   * object; 'kernel' patches them as the loader did for this kernel — with `loader`'s values where
   * given, else where k2's model knows the value exactly — and refuses to run them otherwise (for
   * comparisons with the kernel).
   */
  core?: 'placeholder' | 'kernel';
  /** The loader's own patches (CO-RE values, .kconfig externs), used with core 'kernel'. */
  loader?: LoaderPatches;
}

/** Compiles every code section of an object; entries are its programs by name. */
export function compileObject(obj: BpfObject, sections: CodeSection[] = obj.code, opts: CompileObjectOptions = {}): Unit {
  const loader = opts.core === 'kernel' ? opts.loader : undefined;
  const maps = objectMaps(obj);
  const nMapDefs = obj.maps.length;
  const nOwn = maps.length;
  for (const m of loader?.maps ?? []) maps.push({ ...m.spec, readonly: true });
  const syms = obj.elf.symbols;
  // ld_imm64 of externs the loader resolved into a map of its own (.kconfig).
  const loaderValues = new Map<IrInsn, RelocTarget>();
  for (const s of sections) {
    for (const [i, v] of loader?.values.get(s.name) ?? []) {
      const insn = s.insns[i];
      if (insn) loaderValues.set(insn, { kind: 'value', map: nOwn + v.map, offset: v.offset });
    }
  }
  const resolveReloc = (insn: IrInsn, section: string): RelocTarget => {
    const byLoader = loaderValues.get(insn);
    if (byLoader) return byLoader;
    const sym = syms[insn.reloc!.sym];
    if (!sym) return { kind: 'error', message: `relocation against missing symbol ${insn.reloc!.sym}` };
    const m = obj.maps.findIndex((d) => d.sym === insn.reloc!.sym);
    if (m >= 0) return { kind: 'map', map: m };
    const secName = obj.elf.sections[sym.shndx]?.name;
    if (symType(sym) === STT.SECTION && (secName === 'maps' || secName === '.maps')) {
      // Legacy objects may reference a map through the section symbol plus its offset.
      const hit = obj.maps.findIndex((d) => d.section === secName && Number(syms[d.sym]?.value ?? -1n) === insn.imm);
      if (hit >= 0) return { kind: 'map', map: hit };
    }
    const codeSec = sections.find((c) => c.shndx === sym.shndx);
    if (codeSec) {
      // A function address (bpf_loop callback): section symbol + byte offset, or the function's symbol.
      const slot = (Number(sym.value) + (symType(sym) === STT.SECTION ? insn.imm : 0)) / 8;
      let acc = 0;
      const idx = codeSec.insns.findIndex((x) => {
        if (acc === slot) return true;
        acc += slotsOf(x);
        return false;
      });
      return idx < 0 ? { kind: 'error', message: `ld_imm64 of code at slot ${slot} of ${codeSec.name}` } : { kind: 'func', section: codeSec.name, insn: idx };
    }
    const d = obj.data.findIndex((x) => x.shndx === sym.shndx);
    if (d >= 0) return { kind: 'value', map: nMapDefs + d, offset: Number(sym.value) + insn.imm };
    return { kind: 'error', message: `ld_imm64 relocation against ${sym.name || 'symbol ' + insn.reloc!.sym} (section ${secName ?? sym.shndx}) is not modelled (in ${section})` };
  };
  const refuse = new Map<IrInsn, string>();
  const code = sections.map((s) => {
    if (opts.core !== 'kernel' || !s.insns.some((i) => i.core?.length)) return { name: s.name, insns: s.insns };
    const patched = loader?.insns.get(s.name);
    return {
      name: s.name,
      insns: s.insns.map((i, k) => {
        if (!i.core?.length) return i;
        const p = patched?.get(k);
        if (typeof p === 'string') {
          refuse.set(i, p);
          return i;
        }
        if (p) return { ...i, code: p.code, off: p.off, imm: p.imm, ...(i.code === LD_IMM64 ? { imm2: p.imm2 } : {}) };
        const r = coreRelocated(obj, i);
        if ('insn' in r) return r.insn;
        refuse.set(i, r.why);
        return i;
      }),
    };
  });
  return compile({
    sections: code,
    maps,
    entries: obj.programs.map((p) => ({ name: p.name, section: p.section, label: p.entry })),
    resolveReloc,
    refuse,
    symbolName: (i) => `'${syms[i]?.name ?? `#${i}`}'`,
  });
}

/**
 * Initial prog_array contents of a BTF-defined map with `.values = { [i] = &prog }` (relocations of
 * .maps against function symbols): map index → (slot → program name).
 */
export function progArrayInit(obj: BpfObject): Map<number, Map<number, string>> {
  const out = new Map<number, Map<number, string>>();
  const elf = obj.elf;
  const mapsShndx = elf.sections.findIndex((s) => s.name === '.maps');
  if (mapsShndx < 0 || !obj.btf) return out;
  const relIdx = elf.sections.findIndex((s) => (s.type === 9 || s.type === 4) && s.info === mapsShndx);
  const rels = relIdx >= 0 ? elf.relocs.get(relIdx) ?? [] : [];
  const btf = obj.btf;
  obj.maps.forEach((def, mi) => {
    const sym = elf.symbols[def.sym];
    if (!sym || def.type !== 3) return;
    const varT = btf.types.find((t) => t.kind === 14 /* VAR */ && t.name === def.name);
    let st = varT ? btf.types[varT.sizeOrType] : undefined;
    while (st && (st.kind === 8 || st.kind === 9 || st.kind === 10 || st.kind === 11)) st = btf.types[st.sizeOrType];
    const values = st?.members.find((mm) => mm.name === 'values');
    if (!values) return;
    const base = Number(sym.value) + (st!.kindFlag ? values.offset & 0xffffff : values.offset) / 8;
    for (const r of rels) {
      const off = Number(r.offset);
      if (off < base || off >= Number(sym.value) + Number(sym.size)) continue;
      const target = elf.symbols[r.sym];
      if (!target) continue;
      let slots = out.get(mi);
      if (!slots) out.set(mi, (slots = new Map()));
      slots.set((off - base) / 8, target.name);
    }
  });
  return out;
}
