// Rewrites of loop-free regions with control flow inside, found by enumeration over the CFG
// (the window search sees one block, or one superblock, at a time):
//   - a packet bounds check subsumed by a later, wider one to the same place: the wider one moves
//     up, the narrower goes (`if data + 14 > end goto drop; ...; if data + 34 > end goto drop`);
//   - a constant assigned on several paths hoisted into their common dominator where the register
//     is dead, so the copies below become redundant (`w7 = -1` on two paths → once above);
//   - a null check of a pointer that cannot be null (the context, the stack, packet pointers);
//   - jumps to a `goto` threaded to its target; code no path reaches removed.
// Each candidate is only a candidate: the caller proves it on every program running the section
// (whole-program checker; window-shaped ones first as a superblock window) and gates it.
import { ALU, CLASS, JMP, LD_IMM64, SRC_K, SRC_X, aluOp, imm64, jmpOp, opClass, slotsOf, srcBit } from '../isa/index.js';
import { replaceWindow } from '../ir/index.js';
import type { CodeSection, IrInsn } from '../ir/types.js';
import { blockStarts, constantsIn, defUse, labelIndex, liveIn, successors } from '../analysis/index.js';
import type { WindowPre } from '../smt/index.js';

const isJmpClass = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32;
const isCall = (i: IrInsn): boolean => isJmpClass(i) && jmpOp(i.code) === JMP.CALL;
const isExit = (i: IrInsn): boolean => isJmpClass(i) && jmpOp(i.code) === JMP.EXIT;
const isJa = (i: IrInsn): boolean => isJmpClass(i) && jmpOp(i.code) === JMP.JA;
const isCond = (i: IrInsn): boolean => isJmpClass(i) && i.target !== undefined && !isJa(i) && !isCall(i) && !isExit(i);
/** Control never falls through to the next instruction. */
const isTransfer = (i: IrInsn): boolean => isExit(i) || (isJa(i) && i.target !== undefined);
const strip = (i: IrInsn): IrInsn => {
  const { labels: _l, funcInfo: _f, lines: _n, ...rest } = i;
  return rest;
};

/** A region rewrite: the section after it, and (window-shaped ones) the superblock it replaces. */
export interface RegionCandidate {
  kind: 'bounds-merge' | 'const-hoist' | 'null-check' | 'jump-thread';
  next: CodeSection;
  /** Slots saved. */
  saved: number;
  /** First and one-past-last index of the changed code in the current section. */
  start: number;
  end: number;
  /** When the rewrite replaces one superblock [start, end) (no labels inside): its replacement. */
  window?: IrInsn[];
  /**
   * When the rewrite is a sequence of window edits (each provable as a window on the code the
   * previous ones left): insns[at, at + remove) → insns, in order.
   */
  steps?: { at: number; remove: number; insns: IrInsn[] }[];
  /** After the steps, code no path reaches goes (proven by pairing both control-flow graphs). */
  cleanup?: boolean;
}

const sectionSlots = (insns: readonly IrInsn[]): number => insns.reduce((n, i) => n + slotsOf(i), 0);

/**
 * Deletes instructions (never pinned ones); each deleted instruction's labels, func_info and line
 * info move to the next instruction kept. Null when something would be lost (a pinned
 * instruction, metadata with nowhere to go, two function starts on one instruction).
 */
export function deleteInsns(sec: CodeSection, dead: ReadonlySet<number>, droppable: ReadonlySet<string> = new Set()): CodeSection | null {
  const out: IrInsn[] = [];
  let carry: { labels: string[]; funcInfo?: IrInsn['funcInfo']; lines?: IrInsn['lines'] } = { labels: [] };
  for (let k = 0; k < sec.insns.length; k++) {
    const i = sec.insns[k]!;
    if (dead.has(k)) {
      if (i.pinned) return null;
      carry.labels.push(...(i.labels ?? []).filter((l) => !droppable.has(l)));
      if (i.funcInfo) {
        if (carry.funcInfo) return null;
        carry.funcInfo = i.funcInfo;
      }
      if (i.lines?.length && !carry.lines) carry.lines = i.lines;
      continue;
    }
    if (carry.labels.length || carry.funcInfo || carry.lines) {
      if (carry.funcInfo && i.funcInfo) return null;
      const c: IrInsn = { ...i };
      if (carry.labels.length) c.labels = [...carry.labels, ...(i.labels ?? [])];
      if (carry.funcInfo) c.funcInfo = carry.funcInfo;
      if (carry.lines && !i.lines?.length) c.lines = carry.lines;
      out.push(c);
      carry = { labels: [] };
    } else out.push(i);
  }
  if (carry.labels.length || carry.funcInfo) return null;
  return { ...sec, insns: out };
}

/**
 * Instructions no path reaches: from the section start, function starts (func_info, sized
 * symbols: programs, bpf-to-bpf callees, ld_imm64 function pointers), along the CFG.
 */
export function unreachable(sec: CodeSection): Set<number> {
  const insns = sec.insns;
  const succ = successors(sec);
  const seen = new Uint8Array(insns.length);
  const work: number[] = [];
  const root = (k: number): void => {
    if (k < insns.length && !seen[k]) { seen[k] = 1; work.push(k); }
  };
  root(0);
  insns.forEach((i, k) => {
    if (i.funcInfo) root(k);
  });
  // sized symbols name code from outside (functions, programs); block labels are sizeless
  const at = labelIndex(sec);
  for (const s of sec.symbols) {
    const k = s.end === null ? undefined : at.get(s.start);
    if (k !== undefined) root(k);
  }
  while (work.length) for (const s of succ[work.pop()!]!) root(s);
  const out = new Set<number>();
  seen.forEach((v, k) => { if (!v) out.add(k); });
  return out;
}

/** The section without unreachable code (null when it cannot be removed cleanly). */
export function withoutUnreachable(sec: CodeSection): CodeSection | null {
  const dead = unreachable(sec);
  if (!dead.size) return sec;
  // labels only dead code refers to go with it
  const used = new Set<string>(sec.symbols.flatMap((x) => [x.start, ...(x.end ? [x.end] : [])]));
  sec.insns.forEach((i, k) => { if (!dead.has(k) && i.target !== undefined) used.add(i.target); });
  const droppable = new Set(sec.insns.flatMap((i, k) => (dead.has(k) ? (i.labels ?? []).filter((l) => !used.has(l)) : [])));
  return deleteInsns(sec, dead, droppable);
}

// ---- subsumed bounds checks ----

interface BoundsCheck {
  at: number; // `rT = rD`
  tmp: number;
  data: number;
  end: number;
  add: number;
  target: string;
  /** `if rT > rE` (JGT) or `if rE < rT` (JLT). */
  code: number;
  mirrored: boolean;
}

/** `rT = rD; rT += c; if rT > rE goto L` (or `if rE < rT goto L`) at k. */
function boundsCheckAt(insns: readonly IrInsn[], k: number): BoundsCheck | null {
  const m = insns[k], a = insns[k + 1], j = insns[k + 2];
  if (!m || !a || !j) return null;
  if (m.code !== (CLASS.ALU64 | ALU.MOV | SRC_X) || m.off !== 0 || m.src === m.dst) return null;
  if (a.code !== (CLASS.ALU64 | ALU.ADD | SRC_K) || a.dst !== m.dst || a.labels?.length || a.pinned) return null;
  if (opClass(j.code) !== CLASS.JMP || srcBit(j.code) !== SRC_X || j.target === undefined || j.labels?.length) return null;
  const op = jmpOp(j.code);
  if (op === JMP.JGT && j.dst === m.dst && j.src !== m.dst) return { at: k, tmp: m.dst, data: m.src, end: j.src, add: a.imm, target: j.target, code: j.code, mirrored: false };
  if (op === JMP.JLT && j.src === m.dst && j.dst !== m.dst) return { at: k, tmp: m.dst, data: m.src, end: j.dst, add: a.imm, target: j.target, code: j.code, mirrored: true };
  return null;
}

/**
 * A bounds check followed, in the same superblock (one entry, side exits allowed, no calls), by a
 * wider check of the same pointer against the same end to the same place: the wider check takes
 * the first one's place and the second goes. Every path that failed the wide check later now fails
 * it at once — equivalent when what ran in between has no effect there (the checker decides).
 */
export function boundsMerges(sec: CodeSection, maxGap = 40): RegionCandidate[] {
  const insns = sec.insns;
  const out: RegionCandidate[] = [];
  for (let k = 0; k < insns.length; k++) {
    const c1 = boundsCheckAt(insns, k);
    if (!c1 || insns[k]!.pinned) continue;
    const written = new Set<number>();
    for (let j = k + 3; j < insns.length && j - k < maxGap; j++) {
      const i = insns[j]!;
      if (i.labels?.length || i.pinned || isCall(i) || isExit(i) || isJa(i) || (i.code === LD_IMM64 && i.src !== 0) || i.core?.length) break;
      const c2 = boundsCheckAt(insns, j);
      if (c2 && c2.data === c1.data && c2.end === c1.end && c2.target === c1.target && c2.mirrored === c1.mirrored && c2.add > c1.add && !written.has(c1.data) && !written.has(c1.end)) {
        const replacement = [
          strip(insns[k]!), { ...strip(insns[k + 1]!), imm: c2.add }, strip(insns[k + 2]!),
          ...insns.slice(k + 3, j).map(strip),
        ];
        const next = { ...sec, insns: [...insns.slice(0, k), { ...replacement[0]!, labels: insns[k]!.labels, ...(insns[k]!.funcInfo ? { funcInfo: insns[k]!.funcInfo } : {}), ...(insns[k]!.lines ? { lines: insns[k]!.lines } : {}) }, ...replacement.slice(1), ...insns.slice(j + 3)] };
        out.push({ kind: 'bounds-merge', next, saved: 3, start: k, end: j + 3, window: replacement });
        break;
      }
      for (let r = 0; r <= 10; r++) if (defUse(i).def & (1 << r)) written.add(r);
    }
  }
  return out;
}

// ---- constants hoisted into a common dominator ----

/** Immediate dominator of each block (blocks in index order; -1: an entry or unreachable). */
function dominators(preds: number[][], entries: number[]): Int32Array {
  const n = preds.length;
  // reverse postorder from the entries
  const order: number[] = [];
  const seen = new Uint8Array(n);
  const succs: number[][] = Array.from({ length: n }, () => []);
  preds.forEach((ps, b) => ps.forEach((p) => succs[p]!.push(b)));
  const visit = (b0: number): void => {
    const stack: [number, number][] = [[b0, 0]];
    seen[b0] = 1;
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const s = succs[top[0]]![top[1]++];
      if (s === undefined) { order.push(top[0]); stack.pop(); continue; }
      if (!seen[s]) { seen[s] = 1; stack.push([s, 0]); }
    }
  };
  for (const e of entries) if (!seen[e]) visit(e);
  order.reverse();
  const rpo = new Int32Array(n).fill(-1);
  order.forEach((b, k) => { rpo[b] = k; });
  const idom = new Int32Array(n).fill(-2); // -2: not yet known
  const isEntry = new Set(entries);
  for (const e of entries) idom[e] = e;
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      // an entry is its own idom: climbing past one means no common dominator (else this never ends)
      while (rpo[a]! > rpo[b]!) { if (isEntry.has(a)) return -1; a = idom[a]!; if (a < 0) return -1; }
      while (rpo[b]! > rpo[a]!) { if (isEntry.has(b)) return -1; b = idom[b]!; if (b < 0) return -1; }
    }
    return a;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (const b of order) {
      if (isEntry.has(b)) continue;
      let d = -2;
      for (const p of preds[b]!) {
        if (idom[p] === -2 || rpo[p] === -1) continue;
        d = d === -2 ? p : intersect(d, p);
        if (d === -1) break;
      }
      if (d !== -2 && idom[b] !== d) { idom[b] = d; changed = true; }
    }
  }
  return idom.map((d, b) => (isEntry.has(b) || d < 0 ? -1 : d));
}

/** The constant a `r = imm` instruction assigns (as constantsIn records it), or null. */
function constDef(i: IrInsn): bigint | null {
  if (i.pinned || i.core?.length || i.off !== 0) return null;
  if (i.code === (CLASS.ALU64 | ALU.MOV | SRC_K)) return BigInt.asUintN(64, BigInt(i.imm));
  if (i.code === (CLASS.ALU | ALU.MOV | SRC_K)) return BigInt(i.imm >>> 0);
  if (i.code === LD_IMM64 && i.src === 0 && !i.reloc) return imm64(i);
  return null;
}

/**
 * `r = c` done on several paths, hoisted once into the nearest block dominating two of them (at
 * its end, where r is dead: nothing reads the value it had there), so that every copy where r
 * then already holds c goes. Saves the copies less the one inserted.
 */
export function constHoists(sec: CodeSection, maxPairs = 64): RegionCandidate[] {
  const insns = sec.insns;
  const starts = blockStarts(sec);
  if (starts.length < 2 || insns.length > 4000) return [];
  const blockOf = new Int32Array(insns.length);
  starts.forEach((s, b) => { for (let k = s; k < (starts[b + 1] ?? insns.length); k++) blockOf[k] = b; });
  const succ = successors(sec);
  const preds: number[][] = starts.map(() => []);
  starts.forEach((_, b) => {
    const last = (starts[b + 1] ?? insns.length) - 1;
    for (const s of succ[last]!) if (!preds[blockOf[s]!]!.includes(b)) preds[blockOf[s]!]!.push(b);
  });
  const entries = starts.map((_, b) => b).filter((b) => b === 0 || preds[b]!.length === 0 || insns[starts[b]!]!.funcInfo);
  const idom = dominators(preds, entries);
  const depth = (b: number): number => { let d = 0; for (let x = b; idom[x]! >= 0; x = idom[x]!) d++; return d; };
  const nca = (a: number, b: number): number => {
    let da = depth(a), db = depth(b);
    while (da > db) { a = idom[a]!; da--; }
    while (db > da) { b = idom[b]!; db--; }
    while (a !== b) { a = idom[a]!; b = idom[b]!; if (a < 0 || b < 0) return -1; }
    return a;
  };
  const live = liveIn(sec);
  const groups = new Map<string, number[]>();
  insns.forEach((i, k) => {
    if (constDef(i) === null) return;
    const key = `${i.code}|${i.dst}|${i.imm}|${i.imm2 ?? ''}`;
    const g = groups.get(key);
    if (g) g.push(k); else groups.set(key, [k]);
  });
  const out: RegionCandidate[] = [];
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    const r = insns[members[0]!]!.dst;
    const tried = new Set<number>();
    let best: RegionCandidate | null = null;
    let pairs = 0;
    for (let x = 0; x < members.length && pairs < maxPairs; x++) {
      for (let y = x + 1; y < members.length && pairs < maxPairs; y++, pairs++) {
        const d = nca(blockOf[members[x]!]!, blockOf[members[y]!]!);
        if (d < 0 || tried.has(d)) continue;
        tried.add(d);
        const end = starts[d + 1] ?? insns.length;
        const last = insns[end - 1]!;
        // before the block's closing jump, or after its last instruction when it falls through
        const at = isJmpClass(last) && !isCall(last) ? end - 1 : end;
        if (at < insns.length && live[at]! & (1 << r)) continue;
        const def = strip(insns[members[x]!]!);
        // the copy goes right before instruction `at`, which keeps its labels: only the fall-through
        // into `at` runs it (enough: it dominates the copies below)
        const grown: IrInsn[] = [...insns.slice(0, at), def, ...insns.slice(at)];
        const g: CodeSection = { ...sec, insns: grown };
        const consts = constantsIn(g);
        const dead = new Set<number>();
        for (const m0 of members) {
          const m = m0 >= at ? m0 + 1 : m0;
          if (consts[m]![r] === constDef(grown[m]!)) dead.add(m);
        }
        if (dead.size < 2) continue;
        const next = deleteInsns(g, dead);
        if (!next) continue;
        const saved = sectionSlots(insns) - sectionSlots(next.insns);
        if (saved <= 0 || (best && saved <= best.saved)) continue;
        // as window steps: the copy inserted where r is dead, then each redundant one deleted
        // (last first, so the positions stay valid) under the constant it finds in r
        const steps = [{ at, remove: 0, insns: [def] }, ...[...dead].sort((p, q) => q - p).map((m) => ({ at: m, remove: 1, insns: [] }))];
        best = { kind: 'const-hoist', next, saved, start: Math.min(at, ...members), end: Math.max(at, ...members) + 1, steps };
      }
    }
    if (best) out.push(best);
  }
  return out.sort((a, b) => b.saved - a.saved);
}

// ---- null checks of pointers that cannot be null ----

const NON_NULL = new Set(['ctx', 'stack', 'packet', 'packet_end', 'map', 'map_value']);

/**
 * `if rX == 0 goto L` (never taken) or `if rX != 0 goto L` (always) where the safety model's facts
 * say rX points into the context, the stack, the packet or a map value on every path: the first
 * goes, the second becomes `goto L`, and code left unreachable goes too.
 */
export function nullChecks(sec: CodeSection, pres: ReadonlyMap<number, WindowPre> | null): RegionCandidate[] {
  if (!pres) return [];
  const out: RegionCandidate[] = [];
  sec.insns.forEach((i, k) => {
    if (opClass(i.code) !== CLASS.JMP || srcBit(i.code) !== SRC_K || i.imm !== 0 || i.target === undefined || i.pinned) return;
    const op = jmpOp(i.code);
    if (op !== JMP.JEQ && op !== JMP.JNE) return;
    const f = pres.get(k)?.regs?.[i.dst];
    if (!f || !NON_NULL.has(f.kind)) return;
    const replacement: IrInsn[] = op === JMP.JEQ ? [] : [{ ...strip(i), code: CLASS.JMP | JMP.JA, dst: 0, src: 0, imm: 0 }];
    if (k + 1 >= sec.insns.length) return;
    const next = withoutUnreachable(replaceWindow(sec, k, k + 1, replacement));
    if (!next) return;
    const saved = sectionSlots(sec.insns) - sectionSlots(next.insns);
    if (saved > 0) out.push({ kind: 'null-check', next, saved, start: k, end: k + 1, steps: [{ at: k, remove: 1, insns: replacement }], cleanup: true });
  });
  return out;
}

// ---- jump threading ----

/**
 * A jump whose target is `goto M` jumps to M directly (then the `goto`, if nothing else reaches
 * it, goes with the code no path reaches). Only kept when that saves slots.
 */
export function jumpThreads(sec: CodeSection): RegionCandidate[] {
  const at = labelIndex(sec);
  const out: RegionCandidate[] = [];
  sec.insns.forEach((i, k) => {
    if (i.target === undefined || !isJmpClass(i) || isCall(i) || i.pinned) return;
    const t = at.get(i.target);
    const g = t === undefined ? undefined : sec.insns[t];
    if (!g || t === k || !isJa(g) || g.target === undefined || g.target === i.target) return;
    const next = withoutUnreachable({ ...sec, insns: sec.insns.map((x, j) => (j === k ? { ...x, target: g.target } : x)) });
    if (!next) return;
    const saved = sectionSlots(sec.insns) - sectionSlots(next.insns);
    if (saved > 0) out.push({ kind: 'jump-thread', next, saved, start: k, end: k + 1 });
  });
  return out;
}
