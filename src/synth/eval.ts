// A small concrete evaluator for straight-line windows, used by the search's cost function: registers,
// the stack, and memory elsewhere as a pseudo-random function of the address with written bytes kept
// aside. Exact BPF ALU semantics; the SMT checker, not this, is what proves a rewrite.
import { ALU, CLASS, LD_IMM64, MODE, SRC_X, aluOp, imm64, memMode, opClass, sizeBytes, srcBit, REG_FP } from '../isa/index.js';
import type { Insn } from '../isa/index.js';

const M64 = (1n << 64n) - 1n;
const M32 = (1n << 32n) - 1n;
export const STACK_SIZE = 512;
/** Address the frame pointer r10 holds in the evaluator; the stack is [FP - 512, FP). */
export const FP = 0x7fff_0000_0000_0000n;

export interface WinState {
  regs: bigint[]; // r0..r10, unsigned 64-bit
  stack: Uint8Array; // 512 bytes, index = address - (FP - 512)
  memSeed: number; // memory outside the stack reads as a fixed pseudo-random function of (seed, address)
  wroteStack?: boolean;
  /** Bytes written outside the stack, by address (absent until the first such store). */
  written?: Map<bigint, number>;
  /** `stack` / `written` are still another state's (copied on the first store: clones are cheap). */
  sharedStack?: boolean;
  sharedWritten?: boolean;
}

/** The byte at a non-stack address: read-only, the same for the original and every candidate. */
export function memByte(seed: number, addr: bigint): number {
  let h = (seed ^ Number(addr & 0xffffffffn) ^ (Number((addr >> 32n) & 0xffffffffn) * 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) & 0xff;
}

export class Fault extends Error {}

const sext = (v: bigint, bits: number): bigint => BigInt.asUintN(64, BigInt.asIntN(bits, v));
const immU = (imm: number): bigint => BigInt.asUintN(64, BigInt(imm));

function bswap(v: bigint, bytes: number): bigint {
  let out = 0n;
  for (let i = 0; i < bytes; i++) out = (out << 8n) | ((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

function alu(op: number, a: bigint, b: bigint, bits: 32 | 64, signed: boolean): bigint {
  const mask = bits === 64 ? M64 : M32;
  a &= mask;
  b &= mask;
  const s = (x: bigint) => BigInt.asIntN(bits, x);
  switch (op) {
    case ALU.ADD: return (a + b) & mask;
    case ALU.SUB: return (a - b) & mask;
    case ALU.MUL: return (a * b) & mask;
    case ALU.DIV:
      if (b === 0n) return 0n;
      return signed ? BigInt.asUintN(bits, s(a) / s(b)) : a / b;
    case ALU.MOD:
      if (b === 0n) return a;
      return signed ? BigInt.asUintN(bits, s(a) % s(b)) : a % b;
    case ALU.OR: return a | b;
    case ALU.AND: return a & b;
    case ALU.XOR: return a ^ b;
    case ALU.LSH: return (a << (b & BigInt(bits - 1))) & mask;
    case ALU.RSH: return a >> (b & BigInt(bits - 1));
    case ALU.ARSH: return BigInt.asUintN(bits, s(a) >> (b & BigInt(bits - 1)));
    case ALU.NEG: return BigInt.asUintN(bits, -a);
    case ALU.MOV: return b;
  }
  throw new Fault(`alu op ${op}`);
}

const STACK_LO = FP - BigInt(STACK_SIZE);

/** Stack index of [addr, addr+size), null when wholly outside the stack; straddling is a fault. */
function stackIndex(addr: bigint, size: number): number | null {
  const i = addr - STACK_LO;
  if (i + BigInt(size) <= 0n || i >= BigInt(STACK_SIZE)) return null;
  if (i < 0n || i + BigInt(size) > BigInt(STACK_SIZE)) throw new Fault('access straddles the stack');
  return Number(i);
}

function load(st: WinState, addr: bigint, size: number): bigint {
  const i = stackIndex(addr, size);
  let v = 0n;
  for (let k = size - 1; k >= 0; k--) v = (v << 8n) | BigInt(i === null ? outsideByte(st, (addr + BigInt(k)) & M64) : st.stack[i + k]!);
  return v;
}

const outsideByte = (st: WinState, addr: bigint): number => st.written?.get(addr) ?? memByte(st.memSeed, addr);

function store(st: WinState, addr: bigint, size: number, v: bigint): void {
  const i = stackIndex(addr, size);
  if (i === null) {
    if (st.sharedWritten) {
      st.written = new Map(st.written);
      st.sharedWritten = false;
    }
    st.written ??= new Map();
    for (let k = 0; k < size; k++) st.written.set((addr + BigInt(k)) & M64, Number((v >> BigInt(8 * k)) & 0xffn));
    return;
  }
  st.wroteStack = true;
  if (st.sharedStack) {
    st.stack = st.stack.slice();
    st.sharedStack = false;
  }
  for (let k = 0; k < size; k++) st.stack[i + k] = Number((v >> BigInt(8 * k)) & 0xffn);
}

/** Runs `insns` (no control flow) on `st` in place. Throws Fault for anything outside the model. */
export function evalWindow(insns: readonly Insn[], st: WinState): void {
  const r = st.regs;
  for (const insn of insns) {
    const cls = opClass(insn.code);
    if (cls === CLASS.ALU || cls === CLASS.ALU64) {
      if (insn.dst === REG_FP) throw new Fault('r10 is read-only');
      const bits = cls === CLASS.ALU64 ? 64 : 32;
      const op = aluOp(insn.code);
      const x = srcBit(insn.code) === SRC_X;
      if (op === ALU.END) {
        const w = insn.imm;
        const v = r[insn.dst]!;
        const lo = v & ((1n << BigInt(w)) - 1n);
        r[insn.dst] = cls === CLASS.ALU64 || x ? bswap(lo, w / 8) : lo; // x = to_be: swap on little-endian
        continue;
      }
      let b = x ? r[insn.src]! : immU(insn.imm);
      if (op === ALU.MOV && x && insn.off !== 0) b = sext(b, insn.off); // movsx
      const v = alu(op, r[insn.dst]!, b, bits, insn.off === 1 && (op === ALU.DIV || op === ALU.MOD));
      r[insn.dst] = bits === 32 && op === ALU.MOV && x && insn.off !== 0 ? v & M32 : v;
    } else if (cls === CLASS.LDX) {
      const size = sizeBytes(insn.code);
      const v = load(st, (r[insn.src]! + immU(insn.off)) & M64, size);
      r[insn.dst] = memMode(insn.code) === MODE.MEMSX ? sext(v, size * 8) : v;
    } else if (cls === CLASS.ST || cls === CLASS.STX) {
      if (memMode(insn.code) !== MODE.MEM) throw new Fault('atomic');
      const size = sizeBytes(insn.code);
      store(st, (r[insn.dst]! + immU(insn.off)) & M64, size, cls === CLASS.ST ? immU(insn.imm) : r[insn.src]!);
    } else if (insn.code === LD_IMM64 && insn.src === 0) {
      r[insn.dst] = imm64(insn);
    } else {
      throw new Fault(`instruction 0x${insn.code.toString(16)} outside the window model`);
    }
  }
}

/** A copy of `s` (memory copied lazily, on the copy's first store: only `store` writes memory). */
export const cloneState = (s: WinState): WinState => ({
  regs: [...s.regs], stack: s.stack, sharedStack: true, memSeed: s.memSeed, ...(s.written ? { written: s.written, sharedWritten: true } : {}),
});

/** Bytes outside the stack on which two end states disagree (either side wrote them). */
export function outsideDifference(a: WinState, b: WinState): number {
  if (a.written === b.written) return 0; // neither wrote (or both still share one map)
  let n = 0;
  const addrs = new Set<bigint>([...(a.written?.keys() ?? []), ...(b.written?.keys() ?? [])]);
  for (const x of addrs) if (outsideByte(a, x) !== outsideByte(b, x)) n++;
  return n;
}
