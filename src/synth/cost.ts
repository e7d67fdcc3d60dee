// Cost of a candidate window (K2 §4): error on test cases (bits that differ in live-out registers,
// bytes that differ on the stack) weighted far above its performance term (8-byte slots).
import { slotsOf, type Insn } from '../isa/index.js';
import { cloneState, evalWindow, Fault, FP, outsideDifference, STACK_SIZE, type WinState } from './eval.js';
import type { Rng } from './rng.js';
import type { Slot } from './moves.js';

export interface TestCase {
  input: WinState;
  expected: WinState;
}

export const ERROR_WEIGHT = 16;
const FAULT_ERROR = 1000;

const popcount32 = (x: number): number => {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
};
/** Set bits of a 64-bit value (two 32-bit halves: BigInt bit loops were the search's hot spot). */
const popcount = (v: bigint): number => (v === 0n ? 0 : popcount32(Number(v & 0xffffffffn)) + popcount32(Number(v >> 32n)));

export const compact = (slots: readonly Slot[]): Insn[] => slots.filter((s): s is Insn => s !== null);
export const perfCost = (insns: readonly Insn[]): number => insns.reduce((n, i) => n + slotsOf(i), 0);

/** Interesting 64-bit values for a live-in register. */
function randomValue(rng: Rng): bigint {
  switch (rng.int(6)) {
    case 0: return BigInt(rng.int(256));
    case 1: return BigInt.asUintN(64, BigInt(rng.int(65536) - 32768));
    case 2: return rng.next64() & 0xffff_ffffn;
    case 3: return 1n << BigInt(rng.int(64));
    case 4: return BigInt.asUintN(64, -BigInt(rng.int(16)));
    default: return rng.next64();
  }
}

export function randomInput(rng: Rng): WinState {
  const regs = Array.from({ length: 11 }, () => randomValue(rng));
  regs[10] = FP;
  const stack = new Uint8Array(STACK_SIZE);
  const words = new Uint32Array(stack.buffer, stack.byteOffset, STACK_SIZE / 4);
  for (let i = 0; i < words.length; i++) words[i] = rng.next32();
  return { regs, stack, memSeed: rng.int(2 ** 31) };
}

/** Runs the original window; null when it leaves the evaluator's model (then it is not searched). */
export function makeTest(window: readonly Insn[], input: WinState): TestCase | null {
  const expected = cloneState(input);
  try {
    evalWindow(window, expected);
  } catch (e) {
    if (e instanceof Fault) return null;
    throw e;
  }
  return { input, expected };
}

/** Bytes on which two stacks differ (compared a word at a time). */
function stackDifference(a: Uint8Array, b: Uint8Array): number {
  if (a === b) return 0;
  const wa = new Int32Array(a.buffer, a.byteOffset, STACK_SIZE / 4), wb = new Int32Array(b.buffer, b.byteOffset, STACK_SIZE / 4);
  let n = 0;
  for (let w = 0; w < wa.length; w++) {
    if (wa[w] === wb[w]) continue;
    for (let i = 4 * w; i < 4 * w + 4; i++) if (a[i] !== b[i]) n++;
  }
  return n;
}

/** Zero error on every test (stops at the first difference). */
export const passesAll = (cand: readonly Insn[], tests: readonly TestCase[], liveOut: readonly number[]): boolean =>
  errorOn(cand, tests, liveOut, true) === 0;

export function errorOn(cand: readonly Insn[], tests: readonly TestCase[], liveOut: readonly number[], stopEarly = false): number {
  let err = 0;
  for (const t of tests) {
    if (stopEarly && err > 0) return err;
    const got = cloneState(t.input);
    try {
      evalWindow(cand, got);
    } catch (e) {
      if (e instanceof Fault) { err += FAULT_ERROR; continue; }
      throw e;
    }
    for (const r of liveOut) err += popcount(got.regs[r]! ^ t.expected.regs[r]!);
    if (got.wroteStack || t.expected.wroteStack) err += 8 * stackDifference(got.stack, t.expected.stack);
    err += 8 * outsideDifference(got, t.expected);
  }
  return err;
}
