import test from 'ava';
import fc from 'fast-check';
import { decodeInsns, encodeInsns, invalidReason, LD_IMM64 } from '../src/isa/index.js';
import type { Insn } from '../src/isa/index.js';

const arbInsn: fc.Arbitrary<Insn> = fc
  .record({
    code: fc.integer({ min: 0, max: 255 }),
    dst: fc.integer({ min: 0, max: 10 }),
    src: fc.integer({ min: 0, max: 10 }),
    off: fc.integer({ min: -32768, max: 32767 }),
    imm: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    imm2: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  })
  .map(({ imm2, ...i }) => (i.code === LD_IMM64 ? { ...i, imm2 } : i))
  .filter((i) => invalidReason(i) === null);

test('decode inverts encode for every valid instruction sequence', (t) => {
  fc.assert(
    fc.property(fc.array(arbInsn, { maxLength: 20 }), (insns) => {
      const bytes = encodeInsns(insns);
      t.deepEqual(decodeInsns(bytes), insns);
    }),
  );
});

test('unknown opcode is an error naming the section and byte offset', (t) => {
  const bytes = encodeInsns([{ code: 0xb7, dst: 0, src: 0, off: 0, imm: 0 }, { code: 0xff, dst: 0, src: 0, off: 0, imm: 0 }]);
  const err = t.throws(() => decodeInsns(bytes, { file: 'x.o', section: 'xdp' }));
  t.regex(err!.message, /x\.o: section xdp: offset 8: unknown opcode 0xff/);
});

test('ld_imm64 without its second half is an error', (t) => {
  const bytes = encodeInsns([{ code: 0xb7, dst: 0, src: 0, off: 0, imm: 0 }]);
  bytes[0] = LD_IMM64;
  t.throws(() => decodeInsns(bytes), { message: /missing second half/ });
});
