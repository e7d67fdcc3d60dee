// Cost of a candidate window (K2 §4): error on test cases (bits that differ in live-out registers,
// bytes that differ on the stack) weighted far above its performance term (8-byte slots).
import { slotsOf, type Insn } from '../isa/index.js';
import { cloneState, evalWindow, Fault, FP, STACK_SIZE, type WinState } from './eval.js';
import type { Rng } from './rng.js';
import type { Slot } from './moves.js';

export interface TestCase {
  input: WinState;
  expected: WinState;
}

export const ERROR_WEIGHT = 16;
const FAULT_ERROR = 1000;

const popcount = (v: bigint): number => {
  let n = 0;
  for (; v; v &= v - 1n) n++;
  return n;
};

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
  for (let i = 0; i < STACK_SIZE; i++) stack[i] = rng.int(256);
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
    if (got.wroteStack || t.expected.wroteStack) for (let i = 0; i < STACK_SIZE; i++) if (got.stack[i] !== t.expected.stack[i]) err += 8;
  }
  return err;
}
