// Memory windows end to end, per region kind (stack, packet, map value, context): the job's tests
// come from the precondition, the search proposes, the checker proves. Negative cases: what the
// checker refutes (packet bytes beyond the proven range, context widths with no valid access) and
// what only the verifier refuses (misaligned stack accesses and atomics: the safety model's call).
import test from 'ava';
import { asm, checkWindow, shutdownZ3, type WindowPre } from '../src/smt/index.js';
import { solveWindow, canonicalJob, coverJumps, testsFor, Rng, DEFAULT_SOLVE, type RewriteCache, type WindowJob } from '../src/synth/index.js';
import { checkInsns, rawMap, MAP_TYPE } from '../src/safety/index.js';
import { formatInsn, type Insn } from '../src/isa/index.js';
import type { BpfObject } from '../src/ir/types.js';

test.after.always(async () => {
  await shutdownZ3();
});

const text = (c: readonly Insn[] | null): string => (c ?? []).map((i) => formatInsn(i, 0)).join('; ');
const object = { file: 'synth-window', programs: [], data: [], maps: [{ name: 'vals', type: 2, keySize: 4, valueSize: 16, maxEntries: 4, sym: 0, section: '.maps', flags: 0, btf: true }] } as unknown as BpfObject;

const job = (src: string, pre: WindowPre, liveOut: number[], progType = 'xdp', stackOut: WindowJob['stackOut'] = []): WindowJob => {
  const insns = asm(src);
  return { section: 's', start: 0, end: insns.length, insns, pres: [pre], liveOut, stackOut, progType };
};
// generous solver time: a loaded machine must not turn a proof into 'unknown'
const SOLVE = { ...DEFAULT_SOLVE, timeoutMs: 30000 };
const solve = (j: WindowJob, iterations = 300) => solveWindow(j, { object }, { ...SOLVE, search: { ...SOLVE.search, iterations } });

test('stack: two u32 zero stores become one u64 store when all eight bytes are read later', async (t) => {
  const out = await solve(job('*(u32 *)(r10 - 8) = 0\n*(u32 *)(r10 - 4) = 0', {}, [], 'xdp', [{ off: -8, size: 8 }]));
  t.true(out.proven);
  t.is(text(out.rewrite), '*(u64 *)(r10 - 8) = 0');
});

test('stack: a store whose bytes nobody reads later goes', async (t) => {
  const out = await solve(job('*(u64 *)(r10 - 16) = 1\n*(u32 *)(r10 - 4) = 0', {}, [], 'xdp', [{ off: -4, size: 4 }]));
  t.true(out.proven);
  t.is(text(out.rewrite), '*(u32 *)(r10 - 4) = 0');
});

test('packet: two byte loads become one big-endian u16 load inside the verified range', async (t) => {
  const pre: WindowPre = { regs: { 1: { kind: 'packet', off: 0, minLen: 14 } } };
  const out = await solve(job('r2 = *(u8 *)(r1 + 12)\nr3 = *(u8 *)(r1 + 13)\nr2 <<= 8\nr2 |= r3', pre, [1, 2]));
  t.true(out.proven);
  t.is(text(out.rewrite), 'r2 = *(u16 *)(r1 + 12); r2 = be16 r2');
});

test('packet: a wider load reaching past the verified range is not equivalent (it may fault)', async (t) => {
  const a = asm('r0 = *(u16 *)(r1 + 12)');
  const b = asm('r0 = *(u32 *)(r1 + 12)\nr0 &= 0xffff');
  const short = await checkWindow(a, b, { regs: { 1: { kind: 'packet', off: 0, minLen: 14 } } }, { regs: [0] }, { progType: 'xdp', timeoutMs: 30000 });
  t.is(short.equivalent, false, 'bytes 14..15 may lie beyond the packet');
  const long = await checkWindow(a, b, { regs: { 1: { kind: 'packet', off: 0, minLen: 16 } } }, { regs: [0] }, { progType: 'xdp', timeoutMs: 30000 });
  t.is(long.equivalent, true, 'with 16 bytes verified it is the same');
  // and the search never proposes it: its tests include packets exactly 14 bytes long
  const out = await solve(job('r0 = *(u16 *)(r1 + 12)\nr2 = *(u8 *)(r1 + 13)', { regs: { 1: { kind: 'packet', off: 0, minLen: 14 } } }, [0, 2]), 1000);
  t.false((out.rewrite ?? []).some((i) => i.off + 4 > 14 && (i.code & 0x18) === 0x00), text(out.rewrite));
});

test('map value: load, add, store becomes an atomic add with a register already holding 1', async (t) => {
  const pre: WindowPre = { regs: { 0: { kind: 'map_value', map: 'vals', off: 0 }, 6: { kind: 'scalar', value: 1n } } };
  const out = await solve(job('r1 = *(u64 *)(r0 + 8)\nr1 += 1\n*(u64 *)(r0 + 8) = r1', pre, [0, 6], 'tracepoint'));
  t.true(out.proven);
  t.is(text(out.rewrite), 'lock *(u64 *)(r0 + 8) += r6');
  // the loaded register live afterwards: the atomic form does not hold
  const live = await solve(job('r1 = *(u64 *)(r0 + 8)\nr1 += 1\n*(u64 *)(r0 + 8) = r1', pre, [0, 1, 6], 'tracepoint'));
  t.false((live.rewrite ?? []).some((i) => (i.code & 0xe0) === 0xc0), text(live.rewrite));
});

test('map value: an access beyond the value is not equivalent', async (t) => {
  const pre: WindowPre = { regs: { 0: { kind: 'map_value', map: 'vals', off: 0 } } };
  const r = await checkWindow(asm('r1 = *(u32 *)(r0 + 12)'), asm('r1 = *(u64 *)(r0 + 12)\nw1 = w1'), pre, { regs: [1] }, { progType: 'tracepoint', object, timeoutMs: 30000 });
  t.is(r.equivalent, false, r.reason);
});

test('context: a load of a width the verifier refuses is not equivalent; a redundant zero-extension goes', async (t) => {
  const pre: WindowPre = { regs: { 1: { kind: 'ctx', off: 0 } } };
  const r = await checkWindow(asm('r2 = *(u32 *)(r1 + 12)\nr2 &= 0xffff'), asm('r2 = *(u16 *)(r1 + 12)'), pre, { regs: [2] }, { progType: 'xdp', timeoutMs: 30000 });
  t.is(r.equivalent, false, 'xdp_md fields are read 4 bytes at a time');
  const out = await solve(job('r2 = *(u32 *)(r1 + 12)\nw2 = w2', pre, [1, 2]));
  t.true(out.proven);
  t.is(text(out.rewrite), 'r2 = *(u32 *)(r1 + 12)');
});

test('misaligned stack accesses: equal as values, refused by the verifier model', (t) => {
  const map = rawMap(MAP_TYPE.ARRAY, 4, 16, { name: 'm' });
  const ok = checkInsns(asm('*(u64 *)(r10 - 16) = 0\nr0 = 0\nexit'), { progType: 'xdp' });
  t.true(ok.safe, ok.reason ?? '');
  const mis = checkInsns(asm('*(u64 *)(r10 - 12) = 0\nr0 = 0\nexit'), { progType: 'xdp' });
  t.false(mis.safe, 'a u64 store at fp-12');
  const lookup = (body: string): string => `*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = 0 ll\ncall 1\nif r0 == 0 goto out\nr1 = 1\n${body}\nout:\nr0 = 0\nexit`;
  const fix = (insns: ReturnType<typeof asm>) => insns.map((i) => (i.code === 0x18 ? { ...i, src: 1, imm: 0 } : i));
  const aligned = checkInsns(fix(asm(lookup('lock *(u64 *)(r0 + 8) += r1'))), { progType: 'xdp', maps: [map] });
  t.true(aligned.safe, aligned.reason ?? '');
  // (an atomic at map value offset 4 is refused by the kernel — atomics are always strictly
  // aligned — and by the search's evaluator, test/synth-eval.test.ts; the safety model is the
  // safety engineer's)
});

test('the rewrite cache: a hit on another window of the same shape is re-proven there, a wrong entry is not used', async (t) => {
  const store = new Map<string, Insn[]>();
  const cache: RewriteCache = { get: (k) => store.get(k), put: (k, v) => void store.set(k, v) };
  const pre: WindowPre = { regs: { 1: { kind: 'packet', off: 0, minLen: 14 } } };
  const first = await solveWindow(job('r2 = *(u8 *)(r1 + 12)\nr3 = *(u8 *)(r1 + 13)\nr2 <<= 8\nr2 |= r3', pre, [1, 2]), { object }, { ...SOLVE, cache });
  t.true(first.proven);
  t.is(store.size, 1);
  // the same window over other registers hits the cache
  const pre2: WindowPre = { regs: { 4: { kind: 'packet', off: 0, minLen: 14 } } };
  const j2 = job('r5 = *(u8 *)(r4 + 12)\nr6 = *(u8 *)(r4 + 13)\nr5 <<= 8\nr5 |= r6', pre2, [4, 5]);
  const second = await solveWindow(j2, { object }, { ...SOLVE, cache });
  t.true(second.cacheHit);
  t.is(text(second.rewrite), 'r5 = *(u16 *)(r4 + 12); r5 = be16 r5');
  // a poisoned entry (not equivalent) is refuted on the concrete window and the search goes on
  const c = canonicalJob(j2);
  store.set(c.key, c.toCanonical(asm('r5 = *(u16 *)(r4 + 12)'))!);
  const third = await solveWindow(j2, { object }, { ...SOLVE, cache });
  t.false(third.cacheHit);
  t.true(third.proven);
  t.is(text(third.rewrite), 'r5 = *(u16 *)(r4 + 12); r5 = be16 r5');
});

test('jumps are tested both ways: the checker supplies inputs for a direction random inputs never take', async (t) => {
  // random packet bytes almost never make r5 == 8: without help every test takes the exit
  const j = job('r4 = *(u8 *)(r3 + 12)\nr5 = *(u8 *)(r3 + 13)\nr5 <<= 8\nr5 |= r4\nif r5 != 8 goto out', { regs: { 3: { kind: 'packet', off: 0, minLen: 14 } } }, [3]);
  const wc = { progType: 'xdp', maps: [] };
  const tests = testsFor(j, wc, new Rng(3), 16)!;
  const passed = (ts: typeof tests): number => ts.filter((x) => x.expected.left === undefined).length;
  t.is(passed(tests), 0, 'random inputs: the jump always taken');
  t.true(await coverJumps(j, tests, wc, new Rng(3), { timeoutMs: 30000, object, progType: 'xdp' }));
  t.true(passed(tests) >= 1, 'an input that falls through');
  t.true(tests.some((x) => x.expected.left === 'out'));
  // a side exit in the middle of a superblock window, both ways too
  const sb = job('r0 = *(u8 *)(r3 + 12)\nif r0 != 17 goto out\nr0 = *(u8 *)(r3 + 13)\nr0 += 1', { regs: { 3: { kind: 'packet', off: 0, minLen: 14 } } }, [0, 3]);
  const ts = testsFor(sb, wc, new Rng(3), 16)!;
  t.true(await coverJumps(sb, ts, wc, new Rng(3), { timeoutMs: 30000, object, progType: 'xdp' }));
  t.true(ts.some((x) => x.expected.left === undefined) && ts.some((x) => x.expected.left === 'out'));
  // and the search then finds the one-load rewrite of the first window, proven
  const out = await solve(j, 0);
  t.true(out.proven);
  t.is(text(out.rewrite), 'r5 = *(u16 *)(r3 + 12); if r5 != 8 goto +0');
});
