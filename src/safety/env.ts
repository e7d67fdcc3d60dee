// What the instruction rules (alu.ts, memory.ts, branch.ts, calls.ts) need from the explorer
// (check.ts): the program, failing, precision marks, fresh ids and a few per-run records. The
// rules are plain functions over this interface, so each concern lives in its own file.
import type { State } from './state.js';
import type { SafetyProgram } from './program.js';
import type { ProgCtx } from './ctx.js';

/** The verdict "unsafe", with the instruction it is about. */
export class Unsafe extends Error {
  constructor(readonly reason: string, readonly insn: number | null) {
    super(insn === null ? reason : `insn ${insn}: ${reason}`);
  }
}

/** A fork of the current path: the state continues at `pc` (`cb`: it enters a callback there). */
export interface Path {
  state: State;
  pc: number;
  cb?: boolean;
}

/** Outcome of one instruction on one path. */
export type Step = { next: number } | { fork: [Path, Path] } | { end: true };

export interface Env {
  readonly prog: SafetyProgram;
  /** The program's context, packet and return rules (by program type and section). */
  readonly ctx: ProgCtx;
  /** Instruction index -> index of the function it belongs to (-1: none). */
  readonly fnAt: Int32Array;
  /** Throws Unsafe about the current instruction. */
  fail(reason: string): never;
  /** The values of these registers of the current frame decide something (mark_chain_precision). */
  markPrecise(st: State, ...regs: number[]): void;
  /** Stack slot `slot` of frame `frame` is read (stack liveness for pruning). */
  markStackRead(frame: number, slot: number): void;
  /** The current instruction accesses stack slot `slot` of frame `frame` (kept in the path's trail). */
  noteSlot(frame: number, slot: number): void;
  /** The current instruction's stack access reaches `o` bytes below frame `frame`'s pointer. */
  noteDepth(st: State, frame: number, o: number): void;
  /** A fresh id for linked scalars, null-check groups, packet ranges and references. */
  newId(): number;
  /** A call edge seen (for the combined stack depth check). */
  noteCall(caller: number, callee: number): void;
  /** Whether function `fn` may change packet data (transitively through its calls). */
  changesPkt(fn: number): boolean;
  /** The trail note of a callback's exit (set by the exit rule). */
  noteCallbackExit(): void;
}

/** Access width in bytes of a load or store opcode. */
const SIZE_BYTES = [4, 2, 1, 8];
export const sizeBytes = (code: number): number => SIZE_BYTES[(code >> 3) & 3]!;

/** Largest offset a pointer may carry (BPF_MAX_VAR_OFF) and largest helper memory size (BPF_MAX_VAR_SIZ). */
export const BPF_MAX_VAR_OFF = 1 << 29;
export const BPF_MAX_VAR_SIZ = 1n << 29n;
export const MAX_PACKET_OFF = 0xffff;
export const MAX_CALL_FRAMES = 8;
