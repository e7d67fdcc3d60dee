// The IR every stage after the ELF reader works on. Jump targets, call targets and relocations are
// symbolic (labels and symbol indices), so inserting or deleting instructions is a plain list edit;
// offsets are computed only by `lower` when an object is written back.
import type { Insn } from '../isa/types.js';
import type { ElfFile } from '../elf/types.js';

export type { Insn, Reg, Slot, InsnIndex } from '../isa/types.js';

export type Label = string;
/** Label standing for the end of a section (one past its last instruction). */
export const END_LABEL: Label = '$end';

// BTF.ext records. `rel` is the ELF relocation (.rel.BTF.ext) that newer LLVM attaches to a record's
// insn_off field, kept so it can be re-emitted at the record's new position.
export interface FuncInfo {
  typeId: number;
  rel?: RelocRef;
}

export interface LineInfo {
  fileNameOff: number; // offsets into the .BTF string table
  lineOff: number;
  lineCol: number; // (line << 10) | column
  rel?: RelocRef;
}

export interface CoreRelo {
  typeId: number;
  accessStrOff: number;
  kind: number; // enum bpf_core_relo_kind
  rel?: RelocRef;
}

/** A code location in another (or the same) section: bpf-to-bpf call or ld_imm64 pseudo-func target. */
export interface CodeRef {
  section: string;
  label: Label;
}

/** An ELF relocation that patches this instruction. */
export interface RelocRef {
  sym: number; // index into the object's symbol table
  type: number; // R_BPF_*
}

export interface IrInsn extends Insn {
  labels?: Label[]; // labels defined at this instruction
  target?: Label; // JMP/JMP32 (not call/exit): where the jump goes, in the same section
  callee?: CodeRef; // bpf-to-bpf call (src=1) or ld_imm64 pseudo-func (src=4)
  reloc?: RelocRef;
  funcInfo?: FuncInfo; // BTF.ext func_info of the function starting here
  lines?: LineInfo[]; // BTF.ext line_info records at this instruction
  core?: CoreRelo[]; // BTF.ext CO-RE relocations at this instruction
  pinned?: string; // why an optimizer must never change this instruction
}

/** A symbol whose value/size point into a code section; recomputed from labels when writing. */
export interface CodeSymbol {
  sym: number; // symbol table index
  start: Label;
  end: Label | null; // null: keep st_size as read (size 0 or not a function)
}

/** An executable section lifted to IR. */
export interface CodeSection {
  name: string;
  shndx: number; // section index in the ELF file it was read from
  insns: IrInsn[];
  symbols: CodeSymbol[];
  relSection: number | null; // index of the .rel section patching it (null if none)
}

export interface MapDef {
  name: string;
  sym: number; // symbol table index
  section: string; // ".maps" or "maps"
  type: number; // enum bpf_map_type
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  pinning?: number;
  innerMap?: MapDef;
  btf: boolean; // BTF-defined (.maps) vs legacy struct bpf_map_def
}

/** Global data sections (.data, .rodata*, .bss, .kconfig) with their initial contents. */
export interface DataSection {
  name: string;
  shndx: number;
  size: number;
  init: Uint8Array; // zeros for .bss
  readonly: boolean;
}

/** One loadable program: an entry function of a non-.text code section. */
export interface ProgramRef {
  section: string; // ELF section name, e.g. "xdp", "tc", "kprobe/sys_write"
  name: string; // function symbol name
  entry: Label;
  progType: string; // libbpf-style type name derived from the section, e.g. "xdp", "sched_cls"
}

/** .BTF.ext layout facts needed to write it back; the records themselves live on instructions. */
export interface BtfExtHeader {
  magic: number;
  version: number;
  flags: number;
  hdrLen: number;
  funcRecSize: number;
  lineRecSize: number;
  coreRecSize: number;
  hasCore: boolean;
  // Section blocks in file order per kind: BTF string offset of the section name, and the name.
  funcSecs: { secNameOff: number; secName: string }[];
  lineSecs: { secNameOff: number; secName: string }[];
  coreSecs: { secNameOff: number; secName: string }[];
}

export interface BpfObject {
  file: string;
  elf: ElfFile; // the ELF as read; `lower` rewrites code sections, their .rel and .BTF.ext
  code: CodeSection[];
  maps: MapDef[];
  data: DataSection[];
  programs: ProgramRef[];
  license: string | null;
  btf: import('../elf/btf.js').Btf | null; // parsed .BTF (types and strings), read-only
  btfExt: BtfExtHeader | null;
}
