// A forward data-flow fixpoint over one section's instructions, per register: the solver both
// constant propagation and the known-zero-bits analysis use.
import type { CodeSection } from '../ir/types.js';
import { successors } from './cfg.js';

/**
 * The state before every instruction. Entries (the section start, instructions nothing jumps to or
 * falls into, function starts) get `entry`; `join` merges the states of two paths (it must only
 * ever lose information, so the iteration ends).
 */
export function forwardRegs<V>(
  sec: CodeSection,
  entry: V[],
  transfer: (index: number, before: V[]) => V[],
  join: (a: V, b: V) => V,
  /** What an edge adds (a branch's condition holds on its taken edge, its negation on the other). */
  edge?: (from: number, to: number, out: V[]) => V[],
): V[][] {
  const n = sec.insns.length;
  const succ = successors(sec);
  const preds = new Array(n).fill(0);
  succ.forEach((ss) => ss.forEach((s) => preds[s]++));
  const state: (V[] | null)[] = new Array(n).fill(null);
  const work: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i === 0 || preds[i] === 0 || (sec.insns[i]!.labels?.length && sec.insns[i]!.funcInfo)) {
      state[i] = entry;
      work.push(i);
    }
  }
  while (work.length) {
    const i = work.pop()!;
    const out0 = transfer(i, state[i]!);
    for (const s of succ[i]!) {
      const out = edge ? edge(i, s, out0) : out0;
      const cur = state[s];
      const merged = cur === null ? out : cur.map((v, r) => join(v, out[r]!));
      if (cur === null || merged.some((v, r) => v !== cur[r])) {
        state[s] = merged;
        work.push(s);
      }
    }
  }
  return state.map((s) => s ?? entry);
}
