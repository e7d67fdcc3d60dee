// Precise liveness: calls read only their arguments (helper prototypes, bpf-to-bpf callees' live-in
// arguments) and clobber r1-r5; byte-level stack liveness across the CFG with escape handling.
import test from 'ava';
import { asm } from '../src/smt/index.js';
import {
  HELPER_ARGS, argRegs, callReads, liveIn, liveOutAt, objectLiveness, regList, stackLiveness, stackLiveAfter, deadStackStores,
  liveRanges, anyLive, successors, constantsIn, availableLoads, redundantLoads,
} from '../src/analysis/index.js';
import { HELPERS as SAFETY_HELPERS } from '../src/safety/helpers.js';
import { HELPERS as SMT_HELPERS } from '../src/smt/helpers.js';
import type { CodeSection } from '../src/ir/types.js';

const section = (text: string, name = 's'): CodeSection => ({ name, shndx: 0, insns: asm(text), symbols: [], relSection: null });

test('helper argument counts agree with the safety model and the checker (trace_printk is variadic: five)', (t) => {
  let known = 0;
  for (const [id, h] of Object.entries(SAFETY_HELPERS)) {
    const n = HELPER_ARGS[Number(id)];
    // every helper with a prototype is listed (an unlisted one reads all five: liveness before
    // such a call, e.g. get_stack's r5, would keep values alive the helper never reads)
    if (n === undefined) { t.fail(`helper ${id} (${h.name}) has a prototype but no argument count`); continue; }
    known++;
    if (h.name === 'trace_printk') t.is(n, 5);
    else t.is(n, h.args.length, `helper ${id} (${h.name})`);
  }
  t.true(known >= 130, `${known} helpers cross-checked`);
  for (const [id, h] of Object.entries(SMT_HELPERS)) t.true((HELPER_ARGS[Number(id)] ?? 5) >= h.args, `checker's helper ${id} (${h.name}) reads more arguments`);
  t.is(callReads({ code: 0x85, dst: 0, src: 0, off: 0, imm: 1 }), argRegs(2));
  t.is(callReads({ code: 0x85, dst: 0, src: 0, off: 0, imm: 9999 }), 0b111110, 'unknown helper: all five');
  t.is(callReads({ code: 0x85, dst: 0, src: 2, off: 0, imm: 1 }), 0b111110, 'kfunc: all five');
});

test('a dead r3 before map_lookup_elem; r1-r5 are clobbered by every call', (t) => {
  // r3 = 1 is dead: lookup reads r1, r2 only
  const sec = section('r2 = r10\nr2 += -4\nr3 = 1\nr1 = 0 ll\ncall 1\nr0 = r3\nexit');
  const live = liveIn(sec);
  const succ = successors(sec);
  t.deepEqual(regList(liveOutAt(sec, live, succ, 2)).filter((r) => r < 10), [2], 'after r3 = 1 only r2 is live (r1 is redefined)');
  // after the call, r3 is not the value written before it: reading it is not a use of r3 = 1
  t.false((live[4]! & (1 << 3)) !== 0, 'r3 is not live into the call');
  // trace_printk reads r3..r5 (its values)
  const p = section('r3 = 1\nr1 = r10\nr2 = 4\ncall 6\nexit');
  t.true((liveIn(p)[1]! & (1 << 3)) !== 0, 'trace_printk reads r3');
});

test('a bpf-to-bpf call reads what its callee reads', (t) => {
  const main: CodeSection = { ...section('r1 = 1\nr2 = 2\nr3 = 3\ncall 1\nexit', 'main') };
  main.insns[3] = { ...main.insns[3]!, src: 1, imm: -1, callee: { section: 'sub', label: 'f' } };
  const sub = section('f:\nr0 = r2\nexit', 'sub');
  const conservative = liveIn(main);
  t.true((conservative[3]! & (1 << 3)) !== 0, 'without callee facts r3 is live into the call');
  const all = objectLiveness([main, sub]);
  const live = all.get('main')!;
  t.false((live[1]! & (1 << 1)) !== 0, 'r1 is dead: the callee does not read it');
  t.false((live[3]! & (1 << 3)) !== 0, 'r3 is dead: the callee reads r2 only');
  t.true((live[3]! & (1 << 2)) !== 0, 'r2 is live into the call');
});

const dead = (text: string): number[] => {
  const sec = section(text);
  const live = liveIn(sec);
  const sl = stackLiveness(sec, live);
  return deadStackStores(sec, sl, successors(sec));
};

test('stack stores overwritten on every path, or never read, are dead', (t) => {
  // fp-8 written twice before any read: the first store is dead
  t.deepEqual(dead('*(u64 *)(r10 - 8) = 1\n*(u64 *)(r10 - 8) = 2\nr0 = *(u64 *)(r10 - 8)\nexit'), [0]);
  // never read at all: both dead
  t.deepEqual(dead('*(u32 *)(r10 - 4) = 1\n*(u32 *)(r10 - 8) = 2\nr0 = 0\nexit'), [0, 1]);
  // read on one path only: live
  t.deepEqual(dead('*(u32 *)(r10 - 4) = 1\nif r1 == 0 goto out\nr0 = *(u32 *)(r10 - 4)\nexit\nout:\nr0 = 0\nexit'), []);
  // overwritten on one path only: live
  t.deepEqual(dead('*(u32 *)(r10 - 4) = 1\nif r1 == 0 goto l\n*(u32 *)(r10 - 4) = 2\nl:\nr0 = *(u32 *)(r10 - 4)\nexit'), []);
});

test('overlapping accesses of different widths are dependent', (t) => {
  // a u8 load of one byte of a u64 store keeps the store live; a u16 store covering half does not kill it
  t.deepEqual(dead('*(u64 *)(r10 - 8) = 1\nr0 = *(u8 *)(r10 - 3)\nexit'), []);
  t.deepEqual(dead('*(u64 *)(r10 - 8) = 1\n*(u16 *)(r10 - 8) = 2\nr0 = *(u32 *)(r10 - 4)\nexit'), [1], 'the u16 store is never read; the u64 one is');
  // the u16 store is dead once a u32 store covers it before the read
  t.deepEqual(dead('*(u16 *)(r10 - 4) = 1\n*(u32 *)(r10 - 4) = 2\nr0 = *(u32 *)(r10 - 4)\nexit'), [0]);
});

test('stack addresses passed to calls are read up to the frame top; escaping addresses make every byte live', (t) => {
  // key at fp-4 read by map_lookup_elem through r2 = fp-4
  t.deepEqual(dead('*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = 0 ll\ncall 1\nexit'), []);
  // fp-16 below the key is not passed: dead
  t.deepEqual(dead('*(u64 *)(r10 - 16) = 0\n*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = 0 ll\ncall 1\nexit'), [0]);
  // a stack address spilled and reloaded: loads through the reloaded pointer may read anything
  const esc = 'r2 = r10\nr2 += -16\n*(u64 *)(r10 - 24) = r2\n*(u64 *)(r10 - 16) = 7\nr3 = *(u64 *)(r10 - 24)\nr0 = *(u64 *)(r3 + 0)\nexit';
  t.deepEqual(dead(esc), []);
  const sec = section(esc);
  t.true(stackLiveness(sec, liveIn(sec)).escaped);
});

test('stack live ranges after an instruction', (t) => {
  const sec = section('*(u32 *)(r10 - 8) = 1\n*(u16 *)(r10 - 2) = 2\nr0 = *(u32 *)(r10 - 8)\nr1 = *(u8 *)(r10 - 1)\nexit');
  const sl = stackLiveness(sec, liveIn(sec));
  const after = stackLiveAfter(sl, successors(sec), 1);
  t.deepEqual(liveRanges(after), [{ off: -8, size: 4 }, { off: -1, size: 1 }]);
  t.true(anyLive(after, -2, 0));
  t.false(anyLive(after, -4, -2));
});

test('constant propagation learns from == / != branches (64-bit), not from 32-bit ones', (t) => {
  const sec = section('if r1 == 7 goto eq\nr0 = r1\nexit\neq:\nr0 = r1\nif r2 != 3 goto out\nr0 = r2\nout:\nexit');
  const c = constantsIn(sec);
  t.is(c[1]![1], undefined, 'fall-through of == knows nothing');
  t.is(c[3]![1], 7n, 'the taken edge of == 7');
  t.is(c[5]![2], 3n, 'the fall-through of != 3');
  t.is(c[6]![2], undefined, 'the join after the != branch');
  const w32 = section('if w1 == 7 goto eq\nexit\neq:\nr0 = r1\nexit');
  t.is(constantsIn(w32)[2]![1], undefined, 'a 32-bit compare fixes only the low half');
});

const redundant = (text: string): number[] => {
  const sec = section(text);
  return redundantLoads(sec, availableLoads(sec, stackLiveness(sec, liveIn(sec))));
};

test('available loads across blocks: a reload of a value the register still holds is redundant', (t) => {
  t.deepEqual(redundant('r1 = *(u32 *)(r6 + 0)\nif r2 == 0 goto l\nr3 = 1\nl:\nr1 = *(u32 *)(r6 + 0)\nr0 = r1\nexit'), [3]);
  // only one path loaded it: not redundant
  t.deepEqual(redundant('if r2 == 0 goto l\nr1 = *(u32 *)(r6 + 0)\nl:\nr1 = *(u32 *)(r6 + 0)\nr0 = r1\nexit'), []);
  // a store through another pointer on one path may alias it
  t.deepEqual(redundant('r1 = *(u32 *)(r6 + 0)\nif r2 == 0 goto l\n*(u32 *)(r7 + 0) = 1\nl:\nr1 = *(u32 *)(r6 + 0)\nexit'), []);
  // a call may write memory; the base register changed; the register changed
  t.deepEqual(redundant('r1 = *(u32 *)(r6 + 0)\ncall 5\nr1 = *(u32 *)(r6 + 0)\nexit'), []);
  t.deepEqual(redundant('r1 = *(u32 *)(r6 + 0)\nr6 += 4\nr1 = *(u32 *)(r6 + 0)\nexit'), []);
  t.deepEqual(redundant('r1 = *(u32 *)(r6 + 0)\nr1 += 1\nr1 = *(u32 *)(r6 + 0)\nexit'), []);
  // stack: a store to other frame bytes keeps it; an overlapping narrower store kills it
  t.deepEqual(redundant('r1 = *(u32 *)(r10 - 8)\n*(u32 *)(r10 - 4) = 7\nr1 = *(u32 *)(r10 - 8)\nexit'), [2]);
  t.deepEqual(redundant('r1 = *(u32 *)(r10 - 8)\n*(u8 *)(r10 - 6) = 7\nr1 = *(u32 *)(r10 - 8)\nexit'), []);
  // a stack store does not touch the context; a packet store does not keep the frame fact if the address escaped
  t.deepEqual(redundant('r1 = *(u32 *)(r6 + 0)\n*(u64 *)(r10 - 8) = 0\nr1 = *(u32 *)(r6 + 0)\nexit'), [2]);
});
