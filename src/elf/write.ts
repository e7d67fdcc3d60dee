// Serializes an ElfFile. Layout follows LLVM's: ELF header, section contents in index order (each at
// its alignment), then the section header table; symtab and rel sections are regenerated from the
// structured symbols/relocations, every other section is written from `data`.
import { SHT, type ElfFile, type ElfRel, type ElfSymbol } from './types.js';

const align = (n: number, a: number): number => (a > 1 ? Math.ceil(n / a) * a : n);

export function encodeSymbols(symbols: readonly ElfSymbol[]): Uint8Array {
  const out = new Uint8Array(symbols.length * 24);
  const view = new DataView(out.buffer);
  symbols.forEach((s, i) => {
    const at = i * 24;
    view.setUint32(at, s.nameOff, true);
    view.setUint8(at + 4, s.info);
    view.setUint8(at + 5, s.other);
    view.setUint16(at + 6, s.shndx, true);
    view.setBigUint64(at + 8, s.value, true);
    view.setBigUint64(at + 16, s.size, true);
  });
  return out;
}

export function encodeRelocs(rels: readonly ElfRel[], rela: boolean): Uint8Array {
  const size = rela ? 24 : 16;
  const out = new Uint8Array(rels.length * size);
  const view = new DataView(out.buffer);
  rels.forEach((r, i) => {
    const at = i * size;
    view.setBigUint64(at, r.offset, true);
    view.setBigUint64(at + 8, (BigInt(r.sym) << 32n) | BigInt(r.type >>> 0), true);
    if (rela) view.setBigInt64(at + 16, r.addend ?? 0n, true);
  });
  return out;
}

export function writeElf(elf: ElfFile): Uint8Array {
  const contents = elf.sections.map((s, i) => {
    if (i === elf.symtabIndex && i > 0) return encodeSymbols(elf.symbols);
    const rels = elf.relocs.get(i);
    if (rels && (s.type === SHT.REL || s.type === SHT.RELA)) return encodeRelocs(rels, s.type === SHT.RELA);
    return s.data;
  });
  // LLVM's order (ELFObjectWriter::writeObject): contents in index order, then the symbol table, then the
  // relocation sections, then .llvm_addrsig, then the symbol string table. Following it makes an
  // unchanged object come out byte-identical.
  const isRel = (t: number): boolean => t === SHT.REL || t === SHT.RELA;
  const strtabIndex = elf.symtabIndex > 0 ? elf.sections[elf.symtabIndex]!.link : -1;
  const rank = (i: number): number => {
    const t = elf.sections[i]!.type;
    if (i === elf.symtabIndex) return 1;
    if (isRel(t)) return 2;
    if (t === SHT.LLVM_ADDRSIG) return 3;
    if (i === strtabIndex) return 4;
    return 0;
  };
  const order = elf.sections.map((_, i) => i).slice(1).sort((a, b) => rank(a) - rank(b) || a - b);
  const offsets: number[] = new Array(elf.sections.length).fill(0);
  let at = 64;
  for (const i of order) {
    const s = elf.sections[i]!;
    at = align(at, Number(s.addralign));
    offsets[i] = at;
    if (s.type !== SHT.NOBITS) at += contents[i]!.length;
  }
  const shoff = align(at, 8);
  const total = shoff + elf.sections.length * 64;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, elf.osabi, elf.abiVersion], 0);
  view.setUint16(16, elf.type, true);
  view.setUint16(18, elf.machine, true);
  view.setUint32(20, 1, true);
  view.setBigUint64(40, BigInt(shoff), true);
  view.setUint32(48, elf.flags, true);
  view.setUint16(52, 64, true);
  view.setUint16(58, 64, true);
  view.setUint16(60, elf.sections.length, true);
  view.setUint16(62, elf.shstrndx, true);
  elf.sections.forEach((s, i) => {
    const data = contents[i]!;
    if (s.type !== SHT.NOBITS && i > 0) out.set(data, offsets[i]!);
    const h = shoff + i * 64;
    if (i === 0) return;
    view.setUint32(h, s.nameOff, true);
    view.setUint32(h + 4, s.type, true);
    view.setBigUint64(h + 8, s.flags, true);
    view.setBigUint64(h + 16, s.addr, true);
    view.setBigUint64(h + 24, BigInt(offsets[i]!), true);
    view.setBigUint64(h + 32, s.type === SHT.NOBITS ? s.size : BigInt(data.length), true);
    view.setUint32(h + 40, s.link, true);
    view.setUint32(h + 44, s.info, true);
    view.setBigUint64(h + 48, s.addralign, true);
    view.setBigUint64(h + 56, s.entsize, true);
  });
  return out;
}
