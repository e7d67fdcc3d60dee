// Plain data model of a 64-bit little-endian relocatable ELF file (only what BPF objects use).

export const SHT = { NULL: 0, PROGBITS: 1, SYMTAB: 2, STRTAB: 3, RELA: 4, NOBITS: 8, REL: 9, LLVM_ADDRSIG: 0x6fff4c03 } as const;
export const SHF = { WRITE: 1n, ALLOC: 2n, EXECINSTR: 4n } as const;
export const STT = { NOTYPE: 0, OBJECT: 1, FUNC: 2, SECTION: 3, FILE: 4 } as const;
export const STB = { LOCAL: 0, GLOBAL: 1, WEAK: 2 } as const;
export const SHN_UNDEF = 0;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const EM_BPF = 247;
// BPF relocation types (llvm/BinaryFormat/ELFRelocs/BPF.def).
export const R_BPF = { NONE: 0, R64_64: 1, R64_ABS64: 2, R64_ABS32: 3, R64_NODYLD32: 4, R64_32: 10 } as const;

export interface ElfSection {
  name: string;
  nameOff: number; // sh_name: offset into .shstrtab (kept so untouched objects are rewritten byte-identically)
  type: number;
  flags: bigint;
  addr: bigint;
  link: number; // section index
  info: number; // section index for REL/RELA, first non-local symbol for SYMTAB
  addralign: bigint;
  entsize: bigint;
  data: Uint8Array; // empty for NOBITS
  size: bigint; // sh_size (for NOBITS it differs from data.length)
}

export interface ElfSymbol {
  name: string;
  nameOff: number; // st_name: offset into the symbol string table
  value: bigint;
  size: bigint;
  info: number; // (bind << 4) | type
  other: number;
  shndx: number;
}

export interface ElfRel {
  offset: bigint; // r_offset: byte offset within the target section
  sym: number; // symbol table index
  type: number; // R_BPF_*
  addend?: bigint; // RELA only
}

export interface ElfFile {
  path: string;
  machine: number;
  flags: number; // e_flags
  osabi: number;
  abiVersion: number;
  type: number; // e_type (1 = ET_REL)
  sections: ElfSection[]; // index 0 is the NULL section
  symbols: ElfSymbol[]; // index 0 is the null symbol; empty when there is no symtab
  symtabIndex: number; // section index of .symtab (0 if none)
  // Relocations of each REL/RELA section, keyed by that REL section's index.
  relocs: Map<number, ElfRel[]>;
  shstrndx: number;
}

export const symType = (s: ElfSymbol): number => s.info & 0xf;
export const symBind = (s: ElfSymbol): number => s.info >> 4;
