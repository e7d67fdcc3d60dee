// A small assembler for the llvm-objdump BPF syntax, used to write windows in tests, benchmarks
// and error messages:  "r1 = r2", "w0 += 1", "r0 = *(u32 *)(r1 + 4)", "*(u64 *)(r10 - 8) = r1",
// "if r1 s> 5 goto out", "lock *(u64 *)(r1 + 0) += r2", "r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)",
// "r0 = cmpxchg_64(r1 + 0, r0, r2)", "r1 = be16 r1", "r1 = (s8)r2", "r1 = 0x1234 ll", "call 1", "exit",
// and "name:" labels (jumps to names not defined in the text leave the window).
import { ALU, ATOMIC, CLASS, JMP, LD_IMM64, MODE, SIZE, SRC_K, SRC_X } from '../isa/index.js';
import type { IrInsn } from '../ir/types.js';

const ALU_OPS: Record<string, [number, number]> = {
  '+=': [ALU.ADD, 0], '-=': [ALU.SUB, 0], '*=': [ALU.MUL, 0], '/=': [ALU.DIV, 0], '%=': [ALU.MOD, 0],
  's/=': [ALU.DIV, 1], 's%=': [ALU.MOD, 1], '|=': [ALU.OR, 0], '&=': [ALU.AND, 0], '<<=': [ALU.LSH, 0],
  '>>=': [ALU.RSH, 0], 's>>=': [ALU.ARSH, 0], '^=': [ALU.XOR, 0],
};
const JMP_OPS: Record<string, number> = {
  '==': JMP.JEQ, '!=': JMP.JNE, '>': JMP.JGT, '>=': JMP.JGE, '<': JMP.JLT, '<=': JMP.JLE,
  's>': JMP.JSGT, 's>=': JMP.JSGE, 's<': JMP.JSLT, 's<=': JMP.JSLE, '&': JMP.JSET,
};
const SIZES: Record<string, number> = { u8: SIZE.B, u16: SIZE.H, u32: SIZE.W, u64: SIZE.DW, s8: SIZE.B, s16: SIZE.H, s32: SIZE.W };
const ATOMIC_OPS: Record<string, number> = { '+=': ATOMIC.ADD, '|=': ATOMIC.OR, '&=': ATOMIC.AND, '^=': ATOMIC.XOR };
const FETCH_OPS: Record<string, number> = { add: ATOMIC.ADD, or: ATOMIC.OR, and: ATOMIC.AND, xor: ATOMIC.XOR };

const num = (s: string): number => {
  const v = BigInt(s.trim());
  return Number(BigInt.asIntN(32, v));
};
const reg = (s: string): { r: number; w: boolean } => {
  const m = /^([rw])(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`not a register: ${s}`);
  return { r: Number(m[2]), w: m[1] === 'w' };
};
const isReg = (s: string): boolean => /^[rw]\d+$/.test(s.trim());
const mk = (code: number, dst = 0, src = 0, off = 0, imm = 0): IrInsn => ({ code, dst, src, off, imm });

function memRef(s: string): { size: number; sx: boolean; base: number; off: number } {
  const m = /^\*\(\s*([us]\d+)\s*\*\s*\)\s*\(\s*r(\d+)\s*(?:([+-])\s*(\w+))?\s*\)$/.exec(s.trim());
  if (!m) throw new Error(`not a memory reference: ${s}`);
  const off = m[4] ? (m[3] === '-' ? -num(m[4]) : num(m[4])) : 0;
  return { size: SIZES[m[1]!]!, sx: m[1]!.startsWith('s'), base: Number(m[2]), off };
}

/** Assembles one instruction (no label). */
export function asm1(line: string): IrInsn {
  const s = line.trim().replace(/\s+/g, ' ');
  if (s === 'exit') return mk(CLASS.JMP | JMP.EXIT);
  let m: RegExpExecArray | null;
  if ((m = /^call (-?\w+)$/.exec(s))) return mk(CLASS.JMP | JMP.CALL, 0, 0, 0, num(m[1]!));
  if ((m = /^goto ([\w$.]+)$/.exec(s))) return { ...mk(CLASS.JMP | JMP.JA), target: m[1]! };
  if ((m = /^if ([rw]\d+) (s?[<>]=?|==|!=|&) (\S+) goto ([\w$.]+)$/.exec(s))) {
    const d = reg(m[1]!);
    const cls = d.w ? CLASS.JMP32 : CLASS.JMP;
    const op = JMP_OPS[m[2]!]!;
    if (isReg(m[3]!)) return { ...mk(cls | op | SRC_X, d.r, reg(m[3]!).r), target: m[4]! };
    return { ...mk(cls | op | SRC_K, d.r, 0, 0, num(m[3]!)), target: m[4]! };
  }
  if ((m = /^lock (\*\(.*\)) (\S+=) ([rw]\d+)$/.exec(s))) {
    const mr = memRef(m[1]!);
    return mk(CLASS.STX | MODE.ATOMIC | mr.size, mr.base, reg(m[3]!).r, mr.off, ATOMIC_OPS[m[2]!]!);
  }
  if ((m = /^([rw]\d+) = atomic_fetch_(add|or|and|xor)\(\((u\d+) \*\)\(r(\d+) ([+-]) (\w+)\), ([rw]\d+)\)$/.exec(s))) {
    const off = m[5] === '-' ? -num(m[6]!) : num(m[6]!);
    return mk(CLASS.STX | MODE.ATOMIC | SIZES[m[3]!]!, Number(m[4]), reg(m[7]!).r, off, FETCH_OPS[m[2]!]! | ATOMIC.FETCH);
  }
  if ((m = /^([rw]\d+) = xchg(?:32)?_(64|32)\(r(\d+) ([+-]) (\w+), ([rw]\d+)\)$/.exec(s))) {
    const off = m[4] === '-' ? -num(m[5]!) : num(m[5]!);
    return mk(CLASS.STX | MODE.ATOMIC | (m[2] === '64' ? SIZE.DW : SIZE.W), Number(m[3]), reg(m[6]!).r, off, ATOMIC.XCHG);
  }
  if ((m = /^([rw]\d+) = cmpxchg(?:32)?_(64|32)\(r(\d+) ([+-]) (\w+), [rw]0, ([rw]\d+)\)$/.exec(s))) {
    const off = m[4] === '-' ? -num(m[5]!) : num(m[5]!);
    return mk(CLASS.STX | MODE.ATOMIC | (m[2] === '64' ? SIZE.DW : SIZE.W), Number(m[3]), reg(m[6]!).r, off, ATOMIC.CMPXCHG);
  }
  if ((m = /^(\*\(.*\)) = (\S+)$/.exec(s))) {
    const mr = memRef(m[1]!);
    if (isReg(m[2]!)) return mk(CLASS.STX | MODE.MEM | mr.size, mr.base, reg(m[2]!).r, mr.off);
    return mk(CLASS.ST | MODE.MEM | mr.size, mr.base, 0, mr.off, num(m[2]!));
  }
  if ((m = /^([rw]\d+) = (\*\(.*\))$/.exec(s))) {
    const mr = memRef(m[2]!);
    return mk(CLASS.LDX | (mr.sx ? MODE.MEMSX : MODE.MEM) | mr.size, reg(m[1]!).r, mr.base, mr.off);
  }
  if ((m = /^r(\d+) = (-?\w+) ll$/.exec(s))) {
    const v = BigInt.asUintN(64, BigInt(m[2]!));
    return { ...mk(LD_IMM64, Number(m[1])), imm: Number(BigInt.asIntN(32, v)), imm2: Number(BigInt.asIntN(32, v >> 32n)) };
  }
  if ((m = /^([rw]\d+) = (be|le|bswap)(16|32|64) ([rw]\d+)$/.exec(s))) {
    const d = reg(m[1]!);
    const cls = m[2] === 'bswap' ? CLASS.ALU64 : CLASS.ALU;
    const x = m[2] === 'be' ? SRC_X : SRC_K;
    return mk(cls | ALU.END | x, d.r, 0, 0, Number(m[3]));
  }
  if ((m = /^([rw]\d+) = -([rw]\d+)$/.exec(s))) {
    const d = reg(m[1]!);
    return mk((d.w ? CLASS.ALU : CLASS.ALU64) | ALU.NEG, d.r);
  }
  if ((m = /^([rw]\d+) = \(s(8|16|32)\)([rw]\d+)$/.exec(s))) {
    const d = reg(m[1]!);
    return mk((d.w ? CLASS.ALU : CLASS.ALU64) | ALU.MOV | SRC_X, d.r, reg(m[3]!).r, Number(m[2]));
  }
  if ((m = /^([rw]\d+) (=|s?[+\-*/%|&^]=|<<=|s?>>=) (\S+)$/.exec(s))) {
    const d = reg(m[1]!);
    const cls = d.w ? CLASS.ALU : CLASS.ALU64;
    const [op, off] = m[2] === '=' ? [ALU.MOV, 0] : ALU_OPS[m[2]!] ?? (() => { throw new Error(`unknown operator in: ${line}`); })();
    if (isReg(m[3]!)) return mk(cls | op | SRC_X, d.r, reg(m[3]!).r, off);
    return mk(cls | op | SRC_K, d.r, 0, off, num(m[3]!));
  }
  throw new Error(`cannot assemble: ${line}`);
}

/** Assembles lines (or one string with ';' / newlines); "name:" attaches a label to the next instruction. */
export function asm(src: string | string[]): IrInsn[] {
  const lines = (Array.isArray(src) ? src : src.split(/[;\n]/)).map((l) => l.trim()).filter((l) => l && !l.startsWith('//'));
  const out: IrInsn[] = [];
  let pending: string[] = [];
  for (const l0 of lines) {
    let l = l0;
    const inline = /^([\w$.]+):\s*(\S.*)$/.exec(l);
    if (inline && !/^(lock|if|call|goto)$/.test(inline[1]!)) {
      pending.push(inline[1]!);
      l = inline[2]!;
    }
    const lm = /^([\w$.]+):$/.exec(l);
    if (lm) {
      pending.push(lm[1]!);
      continue;
    }
    const i = asm1(l);
    if (pending.length) {
      i.labels = pending;
      pending = [];
    }
    out.push(i);
  }
  if (pending.length) throw new Error(`label ${pending.join(', ')} at the end (use a jump to leave the window instead)`);
  return out;
}
