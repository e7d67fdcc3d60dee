// The synthesizer's enumerated passes over a section (optimize.ts runs them around the window
// search): stores of constants as immediates, dead stack stores, redundant loads and copies across
// blocks, region rewrites, tail merges — each candidate proven (window checker, or every program
// running the section), then gated — and the whole-program proof they share.
import { ALU, CLASS, LD_IMM64, MODE, SIZE, SRC_X, opClass } from '../isa/index.js';
import {
  availableLoads, constantsIn, copyProps, deadStackStores, heldImm64Loads, heldLoads, liveIn, liveOutAt, redundantLoads, regList, successors,
} from '../analysis/index.js';
import { programCode, replaceWindow, type BpfObject, type CodeSection, type IrInsn, type ProgramRef } from '../ir/index.js';
import { checkPrograms, checkWindow } from '../smt/index.js';
import { applyTailMerge, dropJumpsToNext, findTailMerge, hoistConstants, invertBranchesOverGotos } from './tailmerge.js';
import { boundsMerges, constHoists, jumpThreads, nullChecks, type RegionCandidate } from './regions.js';
import { insnKey } from './window.js';
import type { RewriteStep, SectionSession, SectionState, SectionStats, SynthOptions } from './optimize.js';

const strip = (i: IrInsn): IrInsn => {
  const { labels: _l, funcInfo: _f, lines: _n, ...plain } = i;
  return plain;
};

const ALL_BITS = (1n << 64n) - 1n;

/**
 * The store-immediate form of `*(size *)(dst + off) = src` when `src` holds the known constant `v`,
 * or null. BPF_ST sign-extends its 32-bit immediate to the store width; narrower stores only keep
 * the low bytes, so any constant fits them.
 */
export function storeImmediate(insn: IrInsn, v: bigint): IrInsn | null {
  if (opClass(insn.code) !== CLASS.STX || (insn.code & 0xe0) !== MODE.MEM || insn.core || insn.pinned) return null;
  const size = insn.code & 0x18;
  const low32 = Number(BigInt.asIntN(32, v));
  if (size === SIZE.DW && BigInt.asIntN(64, v) !== BigInt(low32)) return null;
  return { ...insn, code: CLASS.ST | MODE.MEM | size, src: 0, imm: low32 };
}

/**
 * Stores of registers holding known constants become stores of immediates (clang 14 never emits
 * BPF_ST), so the `rX = imm` feeding them often dies and the window search deletes it. Each
 * rewrite is proven by the checker under the constant fact; the gate sees all of them at once and,
 * if it objects, each one alone.
 */
export async function constantStores(
  obj: BpfObject,
  secIndex: number,
  sec: CodeSection,
  gate: (candidate: BpfObject) => boolean,
  opts: SynthOptions,
  stats: SectionStats,
  progType: string | undefined,
  over: () => boolean,
): Promise<CodeSection> {
  const withSection = (s: CodeSection): BpfObject => ({ ...obj, code: obj.code.map((x, k) => (k === secIndex ? s : x)) });
  const consts = constantsIn(sec), live = liveIn(sec), succ = successors(sec);
  const proven: [number, IrInsn][] = [];
  for (let k = 0; k < sec.insns.length && !over(); k++) {
    const insn = sec.insns[k]!;
    const v = opClass(insn.code) === CLASS.STX ? consts[k]![insn.src] : undefined;
    if (v === undefined) continue;
    const st = storeImmediate(insn, v);
    if (!st) continue;
    const liveOut = regList(liveOutAt(sec, live, succ, k));
    stats.proposals++;
    const res = await checkWindow([strip(insn)], [strip(st)], { regs: { [insn.src]: { kind: 'scalar', value: v } } }, { regs: liveOut }, { timeoutMs: opts.timeoutMs, object: obj, progType, ...(opts.rlimit !== undefined ? { rlimit: opts.rlimit } : {}) });
    stats.smtMs.push(res.ms);
    if (res.equivalent === true) { stats.proven++; proven.push([k, st]); } else if (res.equivalent === null) stats.unknown++;
    else stats.refuted++;
  }
  if (!proven.length) return sec;
  const apply = (base: CodeSection, rs: [number, IrInsn][]): CodeSection => {
    const insns = [...base.insns];
    for (const [k, st] of rs) insns[k] = st;
    return { ...base, insns };
  };
  const all = apply(sec, proven);
  if (gate(withSection(all))) return all;
  let cur = sec;
  for (const r of proven) {
    const next = apply(cur, [r]);
    if (gate(withSection(next))) cur = next;
    else stats.gateRejected++;
  }
  return cur;
}

/**
 * Stack stores none of whose bytes any path reads afterwards are deleted, one at a time (each
 * deletion can make earlier stores dead). Proven as a window whose postcondition is the stack
 * bytes still live (so the proof rests on the stack liveness, as window proofs rest on register
 * liveness).
 */
export async function deadStores(
  obj: BpfObject, S: SectionState, withSection: (s: CodeSection) => BpfObject, gate: (candidate: BpfObject) => boolean,
  opts: SynthOptions, stats: SectionStats, progType: string, accept: (next: CodeSection, kind: RewriteStep['kind'], start: number, end: number, proof: RewriteStep['proof']) => void,
  over: () => boolean,
): Promise<void> {
  const tried = new Set<string>();
  for (;;) {
    if (over()) return;
    const dead = deadStackStores(S.sec, S.stack, S.succ).filter((k) => !tried.has(insnKey([S.sec.insns[k]!]) + `@${k}`));
    if (!dead.length) return;
    const k = dead[0]!;
    tried.add(insnKey([S.sec.insns[k]!]) + `@${k}`);
    const insn = strip(S.sec.insns[k]!);
    stats.proposals++;
    const res = await checkWindow([insn], [], S.pre(k, false), { regs: S.liveOut(k + 1), stack: S.stackOut(k + 1) }, { timeoutMs: opts.timeoutMs, object: obj, progType, ...(opts.rlimit !== undefined ? { rlimit: opts.rlimit } : {}) });
    stats.smtMs.push(res.ms);
    if (res.equivalent !== true) { if (res.equivalent === null) stats.unknown++; else stats.refuted++; continue; }
    stats.proven++;
    const next = replaceWindow(S.sec, k, k + 1, []);
    if (!gate(withSection(next))) { stats.gateRejected++; continue; }
    accept(next, 'dead-store', k, k + 1, 'smt');
  }
}

/**
 * Loads into a register that already holds the loaded value on every path into them (available
 * loads across blocks) are deleted; each deletion is proven on every program running the section
 * (whole-program symbolic execution: the fact spans blocks), then gated.
 */
export async function redundantLoadsPass(session: SectionSession, over: () => boolean): Promise<void> {
  const S = session.state, stats = session.stats, opts = session.opts;
  const users = session.obj.programs.filter((p) => programCode(session.obj, p).some((s) => s.name === S.sec.name));
  if (!users.length) return;
  const tried = new Set<string>();
  for (;;) {
    if (over()) return;
    // a load whose register already holds the value goes; one another register holds becomes a
    // move from it (same size: the windows after it can then use the copy)
    const avail = availableLoads(S.sec, S.stack);
    const cands: [number, IrInsn[]][] = [
      ...redundantLoads(S.sec, avail).map((i): [number, IrInsn[]] => [i, []]),
      ...heldLoads(S.sec, avail).map(([i, r]): [number, IrInsn[]] => [i, [{ code: CLASS.ALU64 | ALU.MOV | SRC_X, dst: S.sec.insns[i]!.dst, src: r, off: 0, imm: 0 }]]),
      // an `ld_imm64` (2 slots: a map, a global's address, a wide constant) another register holds
      ...heldImm64Loads(S.sec).map(([i, r]): [number, IrInsn[]] => [i, r === S.sec.insns[i]!.dst ? [] : [{ code: CLASS.ALU64 | ALU.MOV | SRC_X, dst: S.sec.insns[i]!.dst, src: r, off: 0, imm: 0 }]]),
    ];
    type Edit = { key: string; k: number; kind: RewriteStep['kind']; make: () => CodeSection; window?: () => { start: number; end: number; rewrite: IrInsn[] } | null };
    const edits: Edit[] = cands.map(([k, rep]) => ({
      key: `ld|${insnKey(S.sec.insns.slice(Math.max(0, k - 4), k + 1).map(strip))}|${insnKey(rep.map(strip))}`, k, kind: 'redundant-load',
      make: () => {
        // a relocated `ld_imm64` is pinned for windows; here it goes whole (its relocation with it:
        // the register it is replaced by got the same value from a load with the same relocation)
        const unpinned = S.sec.insns[k]!.pinned === 'relocation' && S.sec.insns[k]!.code === LD_IMM64
          ? { ...S.sec, insns: S.sec.insns.map((x, j) => (j === k ? (({ pinned: _p, reloc: _r, ...rest }) => rest)(x) : x)) }
          : S.sec;
        return replaceWindow(unpinned, k, k + 1, rep);
      },
      // the load that made the fact, on the fall-through path just before: one superblock window
      window: () => {
        const j = loadOnPath(S.sec, k);
        return j === null ? null : { start: j, end: k + 1, rewrite: [...S.sec.insns.slice(j, k).map(copyOf), ...rep] };
      },
    }));
    // copies whose readers can read the source instead (e.g. the moves made just above)
    if (opts.copyProp !== false) {
      for (const c of copyProps(S.sec, (i, r) => ((S.nonzero[i]?.[r] ?? ALL_BITS) >> 32n) === 0n)) {
        const end = Math.max(c.mov + 1, ...[...c.renamed.keys()].map((j) => j + 1));
        edits.push({
          key: `cp|${insnKey(S.sec.insns.slice(c.mov, end).map(strip))}|${[...c.renamed.keys()].map((j) => j - c.mov).join(',')}`, k: c.mov, kind: 'copy-prop',
          make: () => replaceWindow({ ...S.sec, insns: S.sec.insns.map((x, j) => c.renamed.get(j) ?? x) }, c.mov, c.mov + 1, []),
          window: () => ({ start: c.mov, end, rewrite: S.sec.insns.slice(c.mov + 1, end).map((x, d) => copyOf(c.renamed.get(c.mov + 1 + d) ?? x)) }),
        });
      }
    }
    const e = edits.find((x) => !tried.has(x.key));
    if (!e) return;
    tried.add(e.key);
    const k = e.k;
    // a superblock window when there is one (proven by the window checker under the safety
    // model's facts, then on the programs where the program checker can decide), else the programs
    const w = e.window?.();
    if (w && w.end - w.start <= 16 && session.windowOk(w.start, w.end, true)) {
      const job = { ...session.job(w.start, w.end), kind: e.kind };
      const ok = await session.apply(job, { rewrite: w.rewrite, proven: false, proposals: 0, checked: 0, refuted: 0, unknown: 0, smtMs: [], converged: true, cacheHit: false, ms: 0 });
      if (process.env.K2_SYNTH_DEBUG) console.error(`[synth] ${e.kind} ${S.sec.name}@${w.start}-${w.end} (${e.key}) as a window: ${ok}`);
      if (ok) { tried.delete(e.key); continue; } // the same content elsewhere may still go
      // the window checker compares every live-out register at every exit (one set for all): a
      // copy dead at a side exit but live at the end fails there; the programs may still prove it
    }
    // only the program checker could prove it, and it cannot here: it said so, or a program has
    // CO-RE relocations (then it proves only re-laid-out code, or windows equal with no facts at
    // all — never a load that is redundant only because of what came before)
    if (S.programsUnprovable || session.coreInPrograms) continue;
    const next = e.make();
    const after = session.withSection(next);
    const proven = (await proveOnPrograms(session.withSection(S.sec), after, users, opts, stats, S)) === true;
    if (process.env.K2_SYNTH_DEBUG) console.error(`[synth] ${e.kind} ${S.sec.name}@${k} (${e.key}): ${proven ? "proven" : "not proven"} ${Math.round(stats.smtMs[stats.smtMs.length - 1] ?? 0)}ms`);
    if (!proven) continue;
    stats.proven++;
    if (!session.gate(after)) { stats.gateRejected++; continue; }
    session.accept(next, e.kind, k, k + 1, 'program');
    tried.delete(e.key);
  }
}

/** A window's copy of an instruction (its place-bound metadata stays with the code it replaces). */
const copyOf = ({ labels: _l, funcInfo: _f, lines: _n, ...rest }: IrInsn): IrInsn => rest;

/**
 * The load (same destination, base, offset, width) that `sec.insns[k]`'s available-load fact comes
 * from, when it lies on the fall-through path just before `k` with no jump target in between.
 */
function loadOnPath(sec: CodeSection, k: number): number | null {
  const insn = sec.insns[k]!;
  for (let j = k - 1; j >= 0 && j >= k - 15; j--) {
    if (sec.insns[j + 1]!.labels?.length) return null;
    const x = sec.insns[j]!;
    if (opClass(x.code) === CLASS.LDX && x.src === insn.src && x.off === insn.off && x.code === insn.code) return j;
  }
  return null;
}

/** At most this many tail merges that could not be proven in a row, per pass (each costs a program proof). */
const MAX_MERGE_FAILURES = 6;

/** Remembers that the program checker cannot model a program running the section (not a timeout). */
function noteUnsupported(S: SectionState, r: { equivalent: boolean | null; reason?: string | null }): void {
  if (r.equivalent === null && /^unsupported/.test(r.reason ?? '')) S.programsUnprovable = true;
}

/**
 * A rewrite of a section proven on every program running it (whole-program checker): true (all
 * proven), false (one differs: the others are not asked), null (some program cannot be decided —
 * an unmodelled helper or CO-RE relocation, a timeout — and none differs). Only true proves it.
 */
export async function proveOnPrograms(before: BpfObject, after: BpfObject, users: readonly ProgramRef[], opts: SynthOptions, stats: SectionStats, S: SectionState): Promise<boolean | null> {
  stats.proposals++;
  let all: boolean | null = true;
  for (const p of users) {
    const r = await checkPrograms(before, p, after, p, { timeoutMs: opts.timeoutMs, ...(opts.rlimit !== undefined ? { rlimit: opts.rlimit } : {}) });
    stats.smtMs.push(r.ms);
    noteUnsupported(S, r);
    if (process.env.K2_SYNTH_DEBUG) console.error(`[synth] program proof ${p.name}: ${r.equivalent} ${r.via} ${Math.round(r.ms)}ms ${r.reason ?? ''}`);
    if (r.equivalent === false) {
      stats.refuted++;
      return false;
    }
    if (r.equivalent === null) all = null;
  }
  if (all === null) stats.unknown++;
  return all;
}

/**
 * Region rewrites (regions.ts: subsumed bounds checks, hoisted constants, impossible null checks,
 * threaded jumps), most slots saved first, each proven and gated; a candidate that fails is not
 * tried again in this pass.
 */
export async function regionPass(session: SectionSession, over: () => boolean): Promise<void> {
  const S = session.state;
  const failed = new Set<string>();
  const key = (c: RegionCandidate): string => `${c.kind}|${insnKey(S.sec.insns.slice(c.start, c.end).map(strip))}`;
  for (;;) {
    if (over()) return;
    const cands = [...boundsMerges(S.sec), ...constHoists(S.sec), ...nullChecks(S.sec, session.opts.safetyFacts !== false ? S.safetyPres() : null), ...jumpThreads(S.sec)]
      .filter((c) => !failed.has(key(c)))
      .sort((a, b) => b.saved - a.saved);
    const c = cands[0];
    if (!c) return;
    const t0 = performance.now();
    const ok = await session.tryRegion(c);
    if (process.env.K2_SYNTH_DEBUG) console.error(`[synth] region ${c.kind} ${S.sec.name}@${c.start}-${c.end} saves ${c.saved}: ${ok} ${Math.round(performance.now() - t0)}ms`);
    if (!ok) failed.add(key(c));
  }
}

/**
 * Merges identical block tails one at a time while it saves at least two slots; each merge must be
 * proven equivalent for every program that runs this section, then pass the gate.
 */
export async function tailMerges(
  obj: BpfObject, secIndex: number, S: SectionState, gate: (candidate: BpfObject) => boolean, opts: SynthOptions, stats: SectionStats, over: (share?: number) => boolean,
  accept: (next: CodeSection, kind: RewriteStep['kind'], start: number, end: number, proof: RewriteStep['proof']) => void, budgetShare = 1,
): Promise<void> {
  const withSection = (s: CodeSection): BpfObject => ({ ...obj, code: obj.code.map((x, k) => (k === secIndex ? s : x)) });
  const users = obj.programs.filter((p) => programCode(obj, p).some((s) => s.name === S.sec.name));
  if (!users.length) return; // code no program runs: nothing to prove it against
  const tried = new Set<string>();
  let failures = 0; // in a row: each costs a program proof, and merges rarely become provable later
  for (;;) {
    if (over(budgetShare) || S.programsUnprovable || failures >= MAX_MERGE_FAILURES) return;
    let sec = S.sec, tag = '';
    let m = findTailMerge(sec, opts.tailMergeMinSaved ?? 1, (c) => !tried.has(`${c.start}/${c.keep}/${c.length}`));
    // with the constants moved up their blocks, runs that differed only in a constant loaded before
    // the same code (a helper's flags, a map key) become one longer run
    const hoisted = hoistConstants(S.sec);
    if (hoisted !== S.sec) {
      const mh = findTailMerge(hoisted, opts.tailMergeMinSaved ?? 1, (c) => !tried.has(`h${c.start}/${c.keep}/${c.length}`));
      if (mh && mh.saved > (m?.saved ?? 0)) { m = mh; sec = hoisted; tag = 'h'; }
    }
    if (!m) return;
    tried.add(`${tag}${m.start}/${m.keep}/${m.length}`);
    const next = dropJumpsToNext(invertBranchesOverGotos(applyTailMerge(sec, m)));
    const after = withSection(next);
    const proven = (await proveOnPrograms(withSection(S.sec), after, users, opts, stats, S)) === true;
    failures = proven ? 0 : failures + 1;
    if (process.env.K2_SYNTH_DEBUG) console.error(`[synth] tail-merge${tag ? ' (constants moved up)' : ''} ${sec.name}@${m.start}+${m.length} → ${m.keep} saves ${m.saved}: ${proven} ${Math.round(stats.smtMs[stats.smtMs.length - 1] ?? 0)}ms`);
    if (!proven) continue;
    stats.proven++;
    if (!gate(after)) { stats.gateRejected++; continue; }
    accept(next, 'tail-merge', m.start, m.start + m.length, 'bisim');
    tried.clear();
  }
}

