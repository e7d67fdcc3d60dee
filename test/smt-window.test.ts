import test from 'ava';
import { asm, checkWindow, checkWindowStates, shutdownZ3, type RegFact, type WindowPost, type WindowPre } from '../src/smt/index.js';
import { replayWindow } from '../src/smt/replay.js';

test.after.always(async () => {
  await shutdownZ3();
});

// Known-equivalent rewrites: each must be proven equal (completeness), with every speed-up on and
// with all of them off (the slow encoding must agree).
interface Row {
  name: string;
  a: string;
  b: string;
  pre?: WindowPre;
  post?: WindowPost;
}
const stack = (off: number): RegFact => ({ kind: 'stack', off });
const pkt = (off: number, minLen: number): RegFact => ({ kind: 'packet', off, minLen });

const EQUAL: Row[] = [
  // algebraic identities
  { name: 'x+x = x<<1', a: 'r0 = r1; r0 += r1', b: 'r0 = r1; r0 <<= 1', post: { regs: [0] } },
  { name: 'x*3 = (x<<1)+x', a: 'r0 = r1; r0 *= 3', b: 'r0 = r1; r0 <<= 1; r0 += r1', post: { regs: [0] } },
  { name: 'x-x = 0', a: 'r0 = r1; r0 -= r1', b: 'r0 = 0', post: { regs: [0] } },
  { name: 'x^x = 0', a: 'r0 = r1; r0 ^= r0', b: 'r0 = 0', post: { regs: [0] } },
  { name: 'double negation', a: 'r0 = r1; r0 = -r0; r0 = -r0', b: 'r0 = r1', post: { regs: [0] } },
  { name: 'not via xor', a: 'r0 = r1; r0 ^= -1', b: 'r0 = -1; r0 -= r1', post: { regs: [0] } },
  { name: 'de morgan', a: 'r0 = r1; r0 |= r2; r0 ^= -1', b: 'r3 = r1; r3 ^= -1; r0 = r2; r0 ^= -1; r0 &= r3', post: { regs: [0] } },
  { name: 'and/or absorption', a: 'r0 = r1; r0 |= r2; r0 &= r1', b: 'r0 = r1', post: { regs: [0] } },
  { name: 'add commutes', a: 'r0 = r1; r0 += r2; r0 += 7', b: 'r0 = 7; r0 += r2; r0 += r1', post: { regs: [0] } },
  { name: 'sub of constant', a: 'r1 -= 5', b: 'r1 += -5', post: { regs: [1] } },
  // strength reductions
  { name: 'mul by 8 = shl 3', a: 'r1 *= 8', b: 'r1 <<= 3', post: { regs: [1] } },
  { name: 'udiv by 16 = rsh 4', a: 'r1 /= 16', b: 'r1 >>= 4', post: { regs: [1] } },
  { name: 'umod by 32 = and 31', a: 'r1 %= 32', b: 'r1 &= 31', post: { regs: [1] } },
  { name: 'w-mul by 4 = w-shl 2', a: 'w1 *= 4', b: 'w1 <<= 2', post: { regs: [1] } },
  { name: 'div by zero is 0', a: 'r1 /= 0', b: 'r1 = 0', post: { regs: [1] } },
  { name: 'mod by zero keeps', a: 'r2 = 0; r1 %= r2', b: 'r2 = 0', post: { regs: [1, 2] } },
  { name: 'w-mod by zero zero-extends', a: 'w1 %= 0', b: 'w1 = w1', post: { regs: [1] } },
  { name: 'sdiv by 1', a: 'r1 s/= 1', b: 'r1 = r1', post: { regs: [1] } },
  { name: 'smod by -1 is 0', a: 'r1 s%= -1', b: 'r1 = 0', post: { regs: [1] } },
  { name: 'sdiv by -1 is neg', a: 'r1 s/= -1', b: 'r1 = -r1', post: { regs: [1] } },
  { name: '(x|y)-(x&y) = x^y (solver)', a: 'r0 = r1; r0 |= r2; r3 = r1; r3 &= r2; r0 -= r3', b: 'r0 = r1; r0 ^= r2', post: { regs: [0] } },
  { name: 'x+y = (x^y)+2(x&y) (solver)', a: 'r0 = r1; r0 += r2', b: 'r0 = r1; r0 ^= r2; r3 = r1; r3 &= r2; r3 <<= 1; r0 += r3', post: { regs: [0] } },
  { name: 'udiv of a byte by 3 = multiply-shift (solver)', a: 'r1 &= 0xff; r1 /= 3', b: 'r1 &= 0xff; r1 *= 0xab; r1 >>= 9', post: { regs: [1] } },
  // 32-bit vs 64-bit forms
  { name: 'w-add = add + truncation', a: 'w0 = w1; w0 += 1', b: 'r0 = r1; r0 += 1; r0 <<= 32; r0 >>= 32', post: { regs: [0] } },
  { name: 'w-and mask = and mask', a: 'r0 = r1; r0 &= 0xff', b: 'w0 = w1; w0 &= 0xff', post: { regs: [0] } },
  { name: 'w-sub = sub + truncation', a: 'r2 -= r1; r2 <<= 32; r2 >>= 32', b: 'w2 -= w1', post: { regs: [2] } },
  { name: 'w-mul = mul + truncation', a: 'r2 *= r1; r2 <<= 32; r2 >>= 32', b: 'w2 *= w1', post: { regs: [2] } },
  { name: 'w-mov zero-extends', a: 'w1 = w1', b: 'r1 <<= 32; r1 >>= 32', post: { regs: [1] } },
  { name: 'movsx = shl/arsh', a: 'r1 = (s8)r2', b: 'r1 = r2; r1 <<= 56; r1 s>>= 56', post: { regs: [1] } },
  { name: 'w-movsx16', a: 'w1 = (s16)w2', b: 'w1 = w2; w1 <<= 16; w1 s>>= 16', post: { regs: [1] } },
  { name: 'le16 = and 0xffff', a: 'r1 = le16 r1', b: 'r1 &= 0xffff', post: { regs: [1] } },
  { name: 'be16 twice = le16', a: 'r1 = be16 r1; r1 = be16 r1', b: 'r1 = le16 r1', post: { regs: [1] } },
  { name: 'bswap64 twice', a: 'r1 = bswap64 r1; r1 = bswap64 r1', b: 'r1 = r1', post: { regs: [1] } },
  { name: 'jmp32 vs jmp on masked value', a: 'r1 &= 0xff; if w1 > 7 goto out; r0 = 1', b: 'r1 &= 0xff; if r1 > 7 goto out; r0 = 1', post: { regs: [0, 1] } },
  { name: 'shift masking (64)', a: 'r1 <<= r2', b: 'r2 &= 63; r1 <<= r2', post: { regs: [1] } },
  { name: 'shift masking (32)', a: 'w1 >>= w2', b: 'r3 = r2; r3 &= 31; w1 >>= w3', post: { regs: [1] } },
  // dead stores and dead code
  { name: 'dead register write', a: 'r2 = 5; r2 = r1; r0 = r2', b: 'r0 = r1', post: { regs: [0] } },
  { name: 'dead stack store', a: '*(u64 *)(r10 - 8) = r1; *(u64 *)(r10 - 8) = r2', b: '*(u64 *)(r10 - 8) = r2', post: { regs: [], stack: 'all' } },
  { name: 'store not read later', a: '*(u64 *)(r10 - 16) = r1; r0 = r2', b: 'r0 = r2', post: { regs: [0], stack: [{ off: -8, size: 8 }] } },
  { name: 'redundant reload', a: '*(u64 *)(r10 - 8) = r1; r2 = *(u64 *)(r10 - 8)', b: '*(u64 *)(r10 - 8) = r1; r2 = r1', post: { regs: [2], stack: 'all' } },
  { name: 'redundant branch', a: 'if r1 == 0 goto l; l: r0 = 1', b: 'r0 = 1', post: { regs: [0] } },
  { name: 'branch with equal arms', a: 'if r1 > 5 goto l; r0 = r2; goto m; l: r0 = r2; m: r3 = r0', b: 'r0 = r2; r3 = r0', post: { regs: [0, 3] } },
  // load/store width merges
  { name: 'two u32 stores = one u64 store', a: '*(u32 *)(r10 - 8) = r1; *(u32 *)(r10 - 4) = r2', b: 'r3 = r2; r3 <<= 32; r4 = r1; r4 <<= 32; r4 >>= 32; r3 |= r4; *(u64 *)(r10 - 8) = r3', post: { regs: [0, 1, 2], stack: 'all' } },
  { name: 'two byte loads = u16 load (stack)', a: 'r0 = *(u8 *)(r1 + 0); r2 = *(u8 *)(r1 + 1); r2 <<= 8; r0 |= r2', b: 'r0 = *(u16 *)(r1 + 0)', pre: { regs: { 1: stack(-16) } }, post: { regs: [0] } },
  { name: 'two byte loads = u16 load (packet)', a: 'r0 = *(u8 *)(r1 + 0); r2 = *(u8 *)(r1 + 1); r2 <<= 8; r0 |= r2', b: 'r0 = *(u16 *)(r1 + 0)', pre: { regs: { 1: pkt(0, 2) } }, post: { regs: [0] } },
  { name: 'st imm zero pair = st u64', a: '*(u32 *)(r10 - 8) = 0; *(u32 *)(r10 - 4) = 0', b: '*(u64 *)(r10 - 8) = 0', post: { regs: [], stack: 'all' } },
  { name: 'u64 load then w-extract = u32 load', a: 'r0 = *(u64 *)(r10 - 8); w0 = w0', b: 'r0 = *(u32 *)(r10 - 8)', post: { regs: [0] } },
  { name: 'store/load forwarding through unknown pointer', a: '*(u32 *)(r1 + 4) = r2; r0 = *(u32 *)(r1 + 4)', b: '*(u32 *)(r1 + 4) = r2; w0 = w2', post: { regs: [0] } },
  // atomics
  { name: 'atomic add = load/add/store (single thread)', a: 'lock *(u64 *)(r10 - 8) += r1', b: 'r2 = *(u64 *)(r10 - 8); r2 += r1; *(u64 *)(r10 - 8) = r2', post: { regs: [0, 1], stack: 'all' } },
  { name: 'fetch-add returns the old value', a: 'r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)', b: 'r3 = *(u64 *)(r10 - 8); r4 = r3; r4 += r1; *(u64 *)(r10 - 8) = r4; r1 = r3', post: { regs: [0, 1], stack: 'all' } },
  // packet accesses under a verified range
  { name: 'packet u32 load equals byte-wise big-endian swap', a: 'r0 = *(u32 *)(r1 + 12); r0 = be32 r0', b: 'r0 = *(u8 *)(r1 + 12); r0 <<= 24; r2 = *(u8 *)(r1 + 13); r2 <<= 16; r0 |= r2; r2 = *(u8 *)(r1 + 14); r2 <<= 8; r0 |= r2; r2 = *(u8 *)(r1 + 15); r0 |= r2', pre: { regs: { 1: pkt(0, 34) } }, post: { regs: [0] } },
  // precondition facts
  { name: 'known constant register', a: 'r0 = r1; r0 += 1', b: 'r0 = 6', pre: { regs: { 1: { kind: 'scalar', value: 5n } } }, post: { regs: [0] } },
  { name: 'known-small value needs no mask', a: 'r0 = r1; r0 &= 0xff', b: 'r0 = r1', pre: { regs: { 1: { kind: 'scalar', umax: 255n } } }, post: { regs: [0] } },
];

const SLOW = { memTypes: false, mapTypes: false, offsets: false, cache: false, fastPaths: false } as const;

for (const row of EQUAL) {
  test(`equal: ${row.name}`, async (t) => {
    const a = asm(row.a), b = asm(row.b);
    const fast = await checkWindow(a, b, row.pre ?? {}, row.post ?? {}, { timeoutMs: 20000 });
    t.is(fast.equivalent, true, `${fast.reason ?? ''} ${JSON.stringify(fast.counterexample?.difference ?? null)}`);
    const slow = await checkWindow(a, b, row.pre ?? {}, row.post ?? {}, { ...SLOW, timeoutMs: 30000 });
    t.is(slow.equivalent, true, `slow encoding: ${slow.reason ?? ''} ${JSON.stringify(slow.counterexample?.difference ?? null)}`);
  });
}

// Known-different pairs: the checker must say different and its counterexample must make the
// interpreter show the difference.
const DIFFERENT: Row[] = [
  { name: 'off-by-one constant', a: 'r0 = r1; r0 += 1', b: 'r0 = r1; r0 += 2', post: { regs: [0] } },
  { name: 'wrong register', a: 'r0 = r1; r0 *= 3', b: 'r0 = r1; r0 <<= 1; r0 += r2', post: { regs: [0] } },
  { name: '32-bit add loses the carry', a: 'r0 = r1; r0 += 1', b: 'w0 = w1; w0 += 1', post: { regs: [0] } },
  { name: 'signed vs unsigned shift', a: 'r1 >>= 3', b: 'r1 s>>= 3', post: { regs: [1] } },
  { name: 'signed vs unsigned division', a: 'r1 /= r2', b: 'r1 s/= r2', post: { regs: [1] } },
  { name: 'boundary of a comparison', a: 'if r1 > 5 goto out; r0 = 1', b: 'if r1 >= 5 goto out; r0 = 1', post: { regs: [0] } },
  { name: 'jmp32 ignores the high half', a: 'if w1 == 0 goto out; r0 = 1', b: 'if r1 == 0 goto out; r0 = 1', post: { regs: [0] } },
  { name: 'dropped store is read later', a: '*(u64 *)(r10 - 8) = r1', b: 'r0 = r0', post: { regs: [], stack: [{ off: -8, size: 8 }] } },
  { name: 'store width', a: '*(u32 *)(r10 - 8) = r1', b: '*(u64 *)(r10 - 8) = r1', post: { regs: [], stack: 'all' } },
  { name: 'load width', a: 'r0 = *(u16 *)(r10 - 8)', b: 'r0 = *(u32 *)(r10 - 8)', post: { regs: [0] } },
  { name: 'sign-extending load', a: 'r0 = *(u8 *)(r10 - 8)', b: 'r0 = *(s8 *)(r10 - 8)', post: { regs: [0] } },
  { name: 'packet load past the verified range faults', a: 'r0 = *(u8 *)(r1 + 3)', b: 'r0 = *(u8 *)(r1 + 40)', pre: { regs: { 1: pkt(0, 14) } }, post: { regs: [0] } },
  { name: 'byte order', a: 'r0 = *(u16 *)(r1 + 12)', b: 'r0 = *(u16 *)(r1 + 12); r0 = be16 r0', pre: { regs: { 1: pkt(0, 14) } }, post: { regs: [0] } },
  { name: 'atomic xchg returns old', a: 'r1 = xchg_64(r10 - 8, r1)', b: '*(u64 *)(r10 - 8) = r1', post: { regs: [1], stack: 'all' } },
  { name: 'cmpxchg compares r0', a: 'r0 = cmpxchg_64(r10 - 8, r0, r1)', b: 'r0 = *(u64 *)(r10 - 8); *(u64 *)(r10 - 8) = r1', post: { regs: [0], stack: 'all' } },
  { name: 'mod by zero keeps the dividend', a: 'r1 %= r2', b: 'r3 = r1; r3 /= r2; r3 *= r2; r1 -= r3; r1 = 0', post: { regs: [1] } },
];

for (const row of DIFFERENT) {
  test(`different: ${row.name}`, async (t) => {
    const a = asm(row.a), b = asm(row.b);
    const pre = row.pre ?? {}, post = row.post ?? {};
    for (const opts of [{ timeoutMs: 20000 }, { ...SLOW, timeoutMs: 30000 }]) {
      const r = await checkWindow(a, b, pre, post, opts);
      t.is(r.equivalent, false, r.reason);
      t.truthy(r.counterexample);
      const rep = replayWindow(a, b, pre, post, r.counterexample!);
      t.true(rep.reproduced, `interpreter did not reproduce ${JSON.stringify(r.counterexample!.difference)} (${JSON.stringify(r.counterexample!.regs)})`);
    }
  });
}

test('timeout or unknown is never "equal"', async (t) => {
  // A hard non-linear identity with a tiny timeout and no fast paths: must be null or true, never a wrong false;
  // with the timeout the answer must not claim equality unless proven.
  const a = asm('r1 *= r2; r1 *= r3'), b = asm('r2 *= r3; r2 *= r1; r1 = r2');
  const r = await checkWindow(a, b, {}, { regs: [1] }, { timeoutMs: 1, fastPaths: false, cache: false });
  t.not(r.equivalent, false);
  if (r.equivalent === null) t.truthy(r.reason);
});

test('unsupported instructions give null with a reason', async (t) => {
  const r = await checkWindow(asm('call 999'), asm('call 999'), {}, {}, { cache: false });
  t.is(r.equivalent, null);
  t.regex(r.reason ?? '', /helper 999/);
});

test('cache answers a renamed query and maps the counterexample back', async (t) => {
  const a1 = asm('r3 = r4; r3 += 1'), b1 = asm('r3 = r4; r3 += 2');
  const r1 = await checkWindow(a1, b1, {}, { regs: [3] });
  t.is(r1.equivalent, false);
  const a2 = asm('r5 = r6; r5 += 1'), b2 = asm('r5 = r6; r5 += 2');
  const r2 = await checkWindow(a2, b2, {}, { regs: [5] });
  t.is(r2.equivalent, false);
  t.is(r2.via, 'cache');
  t.is(r2.counterexample!.difference.what, 'r5');
  t.truthy(r2.counterexample!.regs.r6);
  t.true(replayWindow(a2, b2, {}, { regs: [5] }, r2.counterexample!).reproduced);
});

test('several entry states: equal only under every one of them', async (t) => {
  const a = asm('r0 = r1; r0 &= 0xff'), b = asm('r0 = r1');
  const small: WindowPre = { regs: { 1: { kind: 'scalar', umax: 255n } } };
  const big: WindowPre = { regs: { 1: { kind: 'scalar', umax: 4096n } } };
  t.is((await checkWindowStates(a, b, [small, small], { regs: [0] })).equivalent, true);
  const r = await checkWindowStates(a, b, [small, big], { regs: [0] });
  t.is(r.equivalent, false);
  t.true(replayWindow(a, b, big, { regs: [0] }, r.counterexample!).reproduced);
});
