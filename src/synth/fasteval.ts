// The search's hot loop: the window evaluator of eval.ts on registers held as pairs of 32-bit
// words instead of BigInts (BigInt arithmetic and allocation were most of the search's time).
// Same semantics, instruction by instruction (test/synth-eval.test.ts checks the two agree); stack
// accesses are done here, other memory and the rare 64-bit divisions go through eval.ts.
import { ALU, CLASS, JMP, LD_IMM64, MODE, SRC_X, REG_FP } from '../isa/index.js';
import type { Insn } from '../isa/index.js';
import { CLOBBERED, Fault, PROGRAM_EXIT, helperValue, relocatedValue, alu, atomicAt, ldAbs, loadAt, storeAt, STACK_SIZE, type WinState } from './eval.js';

/** A window state for the fast evaluator: registers as words (r[2k] low, r[2k+1] high). */
export interface FastState extends Omit<WinState, 'regs'> {
  r: Uint32Array;
}

type LabeledInsn = Insn & { target?: string; labels?: string[] };

const FP_HI = 0x7ffeffff; // the stack [FP - 512, FP) with FP = 0x7fff_0000_0000_0000
const STACK_LO = 0x1_0000_0000 - STACK_SIZE;

const big = (r: Uint32Array, k: number): bigint => (BigInt(r[2 * k + 1]!) << 32n) | BigInt(r[2 * k]!);
function setBig(r: Uint32Array, k: number, v: bigint): void {
  r[2 * k] = Number(v & 0xffffffffn);
  r[2 * k + 1] = Number((v >> 32n) & 0xffffffffn);
}

/** Full 64-bit product of two 32-bit words, as [lo, hi]. */
function mul32(a: number, b: number, out: Uint32Array): void {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  out[0] = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  out[1] = (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}
const tmp = new Uint32Array(2);

function bswapBytes(lo: number, hi: number, bytes: number, r: Uint32Array, k: number): void {
  if (bytes === 2) {
    r[2 * k] = ((lo & 0xff) << 8) | ((lo >>> 8) & 0xff);
    r[2 * k + 1] = 0;
  } else if (bytes === 4) {
    r[2 * k] = (((lo & 0xff) << 24) | ((lo & 0xff00) << 8) | ((lo >>> 8) & 0xff00) | (lo >>> 24)) >>> 0;
    r[2 * k + 1] = 0;
  } else {
    const sw = (x: number): number => (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
    r[2 * k] = sw(hi);
    r[2 * k + 1] = sw(lo);
  }
}

/** Stack index of an access of `n` bytes at (lo, hi); -1 when wholly outside; straddling faults. */
function stackIdx(lo: number, hi: number, n: number): number {
  if (hi === FP_HI) {
    if (lo >= STACK_LO) {
      if (lo + n > 0x1_0000_0000) throw new Fault('access straddles the stack');
      return lo - STACK_LO;
    }
    if (lo + n > STACK_LO) throw new Fault('access straddles the stack');
    return -1;
  }
  if (hi === FP_HI + 1 && lo === 0) return -1; // FP itself and above
  return -1;
}

/** ALU on 32-bit words: dst (lo only; the high word becomes 0). */
function alu32(op: number, a: number, b: number, signed: boolean): number {
  switch (op) {
    case ALU.ADD: return (a + b) >>> 0;
    case ALU.SUB: return (a - b) >>> 0;
    case ALU.MUL: return Math.imul(a, b) >>> 0;
    case ALU.DIV:
      if (b === 0) return 0;
      if (!signed) return Math.floor(a / b) >>> 0;
      return Number(alu(op, BigInt(a), BigInt(b), 32, true));
    case ALU.MOD:
      if (b === 0) return a;
      if (!signed) return a % b >>> 0;
      return Number(alu(op, BigInt(a), BigInt(b), 32, true));
    case ALU.OR: return (a | b) >>> 0;
    case ALU.AND: return (a & b) >>> 0;
    case ALU.XOR: return (a ^ b) >>> 0;
    case ALU.LSH: return (a << (b & 31)) >>> 0;
    case ALU.RSH: return a >>> (b & 31);
    case ALU.ARSH: return (a >> (b & 31)) >>> 0;
    case ALU.NEG: return -a >>> 0;
    case ALU.MOV: return b;
  }
  throw new Fault(`alu op ${op}`);
}

/** ALU on 64-bit values held as words; writes register `d`. */
function alu64(op: number, r: Uint32Array, d: number, bl: number, bh: number, signed: boolean): void {
  const al = r[2 * d]!, ah = r[2 * d + 1]!;
  let lo: number, hi: number;
  switch (op) {
    case ALU.ADD: {
      const s = al + bl;
      lo = s >>> 0;
      hi = (ah + bh + (s > 0xffffffff ? 1 : 0)) >>> 0;
      break;
    }
    case ALU.SUB:
      lo = (al - bl) >>> 0;
      hi = (ah - bh - (al < bl ? 1 : 0)) >>> 0;
      break;
    case ALU.MUL:
      mul32(al, bl, tmp);
      lo = tmp[0]!;
      hi = (tmp[1]! + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
      break;
    case ALU.OR: lo = (al | bl) >>> 0; hi = (ah | bh) >>> 0; break;
    case ALU.AND: lo = (al & bl) >>> 0; hi = (ah & bh) >>> 0; break;
    case ALU.XOR: lo = (al ^ bl) >>> 0; hi = (ah ^ bh) >>> 0; break;
    case ALU.LSH: {
      const n = bl & 63;
      if (n === 0) { lo = al; hi = ah; } else if (n < 32) { hi = ((ah << n) | (al >>> (32 - n))) >>> 0; lo = (al << n) >>> 0; } else { hi = (al << (n - 32)) >>> 0; lo = 0; }
      break;
    }
    case ALU.RSH: {
      const n = bl & 63;
      if (n === 0) { lo = al; hi = ah; } else if (n < 32) { lo = ((al >>> n) | (ah << (32 - n))) >>> 0; hi = ah >>> n; } else { lo = ah >>> (n - 32); hi = 0; }
      break;
    }
    case ALU.ARSH: {
      const n = bl & 63;
      if (n === 0) { lo = al; hi = ah; } else if (n < 32) { lo = ((al >>> n) | (ah << (32 - n))) >>> 0; hi = (ah >> n) >>> 0; } else { lo = (ah >> (n - 32)) >>> 0; hi = (ah >> 31) >>> 0; }
      break;
    }
    case ALU.NEG:
      lo = -al >>> 0;
      hi = (~ah + (al === 0 ? 1 : 0)) >>> 0;
      break;
    case ALU.MOV: lo = bl; hi = bh; break;
    case ALU.DIV:
    case ALU.MOD: {
      const v = alu(op, (BigInt(ah) << 32n) | BigInt(al), (BigInt(bh) << 32n) | BigInt(bl), 64, signed);
      lo = Number(v & 0xffffffffn);
      hi = Number(v >> 32n);
      break;
    }
    default: throw new Fault(`alu op ${op}`);
  }
  r[2 * d] = lo;
  r[2 * d + 1] = hi;
}

function jumpTakenFast(insn: Insn, r: Uint32Array): boolean {
  const is32 = (insn.code & 7) === CLASS.JMP32;
  const x = (insn.code & SRC_X) !== 0;
  const al = r[2 * insn.dst]!, ah = is32 ? 0 : r[2 * insn.dst + 1]!;
  let bl: number, bh: number;
  if (x) { bl = r[2 * insn.src]!; bh = is32 ? 0 : r[2 * insn.src + 1]!; } else { bl = insn.imm >>> 0; bh = is32 ? 0 : insn.imm < 0 ? 0xffffffff : 0; }
  // unsigned and signed orders over (hi, lo); for 32-bit compares hi is 0 and the sign is lo's
  const ucmp = ah !== bh ? (ah < bh ? -1 : 1) : al !== bl ? (al < bl ? -1 : 1) : 0;
  const scmp = is32 ? ((al | 0) < (bl | 0) ? -1 : (al | 0) > (bl | 0) ? 1 : 0) : ah !== bh ? ((ah | 0) < (bh | 0) ? -1 : 1) : ucmp;
  switch (insn.code & 0xf0) {
    case JMP.JA: return true;
    case JMP.JEQ: return ucmp === 0;
    case JMP.JNE: return ucmp !== 0;
    case JMP.JGT: return ucmp > 0;
    case JMP.JGE: return ucmp >= 0;
    case JMP.JLT: return ucmp < 0;
    case JMP.JLE: return ucmp <= 0;
    case JMP.JSET: return (al & bl) !== 0 || (ah & bh) !== 0;
    case JMP.JSGT: return scmp > 0;
    case JMP.JSGE: return scmp >= 0;
    case JMP.JSLT: return scmp < 0;
    case JMP.JSLE: return scmp <= 0;
  }
  throw new Fault(`jump operation ${insn.code & 0xf0}`);
}

const SIZE_BYTES = [4, 2, 1, 8];

/** Runs `insns` on `st` in place (the semantics of eval.ts's evalWindow). */
export function evalFast(insns: readonly LabeledInsn[], st: FastState): void {
  const r = st.r;
  let labels: Map<string, number> | null = null;
  for (let pc = 0; pc < insns.length; pc++) {
    const insn = insns[pc]!;
    const code = insn.code;
    const cls = code & 7;
    if (cls === CLASS.ALU64 || cls === CLASS.ALU) {
      const d = insn.dst;
      if (d === REG_FP) throw new Fault('r10 is read-only');
      const op = code & 0xf0;
      const x = (code & SRC_X) !== 0;
      if (op === ALU.END) {
        const w = insn.imm;
        const lo = r[2 * d]!, hi = r[2 * d + 1]!;
        if (cls === CLASS.ALU64 || x) bswapBytes(lo, hi, w / 8, r, d);
        else if (w === 16) { r[2 * d] = lo & 0xffff; r[2 * d + 1] = 0; } else if (w === 32) r[2 * d + 1] = 0;
        else if (w !== 64) throw new Fault('byte swap width');
        continue;
      }
      let bl: number, bh: number;
      if (x) { bl = r[2 * insn.src]!; bh = r[2 * insn.src + 1]!; } else { bl = insn.imm >>> 0; bh = insn.imm < 0 ? 0xffffffff : 0; }
      if (op === ALU.MOV && x && insn.off !== 0) {
        // movsx: sign-extend the low `off` bits
        const s = insn.off === 8 ? (bl << 24) >> 24 : insn.off === 16 ? (bl << 16) >> 16 : bl | 0;
        r[2 * d] = s >>> 0;
        r[2 * d + 1] = cls === CLASS.ALU64 && s < 0 ? 0xffffffff : 0;
        continue;
      }
      const signed = insn.off === 1 && (op === ALU.DIV || op === ALU.MOD);
      if (cls === CLASS.ALU) {
        r[2 * d] = alu32(op, r[2 * d]!, bl, signed);
        r[2 * d + 1] = 0;
      } else alu64(op, r, d, bl, bh, signed);
    } else if (cls === CLASS.LDX) {
      if (insn.dst === REG_FP) throw new Fault('r10 is read-only');
      const n = SIZE_BYTES[(code >> 3) & 3]!;
      const s = insn.src;
      const sum = r[2 * s]! + (insn.off >>> 0);
      const lo = sum >>> 0;
      const hi = (r[2 * s + 1]! + (insn.off < 0 ? 0xffffffff : 0) + (sum > 0xffffffff ? 1 : 0)) >>> 0;
      const i = stackIdx(lo, hi, n);
      let vl: number, vh = 0;
      if (i >= 0) {
        const b = st.stack;
        if (n === 1) vl = b[i]!;
        else if (n === 2) vl = b[i]! | (b[i + 1]! << 8);
        else {
          vl = (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
          if (n === 8) vh = (b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16) | (b[i + 7]! << 24)) >>> 0;
        }
      } else {
        const v = loadAt(st as unknown as WinState, (BigInt(hi) << 32n) | BigInt(lo), n);
        vl = Number(v & 0xffffffffn);
        vh = Number(v >> 32n);
      }
      if ((code & 0xe0) === MODE.MEMSX) {
        if (n === 1) vl = (vl << 24) >> 24;
        else if (n === 2) vl = (vl << 16) >> 16;
        vh = n < 8 && (vl | 0) < 0 ? 0xffffffff : vh;
        vl >>>= 0;
      }
      r[2 * insn.dst] = vl;
      r[2 * insn.dst + 1] = vh;
    } else if (cls === CLASS.ST || cls === CLASS.STX) {
      const d = insn.dst;
      const sum = r[2 * d]! + (insn.off >>> 0);
      const lo = sum >>> 0;
      const hi = (r[2 * d + 1]! + (insn.off < 0 ? 0xffffffff : 0) + (sum > 0xffffffff ? 1 : 0)) >>> 0;
      const mode = code & 0xe0;
      if (cls === CLASS.STX && mode === MODE.ATOMIC) {
        // atomics through eval.ts (BigInt registers for the fetched values)
        const regs = [big(r, 0), big(r, insn.src)];
        const tmpRegs: bigint[] = [];
        tmpRegs[0] = regs[0]!;
        tmpRegs[insn.src] = regs[1]!;
        atomicAt(st as unknown as WinState, insn, (BigInt(hi) << 32n) | BigInt(lo), tmpRegs);
        setBig(r, 0, tmpRegs[0]!);
        setBig(r, insn.src, tmpRegs[insn.src]!);
        continue;
      }
      if (mode !== MODE.MEM) throw new Fault('store mode');
      const n = SIZE_BYTES[(code >> 3) & 3]!;
      let vl: number, vh: number;
      if (cls === CLASS.ST) { vl = insn.imm >>> 0; vh = insn.imm < 0 ? 0xffffffff : 0; } else { vl = r[2 * insn.src]!; vh = r[2 * insn.src + 1]!; }
      const i = stackIdx(lo, hi, n);
      if (i >= 0) {
        st.wroteStack = true;
        if (st.sharedStack) {
          st.stack = st.stack.slice();
          st.sharedStack = false;
        }
        const b = st.stack;
        b[i] = vl & 0xff;
        if (n >= 2) b[i + 1] = (vl >>> 8) & 0xff;
        if (n >= 4) { b[i + 2] = (vl >>> 16) & 0xff; b[i + 3] = vl >>> 24; }
        if (n === 8) { b[i + 4] = vh & 0xff; b[i + 5] = (vh >>> 8) & 0xff; b[i + 6] = (vh >>> 16) & 0xff; b[i + 7] = vh >>> 24; }
      } else storeAt(st as unknown as WinState, (BigInt(hi) << 32n) | BigInt(lo), n, (BigInt(vh) << 32n) | BigInt(vl));
    } else if (code === LD_IMM64 && insn.src === 0) {
      if (insn.dst === REG_FP) throw new Fault('r10 is read-only');
      r[2 * insn.dst] = insn.imm >>> 0;
      r[2 * insn.dst + 1] = (insn.imm2 ?? 0) >>> 0;
    } else if (code === LD_IMM64 && (insn.src === 1 || insn.src === 2) && (insn as { reloc?: unknown }).reloc) {
      setBig(r, insn.dst, relocatedValue(insn)); // as eval.ts
    } else if (code === (CLASS.JMP | JMP.CALL) && insn.src === 0) {
      setBig(r, 0, helperValue(st.memSeed, insn.imm, [1, 2, 3, 4, 5].map((k) => big(r, k))));
      for (let k = 1; k <= 5; k++) setBig(r, k, CLOBBERED);
    } else if (cls === CLASS.LD && ((code & 0xe0) === MODE.ABS || (code & 0xe0) === MODE.IND)) {
      const v = ldAbs(st as unknown as WinState, insn, r[2 * insn.src]!);
      for (let k = 1; k <= 5; k++) setBig(r, k, CLOBBERED);
      if (v === null) {
        r[0] = 0;
        r[1] = 0;
        st.left = PROGRAM_EXIT;
        return;
      }
      r[0] = Number(v);
      r[1] = 0;
    } else if ((cls === CLASS.JMP || cls === CLASS.JMP32) && (code & 0xf0) !== JMP.CALL && (code & 0xf0) !== JMP.EXIT && insn.target !== undefined) {
      if (!jumpTakenFast(insn, r)) continue;
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
    } else if (code === (CLASS.JMP | JMP.EXIT)) {
      st.left = PROGRAM_EXIT; // a whole function's window returns (as eval.ts)
      return;
    } else {
      throw new Fault(`instruction 0x${code.toString(16)} outside the window model`);
    }
  }
}

/** Registers of a WinState as words. */
export function toWords(regs: readonly bigint[]): Uint32Array {
  const r = new Uint32Array(22);
  regs.forEach((v, k) => setBig(r, k, v));
  return r;
}

/** A fast copy of a state given as words (memory shared until written, as in eval.ts). */
export function fastClone(s: WinState, words: Uint32Array): FastState {
  // one object shape for every clone (the hot loop makes millions)
  return {
    r: words.slice(), stack: s.stack, sharedStack: true, memSeed: s.memSeed, env: s.env,
    written: s.written, sharedWritten: s.written !== undefined, wroteStack: false, left: undefined,
  };
}
