// Static passes over a linked program (check_cfg, check_subprogs): structure, reachability,
// pruning points and loop heads, and which functions may change packet data.
import { CALL_HELPER, CALL_PSEUDO, CLASS, JMP, LD_IMM64, invalidReason, jmpOp, opClass } from '../isa/index.js';
import { Unsafe } from './env.js';
import { unsupportedReason } from './ctx.js';
import { helperFor } from './helpers.js';
import { progKind } from './progtypes.js';
import { isCallbackHelper } from './calls.js';
import type { SafetyProgram } from './program.js';

export interface Cfg {
  /** Instructions where states are stored and compared (jump targets, fall-throughs of branches, after calls). */
  prunePoint: Uint8Array;
  /** Targets of back edges and callback-calling helper calls. */
  loopHead: Uint8Array;
}

/** Structural checks; throws Unsafe. */
export function checkCfg(prog: SafetyProgram, fnAt: Int32Array): Cfg {
  const { insns, funcs } = prog;
  const prunePoint = new Uint8Array(insns.length);
  const loopHead = new Uint8Array(insns.length);
  for (const p of prog.problems) throw new Unsafe(p.why, p.insn);
  const unsupported = unsupportedReason(prog.progType, prog.attach, prog.structOps);
  if (unsupported) throw new Unsafe(unsupported, null);
  if (insns.length === 0) throw new Unsafe('empty program', null);
  for (const f of funcs) {
    if (f.end <= f.start) throw new Unsafe('empty function', f.start);
    const last = insns[f.end - 1]!;
    const op = jmpOp(last.code);
    const cls = opClass(last.code);
    const isJa = (cls === CLASS.JMP || cls === CLASS.JMP32) && op === JMP.JA;
    if (!(last.code === (CLASS.JMP | JMP.EXIT)) && !isJa) throw new Unsafe('last insn is not an exit or jmp', f.end - 1);
  }
  // Reachability from the entry through jumps, fall-through and calls.
  const seen = new Uint8Array(insns.length);
  const todo = [0];
  seen[0] = 1;
  const visit = (i: number) => { if (i >= 0 && i < insns.length && !seen[i]) { seen[i] = 1; todo.push(i); } };
  while (todo.length) {
    const i = todo.pop()!;
    const insn = insns[i]!;
    const bad = invalidReason(insn);
    if (bad) throw new Unsafe(`invalid instruction (${bad})`, i);
    const cls = opClass(insn.code);
    if (cls === CLASS.JMP || cls === CLASS.JMP32) {
      const op = jmpOp(insn.code);
      if (op === JMP.EXIT) continue;
      if (op === JMP.CALL) {
        if (insn.src === CALL_PSEUDO) { visit(insn.tgt); prunePoint[insn.tgt] = 1; }
        // Callback-calling helpers are loop heads: every call of the callback comes back to them.
        if (insn.src === CALL_HELPER && isCallbackHelper(insn.imm)) { prunePoint[i] = 1; loopHead[i] = 1; }
        visit(i + 1);
        if (i + 1 < insns.length) prunePoint[i + 1] = 1;
        continue;
      }
      if (insn.tgt >= 0 && insn.tgt <= i) loopHead[insn.tgt] = 1;
      if (op === JMP.JA) { visit(insn.tgt); prunePoint[insn.tgt] = 1; continue; }
      visit(insn.tgt);
      visit(i + 1);
      prunePoint[insn.tgt] = 1;
      prunePoint[i + 1] = 1;
      continue;
    }
    if (insn.code === LD_IMM64 && insn.ld?.kind === 'func') { visit(insn.ld.start); prunePoint[insn.ld.start] = 1; }
    visit(i + 1);
  }
  for (let i = 0; i < insns.length; i++) if (!seen[i]) {
    // Functions not reached through calls are not part of the program the kernel sees.
    const f = funcs[fnAt[i]!];
    if (f && f.start !== 0 && !seen[f.start]) continue;
    throw new Unsafe(`unreachable insn ${i}`, i);
  }
  return { prunePoint, loopHead };
}

/** Per function: whether its code may change packet data, directly or through the functions it calls. */
export function functionsChangingPkt(prog: SafetyProgram, fnAt: Int32Array): boolean[] {
  const { insns, funcs } = prog;
  const own = funcs.map((f) => {
    for (let i = f.start; i < f.end; i++) {
      const insn = insns[i]!;
      if (insn.code === (CLASS.JMP | JMP.CALL) && insn.src === CALL_HELPER) {
        const h = helperFor(insn.imm, progKind(prog.progType, prog.attach, prog.structOps), prog.gpl);
        if (typeof h !== 'string' && h.pktData) return true;
      }
    }
    return false;
  });
  let changed = true;
  while (changed) {
    changed = false;
    funcs.forEach((f, k) => {
      if (own[k]) return;
      for (let i = f.start; i < f.end; i++) {
        const insn = insns[i]!;
        if (insn.code === (CLASS.JMP | JMP.CALL) && insn.src === CALL_PSEUDO && own[fnAt[insn.tgt] ?? -1]) { own[k] = true; changed = true; return; }
      }
    });
  }
  return own;
}
