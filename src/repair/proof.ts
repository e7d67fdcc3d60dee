// Proving a candidate repair changes nothing, with the SMT checker (src/smt). Four ways, strongest
// first; every "unknown" (timeout, unsupported code) is a failure, never a proof:
//
//  whole     checkPrograms(input, candidate) for every program whose code changed: same return
//            value, packet, context and map writes, helper effects and faults on every input.
//  guard     for inserted code that is nil when a condition holds at its position (a clamp
//            `if rX <= K goto +1; rX = K` is nil iff rX <= K there): the condition holds on every
//            execution. Shown by comparing two copies of the program cut at that position — one
//            exits with 0 there, the other exits with 1 when the condition fails — which are
//            equivalent iff no input reaches the position with the condition false (a counterexample
//            is such an input). Used when the whole program is beyond the checker (a helper with a
//            variable size, say) and only for positions the program passes at most once (its entry
//            function, outside loops), so "the first time it gets there" is "every time".
//  function  for an inlined call when the program's call chain is deeper than the checker follows:
//            the caller before and after, each called with fresh (arbitrary) arguments from a
//            wrapper, are equivalent. Only for callers whose parameters are all integers (BTF), so
//            the fresh arguments cover every call.
//  unobserved  for `rN = 0` at the entry of a program the verifier says reads rN uninitialised:
//            the program with rN set to a fresh arbitrary value at its entry is equivalent to the
//            program as it was (the checker reads an unwritten register as 0), so rN's initial
//            value is never observed and 0 is as good as any.
import { CLASS, JMP, REG_FP, opClass, jmpOp } from '../isa/index.js';
import { findLabel, programCode } from '../ir/index.js';
import type { BpfObject, CodeSection, IrInsn, ProgramRef } from '../ir/types.js';
import { checkPrograms, type CheckOptions, type Counterexample, type EquivResult } from '../smt/index.js';
import { liveIn, successors } from '../analysis/index.js';
import { exit, freshLabel, insertBefore, ldxDw, movImm, movReg, sectionNamed, stxDw, withSection } from './edit.js';
import { funcAt, type FuncRange } from './layout.js';
import type { Candidate, Guard } from './candidates.js';
import { paramCount, scalarParams } from './btfproto.js';
import { SOURCES } from './ctxfree.js';

export type ProofMethod = 'whole' | 'guard' | 'function' | 'unobserved';

export interface ProofResult {
  /** true: proven; false: refuted (counterexample); null: unknown. */
  proven: boolean | null;
  method: ProofMethod | null;
  /** What was shown, in words. */
  detail: string;
  ms: number;
  counterexample: Counterexample | null;
  /** Fresh context values in the counterexample: helper id → context offset (ctxfree.ts). */
  fields?: CtxFields;
  reason?: string;
}

export interface ProofOptions {
  timeoutMs?: number;
}

const checkOpts = (o: ProofOptions): CheckOptions => ({ timeoutMs: o.timeoutMs ?? 20000 });

/** What a counterexample's fresh context values stand for (helper id → context field). */
export type CtxFields = Map<number, { off: number; size: number }>;

/**
 * checkPrograms on the two programs. The checker's context is the production one (every context
 * field the kernel does not fix is free: src/smt/ctxmodel.ts), so the answer holds for every
 * context a real packet can come with, not only the test-run ones. (`avoid` is kept for callers.)
 */
export async function checkRepair(a: BpfObject, pa: ProgramRef, b: BpfObject, pb: ProgramRef, o: ProofOptions, _avoid: ReadonlySet<number> = new Set()): Promise<EquivResult & { fields: CtxFields }> {
  const r = await checkPrograms(a, pa, b, pb, checkOpts(o));
  return { ...r, fields: new Map() };
}

/** Programs of `obj` whose code includes a section that differs between `a` and `b`. */
export function affectedPrograms(a: BpfObject, b: BpfObject): ProgramRef[] {
  const changed = new Set(b.code.filter((s) => a.code.find((x) => x.name === s.name)?.insns !== s.insns).map((s) => s.name));
  return b.programs.filter((p) => programCode(b, p).some((s) => changed.has(s.name)));
}

async function whole(a: BpfObject, b: BpfObject, progs: ProgramRef[], main: ProgramRef, o: ProofOptions): Promise<EquivResult & { prog?: ProgramRef; fields?: CtxFields }> {
  let last: EquivResult | null = null;
  // the program being repaired first: its result is the one reported
  const order = [...progs.filter((p) => p.name === main.name && p.section === main.section), ...progs.filter((p) => !(p.name === main.name && p.section === main.section))];
  for (const p of order) {
    const pa = a.programs.find((x) => x.name === p.name && x.section === p.section);
    if (!pa) return { equivalent: null, counterexample: null, ms: 0, via: 'none', reason: `program ${p.name} missing from the input` };
    const r = await checkRepair(a, pa, b, p, o);
    if (r.equivalent !== true) return { ...r, prog: p };
    last ??= r;
  }
  return last ?? { equivalent: true, counterexample: null, ms: 0, via: 'syntactic' };
}

/** Is instruction `at` of `f` on a cycle of `f`'s control flow? */
function onCycle(sec: CodeSection, f: FuncRange, at: number): boolean {
  const succ = successors(sec);
  const seen = new Set<number>();
  const stack = [...succ[at]!];
  while (stack.length) {
    const i = stack.pop()!;
    if (i === at) return true;
    if (seen.has(i) || i < f.start || i >= f.end) continue;
    seen.add(i);
    stack.push(...succ[i]!);
  }
  return false;
}

/** Is `f` called (or referenced as a callback) from anywhere in the object? */
function isCalled(obj: BpfObject, f: FuncRange): boolean {
  return obj.code.some((s) => s.insns.some((i) => i.callee?.section === f.section && findLabel(sectionNamed(obj, f.section), i.callee.label) === f.start));
}

/** Proves `guard` holds on every execution of `prog` in `obj` (see the file comment). */
export async function proveGuard(obj: BpfObject, prog: ProgramRef, guard: Guard, o: ProofOptions): Promise<ProofResult> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const sec = sectionNamed(obj, guard.section);
  const f = funcAt(obj, guard.section, guard.at);
  const entry = funcAt(obj, prog.section, findLabel(sectionNamed(obj, prog.section), prog.entry));
  const no = (why: string): ProofResult => ({ proven: null, method: 'guard', detail: why, ms: ms(), counterexample: null, reason: why });
  if (f.section !== entry.section || f.start !== entry.start || isCalled(obj, f)) return no('the guarded position is not in the entry function of one program');
  if (onCycle(sec, f, guard.at)) return no('the guarded position is inside a loop');
  const fail = freshLabel(sec, 'k2fail');
  const cut = (code: IrInsn[]): BpfObject => withSection(obj, insertBefore(sec, guard.at, code));
  const a = cut([movImm(0, 0), exit()]);
  const b = cut([...guard.test(fail), movImm(0, 0), exit(), { ...movImm(0, 1), labels: [fail] }, exit()]);
  const r = await checkRepair(a, prog, b, prog, o);
  if (r.equivalent === true) return { proven: true, method: 'guard', detail: `${guard.text} holds on every execution (proven with the program cut at that point); ${guard.nil}`, ms: ms(), counterexample: null };
  if (r.equivalent === false) return { proven: false, method: 'guard', detail: `${guard.text} does not hold on some input`, ms: ms(), counterexample: r.counterexample, fields: r.fields };
  return no(`guard ${guard.text}: ${r.reason ?? 'unknown'}`);
}


/** The helper ids a program's code calls. */
function helpersCalled(obj: BpfObject, prog: ProgramRef): Set<number> {
  const s = new Set<number>();
  for (const sec of programCode(obj, prog)) for (const i of sec.insns) if (opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.CALL && i.src === 0) s.add(i.imm);
  return s;
}

/** Proves register `reg`'s value at the entry of `prog` is never observed (see the file comment). */
export async function proveUnobserved(obj: BpfObject, prog: ProgramRef, reg: number, o: ProofOptions): Promise<ProofResult> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const used = helpersCalled(obj, prog);
  const src = SOURCES.find((h) => !used.has(h));
  if (src === undefined) return { proven: null, method: 'unobserved', detail: 'no free value source', ms: ms(), counterexample: null, reason: 'no free value source' };
  const sec = sectionNamed(obj, prog.section);
  const at = findLabel(sec, prog.entry);
  // In the checker a helper call only writes r0 (the kernel would clobber r1-r5; this program is
  // never loaded), so r1 keeps the context; r0 goes back to what an unwritten register reads.
  const code: IrInsn[] = [{ code: CLASS.JMP | JMP.CALL, dst: 0, src: 0, off: 0, imm: src }];
  if (reg !== 0) code.push(movReg(reg, 0), movImm(0, 0));
  const inst = withSection(obj, insertBefore(sec, at, code));
  const r = await checkRepair(obj, prog, inst, prog, o, new Set([src]));
  if (r.equivalent === true) return { proven: true, method: 'unobserved', detail: `the program behaves the same whatever r${reg} holds at its entry`, ms: ms(), counterexample: null };
  if (r.equivalent === false) return { proven: false, method: 'unobserved', detail: `r${reg}'s initial value is observed on some input`, ms: ms(), counterexample: r.counterexample, fields: r.fields };
  return { proven: null, method: 'unobserved', detail: r.reason ?? 'unknown', ms: ms(), counterexample: null, reason: r.reason ?? 'unknown' };
}

/** A proof object: `obj` plus a section `k2.proof` whose program calls `f` with fresh arguments. */
function wrapperObject(obj: BpfObject, f: FuncRange, args: number[], prog: ProgramRef): { obj: BpfObject; prog: ProgramRef } | null {
  const srcs = SOURCES.slice(0, args.length);
  if (srcs.length < args.length) return null;
  const sec = sectionNamed(obj, f.section);
  const label = sec.insns[f.start]!.labels?.[0];
  if (!label) return null;
  const insns: IrInsn[] = [];
  args.forEach((_, k) => insns.push({ code: CLASS.JMP | JMP.CALL, dst: 0, src: 0, off: 0, imm: srcs[k]! }, stxDw(REG_FP, -8 * (k + 1), 0)));
  args.forEach((r, k) => insns.push(ldxDw(r, REG_FP, -8 * (k + 1))));
  insns.push({ code: CLASS.JMP | JMP.CALL, dst: 0, src: 1, off: 0, imm: -1, callee: { section: f.section, label } }, exit());
  insns[0] = { ...insns[0]!, labels: ['k2entry'] };
  const wrapper: CodeSection = { name: 'k2.proof', shndx: -1, insns, symbols: [], relSection: null };
  const p: ProgramRef = { section: 'k2.proof', name: 'k2_proof', entry: 'k2entry', progType: prog.progType };
  return { obj: { ...obj, code: [...obj.code, wrapper], programs: [...obj.programs, p] }, prog: p };
}

/**
 * Proves the function at `f` (in `before`) equivalent to the same function in `after` (where it
 * starts at `fAfter`), called with arbitrary integer arguments.
 */
export async function proveFunction(before: BpfObject, f: FuncRange, after: BpfObject, fAfter: FuncRange, prog: ProgramRef, o: ProofOptions): Promise<ProofResult> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const no = (why: string): ProofResult => ({ proven: null, method: 'function', detail: why, ms: ms(), counterexample: null, reason: why });
  const params = scalarParams(before, f);
  if (params === null) return no(`${f.name}: parameter types unknown or not all integers (no function-level proof)`);
  // calls read their callee's parameters only (BTF), so r(n+1)..r5 are not live into f through them
  const reads = (obj: BpfObject) => (i: IrInsn): number | undefined => {
    if (!i.callee) return undefined;
    const t = obj.code.find((s) => s.name === i.callee!.section);
    const n = t ? paramCount(obj, funcAt(obj, t.name, findLabel(t, i.callee.label))) : null;
    return n === null ? undefined : ((1 << (n + 1)) - 1) & ~1;
  };
  const live = liveIn(sectionNamed(before, f.section), reads(before))[f.start]! | liveIn(sectionNamed(after, fAfter.section), reads(after))[fAfter.start]!;
  const args = [1, 2, 3, 4, 5].filter((r) => r <= params);
  if ([1, 2, 3, 4, 5].some((r) => r > params && live & (1 << r))) return no(`${f.name} reads argument registers beyond its ${params} parameter(s)`);
  const a = wrapperObject(before, f, args, prog);
  const b = wrapperObject(after, fAfter, args, prog);
  if (!a || !b) return no('cannot build the proof wrapper');
  const r = await checkPrograms(a.obj, a.prog, b.obj, b.prog, checkOpts(o));
  if (r.equivalent === true) return { proven: true, method: 'function', detail: `${f.name} returns the same value with the same effects for every argument${args.length > 1 ? 's' : ''} (${args.map((x) => `r${x}`).join(', ') || 'none'})`, ms: ms(), counterexample: null };
  if (r.equivalent === false) return { proven: false, method: 'function', detail: `${f.name} differs for some argument`, ms: ms(), counterexample: r.counterexample };
  return no(r.reason ?? 'unknown');
}

/**
 * Proves `cand` (made from `current`, itself proven equivalent to `input`) changes nothing:
 * whole-program equivalence to the input first, then the candidate's own argument.
 */
export async function proveCandidate(input: BpfObject, current: BpfObject, cand: Candidate, prog: ProgramRef, o: ProofOptions): Promise<ProofResult> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  if (cand.kind === 'clamp-u32' && cand.guard) {
    // the checker compares helper arguments as 64-bit values; this one is u32 to the helper
    return proveGuard(current, prog, cand.guard, o);
  }
  const progs = affectedPrograms(input, cand.obj);
  const w = await whole(input, cand.obj, progs.length ? progs : [prog], prog, o);
  if (w.equivalent === false) {
    return { proven: false, method: 'whole', detail: `differs from the input on some input (${w.counterexample?.difference.what ?? 'an observable'})`, ms: ms(), counterexample: w.counterexample, ...('fields' in w ? { fields: w.fields } : {}) };
  }
  if (w.equivalent === true) {
    if (cand.init) {
      // the checker reads unwritten registers as 0, so equivalence alone says nothing here
      const u = await proveUnobserved(input, prog, cand.init.reg, o);
      return { ...u, detail: `equivalent to the input; ${u.detail}`, ms: ms() };
    }
    return { proven: true, method: 'whole', detail: `equivalent to the input (whole program, ${w.via})`, ms: ms(), counterexample: null };
  }
  const why = w.reason ?? 'unknown';
  if (cand.guard) {
    const g = await proveGuard(current, prog, cand.guard, o);
    return { ...g, detail: g.proven ? g.detail : `whole program: ${why}; ${g.detail}`, ms: ms() };
  }
  if (cand.kind === 'inline' && cand.inlined) {
    const fn = await proveFunction(current, cand.inlined.before, cand.obj, cand.inlined.after, prog, o);
    return { ...fn, detail: fn.proven ? fn.detail : `whole program: ${why}; ${fn.detail}`, ms: ms() };
  }
  return { proven: null, method: 'whole', detail: `whole program: ${why}`, ms: ms(), counterexample: null, reason: why };
}

