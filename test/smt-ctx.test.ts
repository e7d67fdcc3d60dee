import test from 'ava';
import { existsSync } from 'node:fs';
import { readObject, cloneCode } from '../src/ir/index.js';
import type { BpfObject, ProgramRef } from '../src/ir/types.js';
import { asm, checkPrograms, checkWindow, shutdownZ3, type CheckOptions, type RegFact } from '../src/smt/index.js';
import { replayPrograms } from '../src/smt/replay.js';

test.after.always(async () => {
  await shutdownZ3();
});

// The checker's context is the production one: every field the kernel does not fix is free, within
// what the kernel guarantees. A rewrite that only holds for BPF_PROG_TEST_RUN's context
// (queue_mapping 0, ifindex 1, len = packet length, egress_ifindex 0, no metadata) must not be
// proven — at window level and at program level — while rewrites relying on real guarantees are.

const ctx: RegFact = { kind: 'ctx', off: 0 };
const O: CheckOptions = { timeoutMs: 20000 };

interface Row {
  name: string;
  progType: string;
  a: string;
  b: string;
}

// each `a` reads a context field, `b` assumes the test run's value
const TEST_RUN_ONLY: Row[] = [
  { name: 'skb->queue_mapping == 0', progType: 'sched_cls', a: 'r0 = *(u32 *)(r1 + 12)', b: 'r0 = 0' },
  { name: 'skb->ifindex == 1', progType: 'sched_cls', a: 'r0 = *(u32 *)(r1 + 40)', b: 'r0 = 1' },
  { name: 'skb->hash == 0', progType: 'sched_cls', a: 'r0 = *(u32 *)(r1 + 68)', b: 'r0 = 0' },
  { name: 'skb->vlan_tci == 0', progType: 'sched_cls', a: 'r0 = *(u32 *)(r1 + 24)', b: 'r0 = 0' },
  { name: 'skb->len == data_end - data', progType: 'sched_cls', a: 'r0 = *(u32 *)(r1 + 0)', b: 'r2 = *(u32 *)(r1 + 76); r0 = *(u32 *)(r1 + 80); r0 -= r2' },
  { name: 'xdp egress_ifindex == 0', progType: 'xdp', a: 'r0 = *(u32 *)(r1 + 20)', b: 'r0 = 0' },
  { name: 'xdp ingress_ifindex == 1', progType: 'xdp', a: 'r0 = *(u32 *)(r1 + 12)', b: 'r0 = 1' },
  { name: 'xdp data_meta == data', progType: 'xdp', a: 'r0 = *(u32 *)(r1 + 8)', b: 'r0 = *(u32 *)(r1 + 0)' },
  { name: 'skb data_meta == data', progType: 'sched_cls', a: 'r0 = *(u32 *)(r1 + 140)', b: 'r0 = *(u32 *)(r1 + 76)' },
];

for (const row of TEST_RUN_ONLY) {
  test(`window: not proven: ${row.name}`, async (t) => {
    const a = asm(row.a), b = asm(row.b);
    const r = await checkWindow(a, b, { regs: { 1: ctx } }, { regs: [0] }, { ...O, progType: row.progType });
    t.is(r.equivalent, false, JSON.stringify(r));
    // the documented test-run model still proves it (only for tools that care about test runs)
    const tr = await checkWindow(a, b, { regs: { 1: ctx } }, { regs: [0] }, { ...O, progType: row.progType, ctx: 'test-run' });
    t.is(tr.equivalent, true, `test-run model: ${JSON.stringify(tr)}`);
  });
}

// guarantees of the kernel's context rewrite (net/core/filter.c bpf_convert_ctx_access) and of sk_buff
const PRODUCTION: Row[] = [
  { name: 'queue_mapping is a u16', progType: 'sched_cls', a: 'r0 = *(u32 *)(r1 + 12); r0 &= 0xffff', b: 'r0 = *(u32 *)(r1 + 12)' },
  { name: 'vlan_present is 0 or 1', progType: 'sched_cls', a: 'r0 = *(u32 *)(r1 + 20); r0 &= 1', b: 'r0 = *(u32 *)(r1 + 20)' },
  { name: 'pkt_type is at most 7', progType: 'sched_cls', a: 'r0 = *(u32 *)(r1 + 4); r0 &= 7', b: 'r0 = *(u32 *)(r1 + 4)' },
  { name: 'ingress_ifindex is never 0', progType: 'xdp', a: 'r0 = *(u32 *)(r1 + 12); if r0 != 0 goto l; r0 = 5; l: r0 = r0', b: 'r0 = *(u32 *)(r1 + 12)' },
];

for (const row of PRODUCTION) {
  test(`window: proven from a kernel guarantee: ${row.name}`, async (t) => {
    const r = await checkWindow(asm(row.a), asm(row.b), { regs: { 1: ctx } }, { regs: [0] }, { ...O, progType: row.progType });
    t.is(r.equivalent, true, JSON.stringify(r));
  });
}

test('window: skb->len >= data_end - data is a guarantee, skb->len == data_end - data is not', async (t) => {
  // r0 = len < data_end - data ? 1 : 0  is always 0
  const a = asm('r2 = *(u32 *)(r1 + 76); r3 = *(u32 *)(r1 + 80); r3 -= r2; r4 = *(u32 *)(r1 + 0); r0 = 0; if r4 >= r3 goto l; r0 = 1; l: r0 = r0');
  const r = await checkWindow(a, asm('r0 = 0'), { regs: { 1: ctx } }, { regs: [0] }, { ...O, progType: 'sched_cls' });
  t.is(r.equivalent, true, JSON.stringify(r));
  const b = asm('r2 = *(u32 *)(r1 + 76); r3 = *(u32 *)(r1 + 80); r3 -= r2; r4 = *(u32 *)(r1 + 0); r0 = 0; if r4 == r3 goto l; r0 = 1; l: r0 = r0');
  const r2 = await checkWindow(b, asm('r0 = 0'), { regs: { 1: ctx } }, { regs: [0] }, { ...O, progType: 'sched_cls' });
  t.is(r2.equivalent, false, JSON.stringify(r2));
});

test('window: ctx stores the kernel narrows (tc_index is 16 bits, queue_mapping >= 0xffff is not stored)', async (t) => {
  const o = { ...O, progType: 'sched_cls' };
  const pre = { regs: { 1: ctx } };
  // reading tc_index back after a store gives the low 16 bits
  const r = await checkWindow(asm('*(u32 *)(r1 + 44) = r2; r0 = *(u32 *)(r1 + 44)'), asm('*(u32 *)(r1 + 44) = r2; r0 = r2; r0 &= 0xffff'), pre, { regs: [0] }, o);
  t.is(r.equivalent, true, JSON.stringify(r));
  // a queue_mapping store of 0xffff changes nothing
  const q = await checkWindow(asm('*(u32 *)(r1 + 12) = 0xffff; r0 = 0'), asm('r0 = 0'), pre, { regs: [0] }, o);
  t.is(q.equivalent, true, JSON.stringify(q));
  const q2 = await checkWindow(asm('*(u32 *)(r1 + 12) = 0xfffe; r0 = 0'), asm('r0 = 0'), pre, { regs: [0] }, o);
  t.is(q2.equivalent, false, JSON.stringify(q2));
});

// ------------------------------------------------------------------ whole programs

function need(t: { fail(m: string): void }, f: string): boolean {
  if (existsSync(f)) return true;
  t.fail(`${f} is missing: run make -C fixtures`);
  return false;
}

/** A copy of `file` whose program `name` is replaced by `code` (a single-function program). */
function program(file: string, name: string, code: string): { obj: BpfObject; prog: ProgramRef } {
  const obj = cloneCode(readObject(file));
  const prog = obj.programs.find((p) => p.name === name)!;
  const sec = obj.code.find((s) => s.name === prog.section)!;
  // `r0 = *(u8 *)skb[K]` is ld_abs (BPF_LD | BPF_ABS | BPF_B), assembled through a `r9 = K` stand-in
  const insns = asm(code.replace(/r0 = \*\(u8 \*\)skb\[(-?\d+)\]/g, 'r9 = $1')).map((i) =>
    i.dst === 9 && i.code === 0xb7 ? { ...i, code: 0x30, dst: 0 } : i);
  insns[0] = { ...insns[0]!, labels: [...(insns[0]!.labels ?? []), prog.entry] };
  sec.insns = insns;
  const p = { ...prog };
  return { obj: { ...obj, programs: [p] }, prog: p };
}

const PROGRAM_ROWS: (Row & { file: string; prog: string })[] = [
  // counts[skb->queue_mapping]++ with the bound check dropped: the repair engineer's case
  { name: 'queue_mapping < 10 check dropped', progType: 'sched_cls', file: 'fixtures/build/tc_classifier.o', prog: 'tc_ingress',
    a: 'r2 = *(u32 *)(r1 + 12); r0 = 1; if r2 < 10 goto out; r0 = 2; out: exit', b: 'r0 = 1; exit' },
  { name: 'ifindex == 1 assumed', progType: 'sched_cls', file: 'fixtures/build/tc_classifier.o', prog: 'tc_ingress',
    a: 'r0 = *(u32 *)(r1 + 40); exit', b: 'r0 = 1; exit' },
  { name: 'len == data_end - data assumed', progType: 'sched_cls', file: 'fixtures/build/tc_classifier.o', prog: 'tc_ingress',
    a: 'r0 = *(u32 *)(r1 + 0); exit', b: 'r2 = *(u32 *)(r1 + 76); r0 = *(u32 *)(r1 + 80); r0 -= r2; exit' },
  { name: 'egress_ifindex == 0 assumed', progType: 'xdp', file: 'fixtures/build/xdp_parser.o', prog: 'xdp_parser',
    a: 'r0 = *(u32 *)(r1 + 20); exit', b: 'r0 = 0; exit' },
  // metadata before the packet: the test run never has any, production packets may
  { name: 'a metadata read assumed out of range', progType: 'xdp', file: 'fixtures/build/xdp_parser.o', prog: 'xdp_parser',
    a: 'r2 = *(u32 *)(r1 + 8); r3 = *(u32 *)(r1 + 0); r4 = r2; r4 += 4; r0 = 0; if r4 > r3 goto out; r0 = *(u32 *)(r2 + 0); out: exit', b: 'r0 = 0; exit' },
  // ld_abs beyond the linear part reads the paged data (skb_copy_bits up to skb->len)
  { name: 'ld_abs beyond data_end assumed to return 0', progType: 'sched_cls', file: 'fixtures/build/tc_classifier.o', prog: 'tc_ingress',
    a: 'r6 = r1; r0 = *(u8 *)skb[100]; exit',
    b: 'r6 = r1; r2 = *(u32 *)(r1 + 76); r3 = *(u32 *)(r1 + 80); r3 -= r2; r0 = 0; if r3 < 101 goto out; r0 = *(u8 *)skb[100]; out: exit' },
];

for (const row of PROGRAM_ROWS) {
  test(`program: not proven: ${row.name}`, async (t) => {
    if (!need(t, row.file)) return;
    const A = program(row.file, row.prog, row.a), B = program(row.file, row.prog, row.b);
    const r = await checkPrograms(A.obj, A.prog, B.obj, B.prog, O);
    t.is(r.equivalent, false, JSON.stringify(r));
    // the counterexample needs a context the test run cannot make: flagged, and the interpreter
    // (which runs programs as the test run does) indeed shows no difference on it
    t.true(r.counterexample?.ctxDependent, JSON.stringify(r.counterexample));
    t.false(replayPrograms(A.obj, A.prog, B.obj, B.prog, r.counterexample!).reproduced);
  });
}

test('program: a difference the test run can show is replayed, not flagged', async (t) => {
  const f = 'fixtures/build/tc_classifier.o';
  if (!need(t, f)) return;
  // mark comes from ctx_in in the test run too: the counterexample is preferred in the test-run space
  const A = program(f, 'tc_ingress', 'r0 = *(u32 *)(r1 + 8); if r0 == 77 goto x; r0 = 0; exit; x: r0 = 1; exit');
  const B = program(f, 'tc_ingress', 'r0 = 0; exit');
  const r = await checkPrograms(A.obj, A.prog, B.obj, B.prog, O);
  t.is(r.equivalent, false);
  t.falsy(r.counterexample?.ctxDependent, JSON.stringify(r.counterexample));
  t.true(replayPrograms(A.obj, A.prog, B.obj, B.prog, r.counterexample!).reproduced, JSON.stringify(r.counterexample));
});

test('program: ld_abs at a negative (SKF_NET_OFF) offset is never "equal"', async (t) => {
  const f = 'fixtures/build/socket_filter.o';
  if (!need(t, f)) return;
  const A = program(f, 'sock_web', 'r6 = r1; r0 = *(u8 *)skb[-1048567]; exit');
  const B = program(f, 'sock_web', 'r6 = r1; r0 = 0; exit');
  const r = await checkPrograms(A.obj, A.prog, B.obj, B.prog, O);
  t.not(r.equivalent, true, JSON.stringify(r));
});
