// Regenerates src/synth/latency-table.json: nanoseconds per BPF instruction, by opcode, measured on
// this machine's kernel (JIT) with BPF_PROG_TEST_RUN. Needs root (bpf()) and the fixtures
// (`make -C fixtures`: the programs are written into fixtures/build/redundant.o's ELF container).
//
// Method. For every opcode, an XDP program: a prologue (r1..r5 set to non-zero constants, 64 stack
// bytes written), then N copies of the instruction under test, then `r0 = XDP_PASS; exit`. The
// copies rotate over registers (dst r1..r5, src the next one) and stack slots, so the figure is
// neither one long dependency chain nor free parallelism. The same program with no copies is the
// baseline. Each program is test-run `repeat` times per trial on one 64-byte packet (the kernel
// reports the mean run time); a figure is the minimum over `trials` trials (the least disturbed
// one: the machine is shared), and ns/insn = (t(N) − t(0)) / N, clamped at 0. Conditional jumps
// are measured as `if rX op Y goto +0` on values
// the verifier cannot know (so it keeps the compare and branch), helper calls as `call bpf_get_prandom_u32` and
// `call bpf_get_smp_processor_id` (their mean is "call"). Divisions and modulos are followed by
// `rX += r7` (r7 large) so that dividends do not shrink to 0, by a divisor r6 that is never 0;
// the add's own measured cost is subtracted. Opcodes not listed fall back to their
// class's median (src/synth/latency.ts).
//
// Run: node --import=tsx scripts/latency-table.ts [--n 1000] [--repeat 2000] [--trials 7] [--out FILE]
import { cpus, release } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ALU, ATOMIC, CLASS, JMP, LD_IMM64, MODE, SIZE, SRC_K, SRC_X } from '../src/isa/index.js';
import { objectBytes, readObject, type BpfObject, type IrInsn } from '../src/ir/index.js';
import { bpfAvailable, openLoaded } from '../src/kernel/index.js';
import type { LatencyTable } from '../src/synth/latency.js';

const repo = resolve(import.meta.dirname, '..');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--n', 1000);
const REPEAT = arg('--repeat', 2000);
const TRIALS = arg('--trials', 7);
const outIdx = process.argv.indexOf('--out');
const OUT = outIdx > 0 ? process.argv[outIdx + 1]! : join(repo, 'src/synth/latency-table.json');

const ins = (code: number, dst: number, src: number, off: number, imm: number): IrInsn => ({ code, dst, src, off, imm });
const REGS = [1, 2, 3, 4, 5];

/** The k-th copy of the instruction family under test. */
type Family = (k: number) => IrInsn[];

/**
 * r1..r5 hold values the verifier cannot know (from bpf_get_prandom_u32): it must keep every
 * instruction and cannot hard-wire a conditional jump whose outcome it would know.
 */
function prologue(): IrInsn[] {
  const out: IrInsn[] = [ins(CLASS.JMP | JMP.CALL, 0, 0, 0, 7)];
  REGS.forEach((r, k) => out.push(ins(CLASS.ALU64 | ALU.MOV | SRC_X, r, 0, 0, 0), ins(CLASS.ALU64 | ALU.ADD | SRC_K, r, 0, 0, 0x1234567 + 977 * k)));
  // r6: a non-zero divisor; r7: a large addend that keeps dividends from shrinking to zero
  out.push(ins(CLASS.ALU64 | ALU.MOV | SRC_X, 6, 0, 0, 0), ins(CLASS.ALU64 | ALU.OR | SRC_K, 6, 0, 0, 0x10001));
  out.push(ins(CLASS.ALU64 | ALU.MOV | SRC_X, 7, 0, 0, 0), ins(CLASS.ALU64 | ALU.LSH | SRC_K, 7, 0, 0, 24), ins(CLASS.ALU64 | ALU.OR | SRC_K, 7, 0, 0, 0x7fff));
  for (let s = 1; s <= 8; s++) out.push(ins(CLASS.STX | MODE.MEM | SIZE.DW, 10, 1 + (s % 5), -8 * s, 0));
  return out;
}

function program(family: Family | null): IrInsn[] {
  const body: IrInsn[] = [];
  if (family) for (let k = 0; body.length < N; k++) body.push(...family(k));
  return [...prologue(), ...body, ins(CLASS.ALU64 | ALU.MOV | SRC_K, 0, 0, 0, 2), ins(CLASS.JMP | JMP.EXIT, 0, 0, 0, 0)];
}

/** An object around `insns`: fixtures/build/redundant.o with its one XDP section replaced. */
function objectOf(template: BpfObject, insns: IrInsn[]): BpfObject {
  const sec = template.code[0]!;
  const first = sec.insns[0]!;
  const rest = sec.insns.slice(1).flatMap((i) => i.labels ?? []);
  const code = insns.map((i, k) => (k === 0 ? { ...i, labels: first.labels, funcInfo: first.funcInfo, lines: first.lines } : { ...i }));
  code[code.length - 1]!.labels = rest;
  return { ...template, code: [{ ...sec, insns: code }] };
}

const dst = (k: number): number => REGS[k % 5]!;
const src = (k: number): number => REGS[(k + 1) % 5]!;
const slot = (k: number): number => -8 * (1 + (k % 8));

function families(): [string, Family][] {
  const out: [string, Family][] = [];
  const aluOps = [ALU.ADD, ALU.SUB, ALU.MUL, ALU.DIV, ALU.OR, ALU.AND, ALU.LSH, ALU.RSH, ALU.MOD, ALU.XOR, ALU.MOV, ALU.ARSH];
  for (const cls of [CLASS.ALU64, CLASS.ALU]) {
    for (const op of aluOps) {
      const shift = op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH;
      const imm = shift ? 3 : op === ALU.DIV || op === ALU.MOD ? 7 : 0x35;
      if (op === ALU.DIV || op === ALU.MOD) {
        // the division, then `rX += r7` (subtracted below) so that dividends stay large; divisor r6 is never 0
        const restore = (k: number): IrInsn => ins(CLASS.ALU64 | ALU.ADD | SRC_X, dst(k), 7, 0, 0);
        out.push([String(cls | op | SRC_K), (k) => [ins(cls | op | SRC_K, dst(k), 0, 0, imm), restore(k)]]);
        out.push([String(cls | op | SRC_X), (k) => [ins(cls | op | SRC_X, dst(k), 6, 0, 0), restore(k)]]);
        continue;
      }
      out.push([String(cls | op | SRC_K), (k) => [ins(cls | op | SRC_K, dst(k), 0, 0, imm)]]);
      // shifts by a register: the amount is the register's low bits (the JIT masks it)
      out.push([String(cls | op | SRC_X), (k) => [ins(cls | op | SRC_X, dst(k), src(k), 0, 0)]]);
    }
    out.push([String(cls | ALU.NEG), (k) => [ins(cls | ALU.NEG, dst(k), 0, 0, 0)]]);
  }
  // byte swaps: le (0xd4) / be (0xdc) with the width in imm; the table keys the opcode (widths averaged)
  out.push([String(CLASS.ALU | ALU.END | SRC_K), (k) => [ins(CLASS.ALU | ALU.END | SRC_K, dst(k), 0, 0, [16, 32, 64][k % 3]!)]]);
  out.push([String(CLASS.ALU | ALU.END | SRC_X), (k) => [ins(CLASS.ALU | ALU.END | SRC_X, dst(k), 0, 0, [16, 32, 64][k % 3]!)]]);
  for (const size of [SIZE.B, SIZE.H, SIZE.W, SIZE.DW]) {
    out.push([String(CLASS.LDX | MODE.MEM | size), (k) => [ins(CLASS.LDX | MODE.MEM | size, dst(k), 10, slot(k), 0)]]);
    out.push([String(CLASS.STX | MODE.MEM | size), (k) => [ins(CLASS.STX | MODE.MEM | size, 10, src(k), slot(k), 0)]]);
    out.push([String(CLASS.ST | MODE.MEM | size), (k) => [ins(CLASS.ST | MODE.MEM | size, 10, 0, slot(k), 0x11 * (k % 7))]]);
  }
  for (const size of [SIZE.W, SIZE.DW]) out.push([String(CLASS.STX | MODE.ATOMIC | size), (k) => [ins(CLASS.STX | MODE.ATOMIC | size, 10, src(k), slot(k), ATOMIC.ADD)]]);
  out.push([String(LD_IMM64), (k) => [{ ...ins(LD_IMM64, dst(k), 0, 0, 0x1000 + k), imm2: 7 }]]);
  const jmps = [JMP.JEQ, JMP.JGT, JMP.JGE, JMP.JSET, JMP.JNE, JMP.JSGT, JMP.JSGE, JMP.JLT, JMP.JLE, JMP.JSLT, JMP.JSLE];
  for (const cls of [CLASS.JMP, CLASS.JMP32]) {
    for (const op of jmps) {
      // `if rX op Y goto +0`: both ways lead to the next instruction; the JIT emits compare + branch.
      // One register and one immediate for every copy: after the first split each path knows the
      // outcome of the rest, so the verifier explores two paths, not 2^N.
      out.push([String(cls | op | SRC_K), () => [ins(cls | op | SRC_K, 1, 0, 0, 0x55)]]);
      out.push([String(cls | op | SRC_X), (k) => [ins(cls | op | SRC_X, dst(k), src(k), 0, 0)]]);
    }
  }
  return out.filter(([, f]) => f(0).length > 0);
}

async function measure(template: BpfObject, insns: IrInsn[]): Promise<number | null> {
  let obj;
  try {
    obj = await openLoaded(objectBytes(objectOf(template, insns)));
  } catch (e) {
    process.stderr.write(`  cannot load: ${(e as Error).message}\n`);
    return null;
  }
  try {
    const p = obj.programs[0]!;
    if (!p.accepted) {
      process.stderr.write(`  rejected: ${p.error}\n`);
      return null;
    }
    const packet = new Uint8Array(64);
    let best = Infinity;
    for (let t = 0; t < TRIALS; t++) best = Math.min(best, (await obj.testRun(p.name, { dataIn: packet, repeat: REPEAT })).durationNs);
    return best;
  } finally {
    await obj.close();
  }
}

async function main(): Promise<void> {
  const avail = await bpfAvailable();
  if (!avail.ok) throw new Error(`bpf() unavailable: ${avail.reason}`);
  const template = readObject(join(repo, 'fixtures/build/redundant.o'));
  const base = await measure(template, program(null));
  if (base === null) throw new Error('the baseline program does not load');
  const ns: Record<string, number> = {};
  const per = async (insns: IrInsn[], copies: number): Promise<number | null> => {
    const m = await measure(template, insns);
    return m === null ? null : Math.max(0, (m - base) / copies);
  };
  const ADD_X = String(CLASS.ALU64 | ALU.ADD | SRC_X);
  for (const [code, f] of families()) {
    // a family of two instructions is the measured one plus `rX += r7` (division): subtract that
    const extra = f(0).length - 1;
    const t = await per(program(f), N);
    const v = t === null ? null : Math.max(0, t * (extra + 1) - extra * (ns[ADD_X] ?? 0));
    process.stderr.write(`0x${Number(code).toString(16).padStart(2, '0')}: ${v === null ? '–' : v.toFixed(3)} ns\n`);
    if (v !== null) ns[code] = Math.round(v * 1000) / 1000;
  }
  const calls: number[] = [];
  for (const helper of [7, 8]) {
    const body = [...prologue(), ...Array.from({ length: 200 }, () => ins(CLASS.JMP | JMP.CALL, 0, 0, 0, helper)), ins(CLASS.ALU64 | ALU.MOV | SRC_K, 0, 0, 0, 2), ins(CLASS.JMP | JMP.EXIT, 0, 0, 0, 0)];
    const v = await per(body, 200);
    if (v !== null) calls.push(v);
  }
  if (calls.length) ns.call = Math.round((calls.reduce((a, b) => a + b, 0) / calls.length) * 1000) / 1000;
  const table: LatencyTable = {
    machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores (shared)`,
    kernel: release(),
    date: new Date().toISOString().slice(0, 10),
    method: `XDP program per opcode: prologue + ${N} copies (registers r1..r5 and 8 stack slots in rotation) + exit; BPF_PROG_TEST_RUN repeat ${REPEAT} on a 64-byte packet, min of ${TRIALS} trials; (t(N) - t(empty)) / N; conditional jumps as "if rX op Y goto +0" on unknown values; call = mean of get_prandom_u32 and get_smp_processor_id; div/mod by a non-zero register, each followed by an add (its cost subtracted) that keeps dividends large. scripts/latency-table.ts`,
    baselineNs: base,
    ns,
  };
  writeFileSync(OUT, JSON.stringify(table, null, 2) + '\n');
  process.stderr.write(`wrote ${OUT} (${Object.keys(ns).length} entries, baseline ${base} ns)\n`);
}

await main();
