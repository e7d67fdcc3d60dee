// ELF → IR: decode code sections, turn jump/call offsets into labels, attach relocations and BTF.ext
// records to the instructions they belong to.
import { decodeInsns, slotsOf, CLASS, JMP, CALL_PSEUDO, LD_IMM64, PSEUDO, opClass, jmpOp, BPF_INSN_SIZE } from '../isa/index.js';
import { parseBtf, parseBtfExt, type Btf, type BtfExt } from '../elf/btf.js';
import { cstring } from '../elf/read.js';
import { SHF, SHT, STB, STT, symBind, symType, type ElfFile } from '../elf/types.js';
import { K2Error } from '../util/errors.js';
import { readMaps } from './maps.js';
import { progTypeOfSection } from './progtype.js';
import { END_LABEL, type BpfObject, type CodeSection, type DataSection, type IrInsn, type Label, type ProgramRef, type RelocRef } from './types.js';

export const slotLabel = (slot: number): Label => `L${slot}`;

export const isCodeSection = (elf: ElfFile, i: number): boolean => {
  const s = elf.sections[i]!;
  return s.type === SHT.PROGBITS && (s.flags & SHF.EXECINSTR) !== 0n && s.data.length > 0;
};

/** A decoded section with the slot ↔ index maps needed while resolving offsets. */
interface Decoded {
  sec: CodeSection;
  slotOf: number[]; // instruction index → slot
  indexAtSlot: Int32Array; // slot → instruction index, -1 inside an ld_imm64; [totalSlots] = insns.length
}

/** The kernel's limit on a program's length (BPF_COMPLEXITY_LIMIT_INSNS): a longer section can never load. */
export const MAX_SECTION_SLOTS = 1_000_000;

function decodeSection(elf: ElfFile, shndx: number, relSectionOf: Map<number, number>): Decoded {
  const s = elf.sections[shndx]!;
  const where = { file: elf.path, section: s.name };
  if (s.name === '') throw new K2Error('input', `code section ${shndx} has no name`, { file: elf.path });
  if (s.data.length / BPF_INSN_SIZE > MAX_SECTION_SLOTS) {
    throw new K2Error('input', `${Math.floor(s.data.length / BPF_INSN_SIZE)} instructions, more than the kernel loads in one program (${MAX_SECTION_SLOTS})`, where);
  }
  const insns = decodeInsns(s.data, where) as IrInsn[];
  const slotOf: number[] = [];
  const indexAtSlot = new Int32Array(s.data.length / BPF_INSN_SIZE + 1).fill(-1);
  let slot = 0;
  insns.forEach((insn, i) => {
    slotOf.push(slot);
    indexAtSlot[slot] = i;
    slot += slotsOf(insn);
  });
  indexAtSlot[slot] = insns.length;
  return { sec: { name: s.name, shndx, insns, symbols: [], relSection: relSectionOf.get(shndx) ?? null }, slotOf, indexAtSlot };
}

/** The label for `slot` in `d`, defining it on the instruction there. `allowEnd`: the section end is fine. */
function labelAt(d: Decoded, slot: number, what: string, file: string, fromSlot: number, allowEnd = false): Label {
  const total = d.indexAtSlot.length - 1;
  if (allowEnd && slot === total) return END_LABEL;
  const idx = slot >= 0 && slot < total ? d.indexAtSlot[slot]! : -1;
  if (idx < 0) throw new K2Error('input', `${what} to slot ${slot} is outside the section or inside an ld_imm64`, { file, section: d.sec.name, offset: fromSlot * BPF_INSN_SIZE });
  const insn = d.sec.insns[idx]!;
  const label = slotLabel(slot);
  if (!insn.labels?.includes(label)) (insn.labels ??= []).push(label);
  return label;
}

export function liftObject(elf: ElfFile): BpfObject {
  const file = elf.path;
  const btfIdx = elf.sections.findIndex((s) => s.name === '.BTF');
  const btf: Btf | null = btfIdx > 0 ? parseBtf(elf.sections[btfIdx]!.data, file) : null;
  const extIdx = elf.sections.findIndex((s) => s.name === '.BTF.ext');
  const ext: BtfExt | null = extIdx > 0 && btf ? parseBtfExt(elf.sections[extIdx]!.data, btf.strings, file) : null;

  // Relocation section of each section, and symbols by section: one pass each, so lifting stays
  // linear in the size of the file however many sections and symbols it has.
  const relSectionOf = new Map<number, number>();
  elf.sections.forEach((r, ri) => {
    if (ri > 0 && (r.type === SHT.REL || r.type === SHT.RELA) && !relSectionOf.has(r.info)) relSectionOf.set(r.info, ri);
  });
  const symbolsIn = new Map<number, number[]>();
  elf.symbols.forEach((s, i) => {
    if (i === 0) return;
    const l = symbolsIn.get(s.shndx);
    if (l) l.push(i);
    else symbolsIn.set(s.shndx, [i]);
  });

  const decoded = new Map<number, Decoded>();
  elf.sections.forEach((_, i) => {
    if (i > 0 && isCodeSection(elf, i)) decoded.set(i, decodeSection(elf, i, relSectionOf));
  });

  for (const d of decoded.values()) attachRelocs(elf, d);
  for (const d of decoded.values()) resolveJumps(elf, d);
  for (const d of decoded.values()) resolveCalls(elf, d, decoded);
  for (const d of decoded.values()) attachSymbols(elf, d, symbolsIn.get(d.sec.shndx) ?? []);
  if (ext && extIdx > 0) attachBtfExt(elf, btf!, ext, extIdx, decoded);
  for (const d of decoded.values()) markPinned(d.sec.insns);

  const code = [...decoded.values()].map((d) => d.sec);
  const licIdx = elf.sections.findIndex((s) => s.name === 'license');
  return {
    file,
    elf,
    code,
    maps: readMaps(elf, btf),
    data: readDataSections(elf),
    programs: findPrograms(elf, code),
    license: licIdx > 0 ? licenseOf(elf.sections[licIdx]!.data) : null,
    btf,
    btfExt: ext
      ? {
          magic: ext.magic, version: ext.version, flags: ext.flags, hdrLen: ext.hdrLen,
          funcRecSize: ext.funcRecSize, lineRecSize: ext.lineRecSize, coreRecSize: ext.coreRecSize, hasCore: ext.hasCore,
          funcSecs: ext.func.map(({ secNameOff, secName }) => ({ secNameOff, secName })),
          lineSecs: ext.line.map(({ secNameOff, secName }) => ({ secNameOff, secName })),
          coreSecs: ext.core.map(({ secNameOff, secName }) => ({ secNameOff, secName })),
        }
      : null,
  };
}

function attachRelocs(elf: ElfFile, d: Decoded): void {
  if (d.sec.relSection === null) return;
  for (const r of elf.relocs.get(d.sec.relSection) ?? []) {
    const off = Number(r.offset);
    const idx = off % BPF_INSN_SIZE === 0 ? d.indexAtSlot[off / BPF_INSN_SIZE] ?? -1 : -1;
    const where = { file: elf.path, section: d.sec.name, offset: off };
    if (idx < 0 || idx >= d.sec.insns.length) throw new K2Error('input', 'relocation is not at the start of an instruction', where);
    const insn = d.sec.insns[idx]!;
    if (insn.reloc) throw new K2Error('unsupported', 'two relocations on one instruction', where);
    if (r.addend !== undefined && r.addend !== 0n) throw new K2Error('unsupported', 'RELA relocation with an addend', where);
    insn.reloc = { sym: r.sym, type: r.type };
  }
}

const isJump = (insn: IrInsn): boolean => {
  const cls = opClass(insn.code);
  if (cls !== CLASS.JMP && cls !== CLASS.JMP32) return false;
  const op = jmpOp(insn.code);
  return op !== JMP.CALL && op !== JMP.EXIT;
};

/** gotol: JMP32|JA keeps its 32-bit offset in imm. */
export const isLongJump = (insn: IrInsn): boolean => opClass(insn.code) === CLASS.JMP32 && jmpOp(insn.code) === JMP.JA;

function resolveJumps(elf: ElfFile, d: Decoded): void {
  d.sec.insns.forEach((insn, i) => {
    if (!isJump(insn)) return;
    const slot = d.slotOf[i]!;
    const target = slot + 1 + (isLongJump(insn) ? insn.imm : insn.off);
    insn.target = labelAt(d, target, 'jump', elf.path, slot);
  });
}

export const isPseudoCall = (insn: IrInsn): boolean => insn.code === (CLASS.JMP | JMP.CALL) && insn.src === CALL_PSEUDO;
export const isPseudoFunc = (insn: IrInsn): boolean => insn.code === LD_IMM64 && insn.src === PSEUDO.FUNC;

function resolveCalls(elf: ElfFile, d: Decoded, all: Map<number, Decoded>): void {
  d.sec.insns.forEach((insn, i) => {
    const call = isPseudoCall(insn);
    if (!call && !isPseudoFunc(insn)) return;
    const slot = d.slotOf[i]!;
    let target: Decoded | undefined = d;
    let targetSlot: number;
    if (insn.reloc) {
      const sym = elf.symbols[insn.reloc.sym]!;
      target = all.get(sym.shndx);
      if (!target) return; // extern or non-code target: left to the loader, imm kept as is
      // libbpf: calls go to sym.value/8 + imm + 1; ld_imm64 func pointers to (sym.value + imm)/8.
      targetSlot = call ? Number(sym.value) / BPF_INSN_SIZE + insn.imm + 1 : (Number(sym.value) + insn.imm) / BPF_INSN_SIZE;
    } else {
      targetSlot = call ? slot + 1 + insn.imm : slot + 1 + insn.imm; // same-section pc-relative
    }
    if (!Number.isInteger(targetSlot)) throw new K2Error('input', 'call target is not instruction-aligned', { file: elf.path, section: d.sec.name, offset: slot * 8 });
    insn.callee = { section: target.sec.name, label: labelAt(target, targetSlot, 'call', elf.path, slot) };
  });
}

function attachSymbols(elf: ElfFile, d: Decoded, inSection: number[]): void {
  inSection.forEach((i) => {
    const s = elf.symbols[i]!;
    if (symType(s) === STT.SECTION) return;
    const where = { file: elf.path, section: d.sec.name, offset: Number(s.value) };
    if (s.value % 8n !== 0n) throw new K2Error('input', `symbol ${s.name} is not instruction-aligned`, where);
    const start = labelAt(d, Number(s.value / 8n), `symbol ${s.name}`, elf.path, Number(s.value / 8n), true);
    const endSlot = Number((s.value + s.size) / 8n);
    const end = symType(s) === STT.FUNC && s.size > 0n && s.size % 8n === 0n ? labelAt(d, endSlot, `end of symbol ${s.name}`, elf.path, endSlot, true) : null;
    d.sec.symbols.push({ sym: i, start, end });
  });
}

function attachBtfExt(elf: ElfFile, btf: Btf, ext: BtfExt, extIdx: number, decoded: Map<number, Decoded>): void {
  // .rel.BTF.ext (newer LLVM): relocations on records' insn_off fields, keyed by their byte position.
  const relIdx = elf.sections.findIndex((s, i) => i > 0 && (s.type === SHT.REL || s.type === SHT.RELA) && s.info === extIdx);
  const relAt = new Map<number, RelocRef>();
  for (const r of relIdx > 0 ? elf.relocs.get(relIdx) ?? [] : []) relAt.set(Number(r.offset), { sym: r.sym, type: r.type });
  const { func: funcAt, line: lineAt, core: coreAt } = offsetsOf(ext);
  const byName = new Map([...decoded.values()].map((d) => [d.sec.name, d]));
  const insnAt = (secName: string, insnOff: number, what: string): IrInsn => {
    const d = byName.get(secName);
    const where = { file: elf.path, section: '.BTF.ext' };
    if (!d) throw new K2Error('input', `${what} for unknown code section ${secName}`, where);
    const idx = insnOff % 8 === 0 ? d.indexAtSlot[insnOff / 8] ?? -1 : -1;
    if (idx < 0 || idx >= d.sec.insns.length) throw new K2Error('input', `${what} at ${secName}+${insnOff} is not an instruction`, where);
    return d.sec.insns[idx]!;
  };
  // Type ids and strings the records name must exist: later stages look them up without checking.
  const where = { file: elf.path, section: '.BTF.ext' };
  const typeOk = (id: number, what: string): void => {
    if (id >= btf.types.length) throw new K2Error('input', `${what} names BTF type ${id}, which does not exist`, where);
  };
  const stringOk = (off: number, what: string): void => {
    if (off >= btf.strings.length) throw new K2Error('input', `${what} names BTF string offset ${off}, past the string table`, where);
    cstring(btf.strings, off, where);
  };
  const used = new Set<number>();
  const relFor = (at: number): RelocRef | undefined => {
    const r = relAt.get(at);
    if (r) used.add(at);
    return r;
  };
  ext.func.forEach((set, si) => set.records.forEach((r, ri) => {
    const insn = insnAt(set.secName, r.insnOff, 'func_info');
    typeOk(r.typeId, 'func_info');
    if (insn.funcInfo) throw new K2Error('input', `two func_info records at ${set.secName}+${r.insnOff}`, { file: elf.path, section: '.BTF.ext' });
    insn.funcInfo = { typeId: r.typeId, ...opt(relFor(funcAt[si]![ri]!)) };
  }));
  ext.line.forEach((set, si) => set.records.forEach((r, ri) => {
    const insn = insnAt(set.secName, r.insnOff, 'line_info');
    (insn.lines ??= []).push({ fileNameOff: r.fileNameOff, lineOff: r.lineOff, lineCol: r.lineCol, ...opt(relFor(lineAt[si]![ri]!)) });
  }));
  ext.core.forEach((set, si) => set.records.forEach((r, ri) => {
    const insn = insnAt(set.secName, r.insnOff, 'CO-RE relocation');
    typeOk(r.typeId, 'CO-RE relocation');
    stringOk(r.accessStrOff, 'CO-RE relocation');
    (insn.core ??= []).push({ typeId: r.typeId, accessStrOff: r.accessStrOff, kind: r.kind, ...opt(relFor(coreAt[si]![ri]!)) });
  }));
  if (used.size !== relAt.size) throw new K2Error('unsupported', '.rel.BTF.ext has relocations outside insn_off fields', { file: elf.path });
}

const opt = (rel: RelocRef | undefined): { rel?: RelocRef } => (rel ? { rel } : {});

import { btfExtRecordOffsets } from '../elf/btf.js';
const offsetsOf = (ext: BtfExt) => btfExtRecordOffsets(ext);

function markPinned(insns: IrInsn[]): void {
  for (const insn of insns) {
    if (insn.core?.length) insn.pinned = 'CO-RE relocation';
    else if (insn.reloc) insn.pinned = 'relocation';
    else if (insn.code === (CLASS.JMP | JMP.CALL)) insn.pinned = 'call';
  }
}

/** The license string: up to the first NUL, like libbpf (which also takes an unterminated one, bounded). */
function licenseOf(data: Uint8Array): string {
  const b = data.subarray(0, 128);
  const end = b.indexOf(0);
  return Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString('latin1');
}

function readDataSections(elf: ElfFile): DataSection[] {
  const out: DataSection[] = [];
  elf.sections.forEach((s, shndx) => {
    if ((s.flags & SHF.ALLOC) === 0n || (s.flags & SHF.EXECINSTR) !== 0n) return;
    if (!/^\.(data|rodata|bss)/.test(s.name)) return;
    const size = Number(s.size);
    out.push({ name: s.name, shndx, size, init: s.type === SHT.NOBITS ? new Uint8Array(size) : s.data, readonly: s.name.startsWith('.rodata') });
  });
  return out;
}

function findPrograms(elf: ElfFile, code: CodeSection[]): ProgramRef[] {
  const out: ProgramRef[] = [];
  for (const sec of code) {
    if (sec.name === '.text') continue;
    const progType = progTypeOfSection(sec.name);
    const funcs = sec.symbols.filter((cs) => {
      const s = elf.symbols[cs.sym]!;
      return symType(s) === STT.FUNC && symBind(s) !== STB.LOCAL;
    });
    if (funcs.length > 0) {
      for (const f of funcs) out.push({ section: sec.name, name: elf.symbols[f.sym]!.name, entry: f.start, progType });
      continue;
    }
    // Old objects: no FUNC symbols. The program starts at the section start; name it after a symbol there.
    const at0 = sec.symbols.find((cs) => cs.start === 'L0' && symBind(elf.symbols[cs.sym]!) !== STB.LOCAL) ?? sec.symbols.find((cs) => cs.start === 'L0');
    const first = sec.insns[0]!;
    if (!first.labels?.includes('L0')) (first.labels ??= []).push('L0');
    out.push({ section: sec.name, name: at0 ? elf.symbols[at0.sym]!.name : sec.name, entry: 'L0', progType });
  }
  return out;
}
