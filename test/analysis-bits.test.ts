import test from 'ava';
import fc from 'fast-check';
import { nonzeroBitsIn } from '../src/analysis/index.js';
import { evalWindow, randomInput, Rng } from '../src/synth/index.js';
import { cloneState } from '../src/synth/eval.js';
import { ALU, CLASS, MODE, SIZE, SRC_K, SRC_X } from '../src/isa/index.js';
import type { CodeSection, IrInsn } from '../src/ir/index.js';

const section = (insns: IrInsn[]): CodeSection => ({ name: 'x', index: 1, insns, symbols: [] } as unknown as CodeSection);
const exit: IrInsn = { code: 0x95, dst: 0, src: 0, off: 0, imm: 0 };

const OPS = [ALU.ADD, ALU.SUB, ALU.MUL, ALU.DIV, ALU.OR, ALU.AND, ALU.LSH, ALU.RSH, ALU.NEG, ALU.MOD, ALU.XOR, ALU.MOV, ALU.ARSH];
const IMMS = [0, 1, 7, 8, 16, 31, 32, 63, 0xff, 0xffff, -1, -16, 0x7fffffff, -0x80000000];

const insnArb: fc.Arbitrary<IrInsn> = fc.oneof(
  fc.record({ cls: fc.constantFrom(CLASS.ALU, CLASS.ALU64), op: fc.constantFrom(...OPS), x: fc.boolean(), dst: fc.integer({ min: 0, max: 5 }), src: fc.integer({ min: 0, max: 5 }), imm: fc.constantFrom(...IMMS), signed: fc.boolean() })
    .map(({ cls, op, x, dst, src, imm, signed }) => ({ code: cls | op | (x && op !== ALU.NEG ? SRC_X : SRC_K), dst, src: x ? src : 0, off: signed && (op === ALU.DIV || op === ALU.MOD) ? 1 : 0, imm: x ? 0 : imm })),
  fc.record({ size: fc.constantFrom(SIZE.B, SIZE.H, SIZE.W, SIZE.DW), dst: fc.integer({ min: 0, max: 5 }), src: fc.constantFrom(6, 10), off: fc.constantFrom(-8, -16, 0, 4) })
    .map(({ size, dst, src, off }) => ({ code: CLASS.LDX | MODE.MEM | size, dst, src, off: src === 10 ? -Math.abs(off) - 8 : off, imm: 0 })),
  fc.record({ dst: fc.integer({ min: 0, max: 5 }), bits: fc.constantFrom(16, 32, 64), be: fc.boolean() })
    .map(({ dst, bits, be }) => ({ code: CLASS.ALU | ALU.END | (be ? SRC_X : SRC_K), dst, src: 0, off: 0, imm: bits })),
);

test('every value a straight-line program computes stays within the analysis\'s non-zero bits', (t) => {
  fc.assert(
    fc.property(fc.array(insnArb, { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 1e6 }), (insns, seed) => {
      const bits = nonzeroBitsIn(section([...insns, exit]));
      const st = cloneState(randomInput(new Rng(seed)));
      for (let k = 0; k < insns.length; k++) {
        evalWindow([insns[k]!], st);
        for (let r = 0; r <= 9; r++) {
          if ((st.regs[r]! & ~bits[k + 1]![r]!) !== 0n) return false;
        }
      }
      return true;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('at a join the masks of both paths are merged; facts are found where they hold', (t) => {
  // 0: r1 = *(u16 *)(r6 + 0); 1: if r2 == 0 goto L; 2: r1 = *(u8 *)(r6 + 2); L (3): r0 = r1; exit
  const sec = section([
    { code: 0x69, dst: 1, src: 6, off: 0, imm: 0 },
    { code: 0x15, dst: 2, src: 0, off: 0, imm: 0, target: 'L' },
    { code: 0x71, dst: 1, src: 6, off: 2, imm: 0 },
    { code: 0xbf, dst: 0, src: 1, off: 0, imm: 0, labels: ['L'] },
    exit,
  ]);
  const bits = nonzeroBitsIn(sec);
  t.is(bits[3]![1], 0xffffn, 'u16 on one path, u8 on the other');
  t.is(bits[2]![1], 0xffffn);
  t.is(bits[4]![0], 0xffffn);
  t.is(bits[0]![1], (1n << 64n) - 1n, 'nothing known at the entry');
});
