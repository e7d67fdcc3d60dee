// Candidate repairs for one verifier failure: code whose effect is nil on every real execution of
// the program (which the proof stage must show) but which hands the verifier the fact it lacked.
//
//  failure                                   candidate
//  ----------------------------------------  ----------------------------------------------------
//  R0 out of the return range at exit        `r0 &= 2^k-1` / clamps before the exit; inline the
//                                            global function whose unknown result reaches it
//  call stack too deep                       inline the call that would push the extra frame
//  Rn !read_ok                               `rn = 0` at the function's entry
//  packet access outside the checked range   re-check the range on the register actually used
//  map value / memory access out of range,   clamp the variable offset at the pointer addition
//  unbounded, negative min, pointer math     that feeds it (`if rX <= K goto +1; rX = K`)
//  helper size argument unbounded/negative   clamp it before the call (a u32 size: `wX = wX` first)
//
// Each candidate carries, when it has one, the guard it relies on (the condition under which the
// inserted code does nothing), so the proof stage can prove just that guard when whole-program
// equivalence is out of the checker's reach.
import { ALU, CALL_HELPER, CALL_PSEUDO, CLASS, JMP, MODE, REG_FP, SRC_X, aluOp, jmpOp, memMode, opClass, sizeBytes, srcBit } from '../isa/index.js';
import { defUse, liveIn, successors } from '../analysis/index.js';
import { findLabel } from '../ir/index.js';
import type { BpfObject, CodeSection, IrInsn, Label, ProgramRef } from '../ir/types.js';
import { STB, symBind } from '../elf/types.js';
import {
  addImm, andImm, exit, freshLabel, insertBefore, jmp32Imm, jmpImm, jmpReg, ldxDw, ldxW, mov32Reg, movImm, movReg, sectionNamed, withSection,
} from './edit.js';
import { bytesFrom, type RegView, type VerifierFailure } from './log.js';
import { funcAt, type FuncRange } from './layout.js';
import { DATA_END, helperName, sizeArg } from './helpers.js';
import { inlineCall } from './inline.js';

export type CandidateKind = 'check' | 'clamp' | 'clamp-u32' | 'packet-check' | 'retval-mask' | 'retval-clamp' | 'init' | 'inline';

/** Code a candidate inserted: `count` instructions at `index` of `section` (candidate coordinates). */
export interface Inserted {
  section: string;
  index: number;
  count: number;
}

/**
 * The condition under which the candidate's inserted code changes nothing, at position `at` of
 * `section` of the object the candidate was made from: `test(fail)` jumps to `fail` when it is false.
 */
export interface Guard {
  section: string;
  at: number;
  test: (fail: Label) => IrInsn[];
  text: string;
  /** Why the inserted code is nil when the guard holds (for the report). */
  nil: string;
}

export interface Candidate {
  kind: CandidateKind;
  summary: string;
  obj: BpfObject;
  inserted: Inserted[];
  guard?: Guard;
  /** init: register `reg` set at the entry of the entry function (proof: its old value is never observed). */
  init?: { reg: number };
  /** inline: the caller before (in the object the candidate was made from) and after. */
  inlined?: { before: FuncRange; after: FuncRange };
}

/** The failing instruction, located in the IR. */
export interface Site {
  obj: BpfObject;
  prog: ProgramRef;
  failure: VerifierFailure;
  section: string;
  index: number;
  func: FuncRange;
  /** The program's entry function. */
  entry: FuncRange;
}

const isJmp = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32;
const isCall = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.CALL;
const isExit = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.EXIT;
const isMemAccess = (i: IrInsn): boolean => {
  const c = opClass(i.code);
  return (c === CLASS.LDX || c === CLASS.ST || c === CLASS.STX) && (memMode(i.code) === MODE.MEM || memMode(i.code) === MODE.ATOMIC || memMode(i.code) === MODE.MEMSX);
};
const baseReg = (i: IrInsn): number => (opClass(i.code) === CLASS.LDX ? i.src : i.dst);
const S32_MAX = 0x7fffffff;

/**
 * Inserts `code(skip)` before `at`, where `skip` labels the instruction at `at` (the inserted code
 * takes over `at`'s labels, so every path into `at` runs it).
 */
function insertGuarded(sec: CodeSection, at: number, code: (skip: Label) => IrInsn[]): { sec: CodeSection; count: number } {
  const skip = freshLabel(sec);
  const insns = code(skip);
  const s2 = insertBefore(sec, at, insns);
  const anchor = s2.insns[at + insns.length]!;
  const insns2 = [...s2.insns];
  insns2[at + insns.length] = { ...anchor, labels: [...(anchor.labels ?? []), skip] };
  return { sec: { ...s2, insns: insns2 }, count: insns.length };
}

/** `if rX <= K goto skip; rX = K` (and `wX = wX` first for a u32 value). */
const clampCode = (reg: number, k: number, u32: boolean) => (skip: Label): IrInsn[] =>
  [...(u32 ? [mov32Reg(reg, reg)] : []), jmpImm(JMP.JLE, reg, k, skip), movImm(reg, k)];

/**
 * Inserts `code(bail)` before `at` (taking over its labels) and a block `bail: r0 = 0; exit` at the
 * end of the function containing `at`. The bail block is only ever reached on executions the proof
 * shows do not exist; 0 is a valid return value for every program type k2 repairs.
 */
function withBail(obj: BpfObject, secName: string, at: number, code: (bail: Label) => IrInsn[]): { obj: BpfObject; inserted: Inserted[] } {
  const sec = sectionNamed(obj, secName);
  const f = funcAt(obj, secName, at);
  const bail = freshLabel(sec, 'k2bail');
  const check = code(bail);
  let cur = insertBefore(sec, at, check);
  const end = f.end + check.length;
  const bailCode: IrInsn[] = [{ ...movImm(0, 0), labels: [bail] }, exit()];
  cur = insertBefore(cur, end, bailCode, false);
  return { obj: withSection(obj, cur), inserted: [{ section: secName, index: at, count: check.length }, { section: secName, index: end, count: bailCode.length }] };
}

/**
 * Candidates that bound `reg` by `k` at `at`: a check that leaves the program when `reg > k`
 * (cheap to prove: on every real execution the branch is dead and the rest of the program is the
 * same code on the same values) and a clamp `if reg <= k goto +1; reg = k`.
 */
function boundCandidates(site: Site, secName: string, at: number, reg: number, k: number, why: string): Candidate[] {
  if (k < 0 || k > S32_MAX || reg === REG_FP) return [];
  const guard: Guard = {
    section: secName, at,
    test: (fail) => [jmpImm(JMP.JGT, reg, k, fail)],
    text: `r${reg} <= ${k} (unsigned)`,
    nil: `when r${reg} <= ${k} the inserted code changes nothing`,
  };
  const checked = withBail(site.obj, secName, at, (bail) => [jmpImm(JMP.JGT, reg, k, bail)]);
  const sec = sectionNamed(site.obj, secName);
  const clamped = insertGuarded(sec, at, clampCode(reg, k, false));
  return [
    { kind: 'check', summary: `check r${reg} <= ${k} (else leave with r0 = 0): ${why}`, obj: checked.obj, inserted: checked.inserted, guard },
    { kind: 'clamp', summary: `bound r${reg} to <= ${k}: ${why}`, obj: withSection(site.obj, clamped.sec), inserted: [{ section: secName, index: at, count: clamped.count }], guard },
  ];
}

/**
 * The u32 size argument of a helper in `reg`, bounded right before the call: `wR = wR; if rR <= k
 * goto +1; rR = k`. Only the upper half of the register changes when its low half is <= k, and the
 * helper never sees that half (its parameter is u32; r1-r5 are dead after the call).
 */
function sizeClampCandidate(site: Site, reg: number, k: number, why: string): Candidate | null {
  if (k < 0 || k > S32_MAX) return null;
  const sec = sectionNamed(site.obj, site.section);
  const { sec: s2, count } = insertGuarded(sec, site.index, clampCode(reg, k, true));
  return {
    kind: 'clamp-u32',
    summary: `bound w${reg} (zero-extended) to <= ${k} before the call: ${why}`,
    obj: withSection(site.obj, s2),
    inserted: [{ section: site.section, index: site.index, count }],
    guard: {
      section: site.section, at: site.index,
      test: (fail) => [jmp32Imm(JMP.JGT, reg, k, fail)],
      text: `w${reg} <= ${k} (unsigned)`,
      nil: `when w${reg} <= ${k} the inserted code only clears the upper 32 bits of r${reg}, which the helper's u32 size parameter never sees (and r1-r5 are dead after the call)`,
    },
  };
}

/** Candidates bounding a size argument of a helper whose parameter is 64-bit. */
function sizeBoundCandidates(site: Site, reg: number, k: number, why: string): Candidate[] {
  return boundCandidates(site, site.section, site.index, reg, k, why);
}

/** Predecessors of every instruction of `f` inside `f`. */
function predecessors(sec: CodeSection, f: FuncRange): number[][] {
  const succ = successors(sec);
  const preds: number[][] = sec.insns.map(() => []);
  for (let i = f.start; i < f.end; i++) for (const s of succ[i]!) if (s >= f.start && s < f.end) preds[s]!.push(i);
  return preds;
}

/**
 * Pointer additions `rP += rX` that may have formed the value of `reg` at `from`, nearest first,
 * following register copies and constant adjustments backwards through `f`'s control flow.
 */
export function varOffsetAdds(sec: CodeSection, f: FuncRange, from: number, reg: number): { at: number; scalar: number; ptr: number }[] {
  const preds = predecessors(sec, f);
  const out: { at: number; scalar: number; ptr: number }[] = [];
  const seen = new Set<string>();
  const queue: [number, number][] = [[from, reg]];
  let budget = 400;
  while (queue.length && budget-- > 0) {
    const [p, r] = queue.shift()!;
    for (const q of preds[p]!) {
      const key = `${q}:${r}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const i = sec.insns[q]!;
      if (!(defUse(i).def & (1 << r))) {
        queue.push([q, r]);
        continue;
      }
      const cls = opClass(i.code);
      const op = aluOp(i.code);
      const x = srcBit(i.code) === SRC_X;
      if (cls !== CLASS.ALU64) continue;
      if (op === ALU.MOV && x) queue.push([q, i.src]);
      else if ((op === ALU.ADD || op === ALU.SUB) && !x) queue.push([q, r]);
      else if (op === ALU.ADD && x) {
        // the scalar is usually the source; `scalar += ptr` has it in the destination
        out.push({ at: q, scalar: i.src, ptr: r });
        out.push({ at: q, scalar: r, ptr: i.src });
        queue.push([q, r], [q, i.src]);
      }
    }
  }
  return out;
}

/**
 * The largest variable offset a pointer added at `at` (in `ptr`) can take so that every access
 * through it later in the same basic block stays within `room` bytes of its position there.
 */
function boundFromAccesses(sec: CodeSection, at: number, ptr: number, room: number): number | null {
  const alias = new Map<number, number>([[ptr, 0]]); // register -> constant offset from the pointer
  let k: number | null = null;
  for (let q = at + 1; q < sec.insns.length; q++) {
    const i = sec.insns[q]!;
    if (i.labels?.length) break;
    if (isMemAccess(i) && alias.has(baseReg(i))) {
      const need = room - (alias.get(baseReg(i))! + i.off + sizeBytes(i.code));
      k = k === null ? need : Math.min(k, need);
    }
    if (isJmp(i)) break;
    const cls = opClass(i.code);
    const d = defUse(i).def;
    if (cls === CLASS.ALU64 && aluOp(i.code) === ALU.MOV && srcBit(i.code) === SRC_X && alias.has(i.src)) {
      alias.set(i.dst, alias.get(i.src)!);
      continue;
    }
    if (cls === CLASS.ALU64 && (aluOp(i.code) === ALU.ADD || aluOp(i.code) === ALU.SUB) && srcBit(i.code) !== SRC_X && alias.has(i.dst)) {
      alias.set(i.dst, alias.get(i.dst)! + (aluOp(i.code) === ALU.ADD ? i.imm : -i.imm));
      continue;
    }
    for (const r of [...alias.keys()]) if (d & (1 << r)) alias.delete(r);
    if (!alias.size) break;
  }
  return k;
}

function packetCheck(site: Site, base: number, extent: number): Candidate[] {
  const obj = site.obj;
  const sec = sectionNamed(obj, site.section);
  const regs = site.failure.regs;
  const live = liveIn(sec);
  const liveHere = live[site.index]!;
  const dead = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].filter((r) => r !== base && !(liveHere & (1 << r)));
  const endReg = [...regs].find(([, v]) => v.type === 'pkt_end')?.[0];
  const ctxReg = [...regs].find(([r, v]) => v.type === 'ctx' && !v.fields.off && r !== base)?.[0];
  const dataEnd = DATA_END[site.prog.progType];
  const out: Candidate[] = [];
  const build = (loadEnd: IrInsn[] | null, endR: number, save: { reg: number } | null, scratch: number | null): Candidate | null => {
    let cur = sec;
    const inserted: Inserted[] = [];
    const bail = freshLabel(cur, 'k2bail');
    const check: IrInsn[] = [...(loadEnd ?? [])];
    if (scratch !== null) check.push(movReg(scratch, base), addImm(scratch, extent), jmpReg(JMP.JGT, scratch, endR, bail));
    else check.push(addImm(base, extent), jmpReg(JMP.JGT, base, endR, bail), addImm(base, -extent));
    let at = site.index;
    let fEnd = site.func.end;
    if (save) {
      // keep the context pointer from the entry, where r1 holds it
      cur = insertBefore(cur, site.func.start, [movReg(save.reg, 1)]);
      at += 1;
      fEnd += 1;
    }
    cur = insertBefore(cur, at, check);
    // the check is what the report points at (first); the context copy and the exit block follow
    inserted.push({ section: sec.name, index: at, count: check.length });
    if (save) inserted.push({ section: sec.name, index: site.func.start, count: 1 });
    fEnd += check.length;
    const bailCode: IrInsn[] = [{ ...movImm(0, 0), labels: [bail] }, exit()];
    cur = insertBefore(cur, fEnd, bailCode, false);
    inserted.push({ section: sec.name, index: fEnd, count: bailCode.length });
    return {
      kind: 'packet-check',
      summary: `re-check the packet range on r${base} (${extent} bytes) before the access${save ? `, keeping the context in r${save.reg} from the entry` : ''}; the failing branch leaves with r0 = 0`,
      obj: withSection(obj, cur),
      inserted,
    };
  };
  if (endReg !== undefined) {
    const c = build(null, endReg, null, dead[0] ?? null);
    if (c) out.push(c);
  }
  if (dataEnd) {
    const load = (dst: number, ctx: number): IrInsn => (dataEnd.size === 4 ? ldxW(dst, ctx, dataEnd.off) : ldxDw(dst, ctx, dataEnd.off));
    if (ctxReg !== undefined && dead.length) {
      const e = dead[0]!;
      const c = build([load(e, ctxReg)], e, null, dead[1] ?? null);
      if (c) out.push(c);
    } else if (site.func.start === site.entry.start && site.func.section === site.entry.section && dead.length) {
      // a callee-saved register the entry function never touches keeps the context
      let used = 0;
      for (let i = site.func.start; i < site.func.end; i++) {
        const du = defUse(sec.insns[i]!);
        used |= du.def | du.use;
      }
      const keep = [6, 7, 8, 9].find((r) => !(used & (1 << r)));
      if (keep !== undefined) {
        const e = dead[0]!;
        const c = build([load(e, keep)], e, { reg: keep }, dead[1] ?? null);
        if (c) out.push(c);
      }
    }
  }
  return out;
}

/** Room (bytes from the pointer's current position to the end of its region) the log gives for `reg`. */
function roomOf(site: Site, reg: number): number | null {
  const v: RegView | undefined = site.failure.regs.get(reg);
  if (v) {
    const r = bytesFrom(v);
    if (r !== null) return r;
  }
  const f = site.failure.failure;
  if (f.kind === 'bounds' && f.valueSize !== undefined) return f.valueSize;
  return null;
}

function memoryCandidates(site: Site, insn: IrInsn): Candidate[] {
  const base = baseReg(insn);
  const view = site.failure.regs.get(base);
  const size = sizeBytes(insn.code);
  if (view?.type === 'pkt' || site.failure.failure.kind === 'packet') return packetCheck(site, base, insn.off + size);
  const room = roomOf(site, base);
  if (room === null) return [];
  const k = room - insn.off - size;
  const sec = sectionNamed(site.obj, site.section);
  const out: Candidate[] = [];
  const adds = varOffsetAdds(sec, site.func, site.index, base);
  for (const add of adds) {
    out.push(...boundCandidates(site, site.section, add.at, add.scalar, k, `the variable offset added to the pointer here, so that the ${size}-byte access ${insn.off ? `at +${insn.off} ` : ''}stays inside the ${room} bytes the verifier knows`));
  }
  // checks first (cheaper proofs), nearest addition first
  return [...out.filter((c) => c.kind === 'check'), ...out.filter((c) => c.kind !== 'check')];
}

function helperCandidates(site: Site, insn: IrInsn, reg: number): Candidate[] {
  if (insn.src !== CALL_HELPER) return [];
  const arg = sizeArg(insn.imm, reg);
  if (!arg) return [];
  const mem = site.failure.regs.get(arg.mem);
  const room = mem ? bytesFrom(mem) : null;
  if (room === null) return [];
  const why = `the size passed to ${helperName(insn.imm)} (its buffer in r${arg.mem} has ${room} bytes)`;
  if (arg.u32) {
    const c = sizeClampCandidate(site, reg, room, why);
    return c ? [c] : [];
  }
  return sizeBoundCandidates(site, reg, room, why);
}

function ptrMathCandidates(site: Site, insn: IrInsn): Candidate[] {
  if (opClass(insn.code) !== CLASS.ALU64 || srcBit(insn.code) !== SRC_X) return [];
  const [ptr, scalar] = site.failure.regs.get(insn.dst)?.type === 'scalar' ? [insn.src, insn.dst] : [insn.dst, insn.src];
  const room = roomOf(site, ptr);
  if (room === null) return [];
  const sec = sectionNamed(site.obj, site.section);
  const k = boundFromAccesses(sec, site.index, insn.dst, room) ?? room - 1;
  return boundCandidates(site, site.section, site.index, scalar, k, `the offset added to the ${site.failure.regs.get(ptr)?.type ?? 'pointer'}, so that the accesses after it stay inside its ${room} bytes`);
}

function retvalCandidates(site: Site, lo: bigint, hi: bigint): Candidate[] {
  const out: Candidate[] = [];
  const sec = sectionNamed(site.obj, site.section);
  const guard: Guard = {
    section: site.section, at: site.index,
    test: (fail) => [jmpImm(JMP.JSGT, 0, Number(hi), fail), ...(lo > -(1n << 31n) ? [jmpImm(JMP.JSLT, 0, Number(lo), fail)] : [])],
    text: `${lo} <= r0 <= ${hi} (signed) at exit`,
    nil: `when r0 is already in [${lo}, ${hi}] the inserted code changes nothing`,
  };
  if (hi > BigInt(S32_MAX) || lo < -(1n << 31n)) return out;
  if (lo === 0n && ((hi + 1n) & hi) === 0n) {
    const s2 = insertBefore(sec, site.index, [andImm(0, Number(hi))]);
    out.push({ kind: 'retval-mask', summary: `r0 &= ${hi} before the exit (the return value is proven to be in [0, ${hi}] already)`, obj: withSection(site.obj, s2), inserted: [{ section: site.section, index: site.index, count: 1 }], guard });
  }
  let cur = sec;
  let count = 0;
  const hiClamp = insertGuarded(cur, site.index, (skip) => [jmpImm(JMP.JSLE, 0, Number(hi), skip), movImm(0, Number(hi))]);
  cur = hiClamp.sec;
  count += hiClamp.count;
  if (lo > -(1n << 31n)) {
    const loClamp = insertGuarded(cur, site.index + count, (skip) => [jmpImm(JMP.JSGE, 0, Number(lo), skip), movImm(0, Number(lo))]);
    cur = loClamp.sec;
    count += loClamp.count;
  }
  out.push({ kind: 'retval-clamp', summary: `clamp r0 to [${lo}, ${hi}] before the exit (proven in range already)`, obj: withSection(site.obj, cur), inserted: [{ section: site.section, index: site.index, count }], guard });
  // the other way: inline a global function whose result the verifier cannot see
  for (let q = site.index - 1; q >= site.func.start; q--) {
    const i = sec.insns[q]!;
    if (!isCall(i) || i.src !== CALL_PSEUDO || !i.callee) continue;
    const target = sectionNamed(site.obj, i.callee.section);
    const start = findLabel(target, i.callee.label);
    const sym = target.symbols.find((cs) => findLabel(target, cs.start) === start);
    const global = sym ? symBind(site.obj.elf.symbols[sym.sym]!) === STB.GLOBAL : false;
    if (!global) continue;
    const r = inlineCall(site.obj, site.section, q);
    if (r.ok) {
      const name = sym ? site.obj.elf.symbols[sym.sym]!.name : 'callee';
      out.push({
        kind: 'inline', summary: `inline the global function ${name} (verified on its own, so its result is an unknown scalar to the caller)`, obj: r.obj,
        inserted: [{ section: site.section, index: q, count: r.length }], inlined: { before: site.func, after: funcAt(r.obj, site.section, site.func.start) },
      });
    }
    break;
  }
  return out;
}

function initCandidates(site: Site, reg: number): Candidate[] {
  // Only at the program's entry: the proof shows the register's initial value is never observed.
  if (site.func.section !== site.entry.section || site.func.start !== site.entry.start) return [];
  if (reg === 1 || reg === REG_FP) return [];
  const sec = sectionNamed(site.obj, site.section);
  const s2 = insertBefore(sec, site.func.start, [movImm(reg, 0)]);
  return [{
    kind: 'init',
    summary: `r${reg} = 0 at the program's entry (the verifier sees a path reading r${reg} before any write; its value is never observed)`,
    obj: withSection(site.obj, s2),
    inserted: [{ section: site.section, index: site.func.start, count: 1 }],
    init: { reg },
  }];
}

function inlineCandidates(site: Site, insn: IrInsn): Candidate[] {
  if (!isCall(insn) || insn.src !== CALL_PSEUDO) return [];
  const r = inlineCall(site.obj, site.section, site.index);
  if (!r.ok) return [];
  const target = sectionNamed(site.obj, insn.callee!.section);
  const g = funcAt(site.obj, insn.callee!.section, findLabel(target, insn.callee!.label));
  return [{
    kind: 'inline',
    summary: `inline ${g.name} into ${site.func.name} (one frame fewer on this call chain${r.saved.length ? `; r${r.saved.join(', r')} saved around it` : ''}${r.shift ? `; its stack moved ${r.shift} bytes down` : ''})`,
    obj: r.obj,
    inserted: [{ section: site.section, index: site.index, count: r.length }],
    inlined: { before: site.func, after: funcAt(r.obj, site.section, site.func.start) },
  }];
}

/** Every candidate for the failure at `site`, most specific first. */
export function candidatesFor(site: Site): Candidate[] {
  const insn = sectionNamed(site.obj, site.section).insns[site.index]!;
  const f = site.failure.failure;
  switch (f.kind) {
    case 'retval':
      return isExit(insn) ? retvalCandidates(site, f.lo, f.hi) : [];
    case 'call-depth':
      return inlineCandidates(site, insn);
    case 'uninit':
      return initCandidates(site, f.reg);
    case 'packet':
      return isMemAccess(insn) ? memoryCandidates(site, insn) : [];
    case 'ptr-math':
      return ptrMathCandidates(site, insn);
    case 'bounds':
      if (isMemAccess(insn)) return memoryCandidates(site, insn);
      if (isCall(insn) && f.reg !== null) return helperCandidates(site, insn, f.reg);
      return [];
    default:
      return [];
  }
}
