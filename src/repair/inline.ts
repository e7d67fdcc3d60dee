// Inlining one bpf-to-bpf call: the callee's body replaces the call, so the verifier's call stack
// is one frame shorter ("the call stack of 9 frames is too deep"; MAX_CALL_FRAMES is 8).
//
// What a call does that the spliced body must still do:
//  - the callee's stack frame is its own: its r10-relative bytes move below the caller's frame
//    (offsets shifted by the caller's depth D; `rX = r10` becomes `rX = r10; rX += -D`);
//  - r6-r9 are the caller's after the call: every one the body writes and the caller still needs
//    is saved below the callee's bytes before the body and restored after it;
//  - `exit` returns to the instruction after the call with r0 (a jump there).
// The combined frame must fit the 512-byte stack. The result is proven equivalent by the SMT
// checker like every other repair; this file only has to produce it (or say why it cannot).
import { ALU, ATOMIC, CLASS, JMP, LD_IMM64, MODE, PSEUDO, REG_FP, SRC_X, aluOp, jmpOp, memMode, opClass, srcBit } from '../isa/index.js';
import { liveIn, defUse, successors } from '../analysis/index.js';
import { findLabel } from '../ir/index.js';
import type { BpfObject, CodeSection, IrInsn, Label } from '../ir/types.js';
import { addImm, ja, ldxDw, stxDw, withSection } from './edit.js';
import { funcAt, type FuncRange } from './layout.js';
import { stripOrigin } from './origin.js';

const MAX_STACK = 512;

export type InlineResult = { ok: true; obj: BpfObject; at: number; length: number; saved: number[]; shift: number } | { ok: false; why: string };

const isMem = (i: IrInsn): boolean => [CLASS.LDX, CLASS.ST, CLASS.STX].includes(opClass(i.code) as 1 | 2 | 3);
const isJmp = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32;
const isExit = (i: IrInsn): boolean => isJmp(i) && jmpOp(i.code) === JMP.EXIT;
const memBase = (i: IrInsn): number => (opClass(i.code) === CLASS.LDX ? i.src : i.dst);

/** A register's frame-pointer value: an r10 offset, 'fp' (some r10 offset, unknown), or absent. */
type FpVal = number | 'fp';

/**
 * Lowest r10-relative byte a function uses (as a positive depth, rounded up to 8), following r10
 * copies and constant adjustments through the function's control flow (a forward data flow; a
 * register holding different frame offsets on two paths holds an unknown one). null when a frame
 * pointer escapes what this can follow: stored to memory, combined with a register, used with an
 * unknown offset.
 */
export function frameDepth(sec: CodeSection, f: FuncRange): number | null {
  const succ = successors(sec);
  const n = f.end - f.start;
  const states: (Map<number, FpVal> | null)[] = new Array(n).fill(null);
  states[0] = new Map();
  let depth = 0;
  let escaped = false;
  const see = (off: FpVal): void => {
    if (off === 'fp') escaped = true;
    else depth = Math.max(depth, -off);
  };
  const fpOf = (m: Map<number, FpVal>, r: number): FpVal | undefined => (r === REG_FP ? 0 : m.get(r));
  const step = (i: IrInsn, m: Map<number, FpVal>): Map<number, FpVal> => {
    const out = new Map(m);
    const cls = opClass(i.code);
    if (isMem(i)) {
      const off = fpOf(m, memBase(i));
      if (off !== undefined) see(off === 'fp' ? 'fp' : off + i.off);
      if (cls === CLASS.STX && fpOf(m, i.src) !== undefined) escaped = true; // a frame pointer stored away
      if (cls === CLASS.LDX) out.delete(i.dst);
      if (cls === CLASS.STX && memMode(i.code) === MODE.ATOMIC && (i.imm & ATOMIC.FETCH)) out.delete(i.src);
      if (cls === CLASS.STX && memMode(i.code) === MODE.ATOMIC && i.imm === ATOMIC.CMPXCHG) out.delete(0);
      return out;
    }
    if (cls === CLASS.ALU64 || cls === CLASS.ALU) {
      const op = aluOp(i.code);
      const x = srcBit(i.code) === SRC_X;
      const s = x ? fpOf(m, i.src) : undefined;
      if (cls === CLASS.ALU64 && op === ALU.MOV && x && s !== undefined) {
        out.set(i.dst, s);
        see(s);
        return out;
      }
      const d = out.get(i.dst);
      if (cls === CLASS.ALU64 && (op === ALU.ADD || op === ALU.SUB) && !x && d !== undefined) {
        const v: FpVal = d === 'fp' ? 'fp' : d + (op === ALU.ADD ? i.imm : -i.imm);
        out.set(i.dst, v);
        see(v);
        return out;
      }
      if (s !== undefined || (d !== undefined && op !== ALU.MOV)) escaped = true; // frame pointer in arithmetic
      out.delete(i.dst);
      return out;
    }
    if (isJmp(i) && jmpOp(i.code) === JMP.CALL) {
      // a frame pointer passed to a helper or a callee: the bytes at and above it may be accessed
      for (const r of [1, 2, 3, 4, 5]) {
        const v = fpOf(m, r);
        if (v !== undefined) see(v);
      }
      for (const r of [0, 1, 2, 3, 4, 5]) out.delete(r);
      return out;
    }
    if (i.code === LD_IMM64) out.delete(i.dst);
    return out;
  };
  const join = (a: Map<number, FpVal>, b: Map<number, FpVal>): Map<number, FpVal> => {
    const out = new Map<number, FpVal>();
    for (const r of new Set([...a.keys(), ...b.keys()])) {
      const x = a.get(r), y = b.get(r);
      out.set(r, x === y && x !== undefined ? x : 'fp'); // "maybe a frame pointer" is tracked as one
    }
    return out;
  };
  const same = (a: Map<number, FpVal>, b: Map<number, FpVal>): boolean => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
  for (let changed = true, rounds = 0; changed && rounds < 64; rounds++) {
    changed = false;
    for (let k = 0; k < n; k++) {
      const st = states[k];
      if (!st) continue;
      const out = step(sec.insns[f.start + k]!, st);
      for (const sx of succ[f.start + k]!) {
        const j = sx - f.start;
        if (j < 0 || j >= n) continue;
        const next = states[j] ? join(states[j]!, out) : out;
        if (!states[j] || !same(states[j]!, next)) {
          states[j] = next;
          changed = true;
        }
      }
    }
  }
  return escaped ? null : Math.ceil(depth / 8) * 8;
}

/** Every label used or defined in `sec`. */
function labelsOf(sec: CodeSection): Set<string> {
  const s = new Set<string>();
  for (const i of sec.insns) {
    for (const l of i.labels ?? []) s.add(l);
    if (i.target) s.add(i.target);
  }
  return s;
}

/** Inlines the bpf-to-bpf call at `sec.insns[at]`. */
export function inlineCall(obj: BpfObject, secName: string, at: number): InlineResult {
  const sec = obj.code.find((s) => s.name === secName)!;
  const call = sec.insns[at]!;
  if (!call.callee || !(isJmp(call) && jmpOp(call.code) === JMP.CALL)) return { ok: false, why: 'not a bpf-to-bpf call' };
  const gsec = obj.code.find((s) => s.name === call.callee!.section);
  if (!gsec) return { ok: false, why: `callee section ${call.callee.section} not found` };
  const g = funcAt(obj, gsec.name, findLabel(gsec, call.callee.label));
  const f = funcAt(obj, secName, at);
  if (g.section === f.section && g.start === f.start) return { ok: false, why: 'recursive call' };
  const body = gsec.insns.slice(g.start, g.end);
  const cross = gsec.name !== secName;
  for (const i of body) {
    if (i.callee && i.callee.section === g.section && findLabel(gsec, i.callee.label) >= g.start && findLabel(gsec, i.callee.label) < g.end) return { ok: false, why: 'the callee calls itself' };
    if (i.callee && cross && i.callee.section !== secName) return { ok: false, why: 'the callee calls a function of another section (a relocation would be needed)' };
    if (i.code === LD_IMM64 && i.src === PSEUDO.FUNC) return { ok: false, why: 'the callee passes a callback' };
    if (cross && i.reloc && sec.relSection === null) return { ok: false, why: `section ${secName} has no relocation section for the callee's map or data references` };
    if (cross && i.core?.length && !obj.btfExt?.coreSecs.some((c) => c.secName === secName)) return { ok: false, why: 'CO-RE records cannot move to this section' };
    if (isJmp(i) && i.target === undefined && jmpOp(i.code) !== JMP.CALL && jmpOp(i.code) !== JMP.EXIT) return { ok: false, why: 'unresolved jump in the callee' };
    if (opClass(i.code) === CLASS.ALU64 || opClass(i.code) === CLASS.ALU) {
      if (srcBit(i.code) === SRC_X && i.src === REG_FP && !(opClass(i.code) === CLASS.ALU64 && aluOp(i.code) === ALU.MOV)) return { ok: false, why: 'the callee computes with r10' };
    }
  }
  const dF = frameDepth(sec, f);
  const dG = frameDepth(gsec, g);
  if (dF === null || dG === null) return { ok: false, why: 'a stack pointer escapes (cannot move the callee frame safely)' };

  // r6-r9 the body writes and the caller reads after the call
  const live = liveIn(sec);
  const after = at + 1 < sec.insns.length ? live[at + 1]! : 0;
  let written = 0;
  for (const i of body) written |= defUse(i).def;
  const saved = [6, 7, 8, 9].filter((r) => written & (1 << r) && after & (1 << r));
  const need = dF + dG + 8 * saved.length;
  if (need > MAX_STACK) return { ok: false, why: `the combined frame would need ${need} bytes (limit ${MAX_STACK})` };
  const saveOff = (k: number): number => -(dF + dG + 8 * (k + 1));

  // fresh names for the body's labels, and for the return point
  const taken = labelsOf(sec);
  let n = 0;
  const fresh = (hint: string): Label => {
    while (taken.has(`${hint}.i${n}`)) n++;
    const l = `${hint}.i${n}`;
    taken.add(l);
    return l;
  };
  const rename = new Map<Label, Label>();
  for (const i of body) for (const l of i.labels ?? []) rename.set(l, fresh(l));
  const ret = fresh('ret');

  const spliced: IrInsn[] = [];
  saved.forEach((r, k) => spliced.push(stxDw(REG_FP, saveOff(k), r)));
  body.forEach((src, k) => {
    const i: IrInsn = stripOrigin({ ...src });
    delete i.funcInfo;
    delete i.labels;
    if (src.labels?.length && k > 0) i.labels = src.labels.map((l) => rename.get(l)!);
    if (src.lines && cross) i.lines = src.lines.filter((l) => l.rel === undefined).map((l) => ({ ...l }));
    else if (src.lines) i.lines = src.lines.map((l) => ({ ...l }));
    if (i.lines && !i.lines.length) delete i.lines;
    if (i.target !== undefined) i.target = rename.get(i.target) ?? i.target;
    if (isExit(i)) {
      const j: IrInsn = { ...ja(ret), ...(i.lines ? { lines: i.lines } : {}), ...(i.labels ? { labels: i.labels } : {}) };
      spliced.push(j);
      return;
    }
    if (isMem(i) && memBase(i) === REG_FP) {
      i.off -= dF;
      spliced.push(i);
      return;
    }
    if (opClass(i.code) === CLASS.ALU64 && aluOp(i.code) === ALU.MOV && srcBit(i.code) === SRC_X && i.src === REG_FP) {
      spliced.push(i);
      if (dF) spliced.push(addImm(i.dst, -dF));
      return;
    }
    spliced.push(i);
  });
  // the body's first instruction may have carried labels the body jumps back to
  if (body[0]?.labels?.length) {
    const inner = body[0].labels.map((l) => rename.get(l)!);
    const first = spliced[saved.length]!;
    first.labels = [...inner, ...(first.labels ?? [])];
  }
  const restores = saved.map((r, k) => ldxDw(r, REG_FP, saveOff(k)));
  let next = sec.insns[at + 1];
  if (!next) return { ok: false, why: 'the call is the last instruction of its section' };
  if (restores.length) restores[0]!.labels = [ret];
  else next = { ...next, labels: [ret, ...(next.labels ?? [])] };
  // a jump to the return point right before it is a no-op
  const lastK = spliced.length - 1;
  if (spliced[lastK]!.target === ret && !spliced[lastK]!.labels?.length && (spliced[lastK]!.code === (CLASS.JMP | JMP.JA))) {
    const l = spliced[lastK]!.lines;
    spliced.pop();
    if (l && restores[0]) restores[0].lines = l;
  }
  const seq = [...spliced, ...restores];
  // the call's own position metadata goes to the first instruction of the spliced code
  const first = { ...seq[0]! };
  if (call.labels?.length) first.labels = [...call.labels, ...(first.labels ?? [])];
  if (call.lines?.length) first.lines = call.lines;
  if (call.funcInfo) first.funcInfo = call.funcInfo;
  seq[0] = first;
  const insns = [...sec.insns.slice(0, at), ...seq, next, ...sec.insns.slice(at + 2)];
  return { ok: true, obj: withSection(obj, { ...sec, insns }), at, length: seq.length, saved, shift: dF };
}

/** Longest chain of frames from the entry function (1 = no calls), or null for recursion. */
export function callDepth(obj: BpfObject, entry: FuncRange): number | null {
  const memo = new Map<string, number | null>();
  const visiting = new Set<string>();
  const depthOf = (f: FuncRange): number | null => {
    const key = `${f.section}:${f.start}`;
    if (memo.has(key)) return memo.get(key)!;
    if (visiting.has(key)) return null;
    visiting.add(key);
    const sec = obj.code.find((s) => s.name === f.section)!;
    let best = 1;
    for (let k = f.start; k < f.end; k++) {
      const c = sec.insns[k]!.callee;
      if (!c || !(isJmp(sec.insns[k]!) && jmpOp(sec.insns[k]!.code) === JMP.CALL)) continue;
      const t = obj.code.find((s) => s.name === c.section);
      if (!t) continue;
      const d = depthOf(funcAt(obj, c.section, findLabel(t, c.label)));
      if (d === null) return null;
      best = Math.max(best, d + 1);
    }
    visiting.delete(key);
    memo.set(key, best);
    return best;
  };
  return depthOf(entry);
}


