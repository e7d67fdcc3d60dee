// Cost of a candidate window (K2 §4, STOKE): error on test cases (bits that differ in live-out
// registers, bytes that differ in live stack bytes or any other memory written, a different exit
// label, faults) weighted far above its performance term (8-byte slots by default; the driver may
// pass a latency table through `perf`).
import { slotsOf, type Insn } from '../isa/index.js';
import { cloneState, evalWindow, Fault, FP, outsideDifference, PROGRAM_EXIT, STACK_SIZE, type WinState } from './eval.js';
import { evalFast, fastClone, toWords } from './fasteval.js';
import { randomValue } from './inputs.js';
import { latencyCost } from './latency.js';
import type { Rng } from './rng.js';
import type { Slot } from './moves.js';

export interface TestCase {
  input: WinState;
  expected: WinState;
  /** The registers of input and expected as 32-bit words (made on first use: the hot loop's form). */
  words?: { input: Uint32Array; expected: Uint32Array };
}

/** What a candidate must reproduce: live registers after the window, and which stack bytes are read later. */
export interface Observed {
  liveOut: readonly number[];
  /** Stack bytes (index = offset + 512) read after the window; null = every byte. */
  stackLive: Uint8Array | null;
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
/** Performance term: 8-byte slots (the size objective). */
export const perfCost = (insns: readonly Insn[]): number => insns.reduce((n, i) => n + slotsOf(i), 0);

export type Objective = 'size' | 'latency' | 'verifier';

/** The performance term of an objective: slots, or latency from the driver's measured table (slots break ties). */
export function objectiveCost(objective: Objective | undefined): (insns: readonly Insn[]) => number {
  if (objective === 'latency') return (insns) => latencyCost(insns) + 1e-3 * perfCost(insns);
  return perfCost;
}

/** A random state with nothing known (registers and stack only). */
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

/** Bytes on which two stacks differ among the live ones (compared a word at a time). */
function stackDifference(a: Uint8Array, b: Uint8Array, live: Uint8Array | null): number {
  if (a === b) return 0;
  const wa = new Int32Array(a.buffer, a.byteOffset, STACK_SIZE / 4), wb = new Int32Array(b.buffer, b.byteOffset, STACK_SIZE / 4);
  let n = 0;
  for (let w = 0; w < wa.length; w++) {
    if (wa[w] === wb[w]) continue;
    for (let i = 4 * w; i < 4 * w + 4; i++) if (a[i] !== b[i] && (!live || live[i])) n++;
  }
  return n;
}

const asObserved = (o: Observed | readonly number[]): Observed => ('liveOut' in o ? o : { liveOut: o, stackLive: null });

/** Zero error on every test (stops at the first difference). */
export const passesAll = (cand: readonly Insn[], tests: readonly TestCase[], obs: Observed | readonly number[]): boolean =>
  errorOn(cand, tests, obs, true) === 0;

export function errorOn(cand: readonly Insn[], tests: readonly TestCase[], obs0: Observed | readonly number[], stopEarly = false): number {
  const obs = asObserved(obs0);
  let err = 0;
  for (const t of tests) {
    if (stopEarly && err > 0) return err;
    const w = (t.words ??= { input: toWords(t.input.regs), expected: toWords(t.expected.regs) });
    const got = fastClone(t.input, w.input);
    try {
      evalFast(cand, got);
    } catch (e) {
      if (e instanceof Fault) { err += FAULT_ERROR; continue; }
      throw e;
    }
    if (got.left !== t.expected.left) { err += FAULT_ERROR; continue; }
    const gr = got.r, er = w.expected;
    // the program ended (ld_abs out of the packet): only r0 and memory matter
    for (const r of got.left === PROGRAM_EXIT ? [0] : obs.liveOut) err += popcount32(gr[2 * r]! ^ er[2 * r]!) + popcount32(gr[2 * r + 1]! ^ er[2 * r + 1]!);
    if (got.wroteStack || t.expected.wroteStack) err += 8 * stackDifference(got.stack, t.expected.stack, obs.stackLive);
    err += 8 * outsideDifference(got as unknown as WinState, t.expected);
  }
  return err;
}

/** errorOn with the reference evaluator (BigInt registers): the fast one's cross-check. */
export function errorOnSlow(cand: readonly Insn[], tests: readonly TestCase[], obs0: Observed | readonly number[]): number {
  const obs = asObserved(obs0);
  let err = 0;
  for (const t of tests) {
    const got = cloneState(t.input);
    try {
      evalWindow(cand, got);
    } catch (e) {
      if (e instanceof Fault) { err += FAULT_ERROR; continue; }
      throw e;
    }
    if (got.left !== t.expected.left) { err += FAULT_ERROR; continue; }
    for (const r of got.left === PROGRAM_EXIT ? [0] : obs.liveOut) err += popcount(got.regs[r]! ^ t.expected.regs[r]!);
    if (got.wroteStack || t.expected.wroteStack) err += 8 * stackDifference(got.stack, t.expected.stack, obs.stackLive);
    err += 8 * outsideDifference(got, t.expected);
  }
  return err;
}
