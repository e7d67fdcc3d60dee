// Control flow of one code section: successors, basic blocks, register liveness.
import { CLASS, JMP, jmpOp, opClass } from '../isa/index.js';
import { END_LABEL, type CodeSection, type IrInsn, type Label } from '../ir/types.js';
import { defUse, type CalleeReads, type RegSet } from './defuse.js';

const isBranch = (i: IrInsn): boolean => i.target !== undefined;
const isExit = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.EXIT;
const isUncond = (i: IrInsn): boolean => (opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32) && jmpOp(i.code) === JMP.JA;

export function labelIndex(sec: CodeSection): Map<Label, number> {
  const m = new Map<Label, number>();
  sec.insns.forEach((insn, i) => insn.labels?.forEach((l) => m.set(l, i)));
  m.set(END_LABEL, sec.insns.length);
  return m;
}

/** Successor instruction indices of every instruction (exit has none). */
export function successors(sec: CodeSection): number[][] {
  const at = labelIndex(sec);
  return sec.insns.map((insn, i) => {
    if (isExit(insn)) return [];
    const next = i + 1 < sec.insns.length ? [i + 1] : [];
    if (!isBranch(insn)) return next;
    const t = at.get(insn.target!);
    const tgt = t === undefined || t >= sec.insns.length ? [] : [t];
    return isUncond(insn) ? tgt : [...next, ...tgt];
  });
}

/**
 * liveIn[i]: registers that may be read, on some path from instruction i, before being written.
 * Calls read only their arguments (a helper's prototype; a bpf-to-bpf callee's live-in arguments
 * when `callee` resolves them, else r1-r5).
 */
export function liveIn(sec: CodeSection, callee?: CalleeReads): Uint16Array {
  const succ = successors(sec);
  const du = sec.insns.map((i) => defUse(i, callee));
  const live = new Uint16Array(sec.insns.length);
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = sec.insns.length - 1; i >= 0; i--) {
      let out = 0;
      for (const s of succ[i]!) out |= live[s]!;
      const v = (du[i]!.use | (out & ~du[i]!.def)) & 0x7ff;
      if (v !== live[i]) { live[i] = v; changed = true; }
    }
  }
  return live;
}

/** Registers live after instruction i (the union over its successors). */
export function liveOutAt(sec: CodeSection, live: Uint16Array, succ: number[][], i: number): RegSet {
  let out = 0;
  for (const s of succ[i]!) out |= live[s]!;
  return out;
}

/** Start index of each basic block: the first instruction, jump targets, instructions after control flow. */
export function blockStarts(sec: CodeSection): number[] {
  const starts = new Set<number>([0]);
  sec.insns.forEach((insn, i) => {
    if (insn.labels?.length) starts.add(i);
    const cls = opClass(insn.code);
    if ((cls === CLASS.JMP || cls === CLASS.JMP32) && i + 1 < sec.insns.length) starts.add(i + 1);
  });
  return [...starts].filter((i) => i < sec.insns.length).sort((a, b) => a - b);
}

export const regList = (set: RegSet): number[] => [...Array(11).keys()].filter((r) => set & (1 << r));

/**
 * Register liveness of every code section of an object, with bpf-to-bpf calls reading what their
 * callee reads: the callee's live-in arguments at its entry label. Computed from "every call reads
 * r1-r5" downwards until stable (BPF has no recursion; with it this would still over-approximate).
 */
export function objectLiveness(code: readonly CodeSection[]): Map<string, Uint16Array> {
  const labels = new Map(code.map((s) => [s.name, labelIndex(s)]));
  let live = new Map<string, Uint16Array>();
  const callee: CalleeReads = (insn) => {
    const c = (insn as IrInsn).callee;
    if (!c) return undefined;
    const at = labels.get(c.section)?.get(c.label);
    const l = live.get(c.section);
    return at === undefined || !l || at >= l.length ? undefined : l[at]!;
  };
  for (let round = 0; round < 8; round++) {
    const next = new Map<string, Uint16Array>();
    let changed = false;
    for (const s of code) {
      const l = liveIn(s, round === 0 ? undefined : callee);
      next.set(s.name, l);
      const old = live.get(s.name);
      if (!old || old.some((v, i) => v !== l[i])) changed = true;
    }
    live = next;
    if (!changed) break;
  }
  return live;
}
