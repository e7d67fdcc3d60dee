// Helpers the fixtures and corpus reach rarely, checked against the kernel: small hand-written XDP
// and tc programs (spliced into fixture objects in place of their own code) run in the interpreter
// and in the kernel on generated packets.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readObject, writeObject } from '../src/ir/index.js';
import type { IrInsn } from '../src/ir/types.js';
import { ALU, CLASS, JMP, MODE, SIZE, SRC_K, SRC_X } from '../src/isa/index.js';
import { checkSemantics } from '../src/testgen/diff.js';

const root = new URL('..', import.meta.url).pathname;
const INPUTS = Number(process.env.K2_HELPER_INPUTS ?? 600);

const I = (code: number, dst: number, src: number, off: number, imm: number, extra: Partial<IrInsn> = {}): IrInsn => ({ code, dst, src, off, imm, ...extra });
const mov = (d: number, imm: number): IrInsn => I(CLASS.ALU64 | ALU.MOV | SRC_K, d, 0, 0, imm);
const movr = (d: number, s: number): IrInsn => I(CLASS.ALU64 | ALU.MOV | SRC_X, d, s, 0, 0);
const alu = (op: number, d: number, imm: number): IrInsn => I(CLASS.ALU64 | op | SRC_K, d, 0, 0, imm);
const ldx = (size: number, d: number, s: number, off: number): IrInsn => I(CLASS.LDX | MODE.MEM | size, d, s, off, 0);
const stx = (size: number, d: number, s: number, off: number): IrInsn => I(CLASS.STX | MODE.MEM | size, d, s, off, 0);
const call = (id: number): IrInsn => I(CLASS.JMP | JMP.CALL, 0, 0, 0, id);
const exit = I(CLASS.JMP | JMP.EXIT, 0, 0, 0, 0);
const jgt = (d: number, s: number, target: string): IrInsn => I(CLASS.JMP | JMP.JGT | SRC_X, d, s, 0, 0, { target });

/** Replaces the code of program `prog` of a fixture with `body` and writes the object to `out`. */
function splice(fixture: string, section: string, body: IrInsn[], out: string): void {
  const obj = readObject(join(root, 'fixtures/build', fixture));
  const sec = obj.code.find((s) => s.name === section)!;
  const first = sec.insns[0]!;
  const keep = new Set(sec.symbols.map((s) => s.start).filter((l) => l !== first.labels?.[0]));
  const insns = body.map((x) => ({ ...x }));
  insns[0] = { ...insns[0]!, labels: [...(first.labels ?? []), ...(insns[0]!.labels ?? [])], ...(first.funcInfo ? { funcInfo: first.funcInfo } : {}), ...(first.lines ? { lines: first.lines } : {}) };
  const last = insns[insns.length - 1]!;
  last.labels = [...(last.labels ?? []), ...keep]; // local label symbols of the old code
  sec.insns = insns;
  writeObject(obj, out);
}

/** Copies `n` (multiple of 8) packet bytes to fp-n..fp-1 after checking data + n <= data_end; r2 = data. */
function packetToStack(n: number, tooShort: string, skb = false): IrInsn[] {
  const out: IrInsn[] = [movr(6, 1), ldx(SIZE.W, 2, 6, skb ? 76 : 0), ldx(SIZE.W, 3, 6, skb ? 80 : 4), movr(4, 2), alu(ALU.ADD, 4, n), jgt(4, 3, tooShort)];
  for (let i = 0; i < n; i += 8) out.push(ldx(SIZE.DW, 5, 2, i), stx(SIZE.DW, 10, 5, -n + i));
  return out;
}

async function check(t: import('ava').ExecutionContext, fixture: string, section: string, prog: string, body: IrInsn[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'k2-helpers-'));
  try {
    const file = join(dir, 'p.o');
    splice(fixture, section, body, file);
    const r = await checkSemantics(file, { inputs: INPUTS, seed: 11, programs: [prog] });
    const p = r.programs.find((x) => x.name === prog);
    t.truthy(p, `not tested: ${JSON.stringify(r.untestable)}`);
    if (!p) return;
    t.is(p.mismatches, 0, JSON.stringify(p.firstMismatch));
    t.is(p.inputs, INPUTS);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test.serial('csum_diff: sizes (including invalid ones) and seed from the packet', async (t) => {
  await check(t, 'xdp_parser.o', 'xdp', 'xdp_parser', [
    ...packetToStack(40, 'short'),
    ldx(SIZE.B, 7, 2, 0), alu(ALU.AND, 7, 15), // from_size 0..15
    ldx(SIZE.B, 8, 2, 1), alu(ALU.AND, 8, 15), // to_size 0..15
    ldx(SIZE.W, 9, 2, 2), // seed
    movr(1, 10), alu(ALU.ADD, 1, -40), movr(2, 7), movr(3, 10), alu(ALU.ADD, 3, -20), movr(4, 8), movr(5, 9), call(28),
    exit,
    { ...mov(0, 0), labels: ['short'] }, exit,
  ]);
});

test.serial('xdp_adjust_head, xdp_adjust_tail, xdp_adjust_meta with deltas from the packet', async (t) => {
  const delta = (off: number, scale: number): IrInsn[] => [
    ldx(SIZE.B, 7, 2, off), alu(ALU.LSH, 7, 56), alu(ALU.ARSH, 7, 56), alu(ALU.MUL, 7, scale),
  ];
  await check(t, 'xdp_parser.o', 'xdp', 'xdp_parser', [
    ...packetToStack(8, 'short'),
    ...delta(0, 3), movr(1, 6), movr(2, 7), call(44), movr(8, 0), alu(ALU.AND, 8, 0xff), // adjust_head
    ldx(SIZE.W, 2, 6, 0), ldx(SIZE.W, 3, 6, 4), movr(4, 2), alu(ALU.ADD, 4, 8), jgt(4, 3, 'short'),
    ...delta(1, 17), movr(1, 6), movr(2, 7), call(65), alu(ALU.AND, 0, 0xff), alu(ALU.LSH, 0, 8), I(CLASS.ALU64 | ALU.OR | SRC_X, 8, 0, 0, 0), // adjust_tail
    ldx(SIZE.W, 2, 6, 0), ldx(SIZE.W, 3, 6, 4), movr(4, 2), alu(ALU.ADD, 4, 8), jgt(4, 3, 'short'),
    ...delta(2, 4), movr(1, 6), movr(2, 7), call(54), alu(ALU.AND, 0, 0xff), alu(ALU.LSH, 0, 16), I(CLASS.ALU64 | ALU.OR | SRC_X, 8, 0, 0, 0), // adjust_meta
    movr(0, 8), exit,
    { ...mov(0, 0), labels: ['short'] }, exit,
  ]);
});

test.serial('l3_csum_replace and l4_csum_replace (sizes 0/2/4, flags) on tc packets', async (t) => {
  await check(t, 'calls.o', 'tc', 'tc_calls', [
    ...packetToStack(16, 'short', true),
    ldx(SIZE.B, 7, 2, 0), alu(ALU.AND, 7, 31), // offset 0..31 (odd ones fail)
    ldx(SIZE.W, 8, 2, 2), // from
    ldx(SIZE.W, 9, 2, 6), // to
    ldx(SIZE.B, 5, 2, 10), alu(ALU.AND, 5, 6), // size field 0/2/4/6
    movr(1, 6), movr(2, 7), movr(3, 8), movr(4, 9), call(10), movr(8, 0), alu(ALU.AND, 8, 0xff),
    ldx(SIZE.W, 2, 6, 76), ldx(SIZE.W, 3, 6, 80), movr(4, 2), alu(ALU.ADD, 4, 16), jgt(4, 3, 'short'),
    ldx(SIZE.B, 7, 2, 1), alu(ALU.AND, 7, 31),
    ldx(SIZE.W, 3, 2, 4), ldx(SIZE.W, 4, 2, 8),
    ldx(SIZE.B, 5, 2, 11), alu(ALU.AND, 5, 0x36), // size field + MARK_MANGLED_0 (0x20) + PSEUDO_HDR (0x10)
    movr(1, 6), movr(2, 7), call(11), alu(ALU.AND, 0, 0xff), alu(ALU.LSH, 0, 8), I(CLASS.ALU64 | ALU.OR | SRC_X, 0, 8, 0, 0),
    exit,
    { ...mov(0, 0), labels: ['short'] }, exit,
  ]);
});
