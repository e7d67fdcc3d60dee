// BPF instruction set constants (RFC 9669, include/uapi/linux/bpf.h).

export const BPF_INSN_SIZE = 8;

// Instruction classes (low 3 bits of the opcode).
export const CLASS = {
  LD: 0x00,
  LDX: 0x01,
  ST: 0x02,
  STX: 0x03,
  ALU: 0x04,
  JMP: 0x05,
  JMP32: 0x06,
  ALU64: 0x07,
} as const;

// Source operand bit for ALU/JMP: K = immediate, X = register.
export const SRC_K = 0x00;
export const SRC_X = 0x08;

// ALU operations (high 4 bits).
export const ALU = {
  ADD: 0x00, SUB: 0x10, MUL: 0x20, DIV: 0x30, OR: 0x40, AND: 0x50, LSH: 0x60, RSH: 0x70,
  NEG: 0x80, MOD: 0x90, XOR: 0xa0, MOV: 0xb0, ARSH: 0xc0, END: 0xd0,
} as const;

// Jump operations (high 4 bits).
export const JMP = {
  JA: 0x00, JEQ: 0x10, JGT: 0x20, JGE: 0x30, JSET: 0x40, JNE: 0x50, JSGT: 0x60, JSGE: 0x70,
  CALL: 0x80, EXIT: 0x90, JLT: 0xa0, JLE: 0xb0, JSLT: 0xc0, JSLE: 0xd0,
} as const;

// Load/store size (bits 3-4) and mode (bits 5-7).
export const SIZE = { W: 0x00, H: 0x08, B: 0x10, DW: 0x18 } as const;
export const MODE = { IMM: 0x00, ABS: 0x20, IND: 0x40, MEM: 0x60, MEMSX: 0x80, ATOMIC: 0xc0 } as const;

// Atomic operations (imm field of STX|ATOMIC).
export const ATOMIC = {
  ADD: 0x00, OR: 0x40, AND: 0x50, XOR: 0xa0,
  FETCH: 0x01,
  XCHG: 0xe0 | 0x01,
  CMPXCHG: 0xf0 | 0x01,
} as const;

// src_reg values of BPF_LD | BPF_IMM | BPF_DW (ld_imm64) pseudo loads.
export const PSEUDO = {
  MAP_FD: 1,
  MAP_VALUE: 2,
  BTF_ID: 3,
  FUNC: 4,
  MAP_IDX: 5,
  MAP_IDX_VALUE: 6,
} as const;

// src_reg values of BPF_JMP | BPF_CALL.
export const CALL_HELPER = 0;
export const CALL_PSEUDO = 1; // bpf-to-bpf call, imm = pc-relative target
export const CALL_KFUNC = 2; // kernel function call, imm = BTF id

export const LD_IMM64 = CLASS.LD | SIZE.DW | MODE.IMM; // 0x18

export const REG_FP = 10;
export const MAX_REG = 10;

export const opClass = (code: number): number => code & 0x07;
export const isAluClass = (code: number): boolean => opClass(code) === CLASS.ALU || opClass(code) === CLASS.ALU64;
export const isJmpClass = (code: number): boolean => opClass(code) === CLASS.JMP || opClass(code) === CLASS.JMP32;
export const aluOp = (code: number): number => code & 0xf0;
export const jmpOp = (code: number): number => code & 0xf0;
export const srcBit = (code: number): number => code & 0x08;
export const memSize = (code: number): number => code & 0x18;
export const memMode = (code: number): number => code & 0xe0;
export const sizeBytes = (code: number): 1 | 2 | 4 | 8 =>
  (({ [SIZE.B]: 1, [SIZE.H]: 2, [SIZE.W]: 4, [SIZE.DW]: 8 }) as Record<number, 1 | 2 | 4 | 8>)[memSize(code)]!;

/** The conditional jump taken exactly when `code` is not (same class and operands), or -1. */
export function invertedJump(code: number): number {
  const cls = opClass(code);
  if (cls !== CLASS.JMP && cls !== CLASS.JMP32) return -1;
  const inverse: Record<number, number> = {
    [JMP.JEQ]: JMP.JNE, [JMP.JNE]: JMP.JEQ, [JMP.JGT]: JMP.JLE, [JMP.JLE]: JMP.JGT, [JMP.JGE]: JMP.JLT, [JMP.JLT]: JMP.JGE,
    [JMP.JSGT]: JMP.JSLE, [JMP.JSLE]: JMP.JSGT, [JMP.JSGE]: JMP.JSLT, [JMP.JSLT]: JMP.JSGE,
  };
  const inv = inverse[jmpOp(code)];
  return inv === undefined ? -1 : (code & ~0xf0) | inv;
}

