// One decoded BPF instruction. ld_imm64 occupies two 8-byte slots; its upper 32 bits live in `imm2`.
export type Reg = number; // 0..10
export type Slot = number; // index of an 8-byte slot in a section
export type InsnIndex = number; // index in an instruction list (ld_imm64 counts once)

export interface Insn {
  code: number; // 8-bit opcode
  dst: Reg;
  src: Reg;
  off: number; // signed 16-bit
  imm: number; // signed 32-bit
  imm2?: number; // ld_imm64 only: the second slot's imm (signed 32-bit)
}
