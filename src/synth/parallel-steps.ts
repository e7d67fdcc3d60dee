// The accepted rewrites of a section as a list of small edits (steps), so that any prefix can be
// rebuilt: every prefix of proven rewrites is itself proven (each rewrite was proven on the code the
// previous ones left), which is what the final gate's bisection relies on. A step is the smallest
// contiguous replacement turning one version into the next (common prefix and suffix cut off).
import { cloneInsn, type CodeSection, type IrInsn } from '../ir/index.js';

export interface Step {
  start: number; // first replaced instruction
  remove: number; // instructions removed there
  insert: IrInsn[]; // instructions put in their place (own copies)
}

const sameList = (a: readonly string[] | undefined, b: readonly string[] | undefined): boolean => {
  if ((a?.length ?? 0) !== (b?.length ?? 0)) return false;
  for (let k = 0; k < (a?.length ?? 0); k++) if (a![k] !== b![k]) return false;
  return true;
};

/** The same instruction with the same symbolic metadata (labels, targets, calls, relocations, BTF.ext). */
export function sameIrInsn(a: IrInsn, b: IrInsn): boolean {
  if (a === b) return true;
  if (a.code !== b.code || a.dst !== b.dst || a.src !== b.src || a.off !== b.off || a.imm !== b.imm || a.imm2 !== b.imm2) return false;
  if (a.target !== b.target || a.pinned !== b.pinned || !sameList(a.labels, b.labels)) return false;
  if (a.callee?.section !== b.callee?.section || a.callee?.label !== b.callee?.label) return false;
  if (a.reloc?.sym !== b.reloc?.sym || a.reloc?.type !== b.reloc?.type || a.funcInfo?.typeId !== b.funcInfo?.typeId) return false;
  if ((a.lines?.length ?? 0) !== (b.lines?.length ?? 0) || (a.core?.length ?? 0) !== (b.core?.length ?? 0)) return false;
  if (a.lines?.some((l, k) => l.lineOff !== b.lines![k]!.lineOff || l.lineCol !== b.lines![k]!.lineCol)) return false;
  return !a.core?.some((c, k) => c.typeId !== b.core![k]!.typeId || c.accessStrOff !== b.core![k]!.accessStrOff || c.kind !== b.core![k]!.kind);
}

/** The step turning `a` into `b`, or null when they are the same code. */
export function diffInsns(a: readonly IrInsn[], b: readonly IrInsn[]): Step | null {
  let pre = 0;
  while (pre < a.length && pre < b.length && sameIrInsn(a[pre]!, b[pre]!)) pre++;
  if (pre === a.length && pre === b.length) return null;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && sameIrInsn(a[a.length - 1 - suf]!, b[b.length - 1 - suf]!)) suf++;
  return { start: pre, remove: a.length - pre - suf, insert: b.slice(pre, b.length - suf).map(cloneInsn) };
}

export function applyStep(insns: readonly IrInsn[], s: Step): IrInsn[] {
  return [...insns.slice(0, s.start), ...s.insert.map(cloneInsn), ...insns.slice(s.start + s.remove)];
}

/** The section after the first `k` steps. */
export function replaySteps(base: CodeSection, steps: readonly Step[], k: number): CodeSection {
  let insns: IrInsn[] = base.insns.map(cloneInsn);
  for (const s of steps.slice(0, k)) insns = applyStep(insns, s);
  return { ...base, insns };
}

const plain = (i: IrInsn): string => `${i.code},${i.dst},${i.src},${i.off},${i.imm},${i.imm2 ?? ''},${i.target ?? ''}`;

/**
 * What a step does, independent of where: the instructions it removes and those it inserts
 * (operands only). Used to blacklist a rewrite the final gate refused.
 */
export function stepKey(before: readonly IrInsn[], s: Step): string {
  return `${before.slice(s.start, s.start + s.remove).map(plain).join(';')} => ${s.insert.map(plain).join(';')}`;
}

/**
 * Longest accepted prefix: `accepts(0)` is taken as true (the code the section had) and
 * `accepts(n)` as false (the caller just saw it fail). Binary search for k with accepts(k) and not
 * accepts(k + 1); step k + 1 is the culprit. Not every predicate is monotone in k; the search still
 * ends on such a boundary, and k is a prefix that passed.
 */
export async function longestAcceptedPrefix(n: number, accepts: (k: number) => Promise<boolean>): Promise<{ k: number; tried: number[] }> {
  let lo = 0, hi = n;
  const tried: number[] = [];
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    tried.push(mid);
    if (await accepts(mid)) lo = mid;
    else hi = mid;
  }
  return { k: lo, tried };
}
