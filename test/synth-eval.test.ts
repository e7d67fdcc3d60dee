// The search's concrete evaluator: ALU, memory and atomic semantics cross-checked against the
// interpreter (itself checked against the kernel), and memory regions from preconditions with
// their negative cases (accesses beyond a region fault, as the verifier refuses them).
import test from 'ava';
import { asm } from '../src/smt/index.js';
import { prepareInsns, run } from '../src/interp/index.js';
import { evalWindow, Fault, randomInputFor, Rng, type WinState } from '../src/synth/index.js';
import { cloneState } from '../src/synth/eval.js';
import { evalFast, fastClone, toWords } from '../src/synth/fasteval.js';
import { CLASS, ALU, ATOMIC, MODE, SIZE, SRC_K, SRC_X, type Insn } from '../src/isa/index.js';
import type { IrInsn } from '../src/ir/types.js';
import type { MapInfo } from '../src/smt/index.js';

const ALU_OPS = [ALU.ADD, ALU.SUB, ALU.MUL, ALU.DIV, ALU.MOD, ALU.OR, ALU.AND, ALU.LSH, ALU.RSH, ALU.XOR, ALU.MOV, ALU.ARSH, ALU.NEG];

/** A random straight-line program over r1-r5 and the stack slots fp-8..fp-32 (atomics included). */
function randomProgram(r: Rng, n: number): Insn[] {
  const out: Insn[] = [];
  const reg = (): number => 1 + r.int(5);
  for (let k = 0; k < n; k++) {
    const kind = r.int(10);
    if (kind < 6) {
      const op = r.pick(ALU_OPS);
      const cls = r.int(2) ? CLASS.ALU64 : CLASS.ALU;
      const x = op !== ALU.NEG && r.int(2) === 0;
      const shift = op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH;
      const imm = shift ? r.int(cls === CLASS.ALU64 ? 64 : 32) : r.pick([0, 1, -1, 7, 255, -4096, 0x7fffffff, -0x80000000]);
      const off = (op === ALU.DIV || op === ALU.MOD) && r.int(2) ? 1 : 0;
      out.push({ code: cls | op | (x ? SRC_X : SRC_K), dst: reg(), src: x ? reg() : 0, off, imm: x ? 0 : imm });
    } else if (kind < 7) {
      out.push({ code: CLASS.ALU | ALU.END | (r.int(2) ? SRC_X : SRC_K), dst: reg(), src: 0, off: 0, imm: r.pick([16, 32, 64]) });
    } else if (kind < 8) {
      const size = r.pick([SIZE.B, SIZE.H, SIZE.W, SIZE.DW]);
      const bytes = { [SIZE.B]: 1, [SIZE.H]: 2, [SIZE.W]: 4, [SIZE.DW]: 8 }[size]!;
      out.push({ code: CLASS.STX | MODE.MEM | size, dst: 10, src: reg(), off: -8 * (1 + r.int(4)) + bytes * r.int(8 / bytes), imm: 0 });
    } else if (kind < 9) {
      const size = r.pick([SIZE.B, SIZE.H, SIZE.W, SIZE.DW]);
      out.push({ code: CLASS.LDX | MODE.MEM | size, dst: reg(), src: 10, off: -8 * (1 + r.int(4)), imm: 0 });
    } else {
      const size = r.pick([SIZE.W, SIZE.DW]);
      const op = r.pick([ATOMIC.ADD, ATOMIC.OR, ATOMIC.AND, ATOMIC.XOR, ATOMIC.ADD | ATOMIC.FETCH, ATOMIC.XOR | ATOMIC.FETCH, ATOMIC.XCHG, ATOMIC.CMPXCHG]);
      out.push({ code: CLASS.STX | MODE.ATOMIC | size, dst: 10, src: reg(), off: -8 * (1 + r.int(4)), imm: op });
    }
  }
  return out;
}

test('ALU, stack and atomic semantics agree with the interpreter on 300 random programs', (t) => {
  const r = new Rng(11);
  let compared = 0;
  for (let n = 0; n < 300; n++) {
    const prog = randomProgram(r, 1 + r.int(8));
    const init = [0n, ...Array.from({ length: 5 }, () => r.next64() >> BigInt(r.int(64)))];
    // evaluator: zeroed frame, r0 = 0 (cmpxchg compares it)
    const st: WinState = { regs: [...init, 0n, 0n, 0n, 0n, 0x7fff_0000_0000_0000n], stack: new Uint8Array(512), memSeed: 0 };
    evalWindow(prog, st);
    for (let reg = 0; reg <= 5; reg++) {
      const pro = asm([...Array.from({ length: 4 }, (_, k) => `*(u64 *)(r10 - ${8 * (k + 1)}) = 0`), 'r0 = 0', ...init.slice(1).map((v, k) => `r${k + 1} = ${BigInt.asIntN(64, v)} ll`)]);
      const epi = asm([`r0 = r${reg}`, 'exit']);
      const p = prepareInsns([...pro, ...(prog as IrInsn[]), ...epi]);
      const o = run(p.unit, 'prog', 'xdp', { packet: new Uint8Array(64) }, p.initialMaps());
      t.is(o.status, 'exit');
      t.is(BigInt(o.r0 as unknown as string), st.regs[reg], `r${reg} after ${JSON.stringify(prog)}`);
      compared++;
    }
  }
  t.true(compared >= 1800);
});

const maps: MapInfo[] = [
  { name: 'vals', type: 2, keySize: 4, valueSize: 16, maxEntries: 4, readonly: false, data: false },
  { name: '.rodata', type: 2, keySize: 4, valueSize: 8, maxEntries: 1, readonly: true, data: true },
];
const wc = (progType = 'xdp') => ({ progType, maps });
const runOn = (text: string, st: WinState): WinState | string => {
  const s = cloneState(st);
  try {
    evalWindow(asm(text), s);
    return s;
  } catch (e) {
    if (e instanceof Fault) return e.message;
    throw e;
  }
};
const fault = (x: WinState | string): boolean => typeof x === 'string';

test('packet: accesses inside the verified range run, beyond it they fault', (t) => {
  const r = new Rng(3);
  let exact = 0;
  for (let k = 0; k < 60; k++) {
    const st = randomInputFor(r, { regs: { 1: { kind: 'packet', off: 0, minLen: 14 } } }, wc())!;
    t.false(fault(runOn('r0 = *(u16 *)(r1 + 12)', st)), 'bytes 12..13 are verified');
    t.false(fault(runOn('*(u32 *)(r1 + 10) = 1', st)), 'unaligned packet access is the safety model\'s call');
    const len = st.env!.pkt!.len;
    if (len === 14) {
      exact++;
      t.true(fault(runOn('r0 = *(u32 *)(r1 + 12)', st)), 'bytes 14..15 are beyond a 14-byte packet');
    }
    t.true(fault(runOn(`r0 = *(u8 *)(r1 + ${len})`, st)), 'one past the end');
  }
  t.true(exact > 5, 'some packets are exactly the verified length');
});

test('map values: in-bounds accesses and atomics run; out of bounds, misaligned atomics and read-only stores fault', (t) => {
  const st = randomInputFor(new Rng(5), { regs: { 0: { kind: 'map_value', map: 'vals', off: 0 }, 2: { kind: 'map_value', map: '.rodata', off: 0 } } }, wc('tracepoint'))!;
  t.false(fault(runOn('r1 = *(u64 *)(r0 + 8)', st)));
  t.true(fault(runOn('r1 = *(u64 *)(r0 + 12)', st)), 'bytes 16..19 are beyond a 16-byte value');
  t.true(fault(runOn('r1 = *(u8 *)(r0 - 1)', st)));
  const ok = runOn('r1 = 5\nlock *(u64 *)(r0 + 8) += r1', st) as WinState;
  t.false(fault(ok));
  const before = runOn('r1 = *(u64 *)(r0 + 8)', st) as WinState;
  const after = runOn('r1 = 5\nlock *(u64 *)(r0 + 8) += r1\nr1 = *(u64 *)(r0 + 8)', st) as WinState;
  t.is(after.regs[1], BigInt.asUintN(64, before.regs[1]! + 5n), 'lock add adds');
  t.true(fault(runOn('r1 = 5\nlock *(u64 *)(r0 + 4) += r1', st)), 'misaligned atomic');
  t.true(fault(runOn('*(u32 *)(r2 + 0) = 1', st)), '.rodata is read-only');
  t.false(fault(runOn('r1 = *(u32 *)(r2 + 4)', st)));
});

test('context: field widths and stores the verifier refuses fault; packet pointer fields give packet pointers', (t) => {
  const st = randomInputFor(new Rng(9), { regs: { 1: { kind: 'ctx', off: 0 } } }, wc('xdp'))!;
  const ok = runOn('r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr3 -= r2', st) as WinState;
  t.false(fault(ok));
  t.is(ok.regs[3], BigInt(st.env!.pkt!.len), 'data_end - data is the packet length');
  t.true(fault(runOn('r2 = *(u16 *)(r1 + 0)', st)), 'a 2-byte load of xdp_md->data');
  t.true(fault(runOn('r2 = *(u64 *)(r1 + 0)', st)), 'an 8-byte load of xdp_md->data');
  t.true(fault(runOn('*(u32 *)(r1 + 12) = 0', st)), 'xdp_md is read-only');
  t.true(fault(runOn('r2 = *(u32 *)(r1 + 24)', st)), 'beyond xdp_md');
  const skb = randomInputFor(new Rng(9), { regs: { 1: { kind: 'ctx', off: 0 } } }, wc('sched_cls'))!;
  t.false(fault(runOn('*(u32 *)(r1 + 8) = 7', skb)), 'skb->mark is writable');
  t.true(fault(runOn('*(u32 *)(r1 + 0) = 7', skb)), 'skb->len is not');
});

test('stack: accesses straddling the frame fault; scalar facts are met by every input', (t) => {
  const r = new Rng(1);
  for (let k = 0; k < 50; k++) {
    const st = randomInputFor(r, { regs: { 3: { kind: 'scalar', umin: 10n, umax: 20n }, 4: { kind: 'scalar', tnum: { value: 0n, mask: 0xffn } }, 5: { kind: 'scalar', value: 42n } } }, wc())!;
    t.true(st.regs[3]! >= 10n && st.regs[3]! <= 20n);
    t.is(st.regs[4]! & ~0xffn, 0n);
    t.is(st.regs[5], 42n);
  }
  const st = randomInputFor(r, {}, wc())!;
  t.true(fault(runOn('r0 = *(u64 *)(r10 - 4)', st)), 'crosses the frame top');
  t.true(fault(runOn('r0 = *(u64 *)(r10 - 516)', st)), 'crosses the frame bottom');
  t.false(fault(runOn('r0 = *(u64 *)(r10 - 512)', st)));
});

test('a jump leaving the window records its label; jumps inside it go forward', (t) => {
  const st = randomInputFor(new Rng(2), { regs: { 1: { kind: 'scalar', value: 3n } } }, wc())!;
  const out = runOn('if r1 > 2 goto away\nr0 = 1', st) as WinState;
  t.is(out.left, 'away');
  const inner = runOn('if r1 > 2 goto skip\nr0 = 1\nskip:\nr0 = 2', st) as WinState;
  t.is(inner.left, undefined);
  t.is(inner.regs[0], 2n);
});

test('the fast evaluator (32-bit words) agrees with the reference one on 3,000 random windows over all regions', (t) => {
  const r = new Rng(21);
  const pre = { regs: { 6: { kind: 'packet' as const, off: 0, minLen: 14 }, 7: { kind: 'map_value' as const, map: 'vals', off: 0 }, 8: { kind: 'ctx' as const, off: 0 } } };
  let faults = 0, agreed = 0;
  for (let n = 0; n < 3000; n++) {
    const base = randomProgram(r, 1 + r.int(10));
    const prog: Insn[] = base.map((i) => {
      const c = i.code & 7;
      // redirect some memory accesses to the packet, map value and context; add movsx, jumps, ld_imm64
      if ((c === CLASS.LDX || c === CLASS.STX) && r.int(3) === 0) return { ...i, [c === CLASS.LDX ? 'src' : 'dst']: r.pick([6, 7, 8]), off: r.int(20) };
      if (c === CLASS.LDX && r.int(4) === 0) return { ...i, code: (i.code & ~0xe0) | MODE.MEMSX };
      if (r.int(12) === 0) return { code: CLASS.ALU64 | ALU.MOV | SRC_X, dst: i.dst === 10 ? 1 : i.dst, src: 1 + r.int(5), off: r.pick([8, 16, 32]), imm: 0 };
      if (r.int(12) === 0) return { code: 0x18, dst: 1 + r.int(5), src: 0, off: 0, imm: r.next32() | 0, imm2: r.next32() | 0 };
      return i;
    });
    if (r.int(3) === 0) prog.push({ code: r.pick([0x05 | 0x10, 0x05 | 0x20, 0x05 | 0x60, 0x06 | 0xa0, 0x05 | 0xd0, 0x06 | 0x40]) | r.pick([0, SRC_X]), dst: 1 + r.int(5), src: 1 + r.int(5), off: 0, imm: r.pick([0, 5, -1, 0x7fffffff]), target: 'out' } as Insn);
    const st = randomInputFor(r, pre, wc('xdp'))!;
    const slow = cloneState(st);
    let slowFault: string | null = null;
    try { evalWindow(prog, slow); } catch (e) { if (!(e instanceof Fault)) throw e; slowFault = e.message; }
    const fast = fastClone(st, toWords(st.regs));
    let fastFault: string | null = null;
    try { evalFast(prog, fast); } catch (e) { if (!(e instanceof Fault)) throw e; fastFault = e.message; }
    t.is(fastFault !== null, slowFault !== null, `${JSON.stringify(prog)}: ${slowFault} / ${fastFault}`);
    if (slowFault !== null) { faults++; continue; }
    t.deepEqual([...fast.r], [...toWords(slow.regs)], JSON.stringify(prog));
    t.deepEqual([...fast.stack], [...slow.stack]);
    t.deepEqual([...(fast.written ?? new Map())], [...(slow.written ?? new Map())]);
    t.is(fast.left, slow.left);
    agreed++;
  }
  t.true(agreed > 1500 && faults > 100, `${agreed} agreed, ${faults} faulted in both`);
});

test('ld_abs/ld_ind: big-endian packet loads, the program returning 0 out of the packet, as in the interpreter', (t) => {
  const r = new Rng(8);
  let outside = 0;
  for (let n = 0; n < 200; n++) {
    const len = 14 + r.int(40);
    const packet = new Uint8Array(len).map(() => r.int(256));
    const size = r.pick([SIZE.B, SIZE.H, SIZE.W]);
    const ind = r.int(2) === 0;
    const x = BigInt(r.int(3) === 0 ? r.next32() : r.int(64));
    const imm = r.pick([0, 2, 12, 13, 30, 50, -1, 0x7fffffff]);
    const ld: Insn = { code: CLASS.LD | (ind ? MODE.IND : MODE.ABS) | size, dst: 0, src: ind ? 7 : 0, off: 0, imm };
    const initial = new Map<bigint, number>();
    const PKT = 0x6100_0000_0000_0000n;
    packet.forEach((b, k) => initial.set(PKT + BigInt(k), b));
    const st: WinState = {
      regs: [0n, 1n, 2n, 3n, 4n, 5n, 6n, x, 0n, 0n, 0x7fff_0000_0000_0000n], stack: new Uint8Array(512), memSeed: 0,
      env: { regions: [{ kind: 'pkt', name: 'packet', base: PKT, size: len, writable: true }], pkt: { base: PKT, len }, initial },
    };
    evalWindow([ld], st);
    const p = prepareInsns([...asm(['r6 = r1', `r7 = ${x} ll`]), ld as IrInsn, ...asm(['exit'])]);
    const o = run(p.unit, 'prog', 'sched_cls', { packet }, p.initialMaps());
    t.is(o.status, 'exit');
    t.is(BigInt(o.r0 as unknown as string), st.regs[0], JSON.stringify({ ld, x: String(x), len }));
    if (st.left === '$exit') outside++;
  }
  t.true(outside > 10, `${outside} loads outside the packet`);
});
