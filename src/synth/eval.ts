// The search's concrete evaluator for windows: registers, the stack, and the memory regions the
// window's precondition names (context, packet, map values, other memory), each at its own base
// address with its size, so an access outside what the original may touch faults as the verifier
// would refuse it. Memory elsewhere reads as a fixed pseudo-random function of the address, written
// bytes kept aside. Exact BPF ALU and atomic semantics; the SMT checker, not this, proves rewrites.
import { ALU, ATOMIC, CLASS, JMP, LD_IMM64, MODE, SRC_X, aluOp, imm64, jmpOp, memMode, opClass, sizeBytes, srcBit, REG_FP } from '../isa/index.js';
import type { Insn } from '../isa/index.js';
import type { CtxLayout } from '../smt/ctxmodel.js';

const M64 = (1n << 64n) - 1n;
const M32 = (1n << 32n) - 1n;
export const STACK_SIZE = 512;
/** Address the frame pointer r10 holds in the evaluator; the stack is [FP - 512, FP). */
export const FP = 0x7fff_0000_0000_0000n;
/** Accesses this close to a region but not inside it fault (an out-of-bounds access). */
const GUARD = 1n << 24n;

/** Memory a window may touch besides its stack frame. */
export interface MemRegion {
  kind: 'ctx' | 'pkt' | 'map' | 'mem';
  name: string;
  base: bigint;
  size: number;
  writable: boolean;
}

/** What a test's memory looks like: regions, the context layout, the packet. Shared, never mutated. */
export interface WinEnv {
  regions: MemRegion[];
  ctx?: { base: bigint; layout: CtxLayout };
  pkt?: { base: bigint; len: number };
  /** Initial bytes of non-stack memory (from counterexamples); others are pseudo-random. */
  initial?: Map<bigint, number>;
}

export interface WinState {
  regs: bigint[]; // r0..r10, unsigned 64-bit
  stack: Uint8Array; // 512 bytes, index = address - (FP - 512)
  memSeed: number; // memory outside the stack reads as a fixed pseudo-random function of (seed, address)
  env?: WinEnv;
  wroteStack?: boolean;
  /** Bytes written outside the stack, by address (absent until the first such store). */
  written?: Map<bigint, number>;
  /** `stack` / `written` are still another state's (copied on the first store: clones are cheap). */
  sharedStack?: boolean;
  sharedWritten?: boolean;
  /** The label of the jump that left the window (undefined: fell through). */
  left?: string;
}

/**
 * The byte at a non-stack address: read-only, the same for the original and every candidate.
 * The seed also picks the memory's style, so loaded values are often small or zero (uniformly
 * random bytes would almost never take the branches code tests them with).
 */
export function memByte(seed: number, addr: bigint): number {
  let h = (seed ^ Number(addr & 0xffffffffn) ^ (Number((addr >> 32n) & 0xffffffffn) * 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  switch (seed & 3) {
    case 0: return h & 0xff;
    case 1: return (h >>> 8) % 8 === 0 ? h & 0xff : 0; // mostly zero
    case 2: return (Number(addr & 3n) === 0 && (h >>> 8) % 2 === 0) ? h & 0x0f : 0; // small aligned words
    default: return (h >>> 8) % 4 === 0 ? 0xff : h & 0xff; // many all-ones bytes
  }
}

/**
 * The window left the model (an access the verifier refuses, an instruction not modelled). Not an
 * Error: the search throws millions of them, and capturing a stack trace was a third of its time.
 */
export class Fault {
  constructor(readonly message: string) {}
}

const sext = (v: bigint, bits: number): bigint => BigInt.asUintN(64, BigInt.asIntN(bits, v));
const immU = (imm: number): bigint => BigInt.asUintN(64, BigInt(imm));

function bswap(v: bigint, bytes: number): bigint {
  let out = 0n;
  for (let i = 0; i < bytes; i++) out = (out << 8n) | ((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

export function alu(op: number, a: bigint, b: bigint, bits: 32 | 64, signed: boolean): bigint {
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

/** The region [addr, addr+n) falls in (faults when it is near one but not inside it), or null. */
function regionAt(st: WinState, addr: bigint, n: number, write: boolean): MemRegion | null {
  const rs = st.env?.regions;
  if (!rs) return null;
  for (const r of rs) {
    const hi = r.base + BigInt(r.size);
    if (addr + BigInt(n) <= r.base - GUARD || addr >= hi + GUARD) continue;
    if (addr < r.base || addr + BigInt(n) > hi) throw new Fault(`out-of-bounds ${r.kind} access`);
    if (write && !r.writable) throw new Fault(`store to read-only ${r.name}`);
    return r;
  }
  return null;
}

const outsideByte = (st: WinState, addr: bigint): number => st.written?.get(addr) ?? st.env?.initial?.get(addr) ?? memByte(st.memSeed, addr);

function rawLoad(st: WinState, addr: bigint, size: number): bigint {
  const i = stackIndex(addr, size);
  let v = 0n;
  for (let k = size - 1; k >= 0; k--) v = (v << 8n) | BigInt(i === null ? outsideByte(st, (addr + BigInt(k)) & M64) : st.stack[i + k]!);
  return v;
}

/** A load as the verifier's rewrite of context accesses sees it (packet pointer fields become pointers). */
export function loadAt(st: WinState, addr: bigint, size: number): bigint {
  const r = regionAt(st, addr, size, false);
  if (r?.kind === 'ctx' && st.env?.ctx) {
    const c = st.env.ctx.layout.load(Number(addr - r.base), size);
    if (c.kind === 'fault') throw new Fault(c.reason);
    if (c.kind === 'packet') {
      const p = st.env.pkt;
      if (!p) throw new Fault('packet pointer without a packet');
      return c.field === 'data_end' ? p.base + BigInt(p.len) : p.base;
    }
  }
  return rawLoad(st, addr, size);
}

export function storeAt(st: WinState, addr: bigint, size: number, v: bigint): void {
  const i = stackIndex(addr, size);
  if (i === null) {
    const r = regionAt(st, addr, size, true);
    if (r?.kind === 'ctx' && st.env?.ctx) {
      const why = st.env.ctx.layout.store(Number(addr - r.base), size);
      if (why) throw new Fault(why);
    }
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

/** BPF_ATOMIC on [addr, addr+n): add/or/and/xor (optionally fetching), xchg, cmpxchg (registers `regs`). */
export function atomicAt(st: WinState, insn: Insn, addr: bigint, regs: bigint[] = st.regs): void {
  const n = sizeBytes(insn.code);
  if (n !== 4 && n !== 8) throw new Fault('atomic of a width other than 4 or 8');
  if (addr % BigInt(n) !== 0n) throw new Fault('misaligned atomic');
  const r = regionAt(st, addr, n, true);
  if (r && r.kind !== 'map' && r.kind !== 'mem') throw new Fault(`atomic on ${r.kind} memory`);
  const mask = n === 8 ? M64 : M32;
  const old = rawLoad(st, addr, n);
  const src = regs[insn.src]! & mask;
  const op = insn.imm;
  let nv: bigint;
  switch (op & ~ATOMIC.FETCH) {
    case ATOMIC.ADD: nv = (old + src) & mask; break;
    case ATOMIC.OR: nv = old | src; break;
    case ATOMIC.AND: nv = old & src; break;
    case ATOMIC.XOR: nv = old ^ src; break;
    case ATOMIC.XCHG & ~ATOMIC.FETCH: nv = src; break;
    case ATOMIC.CMPXCHG & ~ATOMIC.FETCH: {
      nv = (regs[0]! & mask) === old ? src : old;
      storeAt(st, addr, n, nv);
      regs[0] = old;
      return;
    }
    default: throw new Fault(`atomic operation ${op}`);
  }
  if ((op & ATOMIC.FETCH) === 0 && op !== ATOMIC.ADD && op !== ATOMIC.OR && op !== ATOMIC.AND && op !== ATOMIC.XOR) throw new Fault(`atomic operation ${op}`);
  storeAt(st, addr, n, nv);
  if (op & ATOMIC.FETCH) regs[insn.src] = old;
}

/** Whether a conditional jump is taken (exact BPF semantics, 64- or 32-bit). */
export function jumpTaken(insn: Insn, regs: readonly bigint[]): boolean {
  const is32 = opClass(insn.code) === CLASS.JMP32;
  const mask = is32 ? M32 : M64;
  const bits = is32 ? 32 : 64;
  const a = regs[insn.dst]! & mask;
  const b = (srcBit(insn.code) === SRC_X ? regs[insn.src]! : immU(insn.imm)) & mask;
  const sa = BigInt.asIntN(bits, a), sb = BigInt.asIntN(bits, b);
  switch (jmpOp(insn.code)) {
    case JMP.JA: return true;
    case JMP.JEQ: return a === b;
    case JMP.JNE: return a !== b;
    case JMP.JGT: return a > b;
    case JMP.JGE: return a >= b;
    case JMP.JLT: return a < b;
    case JMP.JLE: return a <= b;
    case JMP.JSET: return (a & b) !== 0n;
    case JMP.JSGT: return sa > sb;
    case JMP.JSGE: return sa >= sb;
    case JMP.JSLT: return sa < sb;
    case JMP.JSLE: return sa <= sb;
  }
  throw new Fault(`jump operation ${jmpOp(insn.code)}`);
}

type LabeledInsn = Insn & { target?: string; labels?: string[] };

/** `left` when the window ended the program (an ld_abs/ld_ind out of the packet returns 0). */
export const PROGRAM_EXIT = '$exit';

/** Value r1-r5 hold after ld_abs/ld_ind: the kernel clobbers them (the verifier forbids reading them). */
export const CLOBBERED = 0xdead_beef_dead_beefn;

/** Helpers that return a pointer to memory or NULL (map lookups, ring buffer reservations, socket lookups). */
const POINTER_HELPERS = new Set([1, 84, 85, 99, 131, 195]);
const OUTSIDE_BASE = 0x5000_0000_0000_0000n;

/**
 * What a helper call returns in a whole function's window (its tests): a fixed pseudo-random
 * function of the state's seed, the helper and its five argument registers — the same for the
 * original and every candidate that calls it alike — often 0, -1 or small (what code tests
 * results with); a pointer helper returns NULL or an address of pseudo-random memory. Memory the
 * helper would write is not modelled: tests are only a filter, the window checker decides.
 */
export function helperValue(seed: number, id: number, args: readonly bigint[]): bigint {
  let h = (seed ^ Math.imul(id + 1, 0x9e3779b1)) >>> 0;
  for (const a of args) {
    h = Math.imul(h ^ Number(a & 0xffffffffn), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ Number((a >> 32n) & 0xffffffffn), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
  }
  const low = BigInt(h);
  if (POINTER_HELPERS.has(id)) return (h & 3) === 0 ? 0n : OUTSIDE_BASE + ((low << 4n) & 0xffff_fff0n);
  switch (h & 3) {
    case 0: return 0n;
    case 1: return low & 0xffn;
    case 2: return (1n << 64n) - 1n - (low & 7n); // -1 .. -8 (errors)
    default: return ((low << 32n) | BigInt(Math.imul(h, 0x27d4eb2f) >>> 0)) & ((1n << 64n) - 1n);
  }
}

/** The value a map's `ld_imm64` (map fd or map value address) loads in a window's tests: fixed per relocation. */
export function relocatedValue(insn: Insn & { reloc?: { sym: number } }): bigint {
  return OUTSIDE_BASE + 0x1000_0000n + BigInt(insn.reloc?.sym ?? 0) * 0x10_0000n + BigInt(insn.imm >>> 0);
}
export function clobberArgs(r: bigint[]): void {
  for (let k = 1; k <= 5; k++) r[k] = CLOBBERED;
}

/**
 * ld_abs/ld_ind: the big-endian value of `size` bytes at packet offset imm (+ the source
 * register's low 32 bits for ld_ind, a 32-bit signed sum), or null when out of the packet.
 */
export function ldAbs(st: WinState, insn: Insn, srcLo32: number): bigint | null {
  const p = st.env?.pkt;
  if (!p) throw new Fault('ld_abs/ld_ind without packet data');
  const n = sizeBytes(insn.code);
  if (n === 8) throw new Fault('ld_abs/ld_ind of 8 bytes');
  const off = memMode(insn.code) === MODE.IND ? (srcLo32 + insn.imm) | 0 : insn.imm;
  if (off < 0 || off + n > p.len) return null;
  let v = 0n;
  for (let k = 0; k < n; k++) v = (v << 8n) | BigInt(outsideByte(st, p.base + BigInt(off + k)));
  return v;
}

/**
 * Runs `insns` on `st` in place. Control flow: a jump to a label inside the window continues there
 * (forward only); a jump elsewhere leaves the window (`st.left` = its label); `exit` returns
 * (`st.left` = PROGRAM_EXIT); a helper call returns helperValue, a map's `ld_imm64` loads
 * relocatedValue (both only in whole functions' windows). Throws Fault for anything outside the
 * model (bpf-to-bpf calls and kfuncs, backward jumps, faulting accesses).
 */
export function evalWindow(insns: readonly LabeledInsn[], st: WinState): void {
  const r = st.regs;
  let labels: Map<string, number> | null = null;
  for (let pc = 0; pc < insns.length; pc++) {
    const insn = insns[pc]!;
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
      if (insn.dst === REG_FP) throw new Fault('r10 is read-only');
      const size = sizeBytes(insn.code);
      const v = loadAt(st, (r[insn.src]! + immU(insn.off)) & M64, size);
      r[insn.dst] = memMode(insn.code) === MODE.MEMSX ? sext(v, size * 8) : v;
    } else if (cls === CLASS.ST || cls === CLASS.STX) {
      const addr = (r[insn.dst]! + immU(insn.off)) & M64;
      if (cls === CLASS.STX && memMode(insn.code) === MODE.ATOMIC) atomicAt(st, insn, addr);
      else if (memMode(insn.code) !== MODE.MEM) throw new Fault('store mode');
      else storeAt(st, addr, sizeBytes(insn.code), cls === CLASS.ST ? immU(insn.imm) : r[insn.src]!);
    } else if (insn.code === LD_IMM64 && insn.src === 0) {
      if (insn.dst === REG_FP) throw new Fault('r10 is read-only');
      r[insn.dst] = imm64(insn);
    } else if (insn.code === LD_IMM64 && (insn.src === 1 || insn.src === 2) && (insn as { reloc?: unknown }).reloc) {
      r[insn.dst] = relocatedValue(insn); // a map (whole functions' windows)
    } else if (cls === CLASS.JMP && jmpOp(insn.code) === JMP.CALL && insn.src === 0) {
      r[0] = helperValue(st.memSeed, insn.imm, r.slice(1, 6));
      clobberArgs(r);
    } else if (cls === CLASS.LD && (memMode(insn.code) === MODE.ABS || memMode(insn.code) === MODE.IND)) {
      const v = ldAbs(st, insn, Number(r[insn.src]! & M32));
      clobberArgs(r);
      if (v === null) {
        // out of the packet: the program returns 0 (the checker's and the interpreter's rule)
        r[0] = 0n;
        st.left = PROGRAM_EXIT;
        return;
      }
      r[0] = v;
    } else if ((cls === CLASS.JMP || cls === CLASS.JMP32) && jmpOp(insn.code) !== JMP.CALL && jmpOp(insn.code) !== JMP.EXIT && insn.target !== undefined) {
      if (!jumpTaken(insn, r)) continue;
      if (!labels) {
        labels = new Map();
        insns.forEach((i, k) => i.labels?.forEach((l) => labels!.set(l, k)));
      }
      const t = labels.get(insn.target);
      if (t === undefined) {
        st.left = insn.target;
        return;
      }
      if (t <= pc) throw new Fault('backward jump');
      pc = t - 1;
    } else if (cls === CLASS.JMP && jmpOp(insn.code) === JMP.EXIT) {
      // a whole function's window: the function returns (r0 and memory are what the caller sees)
      st.left = PROGRAM_EXIT;
      return;
    } else {
      throw new Fault(`instruction 0x${insn.code.toString(16)} outside the window model`);
    }
  }
}

/** A copy of `s` (memory copied lazily, on the copy's first store: only `store` writes memory). */
export const cloneState = (s: WinState): WinState => ({
  regs: [...s.regs], stack: s.stack, sharedStack: true, memSeed: s.memSeed, ...(s.env ? { env: s.env } : {}),
  ...(s.written ? { written: s.written, sharedWritten: true } : {}),
});

/** Bytes outside the stack on which two end states disagree (either side wrote them). */
export function outsideDifference(a: WinState, b: WinState): number {
  if (a.written === b.written) return 0; // neither wrote (or both still share one map)
  let n = 0;
  const addrs = new Set<bigint>([...(a.written?.keys() ?? []), ...(b.written?.keys() ?? [])]);
  for (const x of addrs) if (outsideByte(a, x) !== outsideByte(b, x)) n++;
  return n;
}
