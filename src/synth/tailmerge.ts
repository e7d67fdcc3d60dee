// Tail merging (cross-jumping): two runs of identical instructions that both end in an
// unconditional transfer (`goto L` or `exit`) continue identically, since jump targets, calls and
// relocations are symbolic in the IR. The later run is replaced by `goto` to the earlier one (or
// removed outright when nothing falls into it); labels inside it move to the kept copy. clang
// leaves such tails whenever the blocks differ only before them (e.g. a different value stored
// before the same map lookup). Every merge is still proven by the whole-program checker.
import { CLASS, JMP, invertedJump, jmpOp, opClass } from '../isa/index.js';
import type { CodeSection, IrInsn } from '../ir/types.js';
import { defUse as defUseOf } from '../analysis/defuse.js';
import { liveIn, successors } from '../analysis/cfg.js';

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
  // A run that ends in `goto L` against one that falls into L (the instruction after it carries L):
  // the falling one is kept, the other (its `goto` included) removed.
  const at = new Map<string, number>();
  insns.forEach((i, k) => i.labels?.forEach((l) => at.set(l, k)));
  for (let a = 0; a < insns.length; a++) {
    const g = insns[a]!;
    if (!isJa(g) || g.target === undefined) continue;
    const l = at.get(g.target);
    if (l === undefined || l === 0 || l === a + 1 || fn[l] !== fn[a]) continue;
    const b = l - 1; // the falling run's last instruction
    if (isTransfer(insns[b]!) || fn[b] !== fn[l]) continue;
    let len = 0; // identical instructions before the goto / before L
    while (a - 1 - len >= 0 && b - len >= 0) {
      const p = insns[a - 1 - len]!, q = insns[b - len]!;
      if (isTransfer(p) || isTransfer(q) || !sameInsn(p, q) || fn[a - 1 - len] !== fn[a] || fn[b - len] !== fn[b]) break;
      // the two runs must not overlap (the removed one ends at the goto a, the kept one at b)
      const rs = a - 1 - len, ks = b - len;
      if (rs <= b && ks <= a) break;
      if (rs <= l && l <= a) break; // L itself would go: the kept run would fall into removed code
      len++;
    }
    // the removed run's first instruction may carry labels (they move); a function start may not go
    while (len > 0 && insns.slice(a - len, a + 1).some((i) => i.funcInfo)) len--;
    if (len === 0) continue;
    const start = a - len;
    const fallsIn = start > 0 && !isTransfer(insns[start - 1]!) && fn[start - 1] === fn[start];
    const slots = insns.slice(start, a + 1).reduce((n, i) => n + (i.code === 0x18 ? 2 : 1), 0);
    const saved = slots - (fallsIn ? 1 : 0);
    const m = { start, length: len + 1, keep: b - len + 1, saved };
    if (saved >= minSaved && (!best || saved > best.saved) && allowed(m)) best = m;
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

const MOV_IMM = (code: number): boolean => (opClass(code) === CLASS.ALU || opClass(code) === CLASS.ALU64) && (code & 0xf0) === 0xb0 && (code & 0x08) === 0;

/**
 * Every `rX = imm` moved up its block as far as it goes (past instructions that neither read nor
 * write rX; never past a jump, another constant, a function start or into another block), so that two blocks that
 * differ only in a constant loaded before the same code end in the same run (then merged: one
 * more `rX = imm` per path, shared code). The same semantics; the caller proves the merge anyway.
 */
export function hoistConstants(sec: CodeSection): CodeSection {
  const insns = sec.insns.map((i) => ({ ...i }));
  let changed = false;
  for (let k = 1; k < insns.length; k++) {
    const m = insns[k]!;
    if (!MOV_IMM(m.code) || m.pinned || m.labels?.length || m.funcInfo) continue;
    let to = k;
    while (to > 0) {
      const p = insns[to - 1]!;
      if (p.funcInfo || opClass(p.code) === CLASS.JMP32 || (opClass(p.code) === CLASS.JMP && jmpOp(p.code) !== JMP.CALL)) break;
      if (MOV_IMM(p.code)) break; // constants keep their order (parallel blocks load theirs in the same order)
      const du = defUseOf(p);
      if ((du.use | du.def) & (1 << m.dst)) break;
      to--;
      if (p.labels?.length) break; // p starts the block: the constant goes before it, taking its labels
    }
    if (to === k) continue;
    const moved = insns.splice(k, 1)[0]!;
    const first = insns[to]!;
    if (first.labels?.length) {
      moved.labels = first.labels;
      delete first.labels;
    }
    insns.splice(to, 0, moved);
    changed = true;
  }
  return changed ? { ...sec, insns } : sec;
}

/**
 * Jumps to the very next instruction go (a merge can leave `if c goto L; L:` where both paths now
 * share their code; a condition has no side effect), their labels moving to that instruction; then
 * ALU instructions whose result no path reads (the condition's inputs, typically). Returns the
 * section unchanged when there is nothing to drop.
 */
export function dropJumpsToNext(sec: CodeSection): CodeSection {
  const insns: IrInsn[] = [];
  let changed = false;
  for (let k = 0; k < sec.insns.length; k++) {
    const i = sec.insns[k]!, next = sec.insns[k + 1];
    const cls = opClass(i.code);
    const jump = (cls === CLASS.JMP || cls === CLASS.JMP32) && i.target !== undefined && jmpOp(i.code) !== JMP.CALL && jmpOp(i.code) !== JMP.EXIT;
    if (jump && next?.labels?.includes(i.target!) && !i.funcInfo && !i.pinned) {
      const moved = { ...next, labels: [...new Set([...(i.labels ?? []), ...next.labels])] };
      if (i.lines?.length && !moved.lines?.length) moved.lines = i.lines;
      insns.push(moved);
      k++;
      changed = true;
      continue;
    }
    insns.push(i);
  }
  if (!changed) return sec;
  let out: CodeSection = { ...sec, insns };
  // dead ALU results (no memory, no calls): removed until none is left
  for (;;) {
    const live = liveIn(out), succ = successors(out);
    const k = out.insns.findIndex((i, k) => {
      const cls = opClass(i.code);
      if ((cls !== CLASS.ALU && cls !== CLASS.ALU64) || i.pinned || i.funcInfo || i.labels?.length) return false;
      let after = 0;
      for (const s of succ[k]!) after |= live[s]!;
      return (after & (1 << i.dst)) === 0;
    });
    if (k < 0) return out;
    const rest = out.insns.slice(k + 1);
    if (out.insns[k]!.lines?.length && rest[0] && !rest[0].lines?.length) rest[0] = { ...rest[0], lines: out.insns[k]!.lines };
    out = { ...out, insns: [...out.insns.slice(0, k), ...rest] };
  }
}
