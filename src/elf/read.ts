// Reads 64-bit little-endian relocatable ELF files, checking every offset against the file size so
// malformed input becomes a one-line K2Error instead of a crash.
import { readFileSync, statSync } from 'node:fs';
import { K2Error } from '../util/errors.js';
import { EM_BPF, SHT, type ElfFile, type ElfRel, type ElfSection, type ElfSymbol } from './types.js';

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;

export function readElfFile(path: string): ElfFile {
  let bytes: Uint8Array;
  try {
    if (statSync(path).isDirectory()) throw new K2Error('input', 'is a directory', { file: path });
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof K2Error) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new K2Error('input', code === 'ENOENT' ? 'no such file' : `cannot read: ${(e as Error).message}`, { file: path });
  }
  return readElf(bytes, path);
}

/** C string at `off` in a string table. */
export function cstring(table: Uint8Array, off: number): string {
  if (off >= table.length) return '';
  let end = off;
  while (end < table.length && table[end] !== 0) end++;
  return Buffer.from(table.buffer, table.byteOffset + off, end - off).toString('latin1');
}

export function readElf(bytes: Uint8Array, path = '<memory>'): ElfFile {
  const bad = (cause: string): K2Error => new K2Error('input', cause, { file: path });
  if (bytes.length === 0) throw bad('empty file');
  if (bytes.length < 4 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw bad('not an ELF file');
  }
  if (bytes.length < EHDR_SIZE) throw bad('truncated ELF header');
  if (bytes[4] !== 2) throw bad(bytes[4] === 1 ? '32-bit ELF, BPF objects are 64-bit' : 'unknown ELF class');
  if (bytes[5] !== 1) throw bad(bytes[5] === 2 ? 'big-endian ELF, only little-endian BPF is supported' : 'unknown ELF data encoding');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(16, true);
  const machine = view.getUint16(18, true);
  if (machine !== EM_BPF) throw bad(`not a BPF object (e_machine ${machine})`);
  if (type !== 1) throw bad(`not a relocatable object (e_type ${type})`);
  const shoff = view.getBigUint64(40, true);
  const shentsize = view.getUint16(58, true);
  const shnum = view.getUint16(60, true);
  const shstrndx = view.getUint16(62, true);
  if (shnum === 0) throw bad('no section header table');
  if (shentsize !== SHDR_SIZE) throw bad(`section header size ${shentsize}, expected ${SHDR_SIZE}`);
  if (shoff + BigInt(shnum * SHDR_SIZE) > BigInt(bytes.length)) throw bad('truncated section header table');
  if (shstrndx >= shnum) throw bad(`section name table index ${shstrndx} out of range`);

  const raw: (Omit<ElfSection, 'name' | 'data'> & { offset: bigint })[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = Number(shoff) + i * SHDR_SIZE;
    raw.push({
      nameOff: view.getUint32(at, true),
      type: view.getUint32(at + 4, true),
      flags: view.getBigUint64(at + 8, true),
      addr: view.getBigUint64(at + 16, true),
      offset: view.getBigUint64(at + 24, true),
      size: view.getBigUint64(at + 32, true),
      link: view.getUint32(at + 40, true),
      info: view.getUint32(at + 44, true),
      addralign: view.getBigUint64(at + 48, true),
      entsize: view.getBigUint64(at + 56, true),
    });
  }
  const dataOf = (i: number): Uint8Array => {
    const s = raw[i]!;
    if (s.type === SHT.NOBITS || s.type === SHT.NULL) return new Uint8Array(0);
    if (s.offset + s.size > BigInt(bytes.length)) throw bad(`section ${i} extends past end of file`);
    return bytes.slice(Number(s.offset), Number(s.offset + s.size));
  };
  const shstrtab = dataOf(shstrndx);
  const sections: ElfSection[] = raw.map((s, i) => {
    const { offset: _offset, ...rest } = s;
    const name = cstring(shstrtab, s.nameOff);
    try {
      return { ...rest, name, data: dataOf(i) };
    } catch (e) {
      throw bad(`section ${i} (${name}) extends past end of file`);
    }
  });

  const symtabIndex = sections.findIndex((s) => s.type === SHT.SYMTAB);
  const symbols = symtabIndex > 0 ? readSymbols(sections, symtabIndex, bad) : [];
  const relocs = new Map<number, ElfRel[]>();
  sections.forEach((s, i) => {
    if (s.type === SHT.REL || s.type === SHT.RELA) relocs.set(i, readRelocs(s, i, sections, symbols.length, bad));
  });
  return {
    path,
    machine,
    flags: view.getUint32(48, true),
    osabi: bytes[7]!,
    abiVersion: bytes[8]!,
    type,
    sections,
    symbols,
    symtabIndex: Math.max(symtabIndex, 0),
    relocs,
    shstrndx,
  };
}

function readSymbols(sections: ElfSection[], index: number, bad: (c: string) => K2Error): ElfSymbol[] {
  const symtab = sections[index]!;
  if (symtab.data.length % SYM_SIZE !== 0) throw bad(`symbol table size ${symtab.data.length} is not a multiple of ${SYM_SIZE}`);
  const strtab = sections[symtab.link];
  if (!strtab || strtab.type !== SHT.STRTAB) throw bad('symbol table has no string table');
  const view = new DataView(symtab.data.buffer, symtab.data.byteOffset, symtab.data.byteLength);
  const out: ElfSymbol[] = [];
  for (let at = 0; at < symtab.data.length; at += SYM_SIZE) {
    const nameOff = view.getUint32(at, true);
    out.push({
      nameOff,
      name: cstring(strtab.data, nameOff),
      info: view.getUint8(at + 4),
      other: view.getUint8(at + 5),
      shndx: view.getUint16(at + 6, true),
      value: view.getBigUint64(at + 8, true),
      size: view.getBigUint64(at + 16, true),
    });
  }
  return out;
}

function readRelocs(s: ElfSection, index: number, sections: ElfSection[], nsyms: number, bad: (c: string) => K2Error): ElfRel[] {
  const rela = s.type === SHT.RELA;
  const size = rela ? 24 : 16;
  if (s.data.length % size !== 0) throw bad(`relocation section ${s.name} has a partial entry`);
  if (s.info >= sections.length) throw bad(`relocation section ${s.name} targets section ${s.info} which does not exist`);
  const view = new DataView(s.data.buffer, s.data.byteOffset, s.data.byteLength);
  const out: ElfRel[] = [];
  for (let at = 0; at < s.data.length; at += size) {
    const info = view.getBigUint64(at + 8, true);
    const rel: ElfRel = { offset: view.getBigUint64(at, true), sym: Number(info >> 32n), type: Number(info & 0xffffffffn) };
    if (rela) rel.addend = view.getBigInt64(at + 16, true);
    if (rel.sym >= nsyms) throw bad(`relocation section ${s.name} (index ${index}) refers to symbol ${rel.sym} which does not exist`);
    out.push(rel);
  }
  return out;
}
