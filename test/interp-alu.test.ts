// Property tests: every ALU and jump operation of the interpreter against BigInt reference semantics.
import test from 'ava';
import fc from 'fast-check';
import { prepareInsns, run, type Prepared } from '../src/interp/index.js';
import { ALU, CLASS, JMP, LD_IMM64, SRC_K, SRC_X } from '../src/isa/index.js';
import type { IrInsn } from '../src/ir/types.js';

const M64 = (1n << 64n) - 1n;
const M32 = 0xffffffffn;
const s64 = (x: bigint): bigint => BigInt.asIntN(64, x);
const s32 = (x: bigint): bigint => BigInt.asIntN(32, x);
const u64 = (x: bigint): bigint => BigInt.asUintN(64, x);
const u32 = (x: bigint): bigint => BigInt.asUintN(32, x);
const trunc = (a: bigint, b: bigint): bigint => a / b; // BigInt division truncates toward zero, like C

const ldImm64 = (dst: number, v: bigint): IrInsn => ({
  code: LD_IMM64, dst, src: 0, off: 0, imm: Number(BigInt.asIntN(32, v)), imm2: Number(BigInt.asIntN(32, v >> 32n)),
});
const exit: IrInsn = { code: CLASS.JMP | JMP.EXIT, dst: 0, src: 0, off: 0, imm: 0 };
const mov0 = (src: number): IrInsn => ({ code: CLASS.ALU64 | ALU.MOV | SRC_X, dst: 0, src, off: 0, imm: 0 });

function runR0(insns: IrInsn[]): bigint {
  const prep: Prepared = prepareInsns(insns);
  const out = run(prep.unit, 'prog', 'kprobe', { packet: new Uint8Array(0) }, prep.initialMaps());
  if (out.status !== 'exit') throw new Error(`fault: ${out.fault?.reason}`);
  return BigInt(out.r0);
}

/** 64-bit values biased toward edge cases. */
const arb64 = fc.oneof(
  fc.bigInt({ min: 0n, max: M64 }),
  fc.constantFrom(0n, 1n, 2n, M64, M64 - 1n, 1n << 63n, (1n << 63n) - 1n, M32, 1n << 32n, 0x80000000n, 0x7fffffffn, 0xffffffff80000000n),
  fc.bigInt({ min: 0n, max: 0xffffn }),
);
const arbImm = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 31, 32, 63));

type Ref = (a: bigint, b: bigint, off: number) => bigint;

const ref64: Record<string, [number, Ref, number[]]> = {
  add: [ALU.ADD, (a, b) => u64(a + b), [0]],
  sub: [ALU.SUB, (a, b) => u64(a - b), [0]],
  mul: [ALU.MUL, (a, b) => u64(a * b), [0]],
  div: [ALU.DIV, (a, b, off) => (b === 0n ? 0n : off === 0 ? a / b : u64(trunc(s64(a), s64(b)))), [0, 1]],
  mod: [ALU.MOD, (a, b, off) => (b === 0n ? a : off === 0 ? a % b : u64(s64(a) - trunc(s64(a), s64(b)) * s64(b))), [0, 1]],
  or: [ALU.OR, (a, b) => a | b, [0]],
  and: [ALU.AND, (a, b) => a & b, [0]],
  xor: [ALU.XOR, (a, b) => a ^ b, [0]],
  lsh: [ALU.LSH, (a, b) => u64(a << (b & 63n)), [0]],
  rsh: [ALU.RSH, (a, b) => a >> (b & 63n), [0]],
  arsh: [ALU.ARSH, (a, b) => u64(s64(a) >> (b & 63n)), [0]],
  mov: [ALU.MOV, (_a, b) => b, [0]],
};

const ref32: Record<string, [number, Ref, number[]]> = {
  add: [ALU.ADD, (a, b) => u32(a + b), [0]],
  sub: [ALU.SUB, (a, b) => u32(a - b), [0]],
  mul: [ALU.MUL, (a, b) => u32(a * b), [0]],
  div: [ALU.DIV, (a, b, off) => (u32(b) === 0n ? 0n : off === 0 ? u32(a) / u32(b) : u32(trunc(s32(a), s32(b)))), [0, 1]],
  mod: [ALU.MOD, (a, b, off) => (u32(b) === 0n ? u32(a) : off === 0 ? u32(a) % u32(b) : u32(s32(a) - trunc(s32(a), s32(b)) * s32(b))), [0, 1]],
  or: [ALU.OR, (a, b) => u32(a | b), [0]],
  and: [ALU.AND, (a, b) => u32(a & b), [0]],
  xor: [ALU.XOR, (a, b) => u32(a ^ b), [0]],
  lsh: [ALU.LSH, (a, b) => u32(a << (b & 31n)), [0]],
  rsh: [ALU.RSH, (a, b) => u32(a) >> (b & 31n), [0]],
  arsh: [ALU.ARSH, (a, b) => u32(s32(a) >> (b & 31n)), [0]],
  mov: [ALU.MOV, (_a, b) => u32(b), [0]],
};

const RUNS = 150;

for (const [name, [op, ref, offs]] of Object.entries(ref64)) {
  for (const off of offs) {
    const label = `${name}${off ? ' (signed)' : ''}`;
    test(`alu64 ${label} reg matches BigInt semantics`, (t) => {
      fc.assert(
        fc.property(arb64, arb64, (a, b) => {
          const got = runR0([ldImm64(1, a), ldImm64(2, b), { code: CLASS.ALU64 | op | SRC_X, dst: 1, src: 2, off, imm: 0 }, mov0(1), exit]);
          t.is(got, ref(a, b, off), `a=${a} b=${b}`);
        }),
        { numRuns: RUNS },
      );
    });
    test(`alu64 ${label} imm matches BigInt semantics`, (t) => {
      fc.assert(
        fc.property(arb64, arbImm, (a, imm) => {
          const isShift = op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH;
          const k = isShift ? imm & 63 : imm;
          const got = runR0([ldImm64(1, a), { code: CLASS.ALU64 | op | SRC_K, dst: 1, src: 0, off, imm: k }, mov0(1), exit]);
          t.is(got, ref(a, u64(BigInt(k)), off), `a=${a} imm=${k}`);
        }),
        { numRuns: RUNS },
      );
    });
  }
}

for (const [name, [op, ref, offs]] of Object.entries(ref32)) {
  for (const off of offs) {
    const label = `${name}${off ? ' (signed)' : ''}`;
    test(`alu32 ${label} reg matches BigInt semantics and zero-extends`, (t) => {
      fc.assert(
        fc.property(arb64, arb64, (a, b) => {
          const got = runR0([ldImm64(1, a), ldImm64(2, b), { code: CLASS.ALU | op | SRC_X, dst: 1, src: 2, off, imm: 0 }, mov0(1), exit]);
          t.is(got, ref(a, b, off), `a=${a} b=${b}`);
        }),
        { numRuns: RUNS },
      );
    });
    test(`alu32 ${label} imm matches BigInt semantics`, (t) => {
      fc.assert(
        fc.property(arb64, arbImm, (a, imm) => {
          const isShift = op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH;
          const k = isShift ? imm & 31 : imm;
          const got = runR0([ldImm64(1, a), { code: CLASS.ALU | op | SRC_K, dst: 1, src: 0, off, imm: k }, mov0(1), exit]);
          t.is(got, ref(a, u64(BigInt(k)), off), `a=${a} imm=${k}`);
        }),
        { numRuns: RUNS },
      );
    });
  }
}

test('neg (64 and 32) matches BigInt semantics', (t) => {
  fc.assert(
    fc.property(arb64, (a) => {
      t.is(runR0([ldImm64(1, a), { code: CLASS.ALU64 | ALU.NEG, dst: 1, src: 0, off: 0, imm: 0 }, mov0(1), exit]), u64(-a));
      t.is(runR0([ldImm64(1, a), { code: CLASS.ALU | ALU.NEG, dst: 1, src: 0, off: 0, imm: 0 }, mov0(1), exit]), u32(-a));
    }),
    { numRuns: RUNS },
  );
});

test('movsx sign-extends 8/16/32 bits (64-bit) and 8/16 bits (32-bit)', (t) => {
  fc.assert(
    fc.property(arb64, (a) => {
      for (const w of [8, 16, 32]) {
        const got = runR0([ldImm64(2, a), { code: CLASS.ALU64 | ALU.MOV | SRC_X, dst: 1, src: 2, off: w, imm: 0 }, mov0(1), exit]);
        t.is(got, u64(BigInt.asIntN(w, a)), `movsx64 ${w} a=${a}`);
      }
      for (const w of [8, 16]) {
        const got = runR0([ldImm64(1, 0xdeadbeefcafebaben), ldImm64(2, a), { code: CLASS.ALU | ALU.MOV | SRC_X, dst: 1, src: 2, off: w, imm: 0 }, mov0(1), exit]);
        t.is(got, u32(BigInt.asIntN(w, a)), `movsx32 ${w} a=${a}`);
      }
    }),
    { numRuns: RUNS },
  );
});

const bswapRef = (a: bigint, w: number): bigint => {
  let r = 0n;
  for (let i = 0; i < w / 8; i++) r = (r << 8n) | ((a >> BigInt(8 * i)) & 0xffn);
  return r;
};

test('byte swaps: to_le truncates, to_be and bswap reverse bytes', (t) => {
  fc.assert(
    fc.property(arb64, (a) => {
      for (const w of [16, 32, 64]) {
        const le = runR0([ldImm64(1, a), { code: CLASS.ALU | ALU.END | SRC_K, dst: 1, src: 0, off: 0, imm: w }, mov0(1), exit]);
        t.is(le, w === 64 ? a : a & ((1n << BigInt(w)) - 1n), `le${w}`);
        const be = runR0([ldImm64(1, a), { code: CLASS.ALU | ALU.END | SRC_X, dst: 1, src: 0, off: 0, imm: w }, mov0(1), exit]);
        t.is(be, bswapRef(a, w), `be${w}`);
        const bs = runR0([ldImm64(1, a), { code: CLASS.ALU64 | ALU.END | SRC_K, dst: 1, src: 0, off: 0, imm: w }, mov0(1), exit]);
        t.is(bs, bswapRef(a, w), `bswap${w}`);
      }
    }),
    { numRuns: RUNS },
  );
});

const jmpRef: Record<string, [number, (a: bigint, b: bigint, w: 32 | 64) => boolean]> = {
  jeq: [JMP.JEQ, (a, b) => a === b],
  jne: [JMP.JNE, (a, b) => a !== b],
  jset: [JMP.JSET, (a, b) => (a & b) !== 0n],
  jgt: [JMP.JGT, (a, b) => a > b],
  jge: [JMP.JGE, (a, b) => a >= b],
  jlt: [JMP.JLT, (a, b) => a < b],
  jle: [JMP.JLE, (a, b) => a <= b],
  jsgt: [JMP.JSGT, (a, b, w) => BigInt.asIntN(w, a) > BigInt.asIntN(w, b)],
  jsge: [JMP.JSGE, (a, b, w) => BigInt.asIntN(w, a) >= BigInt.asIntN(w, b)],
  jslt: [JMP.JSLT, (a, b, w) => BigInt.asIntN(w, a) < BigInt.asIntN(w, b)],
  jsle: [JMP.JSLE, (a, b, w) => BigInt.asIntN(w, a) <= BigInt.asIntN(w, b)],
};

for (const [name, [op, ref]] of Object.entries(jmpRef)) {
  test(`${name} and ${name}32 (reg and imm) branch like BigInt comparisons`, (t) => {
    const prog = (cls: number, src: number, a: bigint, b: bigint, imm: number): IrInsn[] => [
      ldImm64(1, a),
      ldImm64(2, b),
      { code: CLASS.ALU64 | ALU.MOV | SRC_K, dst: 0, src: 0, off: 0, imm: 0 },
      { code: cls | op | src, dst: 1, src: 2, off: 0, imm, target: 'T' },
      exit,
      { code: CLASS.ALU64 | ALU.MOV | SRC_K, dst: 0, src: 0, off: 0, imm: 1, labels: ['T'] },
      exit,
    ];
    fc.assert(
      fc.property(arb64, arb64, arbImm, (a, b0, imm) => {
        // Make equality likely enough to matter.
        const b = b0 % 3n === 0n ? a : b0;
        t.is(runR0(prog(CLASS.JMP, SRC_X, a, b, 0)) === 1n, ref(a, b, 64), `64 reg a=${a} b=${b}`);
        t.is(runR0(prog(CLASS.JMP32, SRC_X, a, b, 0)) === 1n, ref(u32(a), u32(b), 32), `32 reg a=${a} b=${b}`);
        const k = u64(BigInt(imm));
        t.is(runR0(prog(CLASS.JMP, SRC_K, a, 0n, imm)) === 1n, ref(a, k, 64), `64 imm a=${a} imm=${imm}`);
        t.is(runR0(prog(CLASS.JMP32, SRC_K, a, 0n, imm)) === 1n, ref(u32(a), u32(k), 32), `32 imm a=${a} imm=${imm}`);
      }),
      { numRuns: 100 },
    );
  });
}
