// Byte-level decoding and encoding of BPF instructions (little-endian, RFC 9669 layout).
import { ALU, ATOMIC, BPF_INSN_SIZE, CLASS, JMP, LD_IMM64, MODE, SIZE, SRC_X, aluOp, jmpOp, memMode, memSize, opClass, srcBit } from './opcodes.js';
import type { Insn } from './types.js';
import { K2Error, type Where } from '../util/errors.js';

/** Number of 8-byte slots an instruction occupies. */
export const slotsOf = (insn: Insn): 1 | 2 => (insn.code === LD_IMM64 ? 2 : 1);

/** Why `insn` is not a BPF instruction, or null when it is one. */
export function invalidReason(insn: Insn): string | null {
  const { code, src, off, imm } = insn;
  const cls = opClass(code);
  switch (cls) {
    case CLASS.ALU:
    case CLASS.ALU64: {
      const op = aluOp(code);
      const x = srcBit(code) === SRC_X;
      if (op === ALU.NEG) return x ? 'neg with register source' : null;
      if (op === ALU.END) {
        if (cls === CLASS.ALU64 && x) return 'unknown byte swap';
        return imm === 16 || imm === 32 || imm === 64 ? null : `byte swap width ${imm}`;
      }
      if (op > ALU.END) return 'unknown ALU operation';
      if (op === ALU.DIV || op === ALU.MOD) return off === 0 || off === 1 ? null : `div/mod with offset ${off}`;
      if (op === ALU.MOV && x) {
        const ok = cls === CLASS.ALU64 ? [0, 8, 16, 32] : [0, 8, 16];
        return ok.includes(off) ? null : `movsx width ${off}`;
      }
      return null;
    }
    case CLASS.JMP:
    case CLASS.JMP32: {
      const op = jmpOp(code);
      const x = srcBit(code) === SRC_X;
      if (op > JMP.JSLE) return 'unknown jump operation';
      if (op === JMP.CALL) return cls === CLASS.JMP && !x && src <= 2 ? null : 'unknown call';
      if (op === JMP.EXIT) return cls === CLASS.JMP && !x ? null : 'unknown exit';
      if (op === JMP.JA) return x ? 'ja with register source' : null;
      return null;
    }
    case CLASS.LD: {
      if (code === LD_IMM64) return src <= 6 ? null : `ld_imm64 with src_reg ${src}`;
      const mode = memMode(code);
      if ((mode === MODE.ABS || mode === MODE.IND) && memSize(code) !== SIZE.DW) return null;
      return 'unknown load';
    }
    case CLASS.LDX: {
      const mode = memMode(code);
      if (mode === MODE.MEM) return null;
      if (mode === MODE.MEMSX && memSize(code) !== SIZE.DW) return null;
      return 'unknown load';
    }
    case CLASS.ST:
      return memMode(code) === MODE.MEM ? null : 'unknown store';
    case CLASS.STX: {
      const mode = memMode(code);
      if (mode === MODE.MEM) return null;
      if (mode === MODE.ATOMIC && (memSize(code) === SIZE.W || memSize(code) === SIZE.DW)) {
        const ok = [ATOMIC.ADD, ATOMIC.OR, ATOMIC.AND, ATOMIC.XOR].flatMap((a) => [a, a | ATOMIC.FETCH]);
        ok.push(ATOMIC.XCHG, ATOMIC.CMPXCHG);
        return ok.includes(imm) ? null : `unknown atomic operation 0x${(imm >>> 0).toString(16)}`;
      }
      return 'unknown store';
    }
  }
  return 'unknown opcode';
}

/** BPF has registers r0..r10 (the kernel's MAX_BPF_REG is 11). ld_imm64 and call use src as a pseudo tag. */
const MAX_REG = 10;
function registerReason(insn: Insn): string | null {
  if (insn.dst > MAX_REG) return `invalid destination register r${insn.dst}`;
  const srcIsTag = insn.code === LD_IMM64 || (opClass(insn.code) === CLASS.JMP && jmpOp(insn.code) === JMP.CALL);
  if (!srcIsTag && insn.src > MAX_REG) return `invalid source register r${insn.src}`;
  return null;
}

function readSlot(view: DataView, at: number): Insn {
  const regs = view.getUint8(at + 1);
  return { code: view.getUint8(at), dst: regs & 0x0f, src: regs >> 4, off: view.getInt16(at + 2, true), imm: view.getInt32(at + 4, true) };
}

/**
 * Decodes a code section. Errors name the section and the byte offset of the bad instruction.
 * The returned array has one entry per instruction (ld_imm64 once).
 */
export function decodeInsns(data: Uint8Array, where: Where = {}): Insn[] {
  if (data.length % BPF_INSN_SIZE !== 0) {
    throw new K2Error('input', `code size ${data.length} is not a multiple of ${BPF_INSN_SIZE}`, where);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: Insn[] = [];
  for (let at = 0; at < data.length; at += BPF_INSN_SIZE) {
    const insn = readSlot(view, at);
    const bad = invalidReason(insn);
    if (bad) throw new K2Error('unsupported', `unknown opcode 0x${insn.code.toString(16).padStart(2, '0')} (${bad})`, { ...where, offset: at });
    const badReg = registerReason(insn);
    if (badReg) throw new K2Error('input', badReg, { ...where, offset: at });
    if (insn.code === LD_IMM64) {
      if (at + BPF_INSN_SIZE >= data.length) throw new K2Error('input', '64-bit immediate is missing second half', { ...where, offset: at });
      const hi = readSlot(view, at + BPF_INSN_SIZE);
      if (hi.code !== 0 || hi.dst !== 0 || hi.src !== 0 || hi.off !== 0) {
        throw new K2Error('input', 'malformed second half of a 64-bit immediate', { ...where, offset: at + BPF_INSN_SIZE });
      }
      insn.imm2 = hi.imm;
      at += BPF_INSN_SIZE;
    }
    out.push(insn);
  }
  return out;
}

function writeSlot(view: DataView, at: number, code: number, dst: number, src: number, off: number, imm: number): void {
  view.setUint8(at, code);
  view.setUint8(at + 1, ((src & 0x0f) << 4) | (dst & 0x0f));
  view.setInt16(at + 2, off, true);
  view.setInt32(at + 4, imm | 0, true);
}

export function encodeInsns(insns: readonly Insn[]): Uint8Array {
  const slots = insns.reduce((n, i) => n + slotsOf(i), 0);
  const out = new Uint8Array(slots * BPF_INSN_SIZE);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const i of insns) {
    writeSlot(view, at, i.code, i.dst, i.src, i.off, i.imm);
    at += BPF_INSN_SIZE;
    if (i.code === LD_IMM64) {
      writeSlot(view, at, 0, 0, 0, 0, i.imm2 ?? 0);
      at += BPF_INSN_SIZE;
    }
  }
  return out;
}

/** The 64-bit constant of an ld_imm64. */
export const imm64 = (i: Insn): bigint => (BigInt((i.imm2 ?? 0) >>> 0) << 32n) | BigInt(i.imm >>> 0);
