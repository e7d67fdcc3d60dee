// Reads 64-bit little-endian relocatable ELF files. Every size, offset, count and index in the file is
// checked against the file's real length and against the limits below before it is used, so a
// malformed or hostile object becomes a one-line K2Error (exit 2), never a crash, a hang or an
// allocation sized by an unchecked field. Section contents are views into the file (no copies), and
// sections may not overlap each other or the headers, so the work downstream is bounded by the file size.
import { readFileSync, statSync } from 'node:fs';
import { K2Error, type Where } from '../util/errors.js';
import { EM_BPF, SHN_UNDEF, SHT, type ElfFile, type ElfRel, type ElfSection, type ElfSymbol } from './types.js';

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
const SHN_LORESERVE = 0xff00; // st_shndx at or above: special (ABS, COMMON, XINDEX), not a section

/** Limits on what a BPF object may ask of a reader, far above anything clang produces. */
export const ELF_LIMITS = {
  /** Input files larger than this are refused before they are read: 16x the largest object in the
   * corpus (Falco's probe.o, 4 MiB). Everything k2 holds is linear in the file size below this. */
  fileBytes: 64 << 20,
  /** sh_addralign: a power of two up to a page (libbpf places data in page-aligned maps anyway). */
  addralign: 4096,
  /** The alignments of all sections together: the most padding writing the object back can add. */
  alignTotal: 1 << 20,
  /** SHT_NOBITS (.bss) sizes, all sections together: 4x the kernel's largest map value (KMALLOC_MAX_SIZE,
   * 4 MiB). k2 allocates their zero contents, so this is what a file of a few bytes can make it allocate. */
  nobitsBytes: 16 << 20,
  /** Longest name or string read from a string table (the kernel's KSYM_NAME_LEN is 512). */
  stringBytes: 4096,
} as const;

export function readElfFile(path: string): ElfFile {
  let bytes: Uint8Array;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new K2Error('input', 'is a directory', { file: path });
    if (st.size > ELF_LIMITS.fileBytes) throw new K2Error('input', `file is ${st.size} bytes, more than the ${ELF_LIMITS.fileBytes >> 20} MiB k2 reads`, { file: path });
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof K2Error) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new K2Error('input', code === 'ENOENT' ? 'no such file' : `cannot read: ${(e as Error).message}`, { file: path });
  }
  return readElf(bytes, path);
}

/**
 * The NUL-terminated string at `off` in a string table; '' when `off` is past the table. A string
 * that runs to the end of the table or past ELF_LIMITS.stringBytes is bad input (`where` locates it).
 */
export function cstring(table: Uint8Array, off: number, where: Where = {}): string {
  if (!(off >= 0 && off < table.length)) return '';
  const window = table.subarray(off, Math.min(table.length, off + ELF_LIMITS.stringBytes + 1));
  const len = window.indexOf(0);
  if (len < 0) {
    const cause = window.length > ELF_LIMITS.stringBytes ? `string at offset ${off} is longer than ${ELF_LIMITS.stringBytes} bytes` : `string at offset ${off} is not NUL-terminated`;
    throw new K2Error('input', cause, where);
  }
  return Buffer.from(table.buffer, table.byteOffset + off, len).toString('latin1');
}

/** Like `cstring`, for names the format requires to exist: an offset past the table is bad input too. */
export function nameAt(table: Uint8Array, off: number, what: string, where: Where = {}): string {
  if (!(off >= 0 && off < table.length)) throw new K2Error('input', `${what}: name offset ${off} is past the string table (${table.length} bytes)`, where);
  return cstring(table, off, where);
}

const isPowerOfTwo = (n: bigint): boolean => n > 0n && (n & (n - 1n)) === 0n;

export function readElf(bytes: Uint8Array, path = '<memory>'): ElfFile {
  const bad = (cause: string, where: Where = {}): K2Error => new K2Error('input', cause, { file: path, ...where });
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
  const shoffRaw = view.getBigUint64(40, true);
  const shentsize = view.getUint16(58, true);
  const shnum = view.getUint16(60, true);
  const shstrndx = view.getUint16(62, true);
  // e_shnum 0 with a table offset means extended numbering (count in section 0's sh_size): never BPF.
  if (shnum === 0) throw bad(shoffRaw === 0n ? 'no section header table' : 'extended section numbering (e_shnum 0) is not supported');
  if (shentsize !== SHDR_SIZE) throw bad(`section header size ${shentsize}, expected ${SHDR_SIZE}`);
  if (shoffRaw + BigInt(shnum * SHDR_SIZE) > BigInt(bytes.length)) throw bad('truncated section header table');
  const shoff = Number(shoffRaw);
  if (shoff < EHDR_SIZE) throw bad(`section header table at offset ${shoff} overlaps the ELF header`);
  if (shstrndx >= shnum) throw bad(`section name table index ${shstrndx} out of range`);

  const raw: (Omit<ElfSection, 'name' | 'data'> & { offset: bigint })[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * SHDR_SIZE;
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
  const hasData = (i: number): boolean => i > 0 && raw[i]!.type !== SHT.NOBITS && raw[i]!.type !== SHT.NULL;
  // Bounds, alignment and NOBITS sizes, before any name is read.
  let nobits = 0n;
  let alignTotal = 0n;
  raw.forEach((s, i) => {
    if (i === 0) return;
    const where = { section: `${i}` }; // names are read once every header is known to be sane
    if (hasData(i) && s.offset + s.size > BigInt(bytes.length)) throw bad(`section ${i} extends past end of file (offset ${s.offset}, ${s.size} bytes, file ${bytes.length} bytes)`, where);
    if (s.addralign > 1n && (!isPowerOfTwo(s.addralign) || s.addralign > BigInt(ELF_LIMITS.addralign))) {
      throw bad(`alignment ${s.addralign}: expected a power of two no larger than ${ELF_LIMITS.addralign}`, where);
    }
    if ((alignTotal += s.addralign) > BigInt(ELF_LIMITS.alignTotal)) {
      throw bad(`section alignments add up to more than ${ELF_LIMITS.alignTotal >> 20} MiB`, where);
    }
    if (s.type === SHT.NOBITS && (nobits += s.size) > BigInt(ELF_LIMITS.nobitsBytes)) {
      throw bad(`zero-initialized sections add up to ${nobits} bytes, more than the ${ELF_LIMITS.nobitsBytes >> 20} MiB limit`, where);
    }
  });
  checkNoOverlap(raw, hasData, shoff, shnum, bad);
  const dataOf = (i: number): Uint8Array => (hasData(i) ? bytes.subarray(Number(raw[i]!.offset), Number(raw[i]!.offset + raw[i]!.size)) : new Uint8Array(0));
  if (!hasData(shstrndx) || raw[shstrndx]!.type !== SHT.STRTAB) throw bad(`section name table (section ${shstrndx}) is not a string table`);
  const shstrtab = dataOf(shstrndx);
  const seen = new Map<string, number>();
  const sections: ElfSection[] = raw.map((s, i) => {
    const { offset: _offset, ...rest } = s;
    const name = i === 0 ? '' : nameAt(shstrtab, s.nameOff, `section ${i}`, { file: path });
    // k2 names sections in its IR and in every message: two sections of one name would be confused.
    if (i > 0) {
      const first = seen.get(name);
      if (first !== undefined) throw bad(`sections ${first} and ${i} are both named '${name}'`);
      seen.set(name, i);
    }
    return { ...rest, name, data: dataOf(i) };
  });

  const symtabs = sections.filter((s) => s.type === SHT.SYMTAB);
  if (symtabs.length > 1) throw bad('more than one symbol table');
  const symtabIndex = sections.findIndex((s) => s.type === SHT.SYMTAB);
  const symbols = symtabIndex > 0 ? readSymbols(sections, symtabIndex, path) : [];
  const relocs = new Map<number, ElfRel[]>();
  const relFor = new Map<number, string>(); // target section → its relocation section
  sections.forEach((s, i) => {
    if (s.type !== SHT.REL && s.type !== SHT.RELA) return;
    const rels = readRelocs(s, sections, symbols.length, path);
    const other = relFor.get(s.info);
    if (rels.length > 0 || s.info !== 0) {
      if (other !== undefined) throw bad(`relocation sections ${other} and ${s.name} patch the same section`, { section: s.name });
      relFor.set(s.info, s.name);
    }
    relocs.set(i, rels);
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

/** Section contents may not overlap each other, the ELF header or the section header table. */
function checkNoOverlap(
  raw: { offset: bigint; size: bigint }[], hasData: (i: number) => boolean, shoff: number, shnum: number,
  bad: (c: string, w?: Where) => K2Error,
): void {
  const ranges: { start: number; end: number; what: string }[] = [
    { start: 0, end: EHDR_SIZE, what: 'the ELF header' },
    { start: shoff, end: shoff + shnum * SHDR_SIZE, what: 'the section header table' },
  ];
  raw.forEach((s, i) => {
    if (hasData(i) && s.size > 0n) ranges.push({ start: Number(s.offset), end: Number(s.offset + s.size), what: `section ${i}` });
  });
  ranges.sort((a, b) => a.start - b.start || a.end - b.end);
  for (let k = 1; k < ranges.length; k++) {
    const a = ranges[k - 1]!, b = ranges[k]!;
    if (b.start < a.end) throw bad(`${a.what} and ${b.what} overlap (bytes ${b.start}..${Math.min(a.end, b.end)})`);
  }
}

function readSymbols(sections: ElfSection[], index: number, path: string): ElfSymbol[] {
  const symtab = sections[index]!;
  const where = { file: path, section: symtab.name };
  if (symtab.data.length % SYM_SIZE !== 0) throw new K2Error('input', `symbol table size ${symtab.data.length} is not a multiple of ${SYM_SIZE}`, where);
  const strtab = sections[symtab.link];
  if (!strtab || symtab.link === 0 || strtab.type !== SHT.STRTAB) throw new K2Error('input', 'symbol table has no string table', where);
  const view = new DataView(symtab.data.buffer, symtab.data.byteOffset, symtab.data.byteLength);
  const out: ElfSymbol[] = [];
  for (let at = 0; at < symtab.data.length; at += SYM_SIZE) {
    const nameOff = view.getUint32(at, true);
    const shndx = view.getUint16(at + 6, true);
    if (shndx !== SHN_UNDEF && shndx < SHN_LORESERVE && shndx >= sections.length) {
      throw new K2Error('input', `symbol ${at / SYM_SIZE} is in section ${shndx}, which does not exist`, { ...where, offset: at });
    }
    out.push({
      nameOff,
      name: nameAt(strtab.data, nameOff, `symbol ${at / SYM_SIZE}`, { ...where, offset: at }),
      info: view.getUint8(at + 4),
      other: view.getUint8(at + 5),
      shndx,
      value: view.getBigUint64(at + 8, true),
      size: view.getBigUint64(at + 16, true),
    });
  }
  return out;
}

function readRelocs(s: ElfSection, sections: ElfSection[], nsyms: number, path: string): ElfRel[] {
  const rela = s.type === SHT.RELA;
  const size = rela ? 24 : 16;
  const where = { file: path, section: s.name };
  if (s.data.length % size !== 0) throw new K2Error('input', `relocation section has a partial entry (size ${s.data.length})`, where);
  if (s.info >= sections.length) throw new K2Error('input', `relocation section targets section ${s.info} which does not exist`, where);
  const view = new DataView(s.data.buffer, s.data.byteOffset, s.data.byteLength);
  const out: ElfRel[] = [];
  for (let at = 0; at < s.data.length; at += size) {
    const info = view.getBigUint64(at + 8, true);
    const rel: ElfRel = { offset: view.getBigUint64(at, true), sym: Number(info >> 32n), type: Number(info & 0xffffffffn) };
    if (rela) rel.addend = view.getBigInt64(at + 16, true);
    if (rel.sym >= nsyms) throw new K2Error('input', `relocation refers to symbol ${rel.sym} which does not exist`, { ...where, offset: at });
    out.push(rel);
  }
  return out;
}
