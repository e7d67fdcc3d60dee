// Interpreter behaviour beyond single ALU ops: memory regions and faults, calls, atomics, maps and
// helpers, contexts, and the fixtures' recorded kernel results.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import {
  prepareInsns, prepareObject, run, fromHex, MAP_TYPE, SKB, csumFold, type MapSpec, type Outcome,
} from '../src/interp/index.js';
import { readObject } from '../src/ir/index.js';
import { ALU, ATOMIC, CLASS, JMP, LD_IMM64, MODE, SIZE, SRC_K, SRC_X } from '../src/isa/index.js';
import type { IrInsn } from '../src/ir/types.js';
import { K2Error } from '../src/util/errors.js';

const I = (code: number, dst: number, src: number, off: number, imm: number, extra: Partial<IrInsn> = {}): IrInsn => ({ code, dst, src, off, imm, ...extra });
const mov = (dst: number, imm: number): IrInsn => I(CLASS.ALU64 | ALU.MOV | SRC_K, dst, 0, 0, imm);
const movr = (dst: number, src: number): IrInsn => I(CLASS.ALU64 | ALU.MOV | SRC_X, dst, src, 0, 0);
const addi = (dst: number, imm: number): IrInsn => I(CLASS.ALU64 | ALU.ADD | SRC_K, dst, 0, 0, imm);
const stx = (size: number, dst: number, src: number, off: number): IrInsn => I(CLASS.STX | MODE.MEM | size, dst, src, off, 0);
const st = (size: number, dst: number, off: number, imm: number): IrInsn => I(CLASS.ST | MODE.MEM | size, dst, 0, off, imm);
const ldx = (size: number, dst: number, src: number, off: number): IrInsn => I(CLASS.LDX | MODE.MEM | size, dst, src, off, 0);
const call = (id: number): IrInsn => I(CLASS.JMP | JMP.CALL, 0, 0, 0, id);
const exit = I(CLASS.JMP | JMP.EXIT, 0, 0, 0, 0);
const ldMap = (dst: number, map: number): IrInsn => ({ code: LD_IMM64, dst, src: 1, off: 0, imm: 0, imm2: 0, reloc: { sym: map, type: 1 } });

function exec(insns: IrInsn[], opts: { maps?: MapSpec[]; progType?: string; packet?: Uint8Array; subprograms?: { name: string; insns: IrInsn[] }[] } = {}): Outcome {
  const prep = prepareInsns(insns, { maps: opts.maps, subprograms: opts.subprograms });
  return run(prep.unit, 'prog', opts.progType ?? 'kprobe', { packet: opts.packet ?? new Uint8Array(64) }, prep.initialMaps());
}

test('stack stores and loads of every size, with sign-extending loads', (t) => {
  const out = exec([
    I(LD_IMM64, 1, 0, 0, 0x89abcdef - 2 ** 32, { imm2: 0x01234567 }),
    stx(SIZE.DW, 10, 1, -8),
    ldx(SIZE.B, 2, 10, -8), // 0xef
    I(CLASS.LDX | MODE.MEMSX | SIZE.B, 3, 10, -8, 0), // -17
    I(CLASS.LDX | MODE.MEMSX | SIZE.H, 4, 10, -8, 0), // 0xcdef -> negative
    I(CLASS.LDX | MODE.MEMSX | SIZE.W, 5, 10, -8, 0), // 0x89abcdef -> negative
    ldx(SIZE.W, 6, 10, -4), // 0x01234567
    movr(0, 2),
    I(CLASS.ALU64 | ALU.ADD | SRC_X, 0, 3, 0, 0), // 0xef - 17 = 222
    I(CLASS.ALU64 | ALU.ADD | SRC_X, 0, 6, 0, 0),
    I(CLASS.ALU64 | ALU.XOR | SRC_X, 0, 4, 0, 0),
    I(CLASS.ALU64 | ALU.XOR | SRC_X, 0, 5, 0, 0),
    exit,
  ]);
  t.is(out.status, 'exit');
  const expect = BigInt.asUintN(64, (0xefn - 17n + 0x01234567n) ^ BigInt.asUintN(64, -0x3211n) ^ BigInt.asUintN(64, BigInt.asIntN(32, 0x89abcdefn)));
  t.is(BigInt(out.r0), expect);
});

test('reading uninitialised stack is a fault naming the slot', (t) => {
  const out = exec([ldx(SIZE.W, 0, 10, -16), exit]);
  t.is(out.status, 'fault');
  t.regex(out.fault!.reason, /uninitialised stack at stack-16/);
  t.is(out.fault!.insn, 0);
});

test('out-of-bounds stack and packet accesses are faults, not crashes', (t) => {
  t.regex(exec([st(SIZE.DW, 10, 0, 1), exit]).fault!.reason, /out-of-bounds store of 8 bytes at stack\+0/);
  t.regex(exec([st(SIZE.W, 10, -516, 1), exit]).fault!.reason, /out-of-bounds/);
  const xdp = exec([ldx(SIZE.W, 2, 1, 0), ldx(SIZE.B, 0, 2, 64), exit], { progType: 'xdp', packet: new Uint8Array(64) });
  t.is(xdp.status, 'fault');
  t.regex(xdp.fault!.reason, /out-of-bounds load of 1 bytes at packet\+64/);
  t.regex(exec([mov(1, 1234), ldx(SIZE.B, 0, 1, 0), exit]).fault!.reason, /non-pointer/);
});

test('xdp_md data/data_end give the packet bounds; the packet comes back as data_out', (t) => {
  const out = exec(
    [ldx(SIZE.W, 2, 1, 0), ldx(SIZE.W, 3, 1, 4), movr(0, 3), I(CLASS.ALU64 | ALU.SUB | SRC_X, 0, 2, 0, 0), st(SIZE.B, 2, 0, 0x7f), exit],
    { progType: 'xdp', packet: new Uint8Array(60) },
  );
  t.is(out.ret, 60);
  t.is(out.packet, '7f' + '00'.repeat(59));
});

test('__sk_buff of a tc program: len, protocol (network order), ifindex, mark written back in ctx', (t) => {
  const pkt = fromHex('0200000000010200000000020800450000281234000040067c65c0000201c63364029c400050000003e8000000005002ffff00000000000000000000');
  const prep = prepareInsns([
    ldx(SIZE.W, 2, 1, SKB.len), ldx(SIZE.W, 3, 1, SKB.protocol), ldx(SIZE.W, 4, 1, SKB.ifindex),
    st(SIZE.W, 1, SKB.mark, 77),
    movr(0, 2), I(CLASS.ALU64 | ALU.LSH | SRC_K, 0, 0, 0, 16), I(CLASS.ALU64 | ALU.OR | SRC_X, 0, 3, 0, 0),
    I(CLASS.ALU64 | ALU.LSH | SRC_K, 0, 0, 0, 8), I(CLASS.ALU64 | ALU.OR | SRC_X, 0, 4, 0, 0), exit,
  ]);
  const out = run(prep.unit, 'prog', 'sched_cls', { packet: pkt, ctx: new Uint8Array(SKB.size) }, []);
  t.is(BigInt(out.r0), (60n << 24n) | (0x0008n << 8n) | 1n);
  t.is(Buffer.from(out.ctx!, 'hex').readUInt32LE(SKB.mark), 77);
  // socket filters see the packet from the network header; the kernel zeroes the MAC header on output.
  const sf = run(prep.unit, 'prog', 'socket_filter', { packet: pkt }, []);
  t.is(Number(BigInt(sf.r0) >> 24n), 46);
  t.is(sf.packet, '00'.repeat(14) + Buffer.from(pkt.subarray(14)).toString('hex'));
});

test('ld_abs/ld_ind load big-endian from the packet and return 0 when out of bounds', (t) => {
  const pkt = fromHex('0200000000010200000000020800450000281234000040067c65c0000201c63364029c400050000003e8000000005002ffff00000000000000000000');
  const prog = (off: number): IrInsn[] => [movr(6, 1), I(CLASS.LD | MODE.ABS | SIZE.H, 0, 0, 0, off), addi(0, 1), exit];
  const ok = exec(prog(2), { progType: 'socket_filter', packet: pkt });
  t.is(ok.ret, 0x0028 + 1); // IPv4 total length, network header relative
  const oob = exec(prog(45), { progType: 'socket_filter', packet: pkt });
  t.is(oob.status, 'exit');
  t.is(oob.ret, 0);
  const ind = exec([movr(6, 1), mov(7, 8), I(CLASS.LD | MODE.IND | SIZE.W, 0, 7, 0, 4), exit], { progType: 'socket_filter', packet: pkt });
  t.is(ind.ret, 0xc0000201); // saddr
});

test('bpf-to-bpf calls get their own stack frame and keep r6-r9', (t) => {
  const out = exec(
    [
      mov(6, 1), mov(7, 2), mov(8, 3), mov(9, 4), st(SIZE.DW, 10, -8, 100), mov(1, 5),
      I(CLASS.JMP | JMP.CALL, 0, 1, 0, 0, { callee: { section: 'sub', label: 'f' } }),
      ldx(SIZE.DW, 2, 10, -8),
      I(CLASS.ALU64 | ALU.ADD | SRC_X, 0, 2, 0, 0), I(CLASS.ALU64 | ALU.ADD | SRC_X, 0, 6, 0, 0), I(CLASS.ALU64 | ALU.ADD | SRC_X, 0, 7, 0, 0),
      I(CLASS.ALU64 | ALU.ADD | SRC_X, 0, 8, 0, 0), I(CLASS.ALU64 | ALU.ADD | SRC_X, 0, 9, 0, 0), exit,
    ],
    {
      subprograms: [{
        name: 'sub',
        insns: [
          st(SIZE.DW, 10, -8, 1000, { labels: ['f'] } as never), mov(6, 0), mov(7, 0), mov(8, 0), mov(9, 0),
          ldx(SIZE.DW, 0, 10, -8), I(CLASS.ALU64 | ALU.ADD | SRC_X, 0, 1, 0, 0), exit,
        ].map((x, i) => (i === 0 ? { ...x, labels: ['f'] } : x)),
      }],
    },
  );
  t.is(out.status, 'exit');
  t.is(out.ret, 1005 + 100 + 1 + 2 + 3 + 4);
});

test('atomics: fetch-add, xchg and cmpxchg on stack (64 and 32 bit)', (t) => {
  const out = exec([
    st(SIZE.DW, 10, -8, 10), mov(1, 5),
    I(CLASS.STX | MODE.ATOMIC | SIZE.DW, 10, 1, -8, ATOMIC.ADD | ATOMIC.FETCH), // r1 = 10, mem = 15
    mov(2, 7), I(CLASS.STX | MODE.ATOMIC | SIZE.DW, 10, 2, -8, ATOMIC.XCHG), // r2 = 15, mem = 7
    mov(0, 7), mov(3, 99), I(CLASS.STX | MODE.ATOMIC | SIZE.DW, 10, 3, -8, ATOMIC.CMPXCHG), // r0 = 7 (old), mem = 99
    mov(0, 1), mov(4, 55), I(CLASS.STX | MODE.ATOMIC | SIZE.W, 10, 4, -8, ATOMIC.CMPXCHG), // no swap, r0 = 99
    ldx(SIZE.DW, 5, 10, -8), // 99
    I(CLASS.ALU64 | ALU.LSH | SRC_K, 1, 0, 0, 24), I(CLASS.ALU64 | ALU.LSH | SRC_K, 2, 0, 0, 16), I(CLASS.ALU64 | ALU.LSH | SRC_K, 5, 0, 0, 8),
    I(CLASS.ALU64 | ALU.OR | SRC_X, 0, 1, 0, 0), I(CLASS.ALU64 | ALU.OR | SRC_X, 0, 2, 0, 0), I(CLASS.ALU64 | ALU.OR | SRC_X, 0, 5, 0, 0), exit,
  ]);
  t.is(out.ret, (10 << 24) | (15 << 16) | (99 << 8) | 99);
});

const hashSpec: MapSpec = { name: 'h', type: MAP_TYPE.HASH, keySize: 4, valueSize: 8, maxEntries: 2, flags: 0 };

test('hash map: update, lookup returns a pointer into the value, NOEXIST/full errors, delete', (t) => {
  const out = exec(
    [
      st(SIZE.W, 10, -4, 7), st(SIZE.DW, 10, -16, 41),
      ldMap(1, 0), movr(2, 10), addi(2, -4), movr(3, 10), addi(3, -16), mov(4, 0), call(2), movr(6, 0), // 0
      ldMap(1, 0), movr(2, 10), addi(2, -4), movr(3, 10), addi(3, -16), mov(4, 1), call(2), movr(7, 0), // -EEXIST
      ldMap(1, 0), movr(2, 10), addi(2, -4), call(1), // lookup
      ldx(SIZE.DW, 8, 0, 0), addi(8, 1), stx(SIZE.DW, 0, 8, 0), // *value += 1
      st(SIZE.W, 10, -4, 8), ldMap(1, 0), movr(2, 10), addi(2, -4), movr(3, 10), addi(3, -16), mov(4, 0), call(2), // new key 8
      st(SIZE.W, 10, -4, 9), ldMap(1, 0), movr(2, 10), addi(2, -4), movr(3, 10), addi(3, -16), mov(4, 0), call(2), movr(9, 0), // -E2BIG
      st(SIZE.W, 10, -4, 8), ldMap(1, 0), movr(2, 10), addi(2, -4), call(3), // delete 8
      movr(0, 7), I(CLASS.ALU64 | ALU.LSH | SRC_K, 0, 0, 0, 8), I(CLASS.ALU64 | ALU.AND | SRC_K, 9, 0, 0, 0xff), I(CLASS.ALU64 | ALU.OR | SRC_X, 0, 9, 0, 0),
      I(CLASS.ALU64 | ALU.AND | SRC_K, 0, 0, 0, 0xffff), exit,
    ],
    { maps: [hashSpec] },
  );
  t.is(out.status, 'exit', out.fault?.reason);
  t.is(out.ret, ((-17 & 0xff) << 8) | (-7 & 0xff));
  t.deepEqual(out.maps[0]!.entries, [['07000000', '2a00000000000000']]);
});

test('an unmodelled helper is an error naming the helper id', (t) => {
  const err = t.throws(() => exec([call(999), exit]));
  t.true(err instanceof K2Error);
  t.regex(err!.message, /helper 999 is not modelled/);
  const err2 = t.throws(() => exec([call(66), exit]));
  t.regex(err2!.message, /helper 66 \(skb_get_xfrm_state\) is not modelled/);
});

test('division and modulo by zero follow the kernel (dst = 0 / dst unchanged)', (t) => {
  const out = exec([mov(1, 9), mov(2, 0), I(CLASS.ALU64 | ALU.DIV | SRC_X, 1, 2, 0, 0), mov(3, 9), I(CLASS.ALU64 | ALU.MOD | SRC_X, 3, 2, 0, 0), movr(0, 1), I(CLASS.ALU64 | ALU.LSH | SRC_K, 0, 0, 0, 8), I(CLASS.ALU64 | ALU.OR | SRC_X, 0, 3, 0, 0), exit]);
  t.is(out.ret, 9);
});

test('step limit turns an endless loop into a fault', (t) => {
  const prep = prepareInsns([I(CLASS.JMP | JMP.JA, 0, 0, 0, 0, { labels: ['top'], target: 'top' }), exit]);
  const out = run(prep.unit, 'prog', 'kprobe', { packet: new Uint8Array(0) }, [], { maxSteps: 1000 });
  t.is(out.status, 'fault');
  t.regex(out.fault!.reason, /step limit/);
});

test('csum fold of one\'s-complement sums', (t) => {
  t.is(csumFold(0), 0xffff);
  t.is(csumFold(0xffffffff), 0);
  t.is(csumFold(0x0001fffe), 0);
});

// The fixtures' manifest records the kernel's return value and output packet for sample inputs.
const manifestPath = new URL('../fixtures/manifest.json', import.meta.url);
test('fixture samples: interpreter return values and packets equal the recorded kernel results', (t) => {
  if (!existsSync(manifestPath)) return t.fail('fixtures/manifest.json is missing');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    object: string;
    programs: { name: string; type: string; testRun?: boolean; loads?: boolean; samples?: { name: string; data: string; retval: number; dataOut?: string }[] }[];
  }[];
  let checked = 0;
  for (const o of manifest) {
    const path = new URL(`../fixtures/${o.object}`, import.meta.url);
    if (!existsSync(path)) return t.fail(`${o.object} is not built (make -C fixtures)`);
    const progs = o.programs.filter((p) => p.samples?.length);
    if (!progs.length) continue;
    const prep = prepareObject(readObject(path.pathname));
    for (const p of progs) {
      for (const s of p.samples!) {
        const out = run(prep.unit, p.name, p.type, { packet: fromHex(s.data) }, prep.initialMaps());
        t.is(out.ret, s.retval, `${o.object} ${p.name} ${s.name}`);
        if (s.dataOut) t.is(out.packet, s.dataOut, `${o.object} ${p.name} ${s.name} packet`);
        checked++;
      }
    }
  }
  t.true(checked >= 20, `only ${checked} samples`);
});
