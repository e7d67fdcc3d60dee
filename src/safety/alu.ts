// ALU instructions (check_alu_op): reserved fields, scalar arithmetic on the tnum/bounds domain
// (scalar.ts), and pointer arithmetic (adjust_ptr_min_max_vals).
import { ALU, CLASS, SRC_X, aluOp, opClass, srcBit } from '../isa/index.js';
import {
  S64_MIN, UNKNOWN, alu32, alu64, constValue, isConst, scalarConst, scalarURange, zext32, type AluOp, type Scalar,
} from './scalar.js';
import { RT, RT_NAME, UNKNOWN_REG, cur, isPtr, isSockType, scalarReg, type Reg, type State } from './state.js';
import { BPF_MAX_VAR_OFF, type Env } from './env.js';
import { readReg, writeReg } from './regs.js';
import type { SafetyInsn } from './program.js';

const ALU_OPS: Record<number, AluOp> = {
  [ALU.ADD]: 'add', [ALU.SUB]: 'sub', [ALU.MUL]: 'mul', [ALU.AND]: 'and', [ALU.OR]: 'or', [ALU.XOR]: 'xor',
  [ALU.LSH]: 'lsh', [ALU.RSH]: 'rsh', [ALU.ARSH]: 'arsh',
};
/** A CO-RE immediate k2 knows only as a range (exact values are patched into the instruction at link time). */
function coreRange(insn: SafetyInsn): Scalar | null {
  const cv = insn.coreVal;
  if (!cv || cv.lo === cv.hi) return null;
  // Immediates are sign-extended 32-bit values: a range beyond 2^31 is not a plain unsigned range.
  return cv.lo >= 0n && cv.hi <= 0x7fffffffn ? scalarURange(cv.lo, cv.hi) : UNKNOWN;
}

/** Exact result of an ALU operation on two constants (the kernel's tnums give the same). */
function constAlu(op: AluOp, x: bigint, y: bigint, is64: boolean): Scalar {
  const w = is64 ? 64 : 32;
  const m = is64 ? (1n << 64n) - 1n : 0xffffffffn;
  const a = x & m, b = y & m;
  const k = BigInt(Number(b & BigInt(w - 1)));
  let r: bigint;
  switch (op) {
    case 'add': r = a + b; break;
    case 'sub': r = a - b; break;
    case 'mul': r = a * b; break;
    case 'and': r = a & b; break;
    case 'or': r = a | b; break;
    case 'xor': r = a ^ b; break;
    case 'lsh': if (b >= BigInt(w)) return is64 ? UNKNOWN : zext32(UNKNOWN); r = a << k; break;
    case 'rsh': if (b >= BigInt(w)) return is64 ? UNKNOWN : zext32(UNKNOWN); r = a >> k; break;
    case 'arsh': if (b >= BigInt(w)) return is64 ? UNKNOWN : zext32(UNKNOWN); r = BigInt.asUintN(w, BigInt.asIntN(w, a) >> k); break;
  }
  return scalarConst(r & m);
}

export function alu(env: Env, st: State, insn: SafetyInsn): void {
  const is64 = opClass(insn.code) === CLASS.ALU64;
  const op = aluOp(insn.code);
  const x = srcBit(insn.code) === SRC_X;
  // Reserved fields (check_alu_op).
  if (op === ALU.NEG) {
    if (x || insn.src !== 0 || insn.off !== 0 || insn.imm !== 0) env.fail('BPF_NEG uses reserved fields');
  } else if (op === ALU.END) {
    if (insn.off !== 0 || insn.src !== 0 || ![16, 32, 64].includes(insn.imm) || (is64 && x)) env.fail('BPF_END uses reserved fields');
  } else if (op === ALU.MOV) {
    if (x) {
      if (insn.imm !== 0 || !(is64 ? [0, 8, 16, 32] : [0, 8, 16]).includes(insn.off)) env.fail('BPF_MOV uses reserved fields');
    } else if (insn.src !== 0 || insn.off !== 0) env.fail('BPF_MOV uses reserved fields');
  } else if (op > ALU.END) {
    env.fail(`invalid BPF_ALU opcode ${op >> 4}`);
  } else {
    const divmod = op === ALU.DIV || op === ALU.MOD;
    if (x ? insn.imm !== 0 : insn.src !== 0) env.fail('BPF_ALU uses reserved fields');
    if (insn.off !== 0 && !(divmod && insn.off === 1)) env.fail('BPF_ALU uses reserved fields');
    const cv = insn.coreVal && insn.coreVal.lo !== insn.coreVal.hi ? insn.coreVal : null;
    if (divmod && !x && (cv ? cv.lo === 0n : insn.imm === 0)) env.fail('div by zero');
    if ((op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH) && !x &&
        (cv ? cv.hi >= (is64 ? 64n : 32n) : insn.imm < 0 || insn.imm >= (is64 ? 64 : 32))) {
      env.fail(`invalid shift ${insn.imm}`);
    }
  }
  const regs = cur(st).regs;
  if (op === ALU.MOV) {
    if (!x) {
      const cr = coreRange(insn);
      if (cr) { writeReg(env, st, insn.dst, scalarReg(cr)); return; }
      writeReg(env, st, insn.dst, scalarReg(is64 ? scalarConst(BigInt(insn.imm)) : scalarConst(BigInt(insn.imm >>> 0))));
      return;
    }
    const src = readReg(env, st, insn.src);
    if (insn.dst === 10) env.fail('frame pointer is read only');
    if (insn.off !== 0) {
      if (isPtr(src)) env.fail(`R${insn.src} sign-extension part of pointer`);
      writeReg(env, st, insn.dst, scalarReg(is64 ? UNKNOWN : zext32(UNKNOWN)));
      return;
    }
    if (!is64) {
      writeReg(env, st, insn.dst, scalarReg(isPtr(src) ? zext32(UNKNOWN) : zext32(src.s)));
      return;
    }
    if (src.t === RT.SCALAR && insn.src !== insn.dst) {
      let s = src;
      if (s.id === 0) {
        s = { ...s, id: env.newId() };
        regs[insn.src] = s;
      }
      writeReg(env, st, insn.dst, s);
      return;
    }
    writeReg(env, st, insn.dst, src);
    return;
  }
  const src = x && op !== ALU.END ? readReg(env, st, insn.src) : null;
  const dst = readReg(env, st, insn.dst);
  if (insn.dst === 10) env.fail('frame pointer is read only');
  if (isPtr(dst) || (src && isPtr(src))) {
    if (!is64) {
      // Privileged: a 32-bit subtraction involving a pointer yields an unknown scalar.
      if (op === ALU.SUB) { writeReg(env, st, insn.dst, UNKNOWN_REG); return; }
      env.fail(`R${insn.dst} 32-bit pointer arithmetic prohibited`);
    }
    // The scalar operand's value becomes part of the pointer: it must be precise.
    if (src && !isPtr(src)) env.markPrecise(st, insn.src);
    else if (src && !isPtr(dst)) env.markPrecise(st, insn.dst);
    writeReg(env, st, insn.dst, ptrAlu(env, insn, op, dst, src));
    return;
  }
  const a = dst.s;
  const b = src ? src.s : coreRange(insn) ?? scalarConst(BigInt(insn.imm));
  const name = ALU_OPS[op];
  let r: Scalar;
  if (name && isConst(a) && isConst(b)) r = constAlu(name, a.t.v, b.t.v, is64);
  else if (name) r = is64 ? alu64(name, a, b) : alu32(name, a, b);
  else r = is64 ? UNKNOWN : zext32(UNKNOWN); // div, mod, neg, end: not tracked
  writeReg(env, st, insn.dst, scalarReg(r));
}

/** adjust_ptr_min_max_vals, 64-bit ADD/SUB of a pointer and a scalar. */
function ptrAlu(env: Env, insn: SafetyInsn, op: number, dst: Reg, src: Reg | null): Reg {
  const opName = op === ALU.ADD ? 'add' : op === ALU.SUB ? 'sub' : null;
  if (src && isPtr(dst) && isPtr(src)) {
    if (op === ALU.SUB) return UNKNOWN_REG; // privileged: pointer difference is an unknown scalar
    env.fail(`R${insn.dst} pointer ${RT_NAME[dst.t]} ${RT_NAME[src.t]} prohibited`);
  }
  if (!opName) env.fail(`R${insn.dst} pointer arithmetic with ALU op 0x${op.toString(16)} prohibited`);
  let ptr: Reg, off: Scalar;
  if (isPtr(dst)) {
    ptr = dst;
    off = src ? src.s : coreRange(insn) ?? scalarConst(BigInt(insn.imm));
  } else {
    if (op === ALU.SUB) env.fail(`R${insn.dst} tried to subtract pointer from scalar`);
    ptr = src!;
    off = dst.s;
  }
  if (ptr.nul) env.fail(`R${insn.dst} pointer arithmetic on ${RT_NAME[ptr.t]}_or_null prohibited, null-check it first`);
  if (ptr.t === RT.MAP_PTR || ptr.t === RT.PKT_END || ptr.t === RT.FUNC || isSockType(ptr.t)) env.fail(`R${insn.dst} pointer arithmetic on ${RT_NAME[ptr.t]} prohibited`);
  const known = isConst(off);
  if (known) {
    const v = BigInt.asIntN(64, constValue(off));
    if (v >= BigInt(BPF_MAX_VAR_OFF) || v <= -BigInt(BPF_MAX_VAR_OFF)) env.fail(`math between ${RT_NAME[ptr.t]} pointer and ${v} is not allowed`);
    const noff = ptr.off + (opName === 'add' ? Number(v) : -Number(v));
    if (noff >= BPF_MAX_VAR_OFF || noff <= -BPF_MAX_VAR_OFF) env.fail(`${RT_NAME[ptr.t]} pointer offset ${noff} is not allowed`);
    return { ...ptr, off: noff };
  }
  if (off.smin === S64_MIN) env.fail(`math between ${RT_NAME[ptr.t]} pointer and register with unbounded min value is not allowed`);
  if (off.smin >= BigInt(BPF_MAX_VAR_OFF) || off.smin <= -BigInt(BPF_MAX_VAR_OFF)) env.fail(`value ${off.smin} makes ${RT_NAME[ptr.t]} pointer be out of bounds`);
  if (off.smax >= BigInt(BPF_MAX_VAR_OFF)) env.fail(`value ${off.smax} makes ${RT_NAME[ptr.t]} pointer be out of bounds`);
  const v = alu64(opName, ptr.s, off);
  if (v.smin <= -BigInt(BPF_MAX_VAR_OFF) || v.smax >= BigInt(BPF_MAX_VAR_OFF)) env.fail(`${RT_NAME[ptr.t]} pointer variable offset is out of bounds`);
  if (ptr.t === RT.PKT || ptr.t === RT.PKT_META) return { ...ptr, s: v, id: env.newId(), range: 0 };
  return { ...ptr, s: v };
}
