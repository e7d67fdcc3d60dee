// ALU and atomic instructions of the symbolic machine (machine.ts): exact BPF semantics on terms.
import { ALU, ATOMIC, CLASS, SRC_X, aluOp, opClass, srcBit } from '../isa/index.js';
import type { IrInsn } from '../ir/types.js';
import type { Term } from './term.js';
import type { Machine } from './machine.js';
import { Unsupported, type PathEnd, type State } from './machine-types.js';

export function alu(M: Machine, st: State, insn: IrInsn): void {
  const T = M.T;
  const is64 = opClass(insn.code) === CLASS.ALU64;
  const op = aluOp(insn.code);
  const x = srcBit(insn.code) === SRC_X;
  const d = st.regs[insn.dst]!;
  if (op === ALU.END) {
    const w = insn.imm;
    const low = T.extract(w - 1, 0, d);
    if (!is64 && !x) {
      st.regs[insn.dst] = T.zext(low, 64 - w); // to little endian on a little-endian host: truncate
    } else {
      const bytes: Term[] = [];
      for (let i = 0; i < w / 8; i++) bytes.push(T.extract(8 * i + 7, 8 * i, low));
      st.regs[insn.dst] = T.zext(T.concat(...bytes), 64 - w);
    }
    return;
  }
  const w = is64 ? 64 : 32;
  let bsrc: Term;
  if (x) bsrc = st.regs[insn.src]!;
  else bsrc = T.bv(BigInt(insn.imm), 64); // sign-extended immediate
  if (op === ALU.MOV) {
    let r: Term;
    if (x && insn.off !== 0) r = T.sext(T.extract(insn.off - 1, 0, bsrc), w - insn.off);
    else r = T.resize(bsrc, w);
    st.regs[insn.dst] = T.resize(r, 64);
    return;
  }
  const a = T.resize(d, w);
  const b = T.resize(bsrc, w);
  const zero = T.bv(0n, w);
  let r: Term;
  switch (op) {
    case ALU.ADD: r = T.add(a, b); break;
    case ALU.SUB: r = T.sub(a, b); break;
    case ALU.MUL: r = T.mul(a, b); break;
    case ALU.DIV:
      r = T.ite(T.eq(b, zero), zero, insn.off === 1 ? T.sdiv(a, b) : T.udiv(a, b));
      break;
    case ALU.MOD:
      r = insn.off === 1 ? T.srem(a, b) : T.urem(a, b); // x % 0 = x in both
      break;
    case ALU.OR: r = T.or(a, b); break;
    case ALU.AND: r = T.and(a, b); break;
    case ALU.XOR: r = T.xor(a, b); break;
    case ALU.LSH: r = T.shl(a, T.and(b, T.bv(w - 1, w))); break;
    case ALU.RSH: r = T.lshr(a, T.and(b, T.bv(w - 1, w))); break;
    case ALU.ARSH: r = T.ashr(a, T.and(b, T.bv(w - 1, w))); break;
    case ALU.NEG: r = T.neg(a); break;
    default:
      throw new Unsupported(`ALU operation 0x${op.toString(16)}`);
  }
  st.regs[insn.dst] = T.resize(r, 64);
}

export function atomic(M: Machine, st: State, insn: IrInsn, addr: Term, n: number, ends: PathEnd[]): boolean {
  const T = M.T;
  const w = 8 * n;
  const old = M.load(st, addr, n, ends, 'atomic access');
  if (old === null) return false;
  const srcv = T.resize(st.regs[insn.src]!, w);
  const imm = insn.imm;
  let nv: Term;
  switch (imm & ~ATOMIC.FETCH) {
    case ATOMIC.ADD: nv = T.add(old, srcv); break;
    case ATOMIC.OR: nv = T.or(old, srcv); break;
    case ATOMIC.AND: nv = T.and(old, srcv); break;
    case ATOMIC.XOR: nv = T.xor(old, srcv); break;
    case ATOMIC.XCHG & ~ATOMIC.FETCH: nv = srcv; break;
    case ATOMIC.CMPXCHG & ~ATOMIC.FETCH: {
      const eq = T.eq(T.resize(st.regs[0]!, w), old);
      nv = T.ite(eq, srcv, old);
      if (!M.store(st, addr, n, nv, ends)) return false;
      st.regs[0] = T.resize(old, 64);
      return true;
    }
    default:
      throw new Unsupported(`atomic operation 0x${(imm >>> 0).toString(16)}`);
  }
  if (!M.store(st, addr, n, nv, ends)) return false;
  if (imm & ATOMIC.FETCH) st.regs[insn.src] = T.resize(old, 64);
  return true;
}

