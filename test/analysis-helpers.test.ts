// What helpers read and write through their memory arguments (map key/value sizes, constant
// sizes), and what that makes of stack liveness; CO-RE-relocated instructions are no constants,
// no known bits and no stack offsets; which ld_imm64 a register holds.
import test from 'ava';
import { asm } from '../src/smt/index.js';
import {
  constantsIn, deadStackStores, helperMemory, ldImm64Sources, liveIn, nonzeroBitsIn, stackLiveness, successors, type CallMemory, type MapSizes,
} from '../src/analysis/index.js';
import type { CodeSection } from '../src/ir/types.js';

const section = (text: string): CodeSection => ({ name: 's', shndx: 0, insns: asm(text), symbols: [], relSection: null });

test('helper memory: map helpers read the key (and value) size, probe_read writes its destination in full', (t) => {
  const map: MapSizes = { keySize: 4, valueSize: 16 };
  const none: (bigint | undefined)[] = new Array(11).fill(undefined);
  const k = (r: number, v: bigint): (bigint | undefined)[] => none.map((x, i) => (i === r ? v : x));
  t.deepEqual(helperMemory(1, none, map), { reads: [[2, 4]], writes: [] });
  t.deepEqual(helperMemory(2, none, map), { reads: [[2, 4], [3, 16]], writes: [] });
  t.is(helperMemory(1, none, undefined), null, 'the map is unknown');
  t.deepEqual(helperMemory(4, k(2, 16n), undefined), { reads: [[3, 16]], writes: [[1, 16]] });
  t.deepEqual(helperMemory(113, k(2, 8n), undefined), { reads: [[3, 8]], writes: [[1, 8]] });
  t.is(helperMemory(4, none, undefined), null, 'the size is unknown');
  t.is(helperMemory(4, k(2, 4096n), undefined), null, 'a size beyond the frame');
  t.deepEqual(helperMemory(16, k(2, 16n), undefined), { reads: [], writes: [[1, 16]] });
  t.deepEqual(helperMemory(25, k(5, 12n), undefined), { reads: [[4, 12]], writes: [] });
  // _str variants write a string, not the whole buffer: unknown (the default keeps stores live)
  t.is(helperMemory(45, k(2, 16n), undefined), null);
  t.is(helperMemory(115, k(2, 16n), undefined), null);
  t.is(helperMemory(9999, none, map), null);
});

/** Dead stack stores of `text` with `mem` as the helper model (index → what the call at it reads/writes). */
const deadWith = (text: string, mem: (sec: CodeSection, index: number) => CallMemory | null): number[] => {
  const sec = section(text);
  const sl = stackLiveness(sec, liveIn(sec), undefined, (i) => mem(sec, i));
  return deadStackStores(sec, sl, successors(sec));
};
const precise = (map?: MapSizes) => (sec: CodeSection, i: number): CallMemory | null => helperMemory(sec.insns[i]!.imm, constantsIn(sec)[i]!, map);

test('stack liveness with helper memory: a buffer probe_read overwrites, bytes beyond a map key', (t) => {
  const probe = '*(u64 *)(r10 - 16) = 0\n*(u64 *)(r10 - 8) = 0\nr1 = r10\nr1 += -16\nr2 = 16\nr3 = r6\ncall 4\nr0 = *(u64 *)(r10 - 16)\nexit';
  t.deepEqual(deadWith(probe, precise()), [0, 1], 'the zeroing before probe_read is dead: it writes all 16 bytes');
  t.deepEqual(deadWith(probe, () => null), [], 'without the helper model the call may read them');
  // probe_read of 8 bytes: the upper 8 stay live (read afterwards)
  const half = probe.replace('r2 = 16', 'r2 = 8').replace('r0 = *(u64 *)(r10 - 16)', 'r0 = *(u64 *)(r10 - 8)');
  t.deepEqual(deadWith(half, precise()), [0]);
  // a map key of 4 bytes at fp-8: the u32 at fp-4 is never read, the one at fp-8 is
  const key = '*(u32 *)(r10 - 8) = 1\n*(u32 *)(r10 - 4) = 2\nr2 = r10\nr2 += -8\nr1 = 0 ll\ncall 1\nexit';
  t.deepEqual(deadWith(key, precise({ keySize: 4, valueSize: 8 })), [1]);
  t.deepEqual(deadWith(key, () => null), [], 'unknown map: read to the frame top');
  // an escaped stack address: every call may read anything, the model does not matter
  const esc = 'r2 = r10\nr2 += -16\n*(u64 *)(r10 - 24) = r2\n*(u64 *)(r10 - 16) = 0\nr1 = r10\nr1 += -16\nr2 = 16\ncall 4\nexit';
  t.deepEqual(deadWith(esc, precise()), []);
});

test('CO-RE-relocated instructions are no constants, no known bits, no stack offsets (libbpf patches them)', (t) => {
  const sec = section('r1 = 1\nr2 = 5\nr3 = r10\nr3 += -8\nr0 = 0\nexit');
  const core = [{ typeId: 1, accessStrOff: 0, kind: 2 }];
  sec.insns[0] = { ...sec.insns[0]!, core };
  sec.insns[3] = { ...sec.insns[3]!, core };
  const c = constantsIn(sec);
  t.is(c[1]![1], undefined, 'r1 = 1 with a CO-RE record (e.g. field exists) is not known to be 1');
  t.is(c[2]![2], 5n, 'a plain move still is');
  t.is(nonzeroBitsIn(sec)[1]![1], (1n << 64n) - 1n);
  const sl = stackLiveness(sec, liveIn(sec));
  t.is(sl.ptrs[4]![3], undefined, 'fp + a relocated offset is not tracked');
  t.true(sl.escaped);
  // a CO-RE load through a stack pointer may read any byte: an earlier store stays live
  const ld = section('*(u64 *)(r10 - 8) = 0\nr1 = r10\nr0 = *(u32 *)(r1 - 16)\nexit');
  ld.insns[2] = { ...ld.insns[2]!, core };
  t.deepEqual(deadStackStores(ld, stackLiveness(ld, liveIn(ld)), successors(ld)), []);
  const plain = section('*(u64 *)(r10 - 8) = 0\nr1 = r10\nr0 = *(u32 *)(r1 - 16)\nexit');
  t.deepEqual(deadStackStores(plain, stackLiveness(plain, liveIn(plain)), successors(plain)), [0]);
});

test('which ld_imm64 a register holds, through copies; a join of two loads knows neither', (t) => {
  const sec = section('r1 = 0 ll\nr6 = r1\nif r2 == 0 goto a\nr1 = 1 ll\na:\nr0 = 0\nexit');
  const s = ldImm64Sources(sec);
  t.is(s[1]![1], 0);
  t.is(s[2]![6], 0, 'copied by r6 = r1');
  t.is(s[4]![1], undefined, 'two different loads meet');
  t.is(s[4]![6], 0);
});
