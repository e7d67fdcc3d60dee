// Conditional jumps (check_cond_jmp_op): decided branches, bounds refinement of scalars and their
// linked copies, null checks of nullable pointers, and packet pointer comparisons.
import { CLASS, JMP, SRC_X, jmpOp, opClass, srcBit } from '../isa/index.js';
import { branchTaken, constValue, isConst, negate, refine, scalarConst, type CmpOp, type Scalar } from './scalar.js';
import { MEM_FLAG, RT, ZERO_REG, cloneState, cur, mapAllRegs, scalarReg, type Reg, type State } from './state.js';
import { BTF_FLAG } from './btfaccess.js';
import { MAX_PACKET_OFF, type Env, type Step } from './env.js';
import { readReg } from './regs.js';
import type { SafetyInsn } from './program.js';

const CMP_OPS: Record<number, CmpOp> = {
  [JMP.JEQ]: 'eq', [JMP.JNE]: 'ne', [JMP.JGT]: 'gt', [JMP.JGE]: 'ge', [JMP.JSET]: 'set', [JMP.JSGT]: 'sgt',
  [JMP.JSGE]: 'sge', [JMP.JLT]: 'lt', [JMP.JLE]: 'le', [JMP.JSLT]: 'slt', [JMP.JSLE]: 'sle',
};

/** JA and conditional jumps (calls and exits are in calls.ts). */
export function jmp(env: Env, st: State, insn: SafetyInsn, pc: number): Step {
  const cls = opClass(insn.code);
  const op = jmpOp(insn.code);
  const x = srcBit(insn.code) === SRC_X;
  if (op === JMP.JA) {
    if (cls === CLASS.JMP && (insn.imm !== 0 || insn.src !== 0 || insn.dst !== 0 || x)) env.fail('BPF_JA uses reserved fields');
    if (cls === CLASS.JMP32 && (insn.off !== 0 || insn.src !== 0 || insn.dst !== 0 || x)) env.fail('BPF_JA uses reserved fields');
    return { next: insn.tgt };
  }
  const cmp = CMP_OPS[op];
  if (!cmp) env.fail(`invalid BPF_JMP/JMP32 opcode ${op >> 4}`);
  if (x ? insn.imm !== 0 : insn.src !== 0) env.fail('BPF_JMP/JMP32 uses reserved fields');
  const is32 = cls === CLASS.JMP32;
  const a = readReg(env, st, insn.dst);
  const b = x ? readReg(env, st, insn.src) : scalarReg(scalarConst(BigInt(insn.imm)));
  if (a.t === RT.SCALAR && b.t === RT.SCALAR) {
    const t = branchTaken(cmp, a.s, b.s, is32);
    // A decided branch depends on the operands' values (check_cond_jmp_op).
    if (t !== -1) { if (x) env.markPrecise(st, insn.dst, insn.src); else env.markPrecise(st, insn.dst); }
    if (t === 1) return { next: insn.tgt };
    if (t === 0) return { next: pc + 1 };
    const other = cloneState(st);
    refineBranch(env, other, insn, cmp, is32, x); // jump taken: cmp holds
    const neg = negate(cmp);
    if (neg) refineBranch(env, st, insn, neg, is32, x);
    return { fork: [{ state: st, pc: pc + 1}, { state: other, pc: insn.tgt}] };
  }
  // A pointer the verifier knows is not NULL compared with a constant 0 (JEQ/JNE): decided (is_branch_taken).
  const decided = ptrBranchTaken(a, b, cmp, is32);
  if (decided !== -1) {
    if (a.t === RT.SCALAR) env.markPrecise(st, insn.dst);
    else if (x && b.t === RT.SCALAR) env.markPrecise(st, insn.src);
    return { next: decided ? insn.tgt : pc + 1 };
  }
  // A null check: `if rX == 0` / `if rX != 0` with an immediate 0 on a nullable pointer (64-bit only).
  if (!is32 && !x && insn.imm === 0 && (cmp === 'eq' || cmp === 'ne') && a.nul) {
    const other = cloneState(st);
    // On the jump edge of `== 0` the pointer is NULL; of `!= 0` it is not.
    markNull(other, a.id, cmp === 'eq');
    markNull(st, a.id, cmp !== 'eq');
    return { fork: [{ state: st, pc: pc + 1 }, { state: other, pc: insn.tgt }] };
  }
  // Any other comparison involving a pointer is allowed for privileged programs and teaches the
  // verifier nothing, except packet pointers compared with the packet end (try_match_pkt_pointers).
  const other = cloneState(st);
  if (x && !is32) pktCompare(env, st, other, insn, cmp, a, b);
  return { fork: [{ state: st, pc: pc + 1 }, { state: other, pc: insn.tgt }] };
}

/** reg_not_null: pointer types the verifier knows cannot be NULL. */
function notNull(r: Reg): boolean {
  if (r.nul) return false;
  switch (r.t) {
    case RT.MAP_VALUE: case RT.MAP_PTR: case RT.SOCKET: case RT.SOCK_COMMON: case RT.TCP_SOCK: return true;
    case RT.BTF_ID: return (r.flags & BTF_FLAG.TRUSTED) !== 0;
    case RT.MEM: return (r.flags & MEM_FLAG.UNTRUSTED) === 0;
    default: return false;
  }
}

/** is_branch_taken for a pointer operand: 1 taken, 0 not taken, -1 unknown. */
function ptrBranchTaken(a: Reg, b: Reg, cmp: CmpOp, is32: boolean): 1 | 0 | -1 {
  let p = a, c = b;
  if (c.t !== RT.SCALAR) { p = b; c = a; }
  if (c.t !== RT.SCALAR || p.t === RT.SCALAR || !isConst(c.s) || !notNull(p)) return -1;
  const v = is32 ? constValue(c.s) & 0xffffffffn : constValue(c.s);
  if (v !== 0n) return -1;
  return cmp === 'eq' ? 0 : cmp === 'ne' ? 1 : -1;
}

/** Applies `dst op src` to the operands in `st` and to their linked copies. */
function refineBranch(env: Env, st: State, insn: SafetyInsn, op: CmpOp, is32: boolean, x: boolean): void {
  const regs = cur(st).regs;
  const a = regs[insn.dst]!;
  const b = x ? regs[insn.src]! : scalarReg(scalarConst(BigInt(insn.imm)));
  let [ra, rb] = refine(op, a.s, b.s, is32);
  if (op === 'eq' && !is32 && x && insn.src !== insn.dst) {
    // Equal scalars are the same scalar.
    void 0;
  }
  setScalar(st, insn.dst, a, ra);
  if (x) setScalar(st, insn.src, cur(st).regs[insn.src]!, rb);
  void rb;
}

function setScalar(st: State, r: number, old: Reg, s: Scalar): void {
  const nreg: Reg = { ...old, s };
  cur(st).regs[r] = nreg;
  if (old.id) mapAllRegs(st, (q) => (q.t === RT.SCALAR && q.id === old.id ? nreg : undefined));
}

function markNull(st: State, id: number, isNull: boolean): void {
  if (!id) return;
  let ref = 0;
  mapAllRegs(st, (q) => {
    if (!q.nul || q.id !== id) return undefined;
    // A NULL acquired object holds nothing (its reference is its own id); casts keep the original's.
    if (q.ref && q.ref === q.id) ref = q.ref;
    return isNull ? ZERO_REG : { ...q, nul: false };
  });
  if (isNull && ref) st.refs = st.refs.filter((x) => x !== ref);
}

/** try_match_pkt_pointers: comparisons of packet pointers against the packet end. */
function pktCompare(env: Env, fall: State, jump: State, insn: SafetyInsn, op: CmpOp, a: Reg, b: Reg): void {
  // Only pkt vs pkt_end and pkt_meta vs an unmodified pkt pointer are recognised (as the kernel does).
  let data: Reg, dataIsDst: boolean;
  if (a.t === RT.PKT && b.t === RT.PKT_END) { data = a; dataIsDst = true; }
  else if (a.t === RT.PKT_END && b.t === RT.PKT) { data = b; dataIsDst = false; }
  else if (a.t === RT.PKT_META && b.t === RT.PKT && b.off === 0 && isConst(b.s) && constValue(b.s) === 0n) { data = a; dataIsDst = true; }
  else if (a.t === RT.PKT && b.t === RT.PKT_META && a.off === 0 && isConst(a.s) && constValue(a.s) === 0n) { data = b; dataIsDst = false; }
  else return;
  // Normalise to `data OP end`.
  const o = dataIsDst ? op : ({ gt: 'lt', ge: 'le', lt: 'gt', le: 'ge' } as Record<string, CmpOp>)[op];
  if (!o) return;
  const dataReg = dataIsDst ? insn.dst : insn.src;
  const endIsPkt = a.t === RT.PKT_END || b.t === RT.PKT_END;
  // mark_pkt_end: on the edge where data' is at or beyond the end, nothing can be read through it.
  const beyond = (st: State) => { if (endIsPkt && data.t === RT.PKT) cur(st).regs[dataReg] = { ...data, range: -1 }; };
  switch (o) {
    case 'gt': goodPkt(fall, data, false); beyond(jump); break; // data > end jumps; fall-through: data <= end
    case 'ge': goodPkt(fall, data, true); beyond(jump); break; // fall-through: data < end
    case 'lt': goodPkt(jump, data, true); beyond(fall); break; // jump: data < end
    case 'le': goodPkt(jump, data, false); beyond(fall); break; // jump: data <= end
  }
}

function goodPkt(st: State, p: Reg, rightOpen: boolean): void {
  if (p.off < 0 || (p.off === 0 && rightOpen)) return;
  if (p.s.umax > BigInt(MAX_PACKET_OFF) || p.s.umax + BigInt(p.off) > BigInt(MAX_PACKET_OFF)) return;
  const range = p.off - (rightOpen ? 1 : 0);
  mapAllRegs(st, (q) => (q.t === p.t && q.id === p.id && q.range < range ? { ...q, range } : undefined));
}
