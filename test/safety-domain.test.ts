import test from 'ava';
import fc from 'fast-check';
import {
  U64, alu32, alu64, branchTaken, isEmpty, refine, scalarConst, scalarURange, tnumIn, tnumRange, type AluOp, type CmpOp, type Scalar,
} from '../src/safety/scalar.js';
import { checkInsns, rawMap, MAP_TYPE } from '../src/safety/index.js';
import { ALU, CLASS, JMP, MODE, SIZE, SRC_X, LD_IMM64, PSEUDO } from '../src/isa/index.js';
import type { IrInsn } from '../src/ir/types.js';

// ---- scalar domain: soundness against concrete 64-bit arithmetic ----

const contains = (s: Scalar, x: bigint): boolean => {
  const u = BigInt.asUintN(64, x);
  const sx = BigInt.asIntN(64, x);
  const l = u & 0xffffffffn;
  return u >= s.umin && u <= s.umax && sx >= s.smin && sx <= s.smax && l >= s.u32min && l <= s.u32max &&
    BigInt.asIntN(32, l) >= s.s32min && BigInt.asIntN(32, l) <= s.s32max && (u & ~s.t.m & U64) === s.t.v;
};

const concrete = (op: AluOp, a: bigint, b: bigint, w: 32 | 64): bigint => {
  const m = w === 64 ? U64 : 0xffffffffn;
  const x = a & m, y = b & m, k = y & BigInt(w - 1);
  switch (op) {
    case 'add': return (x + y) & m;
    case 'sub': return (x - y) & m;
    case 'mul': return (x * y) & m;
    case 'and': return x & y;
    case 'or': return x | y;
    case 'xor': return x ^ y;
    case 'lsh': return (x << k) & m;
    case 'rsh': return x >> k;
    case 'arsh': return BigInt.asUintN(w, (w === 64 ? BigInt.asIntN(64, x) : BigInt.asIntN(32, x)) >> k);
  }
};

// An abstract value around a concrete one: a random range containing it.
const arbAbs = fc.tuple(fc.bigInt({ min: 0n, max: U64 }), fc.bigInt({ min: 0n, max: 1n << 20n }), fc.bigInt({ min: 0n, max: 1n << 20n }), fc.boolean()).map(([x, lo, hi, exact]) => {
  if (exact) return { x, s: scalarConst(x) };
  const a = x >= lo ? x - lo : 0n;
  const b = x + hi > U64 ? U64 : x + hi;
  return { x, s: scalarURange(a, b) };
});
const arbOp = fc.constantFrom<AluOp>('add', 'sub', 'mul', 'and', 'or', 'xor', 'lsh', 'rsh', 'arsh');

test('64-bit and 32-bit ALU results contain the concrete result', (t) => {
  fc.assert(fc.property(arbAbs, arbAbs, arbOp, ({ x, s: sa }, { x: y0, s: sb0 }, op) => {
    // Shifts only with in-range constant amounts (others are rejected or unknown).
    const y = op === 'lsh' || op === 'rsh' || op === 'arsh' ? y0 & 31n : y0;
    const sb = op === 'lsh' || op === 'rsh' || op === 'arsh' ? scalarConst(y) : sb0;
    if (!contains(sb, y)) return;
    const r64 = alu64(op, sa, sb);
    t.true(contains(r64, concrete(op, x, y, 64)), `${op} 64`);
    const r32 = alu32(op, sa, sb);
    t.true(contains(r32, concrete(op, x, y, 32)), `${op} 32`);
  }), { numRuns: 3000 });
});

const cmpHolds = (op: CmpOp, a: bigint, b: bigint, is32: boolean): boolean => {
  const w = is32 ? 32 : 64;
  const ua = BigInt.asUintN(w, a), ub = BigInt.asUintN(w, b);
  const sa = BigInt.asIntN(w, a), sb = BigInt.asIntN(w, b);
  switch (op) {
    case 'eq': return ua === ub; case 'ne': return ua !== ub;
    case 'gt': return ua > ub; case 'ge': return ua >= ub; case 'lt': return ua < ub; case 'le': return ua <= ub;
    case 'sgt': return sa > sb; case 'sge': return sa >= sb; case 'slt': return sa < sb; case 'sle': return sa <= sb;
    case 'set': return (ua & ub) !== 0n;
  }
};

test('branch decisions and refinements keep every concrete value that takes the branch', (t) => {
  const ops: CmpOp[] = ['eq', 'ne', 'gt', 'ge', 'lt', 'le', 'sgt', 'sge', 'slt', 'sle', 'set'];
  fc.assert(fc.property(arbAbs, arbAbs, fc.constantFrom(...ops), fc.boolean(), ({ x, s: sa }, { x: y, s: sb }, op, is32) => {
    const holds = cmpHolds(op, x, y, is32);
    const taken = branchTaken(op, sa, sb, is32);
    if (taken === 1) t.true(holds);
    if (taken === 0) t.false(holds);
    if (holds) {
      const [ra, rb] = refine(op, sa, sb, is32);
      t.false(isEmpty(ra));
      t.true(contains(ra, x) && contains(rb, y), `${op} ${is32}`);
    }
  }), { numRuns: 3000 });
});

test('tnumRange covers its range', (t) => {
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: U64 }), fc.bigInt({ min: 0n, max: U64 }), fc.bigInt({ min: 0n, max: U64 }), (a, b, c) => {
    const [lo, hi] = a < b ? [a, b] : [b, a];
    const x = lo + (hi > lo ? c % (hi - lo + 1n) : 0n);
    t.true(tnumIn(tnumRange(lo, hi), { v: x, m: 0n }));
  }));
});

// ---- hand-built programs ----

const I = (code: number, dst = 0, src = 0, off = 0, imm = 0, extra: Partial<IrInsn> = {}): IrInsn => ({ code, dst, src, off, imm, ...extra });
const mov64 = (d: number, imm: number) => I(CLASS.ALU64 | ALU.MOV, d, 0, 0, imm);
const movr = (d: number, s: number) => I(CLASS.ALU64 | ALU.MOV | SRC_X, d, s);
const add64 = (d: number, imm: number) => I(CLASS.ALU64 | ALU.ADD, d, 0, 0, imm);
const ldx = (size: number, d: number, s: number, off: number) => I(CLASS.LDX | MODE.MEM | size, d, s, off);
const stx = (size: number, d: number, s: number, off: number) => I(CLASS.STX | MODE.MEM | size, d, s, off);
const st = (size: number, d: number, off: number, imm: number) => I(CLASS.ST | MODE.MEM | size, d, 0, off, imm);
const jmp = (op: number, d: number, imm: number, target: string) => I(CLASS.JMP | op, d, 0, 0, imm, { target });
const jmpx = (op: number, d: number, s: number, target: string) => I(CLASS.JMP | op | SRC_X, d, s, 0, 0, { target });
const call = (id: number) => I(CLASS.JMP | JMP.CALL, 0, 0, 0, id);
const exit = () => I(CLASS.JMP | JMP.EXIT);
const label = (l: string, insn: IrInsn): IrInsn => ({ ...insn, labels: [l] });
const ldMap = (d: number, idx: number): IrInsn => ({ code: LD_IMM64, dst: d, src: PSEUDO.MAP_FD, off: 0, imm: idx, imm2: 0 });

const xdp = (insns: IrInsn[], maps = [rawMap(MAP_TYPE.ARRAY, 4, 16)]) => checkInsns(insns, { progType: 'xdp', maps });

/** r2 = data, r3 = data_end; r4 = r2 + n; if r4 > r3 goto out */
const pktCheck = (n: number) => [
  ldx(SIZE.W, 2, 1, 0), ldx(SIZE.W, 3, 1, 4), movr(4, 2), add64(4, n), jmpx(JMP.JGT, 4, 3, 'out'),
];
const out = [label('out', mov64(0, 2)), exit()];

test('packet access within the range verified against data_end is safe, one byte more is not', (t) => {
  t.true(xdp([...pktCheck(14), ldx(SIZE.H, 0, 2, 12), mov64(0, 2), exit(), ...out]).safe);
  const bad = xdp([...pktCheck(14), ldx(SIZE.W, 0, 2, 12), mov64(0, 2), exit(), ...out]);
  t.false(bad.safe);
  t.regex(bad.reason!, /invalid access to packet/);
  t.is(bad.insn, 5);
  t.false(xdp([ldx(SIZE.W, 2, 1, 0), ldx(SIZE.B, 0, 2, 0), exit()]).safe, 'no check at all');
});

test('map lookups must be null-checked and stay within value_size', (t) => {
  const lookup = [st(SIZE.W, 10, -4, 0), movr(2, 10), add64(2, -4), ldMap(1, 0), call(1)];
  t.true(xdp([...lookup, jmp(JMP.JEQ, 0, 0, 'out'), ldx(SIZE.DW, 1, 0, 8), ...out]).safe);
  t.false(xdp([...lookup, ldx(SIZE.DW, 1, 0, 8), ...out]).safe, 'no null check');
  t.false(xdp([...lookup, jmp(JMP.JEQ, 0, 0, 'out'), ldx(SIZE.DW, 1, 0, 12), ...out]).safe, 'past value_size');
  // Privileged programs may pass uninitialised stack to helpers (allow_uninit_stack; checked against the kernel).
  t.true(xdp([movr(2, 10), add64(2, -4), ldMap(1, 0), call(1), mov64(0, 0), exit()]).safe, 'uninitialised key');
  t.false(xdp([movr(2, 10), add64(2, -2), ldMap(1, 0), call(1), mov64(0, 0), exit()]).safe, 'key past the frame');
});

test('stack reads stay within the frame (unwritten bytes read as unknown values for root); r10 is read only', (t) => {
  t.true(xdp([st(SIZE.DW, 10, -8, 7), ldx(SIZE.DW, 0, 10, -8), exit()]).safe);
  t.true(xdp([st(SIZE.W, 10, -8, 7), ldx(SIZE.DW, 0, 10, -8), exit()]).safe, 'allow_uninit_stack');
  t.false(xdp([ldx(SIZE.DW, 0, 10, 0), exit()]).safe, 'above the frame');
  t.false(xdp([st(SIZE.DW, 10, -520, 7), mov64(0, 0), exit()]).safe);
  t.false(xdp([st(SIZE.W, 10, -6, 7), mov64(0, 0), exit()]).safe, 'misaligned');
  t.false(xdp([mov64(10, 0), mov64(0, 0), exit()]).safe);
});

test('spilled pointers survive the stack; uninitialised registers and R0 at exit are caught', (t) => {
  t.true(xdp([stx(SIZE.DW, 10, 1, -8), ldx(SIZE.DW, 6, 10, -8), ldx(SIZE.W, 0, 6, 16), exit()]).safe);
  t.false(xdp([stx(SIZE.DW, 10, 1, -8), ldx(SIZE.W, 6, 10, -8), mov64(0, 0), exit()]).safe, 'partial fill of a pointer');
  t.false(xdp([movr(0, 5), exit()]).safe);
  t.false(xdp([exit()]).safe);
});

test('context access follows the program type', (t) => {
  t.true(xdp([ldx(SIZE.W, 0, 1, 16), exit()]).safe);
  t.false(xdp([ldx(SIZE.DW, 0, 1, 0), exit()]).safe);
  t.false(xdp([st(SIZE.W, 1, 16, 0), mov64(0, 0), exit()]).safe);
  t.true(checkInsns([ldx(SIZE.DW, 0, 1, 8), exit()], { progType: 'kprobe' }).safe);
  t.true(checkInsns([ldx(SIZE.W, 0, 1, 8), stx(SIZE.W, 1, 0, 8), mov64(0, 0), exit()], { progType: 'sched_cls' }).safe, 'tc may write mark');
  t.false(checkInsns([ldx(SIZE.W, 0, 1, 76), mov64(0, 0), exit()], { progType: 'socket_filter' }).safe, 'no skb->data for socket filters');
});

test('bounded loops are explored; infinite loops are too complex', (t) => {
  const bounded = [mov64(0, 0), label('top', add64(0, 1)), jmp(JMP.JLT, 0, 10, 'top'), exit()];
  t.true(xdp(bounded).safe);
  const forever = [mov64(0, 0), label('top', add64(0, 0)), jmp(JMP.JGT, 0, 5, 'end'), I(CLASS.JMP | JMP.JA, 0, 0, 0, 0, { target: 'top' }), label('end', exit())];
  const v = checkInsns(forever, { progType: 'xdp', maxSteps: 20000 });
  t.false(v.safe);
  t.regex(v.reason!, /too complex/);
});

test('return value ranges are checked per program type', (t) => {
  t.true(checkInsns([mov64(0, 1), exit()], { progType: 'cgroup_skb' }).safe);
  t.false(checkInsns([mov64(0, 2), exit()], { progType: 'cgroup_skb' }).safe);
  t.true(checkInsns([mov64(0, 2), exit()], { progType: 'xdp' }).safe);
});

test('reserved fields, division by a zero constant and bad shifts are rejected', (t) => {
  t.false(xdp([mov64(0, 1), I(CLASS.ALU64 | ALU.DIV, 0, 0, 0, 0), exit()]).safe);
  t.false(xdp([mov64(0, 1), I(CLASS.ALU64 | ALU.LSH, 0, 0, 0, 64), exit()]).safe);
  t.false(xdp([mov64(0, 1), I(CLASS.ALU64 | ALU.ADD, 0, 3, 0, 1), exit()]).safe);
  t.true(xdp([mov64(0, 1), I(CLASS.ALU64 | ALU.DIV | SRC_X, 0, 0), exit()]).safe, 'division by a register is defined');
});

test('pointer arithmetic: only add/sub of bounded scalars on non-null pointers', (t) => {
  t.false(xdp([I(CLASS.ALU64 | ALU.AND, 1, 0, 0, 4), mov64(0, 0), exit()]).safe);
  t.false(xdp([I(CLASS.ALU | ALU.ADD, 1, 0, 0, 4), mov64(0, 0), exit()]).safe, '32-bit');
  t.false(xdp([ldx(SIZE.W, 3, 1, 4), add64(3, 1), mov64(0, 0), exit()]).safe, 'pkt_end');
  t.false(xdp([ldx(SIZE.W, 2, 1, 0), ldx(SIZE.DW, 4, 10, -8), I(CLASS.ALU64 | ALU.ADD | SRC_X, 2, 4), mov64(0, 0), exit()]).safe, 'unbounded offset');
});

test('bpf-to-bpf calls get a frame; callee-clobbered registers are not readable', (t) => {
  const prog = [
    movr(6, 1), mov64(1, 5), I(CLASS.JMP | JMP.CALL, 0, 1, 0, 0, { callee: { section: 'raw', label: 'f' } }),
    movr(1, 6), exit(),
    label('f', movr(0, 1)), add64(0, 1), exit(),
  ];
  t.true(xdp(prog).safe);
  const bad = [...prog];
  bad[3] = movr(1, 2); // r2 was clobbered by the call
  t.false(xdp(bad).safe);
});

// Regressions found by the kernel agreement campaign.
test('data_meta compared against data_end gives no range (only against data)', (t) => {
  const meta = [ldx(SIZE.W, 2, 1, 8), ldx(SIZE.W, 3, 1, 4), movr(4, 2), add64(4, 4), jmpx(JMP.JGT, 4, 3, 'out'), ldx(SIZE.W, 0, 2, 0), mov64(0, 2), exit(), ...out];
  t.false(xdp(meta).safe);
  const good = [ldx(SIZE.W, 2, 1, 8), ldx(SIZE.W, 3, 1, 0), movr(4, 2), add64(4, 4), jmpx(JMP.JGT, 4, 3, 'out'), ldx(SIZE.W, 0, 2, 0), mov64(0, 2), exit(), ...out];
  t.true(xdp(good).safe);
});

test('a packet pointer known to be beyond data_end cannot be read through', (t) => {
  // r5 = data + 13; if r5 > end goto L; ... L: *(u8 *)(r5 + 0) — the kernel refuses on the jump edge.
  const prog = [
    ...pktCheck(14).slice(0, 4), jmpx(JMP.JGT, 4, 3, 'out'),
    movr(5, 2), add64(5, 13), jmpx(JMP.JGT, 5, 3, 'l'), mov64(0, 2), label('l', ldx(SIZE.B, 0, 5, 0)), exit(), ...out,
  ];
  t.false(xdp(prog).safe);
});

test('bpf_loop: the callback runs in its own frame with R1 = index, R2 = ctx, and must return 0 or 1', (t) => {
  const ldFunc = (d: number, l: string): IrInsn => ({ code: LD_IMM64, dst: d, src: PSEUDO.FUNC, off: 0, imm: 0, imm2: 0, callee: { section: 'raw', label: l } });
  const caller = (ctx: IrInsn[]) => [
    st(SIZE.DW, 10, -8, 0), mov64(1, 4), ldFunc(2, 'cb'), ...ctx, mov64(4, 0), call(181),
    ldx(SIZE.DW, 0, 10, -8), mov64(0, 2), exit(),
  ];
  const stackCtx = [movr(3, 10), add64(3, -8)];
  const cb = (body: IrInsn[]) => [label('cb', body[0]!), ...body.slice(1)];
  const good = cb([stx(SIZE.DW, 2, 1, 0), mov64(0, 0), exit()]);
  t.true(xdp([...caller(stackCtx), ...good]).safe, 'writes the index into the caller\'s stack through the context');
  t.true(xdp([...caller([mov64(3, 0)]), ...cb([mov64(0, 1), exit()])]).safe, 'a NULL context');
  t.false(xdp([...caller(stackCtx), ...cb([mov64(0, 2), exit()])]).safe, 'returns 2');
  t.false(xdp([...caller(stackCtx), ...cb([movr(0, 3), exit()])]).safe, 'reads R3, which the callback does not get');
  t.false(xdp([...caller(stackCtx), ...cb([stx(SIZE.DW, 2, 1, 8), mov64(0, 0), exit()])]).safe, 'writes past the caller\'s frame');
  t.false(xdp([...caller([ldMap(3, 0)]), ...good]).safe, 'a map pointer is no context');
  // The caller's stack changes from one call to the next: the second call sees what the first wrote.
  const twice = cb([ldx(SIZE.DW, 3, 2, 0), jmp(JMP.JNE, 3, 0, 'bad'), st(SIZE.DW, 2, 0, 1), mov64(0, 0), exit(), label('bad', ldx(SIZE.DW, 0, 3, 0)), exit()]);
  t.false(xdp([...caller(stackCtx), ...twice]).safe, 'a later call reads the 1 the first one stored and dereferences it');
});

test('for_each_map_elem: the callback gets the map, a read-only key, the value and the context', (t) => {
  const ldFunc = (d: number, l: string): IrInsn => ({ code: LD_IMM64, dst: d, src: PSEUDO.FUNC, off: 0, imm: 0, imm2: 0, callee: { section: 'raw', label: 'cb' } });
  const prog = (body: IrInsn[], maps = [rawMap(MAP_TYPE.HASH, 4, 16)]) => xdp([
    ldMap(1, 0), ldFunc(2, 'cb'), mov64(3, 0), mov64(4, 0), call(164), mov64(0, 2), exit(),
    label('cb', body[0]!), ...body.slice(1),
  ], maps);
  t.true(prog([ldx(SIZE.W, 5, 2, 0), stx(SIZE.DW, 3, 5, 8), mov64(0, 0), exit()]).safe, 'reads the key, writes the value');
  t.false(prog([st(SIZE.W, 2, 0, 1), mov64(0, 0), exit()]).safe, 'writes the key');
  t.false(prog([ldx(SIZE.W, 5, 2, 4), mov64(0, 0), exit()]).safe, 'reads past the 4-byte key');
  t.false(prog([ldx(SIZE.DW, 5, 3, 16), mov64(0, 0), exit()]).safe, 'reads past the 16-byte value');
  t.false(prog([movr(0, 5), exit()]).safe, 'R5 is not an argument');
  t.false(prog([mov64(0, 0), exit()], [rawMap(MAP_TYPE.PERF_EVENT_ARRAY, 4, 4)]).safe, 'a map without elements to visit');
});
