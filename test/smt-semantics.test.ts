import test from 'ava';
import { ALU, ATOMIC, CLASS, JMP, MODE, SIZE, SRC_K, SRC_X } from '../src/isa/index.js';
import type { IrInsn } from '../src/ir/types.js';
import { Terms, mask } from '../src/smt/term.js';
import { Machine, State } from '../src/smt/machine.js';
import { codeEnv } from '../src/smt/codeenv.js';
import { Env, Evaluator } from '../src/smt/eval.js';
import { rng } from '../src/smt/decide.js';
import { runWindow, windowObservations } from '../src/smt/replay.js';
import type { Counterexample } from '../src/smt/types.js';

// The symbolic semantics against the interpreter (itself checked against the kernel): random
// straight-line windows with branches out, random register and stack contents; every observable
// (exit taken, r0..r9, stack bytes written) must agree.

const ALU_OPS = [ALU.ADD, ALU.SUB, ALU.MUL, ALU.DIV, ALU.OR, ALU.AND, ALU.LSH, ALU.RSH, ALU.NEG, ALU.MOD, ALU.XOR, ALU.MOV, ALU.ARSH];
const JMP_OPS = [JMP.JEQ, JMP.JGT, JMP.JGE, JMP.JSET, JMP.JNE, JMP.JSGT, JMP.JSGE, JMP.JLT, JMP.JLE, JMP.JSLT, JMP.JSLE];
const SIZES: [number, number][] = [[SIZE.B, 1], [SIZE.H, 2], [SIZE.W, 4], [SIZE.DW, 8]];

function genInsn(r: () => number): IrInsn {
  const int = (n: number): number => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const reg = (): number => int(6);
  const imm = (): number => pick([0, 1, -1, 2, 7, 31, 32, 63, 64, 255, -256, 0x7fffffff, -0x80000000, int(1 << 16), (int(2 ** 32) | 0)]);
  const stackOff = (size: number): number => -8 * (1 + int(4)) + size * int(8 / size);
  const k = int(20);
  if (k < 9) {
    const cls = int(2) ? CLASS.ALU64 : CLASS.ALU;
    const op = pick(ALU_OPS);
    const x = int(2) === 0;
    let off = 0;
    if ((op === ALU.DIV || op === ALU.MOD) && int(2)) off = 1;
    if (op === ALU.NEG) return { code: cls | op, dst: reg(), src: 0, off: 0, imm: 0 };
    if (op === ALU.MOV && x && int(3) === 0) off = pick(cls === CLASS.ALU64 ? [8, 16, 32] : [8, 16]);
    return { code: cls | op | (x ? SRC_X : SRC_K), dst: reg(), src: x ? reg() : 0, off, imm: x ? 0 : imm() };
  }
  if (k < 10) {
    const w = pick([16, 32, 64]);
    const form = int(3);
    const code = form === 0 ? CLASS.ALU | ALU.END | SRC_K : form === 1 ? CLASS.ALU | ALU.END | SRC_X : CLASS.ALU64 | ALU.END;
    return { code, dst: reg(), src: 0, off: 0, imm: w };
  }
  if (k < 13) {
    const [sz, n] = pick(SIZES);
    if (int(2)) return { code: CLASS.STX | MODE.MEM | sz, dst: 10, src: reg(), off: stackOff(n), imm: 0 };
    return { code: CLASS.ST | MODE.MEM | sz, dst: 10, src: 0, off: stackOff(n), imm: imm() };
  }
  if (k < 16) {
    const [sz, n] = pick(SIZES);
    const sx = n < 8 && int(3) === 0;
    return { code: CLASS.LDX | (sx ? MODE.MEMSX : MODE.MEM) | sz, dst: reg(), src: 10, off: stackOff(n), imm: 0 };
  }
  if (k < 17) {
    const [sz, n] = pick([[SIZE.W, 4], [SIZE.DW, 8]] as [number, number][]);
    const aop = pick([ATOMIC.ADD, ATOMIC.OR, ATOMIC.AND, ATOMIC.XOR, ATOMIC.ADD | ATOMIC.FETCH, ATOMIC.XOR | ATOMIC.FETCH, ATOMIC.XCHG, ATOMIC.CMPXCHG]);
    return { code: CLASS.STX | MODE.ATOMIC | sz, dst: 10, src: reg(), off: stackOff(n), imm: aop };
  }
  const cls = int(2) ? CLASS.JMP : CLASS.JMP32;
  const x = int(2) === 0;
  return { code: cls | pick(JMP_OPS) | (x ? SRC_X : SRC_K), dst: reg(), src: x ? reg() : 0, off: 0, imm: x ? 0 : imm(), target: 'out' };
}

test('symbolic semantics agree with the interpreter on random windows and inputs', (t) => {
  const r = rng(2024);
  let compared = 0;
  for (let n = 0; n < 250; n++) {
    const len = 3 + Math.floor(r() * 6);
    const w: IrInsn[] = [];
    for (let i = 0; i < len; i++) w.push(genInsn(r));
    // entry state
    const vars: Record<string, string> = {};
    const env = new Env(() => 0n, () => 0n);
    for (let i = 0; i < 10; i++) {
      const pick = Math.floor(r() * 5);
      const v = pick === 0 ? 0n : pick === 1 ? mask(64) : pick === 2 ? BigInt(Math.floor(r() * 300)) : pick === 3 ? (1n << 63n) | BigInt(Math.floor(r() * 9)) : BigInt(Math.floor(r() * 2 ** 32)) * BigInt(Math.floor(r() * 2 ** 32)) + BigInt(Math.floor(r() * 2 ** 32));
      vars[`r${i}`] = (v & mask(64)).toString();
      env.vars.set(`r${i}`, v & mask(64));
    }
    const stack: Record<string, number> = {};
    const mem = new Map<bigint, bigint>();
    for (let o = -32; o < 0; o++) {
      const b = Math.floor(r() * 256);
      stack[String(o)] = b;
      mem.set(BigInt.asUintN(64, BigInt(o)), BigInt(b));
    }
    env.arrays.set('mem:stack0', mem);
    // symbolic run, evaluated on the entry state
    const T = new Terms();
    const M = new Machine(T, codeEnv(new Map([['W', w]]), undefined, 'xdp', false), { memTypes: true, mapTypes: true, offsets: true, maxPaths: 1000, maxSteps: 1000 });
    const regs = [];
    for (let i = 0; i < 10; i++) regs.push(T.var(`r${i}`, 64));
    regs.push(M.stackRegion(0).base);
    const ends = M.run('W', 0, new State(regs, T.T));
    const ev = new Evaluator(env);
    const taken = ends.filter((e) => ev.bool(e.pc));
    t.is(taken.length, 1, 'exactly one path holds');
    const end = taken[0]!;
    t.is(end.kind, 'leave');
    const cex: Counterexample = { regs: {}, packet: null, packetLen: null, ctx: null, stack, maps: {}, helpers: {}, difference: { what: '', a: '', b: '' }, vars, arrays: {} };
    for (const obs of windowObservations([w], {})) {
      const out = runWindow(w, ['out'], {}, cex, obs);
      if (out.status !== 'exit') {
        t.fail(`interpreter faulted (${out.fault?.reason}) on ${JSON.stringify(w)}`);
        return;
      }
      let mine: bigint;
      if (obs.name === 'end') mine = end.label === 'out' ? 1n : 0n;
      else if (obs.name.startsWith('r')) mine = ev.bv(end.state.regs[Number(obs.name.slice(1))]!);
      else {
        const o = BigInt(obs.name.slice('stack'.length));
        const m = end.state.mems.get('stack0');
        mine = m ? ev.bv(M.peek(m, T.bv(BigInt.asUintN(64, o), 64))) : mem.get(BigInt.asUintN(64, o)) ?? 0n;
      }
      if (BigInt(out.r0) !== mine) {
        t.fail(`${obs.name}: interpreter ${BigInt(out.r0).toString(16)} vs symbolic ${mine.toString(16)} on window ${JSON.stringify(w)} with ${JSON.stringify(vars)}`);
        return;
      }
      compared++;
    }
  }
  t.true(compared > 2500);
});
