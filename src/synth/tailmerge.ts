// Tail merging (cross-jumping): two runs of identical instructions that both end in an
// unconditional transfer (`goto L` or `exit`) continue identically, since jump targets, calls and
// relocations are symbolic in the IR. The later run is replaced by `goto` to the earlier one (or
// removed outright when nothing falls into it); labels inside it move to the kept copy. clang
// leaves such tails whenever the blocks differ only before them (e.g. a different value stored
// before the same map lookup). Every merge is still proven by the whole-program checker.
import { CLASS, JMP, invertedJump, jmpOp, opClass } from '../isa/index.js';
import type { CodeSection, IrInsn } from '../ir/types.js';

const isJa = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.JA;
const isExit = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.EXIT;
/** Ends a run: control never falls through to the next instruction. */
const isTransfer = (i: IrInsn): boolean => (isJa(i) && i.target !== undefined) || isExit(i);

/** Same instruction, same symbolic operands (targets, callees, relocations, CO-RE records). */
function sameInsn(a: IrInsn, b: IrInsn): boolean {
  // a jump's offset and a bpf-to-bpf call's immediate are positions, recomputed from the symbols
  const off = (i: IrInsn): number => (i.target !== undefined ? 0 : i.off);
  const imm = (i: IrInsn): number => (i.callee ? 0 : i.imm);
  if (a.code !== b.code || a.dst !== b.dst || a.src !== b.src || off(a) !== off(b) || imm(a) !== imm(b) || (a.imm2 ?? 0) !== (b.imm2 ?? 0)) return false;
  if (a.target !== b.target) return false;
  if ((a.callee?.section ?? null) !== (b.callee?.section ?? null) || (a.callee?.label ?? null) !== (b.callee?.label ?? null)) return false;
  if ((a.reloc?.sym ?? null) !== (b.reloc?.sym ?? null) || (a.reloc?.type ?? null) !== (b.reloc?.type ?? null)) return false;
  return JSON.stringify(a.core ?? null) === JSON.stringify(b.core ?? null);
}

/** Function index of every instruction (a function starts at a function symbol or func_info). */
function functionOf(sec: CodeSection): Int32Array {
  const starts = new Set<number>([0]);
  const at = new Map<string, number>();
  sec.insns.forEach((i, k) => i.labels?.forEach((l) => at.set(l, k)));
  for (const s of sec.symbols) {
    if (s.end === null) continue; // block labels (LBB…) and sizeless symbols are not functions
    const k = at.get(s.start);
    if (k !== undefined) starts.add(k);
  }
  sec.insns.forEach((i, k) => { if (i.funcInfo) starts.add(k); });
  const out = new Int32Array(sec.insns.length);
  let f = -1;
  for (let k = 0; k < sec.insns.length; k++) {
    if (starts.has(k)) f++;
    out[k] = f;
  }
  return out;
}

export interface TailMerge {
  /** First instruction of the removed run, its length, and where the kept copy starts. */
  start: number;
  length: number;
  keep: number;
  /** Slots saved: the run's length, less one if a `goto` must replace it. */
  saved: number;
}

/** The most profitable merge in `sec`, or null. `minSaved` slots at least. */
export function findTailMerge(sec: CodeSection, minSaved = 1, allowed: (m: TailMerge) => boolean = () => true): TailMerge | null {
  const insns = sec.insns;
  const fn = functionOf(sec);
  // runs can only pair up when they end in the same transfer in the same function
  const groups = new Map<string, number[]>();
  insns.forEach((i, k) => {
    if (!isTransfer(i)) return;
    const g = `${fn[k]}|${i.code}|${i.target ?? ''}`;
    const list = groups.get(g);
    if (list) list.push(k); else groups.set(g, [k]);
  });
  let best: TailMerge | null = null;
  for (const ends of groups.values()) for (let x = 0; x < ends.length; x++) {
    for (let y = x + 1; y < ends.length; y++) {
      const a = ends[x]!, b = ends[y]!; // b is removed, a kept
      if (!sameInsn(insns[a]!, insns[b]!)) continue;
      let len = 1;
      // extend backwards while identical; stop before an unconditional transfer (another run)
      while (a - len >= 0 && b - len > a) {
        const p = insns[a - len]!, q = insns[b - len]!;
        if (isTransfer(p) || isTransfer(q) || !sameInsn(p, q) || q.funcInfo || fn[b - len] !== fn[b]) break;
        // the wide ld_imm64 counts as one instruction here; a run never starts inside one
        len++;
      }
      // Pinned instructions (calls, relocations, CO-RE) may go: the kept copy carries the same
      // symbolic call/relocation/CO-RE record. Nothing removed may start a function.
      const start = b - len + 1;
      if (insns.slice(start, b + 1).some((i) => i.funcInfo)) continue;
      const fallsIn = start > 0 && !isTransfer(insns[start - 1]!) && fn[start - 1] === fn[start];
      const slots = insns.slice(start, b + 1).reduce((n, i) => n + (i.code === 0x18 ? 2 : 1), 0);
      const saved = slots - (fallsIn ? 1 : 0);
      const m = { start, length: len, keep: a - len + 1, saved };
      if (saved >= minSaved && (!best || saved > best.saved) && allowed(m)) best = m;
    }
  }
  return best;
}

let counter = 0;
/** Applies a merge: the removed run's labels move to the kept copy; a `goto` replaces it if needed. */
export function applyTailMerge(sec: CodeSection, m: TailMerge): CodeSection {
  const insns = sec.insns.map((i) => ({ ...i }));
  const keepFirst = insns[m.keep]!;
  let entry = keepFirst.labels?.[0];
  if (!entry) {
    entry = `k2_tail_${counter++}`;
    keepFirst.labels = [entry];
  }
  for (let k = 0; k < m.length; k++) {
    const moved = insns[m.start + k]!.labels;
    if (moved?.length) {
      const dst = insns[m.keep + k]!;
      dst.labels = [...(dst.labels ?? []), ...moved];
    }
  }
  // labels of the run's first instruction now live on the kept copy: jumps there go to the copy
  const fallsIn = m.start > 0 && !isTransfer(insns[m.start - 1]!);
  const replacement: IrInsn[] = fallsIn ? [{ code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0, target: entry }] : [];
  return { ...sec, insns: [...insns.slice(0, m.start), ...replacement, ...insns.slice(m.start + m.length)] };
}

/**
 * `if c goto L; goto M; L:` → `if !c goto M; L:` (tail merging leaves such gotos where a removed
 * run followed a branch around it). Returns the section unchanged when there is none.
 */
export function invertBranchesOverGotos(sec: CodeSection): CodeSection {
  const insns = sec.insns;
  const out: IrInsn[] = [];
  let changed = false;
  for (let k = 0; k < insns.length; k++) {
    const i = insns[k]!, g = insns[k + 1], after = insns[k + 2];
    const inv = invertedJump(i.code);
    if (inv >= 0 && i.target !== undefined && g && isJa(g) && g.target !== undefined && !g.labels?.length && after?.labels?.includes(i.target)) {
      out.push({ ...i, code: inv, target: g.target });
      k++; // the goto goes
      changed = true;
      continue;
    }
    out.push(i);
  }
  return changed ? { ...sec, insns: out } : sec;
}
