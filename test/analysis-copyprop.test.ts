// Copy propagation across blocks and ld_imm64 values held in registers (analysis/copyprop.ts,
// analysis/sources.ts): the candidates the synthesizer proves, with the cases that must not be.
import test from 'ava';
import { asm } from '../src/smt/index.js';
import { copyPropAt, copyProps, heldImm64Loads } from '../src/analysis/index.js';
import type { CodeSection, IrInsn } from '../src/ir/types.js';

const section = (text: string): CodeSection => ({ name: 's', shndx: 0, insns: asm(text), symbols: [], relSection: null });
const props = (text: string): string[] => copyProps(section(text)).map((c) => `${c.mov}:${[...c.renamed.keys()].join(',')}`);

test('a copy read by loads, a store base and a branch, up to its redefinition, is propagated', (t) => {
  // r3 = r4; loads through r3; a side exit where r3 is dead; r3 written again by a load through itself
  const sec = section('r3 = r4\nr5 = *(u32 *)(r3 + 4)\nif r5 > 7 goto out\nr3 = *(u32 *)(r3 + 8)\nr0 = r3\nexit\nout:\nr0 = 0\nexit');
  const c = copyPropAt(sec, 0)!;
  t.truthy(c);
  t.deepEqual([...c.renamed.keys()], [1, 3]);
  t.is(c.renamed.get(1)!.src, 4);
  t.is(c.renamed.get(3)!.src, 4);
  t.is(c.renamed.get(3)!.dst, 3, 'the destination stays');
  t.deepEqual(props('r2 = r1\n*(u32 *)(r2 + 0) = 1\nif r2 == 0 goto out\nr0 = 0\nexit\nout:\nr0 = 1\nexit'), ['0:1,2']);
});

test('copies stay where the copy is read on another path, its source changes first, or a read cannot be renamed', (t) => {
  // live at a side exit
  t.deepEqual(props('r3 = r4\nif r5 > 7 goto out\nr0 = *(u32 *)(r3 + 0)\nexit\nout:\nr0 = r3\nexit'), []);
  // the source changes while the copy is still read
  t.deepEqual(props('r3 = r4\nr4 += 1\nr0 = *(u32 *)(r3 + 0)\nr0 += r4\nexit'), []);
  // `r3 += 1` reads and writes the copy
  t.deepEqual(props('r3 = r4\nr3 += 1\nr0 = *(u32 *)(r3 + 0)\nr0 += r4\nexit'), []);
  // a helper call reads r1 implicitly
  t.deepEqual(props('r1 = r6\ncall 1\nexit'), []);
  t.deepEqual(props('r1 = r6\ncall 5\nexit'), ['0:'], 'ktime_get_ns reads no argument: the copy is dead');
  // exit reads r0
  t.deepEqual(props('r0 = r6\nexit'), []);
  // a join point where the copy is live: another path reaches its reads
  t.deepEqual(props('r3 = r4\nl:\nr0 = *(u32 *)(r3 + 0)\nif r0 == 0 goto l\nexit'), []);
  // fetching atomics write their source register: left alone (plain ones are renamed, below)
  t.deepEqual(props('r3 = r4\nr3 = atomic_fetch_add((u64 *)(r1 + 0), r3)\nr0 = r3\nexit'), []);
  t.deepEqual(props('r2 = r1\nlock *(u64 *)(r2 + 0) += r3\nr0 = 0\nexit'), ['0:1']);
  // the frame pointer never replaces an ALU or jump operand
  t.deepEqual(props('r2 = r10\nif r2 > r3 goto out\nout:\nr0 = 0\nexit'), []);
});

const ld = (dst: number, sym: number, imm = 0): IrInsn => ({ code: 0x18, dst, src: 0, off: 0, imm, imm2: 0, reloc: { sym, type: 1 }, pinned: 'relocation' });
const withLd = (text: string, loads: Record<number, IrInsn>): CodeSection => {
  const sec = section(text);
  return { ...sec, insns: sec.insns.map((x, k) => (loads[k] ? { ...loads[k]!, ...(x.labels ? { labels: x.labels } : {}) } : x)) };
};

test('an ld_imm64 of the same relocation and addend another register holds on every path is found', (t) => {
  // r4 = &rules; ...; r3 = &rules → r3 = r4 (the placeholders `r9 = 0` stand for the two loads)
  const sec = withLd('r9 = 0\nr3 = *(u32 *)(r4 + 16)\nif r3 == 0 goto out\nr9 = 0\nr5 = *(u32 *)(r3 + 4)\nout:\nr0 = 0\nexit', { 0: ld(4, 25), 3: ld(3, 25) });
  t.deepEqual(heldImm64Loads(sec), [[3, 4]]);
  // a reload into the register that still holds it goes
  t.deepEqual(heldImm64Loads(withLd('r9 = 0\nr0 = *(u32 *)(r4 + 0)\nr9 = 0\nexit', { 0: ld(4, 25), 2: ld(4, 25) })), [[2, 4]]);
});

test('ld_imm64 loads of another symbol, another addend, after a redefinition, on one path only or CO-RE-relocated are not', (t) => {
  t.deepEqual(heldImm64Loads(withLd('r9 = 0\nr9 = 0\nexit', { 0: ld(4, 25), 1: ld(3, 26) })), [], 'another symbol');
  t.deepEqual(heldImm64Loads(withLd('r9 = 0\nr9 = 0\nexit', { 0: ld(4, 25), 1: ld(3, 25, 8) })), [], 'another addend');
  t.deepEqual(heldImm64Loads(withLd('r9 = 0\nr4 += 8\nr9 = 0\nexit', { 0: ld(4, 25), 2: ld(3, 25) })), [], 'r4 changed');
  t.deepEqual(heldImm64Loads(withLd('r9 = 0\ncall 5\nr9 = 0\nexit', { 0: ld(4, 25), 2: ld(3, 25) })), [], 'r4 clobbered by the call');
  t.deepEqual(heldImm64Loads(withLd('if r1 == 0 goto l\nr9 = 0\nl:\nr9 = 0\nexit', { 1: ld(4, 25), 3: ld(3, 25) })), [], 'one path only');
  const core = { ...ld(3, 25), core: [{ typeId: 1, accessStrOff: 0, kind: 0 }], pinned: 'CO-RE relocation' };
  t.deepEqual(heldImm64Loads(withLd('r9 = 0\nr9 = 0\nexit', { 0: ld(4, 25), 1: core })), [], 'CO-RE');
  // a plain wide constant is a value like any other
  t.deepEqual(heldImm64Loads(section('r4 = 0x100000000 ll\nr3 = 0x100000000 ll\nr0 = 0\nexit')), [[1, 4]]);
  t.deepEqual(heldImm64Loads(section('r4 = 0x100000000 ll\nr3 = 0x100000001 ll\nr0 = 0\nexit')), []);
});

test('a 32-bit copy propagates only when the source is known zero-extended', (t) => {
  const sec = section('w3 = w4\nlock *(u32 *)(r1 + 0) |= w3\nr3 = 0\nr0 = 0\nexit');
  t.deepEqual(copyProps(sec, () => false), [], 'upper half unknown');
  t.deepEqual(copyProps(sec, () => true).map((c) => [...c.renamed.keys()]), [[1]], 'a plain atomic or reads its source');
  const sec2 = section('w3 = w4\nif w3 > 7 goto out\nr0 = r3\nexit\nout:\nr0 = 0\nexit');
  t.deepEqual(copyProps(sec2, () => false).map((c) => c.mov), [], 'upper half unknown');
  const c = copyProps(sec2, (i, r) => i === 0 && r === 4);
  t.deepEqual(c.map((x) => `${x.mov}:${[...x.renamed.keys()].join(',')}`), ['0:1,2']);
});

test('after `wA = wB`, readers of the low half read wB: 64-bit ==/unsigned compares with a non-negative immediate become 32-bit ones', (t) => {
  const sec = section('w2 = w1\nif r2 == 443 goto out\nif r2 < 80 goto out\nr0 = 2\nexit\nout:\nr0 = 1\nexit');
  const [c] = copyProps(sec);
  t.truthy(c);
  t.deepEqual([...c!.renamed.keys()], [1, 2]);
  for (const k of [1, 2]) {
    t.is(c!.renamed.get(k)!.dst, 1);
    t.is(c!.renamed.get(k)!.code & 0x07, 0x06, 'JMP32');
  }
  // in place: `w1 = w1` goes when every reader looks at the low half only
  t.deepEqual(props('w1 = w1\nif r1 == 53 goto out\nr0 = 3\nif r1 < 7 goto out\nr0 = 0\nout:\nexit'), ['0:1,3']);
  // signed orders, negative immediates and full-width readers see the upper half
  t.deepEqual(props('w2 = w1\nif r2 s> 5 goto out\nr0 = 2\nexit\nout:\nr0 = 1\nexit'), []);
  t.deepEqual(props('w2 = w1\nif r2 == -1 goto out\nr0 = 2\nexit\nout:\nr0 = 1\nexit'), []);
  t.deepEqual(props('w2 = w1\nr0 = r2\nexit'), []);
  t.deepEqual(props('w2 = w1\n*(u64 *)(r10 - 8) = r2\nr0 = 0\nexit'), []);
  t.deepEqual(props('w2 = w1\n*(u32 *)(r10 - 8) = r2\nr0 = 0\nexit'), ['0:1'], 'a 4-byte store reads the low half');
});
