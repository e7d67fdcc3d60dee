// Serializes an ElfFile. Layout follows LLVM's: ELF header, section contents in index order (each at
// its alignment), then the section header table; symtab and rel sections are regenerated from the
// structured symbols/relocations, every other section is written from `data`.
import { K2Error } from '../util/errors.js';
import { SHT, type ElfFile, type ElfRel, type ElfSection, type ElfSymbol } from './types.js';

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

// ---- Removing sections ------------------------------------------------------------------------------
// Everything in a relocatable ELF that names a section index or a symbol index must follow when
// sections go: section symbols and other symbols defined there (st_shndx), every r_sym, symtab's sh_info
// (first non-local symbol), .llvm_addrsig (ULEB128 symbol indices), SHT_GROUP members and signature,
// and every sh_link / sh_info that is a section index. libbpf's linker rejects a symbol left with
// st_shndx 0 ("invalid extern symbol"); llvm-objcopy/strip reject an sh_link past the last section.

const SHF_INFO_LINK = 0x40n; // sh_info holds a section index
const SHF_LINK_ORDER = 0x80n; // sh_link names the section this one belongs with
const SHT_GROUP = 17;
const SHT_SYMTAB_SHNDX = 18;
const SHN_LORESERVE = 0xff00;
const SHN_XINDEX = 0xffff;

export function encodeUleb128(values: readonly number[]): Uint8Array {
  const out: number[] = [];
  for (let v of values) {
    do {
      const byte = v % 128;
      v = Math.floor(v / 128);
      out.push(v > 0 ? byte | 0x80 : byte);
    } while (v > 0);
  }
  return Uint8Array.from(out);
}

/** The ULEB128 numbers of `data` in order, or null when the last one is cut off or too large. */
export function decodeUleb128List(data: Uint8Array): number[] | null {
  const out: number[] = [];
  let at = 0;
  while (at < data.length) {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (at >= data.length || scale > 2 ** 49) return null;
      const b = data[at++]!;
      v += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) break;
    }
    out.push(v);
  }
  return out;
}

const isRelSection = (t: number): boolean => t === SHT.REL || t === SHT.RELA;

/**
 * The sections `drop` names, plus what cannot stay without them: relocation sections for them and
 * sections tied to them by SHF_LINK_ORDER / SHF_INFO_LINK.
 */
function closeDropSet(elf: ElfFile, drop: ReadonlySet<number>): Set<number> {
  const out = new Set(drop);
  for (let grew = true; grew; ) {
    grew = false;
    elf.sections.forEach((s, i) => {
      if (i === 0 || out.has(i)) return;
      const infoIsSection = isRelSection(s.type) || (s.flags & SHF_INFO_LINK) !== 0n;
      const orphan = (infoIsSection && s.info !== 0 && out.has(s.info)) || ((s.flags & SHF_LINK_ORDER) !== 0n && out.has(s.link));
      if (orphan) {
        out.add(i);
        grew = true;
      }
    });
  }
  return out;
}

/**
 * A copy of `elf` without the sections in `drop` (and the relocation sections that patch them), with
 * every section and symbol index renumbered. Returns `elf` itself when there is nothing to drop.
 */
export function removeSections(elf: ElfFile, drop: ReadonlySet<number>): ElfFile {
  // An unreadable address-significance table goes too (it is only a hint for identical-code folding).
  const badAddrsig = elf.sections.findIndex((s) => s.type === SHT.LLVM_ADDRSIG && decodeUleb128List(s.data) === null);
  const gone = closeDropSet(elf, badAddrsig > 0 && drop.size > 0 ? new Set([...drop, badAddrsig]) : drop);
  gone.delete(0);
  if (gone.size === 0) return elf;
  const strtabIndex = elf.symtabIndex > 0 ? elf.sections[elf.symtabIndex]!.link : 0;
  for (const keep of [elf.symtabIndex, strtabIndex, elf.shstrndx]) {
    if (keep > 0 && gone.has(keep)) throw new K2Error('unsupported', `section ${elf.sections[keep]!.name} would be removed, but the object needs it (symbol or section names)`, { file: elf.path });
  }

  const secMap: number[] = [];
  let n = 0;
  elf.sections.forEach((_, i) => secMap.push(gone.has(i) ? -1 : n++));
  const sec = (i: number, what: string): number => {
    if (i === 0) return 0;
    const to = secMap[i];
    if (to === undefined) throw new K2Error('input', `${what} names section ${i}, which does not exist`, { file: elf.path });
    // Only a malformed object links a section k2 keeps to one it removes (e.g. .llvm_addrsig to DWARF).
    if (to < 0) throw new K2Error('unsupported', `${what} names section ${i} (${elf.sections[i]!.name}), which k2 removes`, { file: elf.path });
    return to;
  };

  // Symbols: those defined in a removed section go (they are only ever section symbols of DWARF, and
  // only relocations of removed sections may use them — checked below).
  const definedInGone = (s: ElfSymbol): boolean => s.shndx > 0 && s.shndx < SHN_LORESERVE && gone.has(s.shndx);
  if (elf.symbols.some((s) => s.shndx === SHN_XINDEX)) throw new K2Error('unsupported', 'extended section indices (SHN_XINDEX) while removing sections', { file: elf.path });
  const symMap: number[] = [];
  const symbols: ElfSymbol[] = [];
  elf.symbols.forEach((s, i) => {
    if (i > 0 && definedInGone(s)) {
      symMap.push(-1);
      return;
    }
    symMap.push(symbols.length);
    symbols.push(s.shndx > 0 && s.shndx < SHN_LORESERVE ? { ...s, shndx: sec(s.shndx, `symbol ${s.name}`) } : s);
  });
  // Only malformed input has a kept relocation or group naming a symbol of a removed (DWARF) section.
  const sym = (i: number, what: string): number => {
    const to = symMap[i];
    if (to === undefined || to < 0) throw new K2Error('unsupported', `${what} uses symbol ${i} (${elf.symbols[i]?.name ?? '?'}) of a section k2 removes`, { file: elf.path });
    return to;
  };

  const relocs = new Map<number, ElfRel[]>();
  for (const [i, rels] of elf.relocs) {
    if (gone.has(i)) continue;
    relocs.set(sec(i, 'relocation map'), rels.map((r) => ({ ...r, sym: sym(r.sym, `relocation section ${elf.sections[i]!.name}`) })));
  }

  const sections: ElfSection[] = [];
  elf.sections.forEach((s, i) => {
    if (gone.has(i)) return;
    if (i === 0) {
      sections.push(s);
      return;
    }
    const where = `section ${s.name}`;
    let { link, info, data } = s;
    // sh_link is a section index for every type that uses it (0 otherwise). For the types k2 knows it
    // must name a kept section; for others, one naming a removed section becomes 0 (no link), one
    // already out of range in the input is left as it was.
    const structural = s.type === SHT.SYMTAB || isRelSection(s.type) || s.type === SHT.LLVM_ADDRSIG || s.type === SHT_GROUP;
    if (structural) link = sec(link, `sh_link of ${where}`);
    else if (link < elf.sections.length) link = gone.has(link) ? 0 : sec(link, `sh_link of ${where}`);
    if (s.type === SHT.SYMTAB) {
      // sh_info: one past the last local symbol.
      info = symMap.slice(0, s.info).filter((m) => m >= 0).length;
      data = encodeSymbols(symbols);
    } else if (isRelSection(s.type)) {
      info = sec(info, `sh_info of ${where}`);
      data = encodeRelocs(relocs.get(sec(i, where)) ?? [], s.type === SHT.RELA);
    } else if (s.type === SHT.LLVM_ADDRSIG) {
      const indices = decodeUleb128List(s.data) ?? [];
      data = encodeUleb128(indices.filter((k) => symMap[k] !== undefined && symMap[k]! >= 0).map((k) => symMap[k]!));
    } else if (s.type === SHT_GROUP) {
      info = sym(info, `signature of group ${where}`);
      data = remapGroup(s.data, secMap, (cause) => new K2Error('input', cause, { file: elf.path, section: s.name }));
    } else if (s.type === SHT_SYMTAB_SHNDX) {
      throw new K2Error('unsupported', 'SHT_SYMTAB_SHNDX while removing sections', { file: elf.path });
    } else if ((s.flags & SHF_INFO_LINK) !== 0n) {
      info = sec(info, `sh_info of ${where}`);
    }
    sections.push({ ...s, link, info, data, size: s.type === SHT.NOBITS ? s.size : BigInt(data.length) });
  });
  return { ...elf, sections, symbols, relocs, symtabIndex: elf.symtabIndex > 0 ? sec(elf.symtabIndex, 'symtab') : 0, shstrndx: sec(elf.shstrndx, 'e_shstrndx') };
}

/** SHT_GROUP contents: a flag word, then member section indices (removed members leave the group). */
function remapGroup(data: Uint8Array, secMap: number[], bad: (c: string) => K2Error): Uint8Array {
  if (data.length % 4 !== 0 || data.length < 4) throw bad('SHT_GROUP section size is not a multiple of 4');
  const inView = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const words = [inView.getUint32(0, true)];
  for (let at = 4; at < data.length; at += 4) {
    const to = secMap[inView.getUint32(at, true)];
    if (to === undefined) throw bad('SHT_GROUP names a section that does not exist');
    if (to >= 0) words.push(to);
  }
  const out = new Uint8Array(words.length * 4);
  const view = new DataView(out.buffer);
  words.forEach((w, k) => view.setUint32(k * 4, w, true));
  return out;
}
