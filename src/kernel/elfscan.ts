// A deliberately small, defensive look at a BPF ELF object, for the loaders only:
// - `scanElf` checks that the headers, section table, names and symbol table are in bounds
//   before any native ELF parser sees the bytes (a malformed file must give a verdict, never a
//   crash), and lists sections and the programs libbpf will see;
// - `isolatePrograms` returns a copy in which only chosen programs remain visible to libbpf, by
//   flipping flags/symbol types in place (no layout change), for loaders that cannot disable
//   programs themselves (bpftool).
// The full ELF reader/writer of k2 lives in src/elf. Its structural checks (headers, section bounds
// and names, symbols, relocations, .BTF and .BTF.ext records) run here too, before libbpf parses
// anything: libbpf 1.1 crashes on some malformed BTF (a name offset or type id out of range). Its
// code-level checks (opcodes, jumps) do not: whether code is acceptable is the kernel's verdict.
// The maps an object would make the loaders create are bounded too (`MAP_MEMORY_LIMIT`): the kernel
// preallocates most maps, and one `max_entries` field can ask it for tens of GiB.
import { availableParallelism } from 'node:os';
import { parseBtf, parseBtfExt, type Btf } from '../elf/btf.js';
import { readElf } from '../elf/read.js';
import { readMaps } from '../ir/maps.js';
import type { MapDef } from '../ir/types.js';
import { K2Error } from '../util/errors.js';

export const EM_BPF = 247;
const SHT_PROGBITS = 1;
const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;
const SHF_EXECINSTR = 4n;
const STT_NOTYPE = 0;
const STT_FUNC = 2;
const STB_LOCAL = 0;
const STB_GLOBAL = 1;
const MAX_NAME = 4096; // longest section or symbol name read (k2's ELF reader has the same limit)

export interface ScannedSection {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  offset: number;
  size: number;
  headerOffset: number; // file offset of this section's header
}

export interface ScannedProgram {
  name: string;
  symbol: number; // symbol table index
  value: number; // st_value: byte offset in its section
  section: string;
  sectionIndex: number;
  symbolOffset: number; // file offset of the FUNC symbol (for isolateProgram)
  local: boolean;
}

export interface ElfScan {
  machine: number;
  sections: ScannedSection[];
  /** Programs as libbpf 1.x enumerates them: FUNC symbols of executable sections; `.text`
   * functions count only when they are the sole function (otherwise they are subprograms). */
  programs: ScannedProgram[];
  hasLegacyMaps: boolean; // a section "maps" or "maps/..." (struct bpf_map_def), refused by libbpf 1.x
  hasBtfMaps: boolean; // a ".maps" section
  license: string | null;
  btf: { offset: number; size: number } | null; // the .BTF section
  symtab: { offset: number; count: number; strOffset: number; strSize: number } | null;
}

export type ScanResult = { ok: true; scan: ElfScan } | { ok: false; reason: string };

/** Checks the structure of a relocatable 64-bit little-endian BPF ELF file. Never throws. */
export function scanElf(bytes: Uint8Array): ScanResult {
  try {
    return scan(bytes);
  } catch (e) {
    return { ok: false, reason: `unreadable ELF: ${(e as Error).message}` };
  }
}

function scan(bytes: Uint8Array): ScanResult {
  const bad = (reason: string): ScanResult => ({ ok: false, reason });
  if (bytes.length < 64) return bad(`not an ELF file (${bytes.length} bytes)`);
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) return bad('not an ELF file (bad magic)');
  if (bytes[4] !== 2) return bad('not a 64-bit ELF file');
  if (bytes[5] !== 1) return bad('not a little-endian ELF file (big-endian BPF objects cannot load on this host)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u64 = (o: number) => {
    const v = dv.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`64-bit field at offset ${o} out of range`);
    return Number(v);
  };
  const type = u16(16);
  const machine = u16(18);
  if (type !== 1) return bad(`not a relocatable object (e_type ${type}); BPF loaders need clang -c output`);
  if (machine !== EM_BPF && machine !== 0) return bad(`not a BPF object (e_machine ${machine})`);
  const shoff = u64(40);
  const shentsize = u16(58);
  const shnum = u16(60);
  const shstrndx = u16(62);
  if (shnum === 0 || shoff === 0) return bad('no section header table');
  if (shentsize !== 64) return bad(`bad section header size ${shentsize}`);
  if (shoff + shnum * 64 > bytes.length) return bad(`section header table (offset ${shoff}, ${shnum} entries) runs past the end of the file (${bytes.length} bytes)`);
  if (shstrndx >= shnum) return bad(`section name table index ${shstrndx} out of range`);

  const raw = [] as { name: number; type: number; flags: bigint; offset: number; size: number; link: number; entsize: number; hdr: number }[];
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * 64;
    const sec = { name: u32(h), type: u32(h + 4), flags: dv.getBigUint64(h + 8, true), offset: u64(h + 24), size: u64(h + 32), link: u32(h + 40), entsize: u64(h + 56), hdr: h };
    if (i > 0 && sec.type !== SHT_NOBITS && sec.size > 0 && sec.offset + sec.size > bytes.length)
      return bad(`section ${i} (offset ${sec.offset}, size ${sec.size}) runs past the end of the file (${bytes.length} bytes)`);
    raw.push(sec);
  }
  const strtab = raw[shstrndx]!;
  // A string table must lie in the file (a NOBITS one has an offset that means nothing).
  const inFile = (s: { type: number; offset: number; size: number }): boolean => s.type !== SHT_NOBITS && s.offset + s.size <= bytes.length;
  if (!inFile(strtab)) return bad(`section name table (section ${shstrndx}) is not in the file`);
  const cstr = (tab: { offset: number; size: number }, off: number, what: string): string => {
    if (off >= tab.size) throw new Error(`${what} name offset ${off} out of range`);
    // Names are short; a bounded native search keeps a table without NULs from costing O(n^2).
    const window = bytes.subarray(tab.offset + off, Math.min(tab.offset + tab.size, tab.offset + off + MAX_NAME + 1));
    const len = window.indexOf(0);
    if (len < 0 && window.length > MAX_NAME) throw new Error(`${what} name is longer than ${MAX_NAME} bytes`);
    return Buffer.from(window.subarray(0, len < 0 ? window.length : len)).toString('latin1');
  };
  const sections: ScannedSection[] = [];
  for (let i = 0; i < shnum; i++) {
    const s = raw[i]!;
    let name = '';
    if (i > 0) {
      try {
        name = cstr(strtab, s.name, `section ${i}`);
      } catch (e) {
        return bad((e as Error).message);
      }
    }
    sections.push({ index: i, name, type: s.type, flags: s.flags, offset: s.offset, size: s.size, headerOffset: s.hdr });
  }

  // Symbols: FUNC symbols of executable PROGBITS sections are programs (libbpf's rule).
  const symtabIdx = raw.findIndex((s) => s.type === SHT_SYMTAB);
  const candidates: ScannedProgram[] = [];
  if (symtabIdx > 0) {
    const st = raw[symtabIdx]!;
    if (st.entsize !== 24) return bad(`bad symbol table entry size ${st.entsize}`);
    if (st.link >= shnum) return bad(`symbol string table index ${st.link} out of range`);
    const symstr = raw[st.link]!;
    if (!inFile(symstr)) return bad(`symbol string table (section ${st.link}) is not in the file`);
    const count = Math.floor(st.size / 24);
    for (let i = 1; i < count; i++) {
      const o = st.offset + i * 24;
      const info = bytes[o + 4]!;
      const shndx = u16(o + 6);
      if ((info & 0xf) !== STT_FUNC || shndx === 0 || shndx >= shnum) continue;
      const sec = sections[shndx]!;
      if (sec.type !== SHT_PROGBITS || !(sec.flags & SHF_EXECINSTR) || sec.size === 0) continue;
      let name: string;
      try {
        name = cstr(symstr, u32(o), `symbol ${i}`);
      } catch (e) {
        return bad((e as Error).message);
      }
      candidates.push({ name, symbol: i, value: u64(o + 8), section: sec.name, sectionIndex: shndx, symbolOffset: o, local: info >> 4 === STB_LOCAL });
    }
  }
  // libbpf's order: by section, then by offset in the section.
  candidates.sort((a, b) => a.sectionIndex - b.sectionIndex || a.value - b.value);
  const programs = candidates.length > 1 ? candidates.filter((p) => p.section !== '.text') : candidates;

  const btf = sections.find((s) => s.name === '.BTF' && s.type === SHT_PROGBITS) ?? null;
  const lic = sections.find((s) => s.name === 'license' && s.type === SHT_PROGBITS);
  let license: string | null = null;
  if (lic) {
    const b = bytes.subarray(lic.offset, lic.offset + lic.size);
    const end = b.indexOf(0);
    license = Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString('latin1');
  }
  const structural = structureError(bytes, machine);
  if (structural) return bad(structural);
  return {
    ok: true,
    scan: {
      machine,
      sections,
      programs,
      hasLegacyMaps: sections.some((s) => s.name === 'maps' || s.name.startsWith('maps/')),
      hasBtfMaps: sections.some((s) => s.name === '.maps'),
      license,
      btf: btf ? { offset: btf.offset, size: btf.size } : null,
      symtab: symtabIdx > 0 ? { offset: raw[symtabIdx]!.offset, count: Math.floor(raw[symtabIdx]!.size / 24), strOffset: raw[raw[symtabIdx]!.link]!.offset, strSize: raw[raw[symtabIdx]!.link]!.size } : null,
    },
  };
}

/** Kernel memory k2 lets the maps of one object ask for (the loaders create them all): 4x the most
 * a corpus object needs (Cilium's, about 500 MiB by `mapMemory`). */
export const MAP_MEMORY_LIMIT = 2 * 2 ** 30;
const gib = (n: number): string => (n / 2 ** 30).toFixed(1);

const BPF_F_NO_PREALLOC = 1;
const r8 = (n: number): number => Math.ceil(n / 8) * 8;

/**
 * An upper estimate of the kernel memory map creation allocates at once (kernel/bpf/*.c): arrays and
 * preallocated hash tables hold every entry from the start, fd arrays a pointer per entry, ring
 * buffers their size; maps that allocate on update (LPM trie, local storage, non-preallocated
 * hashes) count nothing.
 */
export function mapMemory(m: MapDef): number {
  const n = m.maxEntries;
  const ncpu = availableParallelism();
  switch (m.type) {
    case 2: return n * r8(m.valueSize); // array
    case 6: return n * r8(m.valueSize) * ncpu; // percpu array
    case 3: case 4: case 8: case 12: case 14: case 15: case 16: case 17: case 20: case 25: case 18: return n * 8; // fd arrays, devmaps, sockmaps: a pointer/bucket per entry
    case 1: case 13: // hash, hash of maps
      return m.flags & BPF_F_NO_PREALLOC ? n * 8 : n * (64 + r8(m.keySize) + r8(m.valueSize));
    case 5: // percpu hash
      return m.flags & BPF_F_NO_PREALLOC ? n * 8 : n * (64 + r8(m.keySize) + r8(m.valueSize) * ncpu);
    case 9: return n * (64 + r8(m.keySize) + r8(m.valueSize)); // LRU hash: always preallocated
    case 10: return n * (64 + r8(m.keySize) + r8(m.valueSize) * ncpu); // LRU percpu hash
    case 7: return 2 ** Math.ceil(Math.log2(Math.max(1, n))) * (32 + r8(m.valueSize)); // stack trace: buckets rounded up
    case 22: case 23: return (n + 1) * r8(m.valueSize); // queue, stack
    case 27: case 31: return n; // ring buffers: max_entries bytes of data pages
    case 30: return n * 4; // bloom filter: bits per entry x hash functions
    default: return 0;
  }
}

/** What k2's ELF/BTF reader finds wrong with the structure of the object, or null. */
function structureError(bytes: Uint8Array, machine: number): string | null {
  try {
    let b = bytes;
    if (machine === 0) {
      // EM_NONE (some old toolchains): accepted by the loaders, read as BPF here.
      b = new Uint8Array(bytes);
      new DataView(b.buffer).setUint16(18, EM_BPF, true);
    }
    const elf = readElf(b);
    const btfSec = elf.sections.find((s) => s.name === '.BTF');
    const ext = elf.sections.find((s) => s.name === '.BTF.ext');
    let btf: Btf | null = null;
    if (btfSec) {
      btf = parseBtf(btfSec.data);
      if (ext) parseBtfExt(ext.data, btf.strings);
    }
    const maps = readMaps(elf, btf).map((m) => ({ m, bytes: mapMemory(m) + (m.innerMap ? mapMemory(m.innerMap) : 0) }));
    const total = maps.reduce((n, x) => n + x.bytes, 0);
    if (total > MAP_MEMORY_LIMIT) {
      const { m, bytes } = maps.reduce((a, b) => (b.bytes > a.bytes ? b : a));
      return `its maps would need about ${gib(total)} GiB of kernel memory, more than the ${gib(MAP_MEMORY_LIMIT)} GiB k2 lets an object create (the largest: ${m.name}, type ${m.type}, ${m.maxEntries} entries, ${gib(bytes)} GiB)`;
    }
    return null;
  } catch (e) {
    if (!(e instanceof K2Error)) throw e;
    return new K2Error(e.kind, e.cause_, { ...e.where, file: undefined }).message;
  }
}

/**
 * A copy of `bytes` in which libbpf sees only the programs in `keep`: every other executable
 * section (except .text, which holds subprograms) loses SHF_EXECINSTR, and the other FUNC symbols
 * of kept sections become NOTYPE. Relocations of hidden sections are then skipped by libbpf.
 */
export function isolatePrograms(bytes: Uint8Array, scan: ElfScan, keep: ScannedProgram[]): Uint8Array {
  const out = new Uint8Array(bytes);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const keptSections = new Set(keep.map((p) => p.sectionIndex));
  const keptSyms = new Set(keep.map((p) => p.symbolOffset));
  for (const s of scan.sections) {
    if (keptSections.has(s.index) || s.name === '.text' || !(s.flags & SHF_EXECINSTR)) continue;
    if (!scan.programs.some((p) => p.sectionIndex === s.index)) continue;
    dv.setBigUint64(s.headerOffset + 8, s.flags & ~SHF_EXECINSTR, true);
  }
  for (const p of scan.programs) {
    if (keptSyms.has(p.symbolOffset) || !keptSections.has(p.sectionIndex)) continue;
    out[p.symbolOffset + 4] = (out[p.symbolOffset + 4]! & 0xf0) | STT_NOTYPE;
  }
  return out;
}

/**
 * Fixups that make objects from older toolchains loadable by libbpf 1.1, done as in-place byte
 * patches (no layout change) on a copy; `notes` says what was changed. Applied by both backends.
 * - Old clang emitted program entry points as NOTYPE symbols of size 0: libbpf < 1.0 took the
 *   whole section as the program; we retype such a symbol FUNC spanning its section.
 * - Static (local) program functions are refused by libbpf 1.1 (newer libbpf accepts them): we
 *   make them global.
 * - BTF map definitions with a `pinning` field: k2 never pins (pins would outlive k2), and some
 *   objects use values libbpf 1.1 refuses (Cilium's): the field is renamed so that libbpf, with
 *   relaxed map parsing, ignores it.
 */
export function prepareObject(bytes: Uint8Array, scan: ElfScan): { bytes: Uint8Array; notes: string[]; relaxedMaps: boolean } {
  const out = new Uint8Array(bytes);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const notes: string[] = [];
  let relaxedMaps = false;
  if (scan.symtab) {
    const { offset, count, strOffset, strSize } = scan.symtab;
    const symName = (o: number): string => {
      const start = dv.getUint32(o, true);
      if (start >= strSize) return '?';
      const window = out.subarray(strOffset + start, Math.min(strOffset + strSize, strOffset + start + MAX_NAME));
      const len = window.indexOf(0);
      return Buffer.from(window.subarray(0, len < 0 ? window.length : len)).toString('latin1');
    };
    const hasFunc = new Set<number>();
    for (let i = 1; i < count; i++) {
      const o = offset + i * 24;
      if ((out[o + 4]! & 0xf) === STT_FUNC) hasFunc.add(dv.getUint16(o + 6, true));
    }
    const retyped = new Set<number>();
    for (let i = 1; i < count; i++) {
      const o = offset + i * 24;
      const info = out[o + 4]!;
      const shndx = dv.getUint16(o + 6, true);
      const sec = scan.sections[shndx];
      if (!sec || sec.type !== SHT_PROGBITS || !(sec.flags & SHF_EXECINSTR) || sec.size === 0 || sec.name === '.text') continue;
      if ((info & 0xf) === STT_NOTYPE && info >> 4 !== STB_LOCAL && !hasFunc.has(shndx) && !retyped.has(shndx) && dv.getBigUint64(o + 8, true) === 0n) {
        out[o + 4] = (info & 0xf0) | STT_FUNC;
        dv.setBigUint64(o + 16, BigInt(sec.size), true);
        retyped.add(shndx);
        notes.push(`section '${sec.name}': entry symbol '${symName(o)}' was NOTYPE with size 0 (old clang); treated as a program spanning the section, as libbpf < 1.0 did`);
      } else if ((info & 0xf) === STT_FUNC && info >> 4 === STB_LOCAL) {
        out[o + 4] = (STB_GLOBAL << 4) | STT_FUNC;
        notes.push(`section '${sec.name}': static program '${symName(o)}' made global (libbpf 1.1 refuses static programs; newer libbpf accepts them)`);
      }
    }
  }
  if (scan.btf && scan.hasBtfMaps && scan.btf.size >= 24) {
    const b = scan.btf.offset;
    if (dv.getUint16(b, true) === 0xeb9f) {
      const hdrLen = dv.getUint32(b + 4, true);
      const strOff = b + hdrLen + dv.getUint32(b + 16, true);
      const strLen = dv.getUint32(b + 20, true);
      if (strOff + strLen <= b + scan.btf.size) {
        const needle = Buffer.from('\0pinning\0', 'latin1');
        const hay = Buffer.from(out.buffer, out.byteOffset + strOff, strLen);
        const at = hay.indexOf(needle);
        if (at >= 0) {
          hay.write('k2_pinn', at + 1, 'latin1');
          relaxedMaps = true;
          notes.push("maps: 'pinning' attributes ignored (k2 never pins maps)");
        }
      }
    }
  }
  return { bytes: notes.length ? out : bytes, notes, relaxedMaps };
}
