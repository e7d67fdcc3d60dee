// IR → ELF: the only place labels become offsets. Recomputes jump offsets, pc-relative call imms,
// relocation offsets, code symbol values/sizes, BTF.ext insn_offs and section sizes.
import { encodeInsns, slotsOf, BPF_INSN_SIZE } from '../isa/index.js';
import { encodeBtfExt, btfExtRecordOffsets, type BtfExt, type BtfExtRecordSet, type CoreReloRec, type FuncInfoRec, type LineInfoRec } from '../elf/btf.js';
import { encodeRelocs, encodeSymbols, removeSections } from '../elf/write.js';
import { SHT, type ElfFile, type ElfRel, type ElfSection, type ElfSymbol } from '../elf/types.js';
import { K2Error } from '../util/errors.js';
import { isLongJump, isPseudoCall } from './lift.js';
import { END_LABEL, type BpfObject, type CodeSection, type IrInsn, type Label } from './types.js';

export interface LowerOptions {
  /** Drop DWARF (.debug_* and their relocations) — default: only when some code changed, since its
   *  addresses would be stale. libbpf ignores DWARF; line info for the verifier lives in .BTF.ext. */
  dropDwarf?: boolean;
}

/** What happened to the object's DWARF (.debug_* sections) when it was lowered. */
export type DwarfOutcome =
  | 'none' // the object has no DWARF
  | 'unchanged' // code unchanged (or dropDwarf: false): DWARF written as read
  | 'dropped'; // code changed: the DWARF sections, their relocations and section symbols were removed

export interface LowerResult {
  elf: ElfFile;
  /** Some code section's bytes differ from the input's. */
  codeChanged: boolean;
  dwarf: DwarfOutcome;
  /** dwarf === 'dropped': the object was built with -g but its DWARF is not in the output. */
  dwarfDropped: boolean;
}

export interface Layout {
  slotOf: number[]; // instruction index → slot
  labelSlot: Map<Label, number>;
  slots: number;
}

export function layoutSection(sec: CodeSection): Layout {
  const slotOf: number[] = [];
  const labelSlot = new Map<Label, number>();
  let slot = 0;
  sec.insns.forEach((insn) => {
    slotOf.push(slot);
    for (const l of insn.labels ?? []) {
      if (labelSlot.has(l)) throw new K2Error('internal', `label ${l} defined twice`, { section: sec.name });
      labelSlot.set(l, slot);
    }
    slot += slotsOf(insn);
  });
  labelSlot.set(END_LABEL, slot);
  return { slotOf, labelSlot, slots: slot };
}

const resolve = (layout: Layout, label: Label, sec: string): number => {
  const s = layout.labelSlot.get(label);
  if (s === undefined) throw new K2Error('internal', `undefined label ${label}`, { section: sec });
  return s;
};

export function lowerObject(obj: BpfObject, opts: LowerOptions = {}): ElfFile {
  return lowerObjectWithInfo(obj, opts).elf;
}

/** `lowerObject`, also saying whether code changed and what became of the DWARF. */
export function lowerObjectWithInfo(obj: BpfObject, opts: LowerOptions = {}): LowerResult {
  const elf = obj.elf;
  const layouts = new Map(obj.code.map((sec) => [sec.name, layoutSection(sec)]));
  const symbols: ElfSymbol[] = elf.symbols.map((s) => ({ ...s }));
  for (const sec of obj.code) {
    const layout = layouts.get(sec.name)!;
    for (const cs of sec.symbols) {
      const s = symbols[cs.sym]!;
      const start = resolve(layout, cs.start, sec.name);
      s.value = BigInt(start * BPF_INSN_SIZE);
      if (cs.end !== null) s.size = BigInt((resolve(layout, cs.end, sec.name) - start) * BPF_INSN_SIZE);
    }
  }

  const sections: ElfSection[] = elf.sections.map((s) => ({ ...s }));
  const relocs = new Map(elf.relocs);
  let changed = false;
  for (const sec of obj.code) {
    const layout = layouts.get(sec.name)!;
    const concrete = sec.insns.map((insn, i) => concretize(insn, i, sec, layout, layouts, symbols));
    const bytes = encodeInsns(concrete);
    const old = elf.sections[sec.shndx]!;
    if (!changed && Buffer.compare(Buffer.from(bytes), Buffer.from(old.data)) !== 0) changed = true;
    sections[sec.shndx] = { ...old, data: bytes, size: BigInt(bytes.length) };
    const rels: ElfRel[] = [];
    sec.insns.forEach((insn, i) => {
      if (insn.reloc) rels.push({ offset: BigInt(layout.slotOf[i]! * BPF_INSN_SIZE), sym: insn.reloc.sym, type: insn.reloc.type });
    });
    if (sec.relSection !== null) {
      const isRela = elf.sections[sec.relSection]!.type === SHT.RELA;
      relocs.set(sec.relSection, isRela ? rels.map((r) => ({ ...r, addend: 0n })) : rels);
    } else if (rels.length) {
      throw new K2Error('internal', 'relocations added to a section without a relocation section', { section: sec.name });
    }
  }
  if (obj.btfExt) rewriteBtfExt(obj, layouts, sections, relocs);

  // Keep the ElfFile self-consistent: structured symbols/relocations and their section bytes agree.
  for (const [i, rels] of relocs) {
    const data = encodeRelocs(rels, sections[i]!.type === SHT.RELA);
    sections[i] = { ...sections[i]!, data, size: BigInt(data.length) };
  }
  if (elf.symtabIndex > 0) {
    const data = encodeSymbols(symbols);
    sections[elf.symtabIndex] = { ...sections[elf.symtabIndex]!, data, size: BigInt(data.length) };
  }
  const out: ElfFile = { ...elf, sections, symbols, relocs };
  const hasDwarf = elf.sections.some((s, i) => i > 0 && isDwarfSection(s));
  if (!hasDwarf) return { elf: out, codeChanged: changed, dwarf: 'none', dwarfDropped: false };
  if (!(opts.dropDwarf ?? changed)) return { elf: out, codeChanged: changed, dwarf: 'unchanged', dwarfDropped: false };
  return { elf: dropDwarf(out), codeChanged: changed, dwarf: 'dropped', dwarfDropped: true };
}

function concretize(insn: IrInsn, i: number, sec: CodeSection, layout: Layout, layouts: Map<string, Layout>, symbols: ElfSymbol[]) {
  const { code, dst, src } = insn;
  let { off, imm } = insn;
  const slot = layout.slotOf[i]!;
  const where = { section: sec.name, insn: i };
  if (insn.target !== undefined) {
    const delta = resolve(layout, insn.target, sec.name) - (slot + 1);
    if (isLongJump(insn)) imm = delta;
    else {
      if (delta < -32768 || delta > 32767) throw new K2Error('unsupported', `jump offset ${delta} does not fit 16 bits`, where);
      off = delta;
    }
  }
  if (insn.callee) {
    const tl = layouts.get(insn.callee.section);
    if (!tl) throw new K2Error('internal', `call into unknown section ${insn.callee.section}`, where);
    const targetSlot = resolve(tl, insn.callee.label, insn.callee.section);
    const call = isPseudoCall(insn);
    if (insn.reloc) {
      const symValue = Number(symbols[insn.reloc.sym]!.value);
      imm = call ? targetSlot - symValue / BPF_INSN_SIZE - 1 : targetSlot * BPF_INSN_SIZE - symValue;
    } else {
      if (insn.callee.section !== sec.name) throw new K2Error('internal', 'cross-section call without relocation', where);
      imm = targetSlot - (slot + 1);
    }
  }
  return insn.imm2 === undefined ? { code, dst, src, off, imm } : { code, dst, src, off, imm, imm2: insn.imm2 };
}

function rewriteBtfExt(obj: BpfObject, layouts: Map<string, Layout>, sections: ElfSection[], relocs: Map<number, ElfRel[]>): void {
  const h = obj.btfExt!;
  const byName = new Map(obj.code.map((s) => [s.name, s]));
  const sets = <R>(secs: { secNameOff: number; secName: string }[], recs: (sec: CodeSection, layout: Layout) => (R & { rel?: { sym: number; type: number } })[]) =>
    secs.map(({ secNameOff, secName }) => {
      const sec = byName.get(secName);
      return { secNameOff, secName, records: sec ? recs(sec, layouts.get(secName)!) : [] };
    });
  type WithRel<R> = R & { rel?: { sym: number; type: number } };
  const func: BtfExtRecordSet<WithRel<FuncInfoRec>>[] = sets(h.funcSecs, (sec, l) =>
    sec.insns.flatMap((insn, i) => (insn.funcInfo ? [{ insnOff: l.slotOf[i]! * 8, typeId: insn.funcInfo.typeId, rel: insn.funcInfo.rel }] : [])));
  const line: BtfExtRecordSet<WithRel<LineInfoRec>>[] = sets(h.lineSecs, (sec, l) =>
    sec.insns.flatMap((insn, i) => (insn.lines ?? []).map((r) => ({ insnOff: l.slotOf[i]! * 8, fileNameOff: r.fileNameOff, lineOff: r.lineOff, lineCol: r.lineCol, rel: r.rel }))));
  const core: BtfExtRecordSet<WithRel<CoreReloRec>>[] = sets(h.coreSecs, (sec, l) =>
    sec.insns.flatMap((insn, i) => (insn.core ?? []).map((r) => ({ insnOff: l.slotOf[i]! * 8, typeId: r.typeId, accessStrOff: r.accessStrOff, kind: r.kind, rel: r.rel }))));
  const ext: BtfExt = { ...h, func, line, core };
  const extIdx = sections.findIndex((s) => s.name === '.BTF.ext');
  const data = encodeBtfExt(ext);
  sections[extIdx] = { ...sections[extIdx]!, data, size: BigInt(data.length) };
  const relIdx = sections.findIndex((s, i) => i > 0 && (s.type === SHT.REL || s.type === SHT.RELA) && s.info === extIdx);
  if (relIdx <= 0) return;
  const at = btfExtRecordOffsets(ext);
  const rels: ElfRel[] = [];
  const collect = (setsOf: BtfExtRecordSet<{ rel?: { sym: number; type: number } }>[], offs: number[][]) =>
    setsOf.forEach((s, si) => s.records.forEach((r, ri) => { if (r.rel) rels.push({ offset: BigInt(offs[si]![ri]!), sym: r.rel.sym, type: r.rel.type }); }));
  collect(func, at.func);
  collect(line, at.line);
  collect(core, at.core);
  relocs.set(relIdx, rels);
}

/** Removes .debug_* sections and the relocation sections for them (their section symbols go too, and
 *  every section and symbol index is renumbered: see `removeSections`). */
export function dropDwarf(elf: ElfFile): ElfFile {
  const dwarf = new Set<number>();
  elf.sections.forEach((s, i) => {
    if (i > 0 && isDwarfSection(s)) dwarf.add(i);
  });
  return removeSections(elf, dwarf);
}

export const isDwarfSection = (s: ElfSection): boolean => s.name.startsWith('.debug_');
