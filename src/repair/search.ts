// The repair loop for one object: per program the kernel rejects, read the verifier log, try the
// candidates for that failure (k2's verifier model first as a cheap filter when it agrees on the
// rejection, then the kernel, then the proof), keep the first one that is proven and gets the
// verifier further, and repeat until the kernel accepts the program or nothing helps.
import { formatInsn } from '../isa/index.js';
import { findLabel, layoutSection as irLayout, objectBytes } from '../ir/index.js';
import type { BpfObject, CodeSection, IrInsn, ProgramRef } from '../ir/types.js';
import { verifyObject, type ProgramVerdict, type VerifyReport } from '../kernel/index.js';
import { checkLinked, linkProgram } from '../safety/index.js';
import type { Counterexample } from '../smt/index.js';
import { cstring } from '../elf/read.js';
import { parseVerifierLog, type VerifierFailure } from './log.js';
import { funcAt, layoutMatches, linkedLayout, type LinkedLayout } from './layout.js';
import { candidatesFor, type Candidate, type CandidateKind, type Site } from './candidates.js';
import { checkRepair, proveCandidate, type CtxFields, type ProofMethod } from './proof.js';
import { contextNamed, ctxFieldName } from './ctxfree.js';
import { originOf, tagOrigins } from './origin.js';
import { callDepth } from './inline.js';
import { sectionNamed } from './edit.js';

export interface RepairOptions {
  /** Solver timeout per query, ms (default 20000). */
  timeoutMs?: number;
  /** Time allowed per rejected program, ms (default 120000); no new candidate is tried after it. */
  budgetMs?: number;
  /** Most repair steps per program (default 12). */
  maxSteps?: number;
  /** Program type for sections no loader knows (as `k2 verify --type`). */
  progType?: string;
  /** Called with one line per event (candidate tried, proof, kernel verdict). */
  onEvent?: (line: string) => void;
}

export interface SourceLine {
  file: string;
  line: number;
  text: string;
}

export interface RepairChange {
  kind: CandidateKind;
  summary: string;
  /** Section and index (in the output) of the first instruction inserted by this step. */
  section: string;
  index: number | null;
  /** The inserted or spliced instructions as llvm-objdump prints them. */
  insns: string[];
  /** Code the step added elsewhere (the exit block of a check, a context pointer kept from the entry). */
  also?: { section: string; index: number; insns: string[] }[];
  where: SourceLine | null;
  proof: { method: ProofMethod | null; detail: string; ms: number };
  /** What the kernel said after this step. */
  kernel: { accepted: boolean; reason: string | null };
}

export interface VerdictSummary {
  verdict: 'accepted' | 'rejected' | 'cannot-load';
  verifiedInsns: number | null;
  reason: string | null;
  /** The failing instruction (kernel numbering) and its source line, for rejections. */
  insn: number | null;
  where: SourceLine | null;
}

export interface UnsafeFinding {
  /** The verifier's reason for rejecting the input. */
  reason: string;
  where: SourceLine | null;
  /** The candidate that changes behaviour (one the kernel accepts when there is one). */
  candidate: string;
  /** The kernel accepts that candidate. */
  kernelAccepts: boolean;
  /** What the proof refuted (which observable differs, or which condition fails). */
  refuted: string;
  counterexample: Counterexample;
  /** The input program faults on the input (an out-of-bounds access); else it only computes
   *  something the verifier rightly refuses (a return value out of range, say). */
  faults: boolean;
  /** The context fields the counterexample sets (e.g. "xdp_md.rx_queue_index" → "8"). */
  context: Record<string, string>;
  /** The counterexample as a short description of the input. */
  input: string;
}

export interface ProgramRepair {
  section: string;
  name: string;
  type: string;
  before: VerdictSummary;
  repaired: boolean;
  changes: RepairChange[];
  /** 'equivalent': OUT's program proven equivalent to IN's as a whole; 'stepwise': each step proven
   *  (the whole program is beyond the checker, see equivalence.reason); null: not repaired. */
  proof: 'equivalent' | 'stepwise' | null;
  equivalence: { equivalent: boolean | null; via: string; reason?: string } | null;
  after: VerdictSummary | null;
  unsafe: UnsafeFinding | null;
  /** Why the program is still rejected. */
  remaining: string | null;
  ms: number;
}

export interface RepairResult {
  /** The repaired object (unrepaired programs keep their input code). */
  obj: BpfObject;
  programs: ProgramRepair[];
  /** Programs the kernel rejected in the input / repaired / still rejected. */
  rejected: number;
  repaired: number;
  remaining: number;
  ms: number;
}

/** The source line of instruction `index` (the nearest line_info at or before it). */
export function sourceLine(obj: BpfObject, section: string, index: number): SourceLine | null {
  const sec = obj.code.find((s) => s.name === section);
  if (!sec || !obj.btf) return null;
  for (let k = Math.min(index, sec.insns.length - 1); k >= 0; k--) {
    const l = sec.insns[k]!.lines;
    if (l?.length) {
      const r = l[l.length - 1]!;
      const file = cstring(obj.btf.strings, r.fileNameOff).split('/').pop() ?? '';
      return { file, line: r.lineCol >>> 10, text: cstring(obj.btf.strings, r.lineOff).trim() };
    }
  }
  return null;
}

/** Instructions [index, index+count) of `sec` as llvm-objdump prints them (jumps relative). */
export function disasm(sec: CodeSection, index: number, count: number): string[] {
  const lay = irLayout(sec);
  const out: string[] = [];
  for (let k = index; k < index + count && k < sec.insns.length; k++) {
    const i = sec.insns[k]!;
    const slot = lay.slotOf[k]!;
    let c: IrInsn = i;
    if (i.target !== undefined) {
      const t = lay.labelSlot.get(i.target);
      if (t !== undefined) c = { ...i, off: t - (slot + 1) };
    }
    if (i.callee) c = { ...c, imm: -1 };
    let text: string;
    try {
      text = formatInsn(c, slot);
    } catch {
      text = `(opcode 0x${i.code.toString(16)})`;
    }
    if (i.callee) text = `call ${i.callee.label}`;
    out.push(text);
  }
  return out;
}

const STEP = Symbol('k2.repair.step');
type Stamped = IrInsn & { [STEP]?: number };

/** `obj` with the inserted instructions of a candidate stamped with the step number. */
function stamp(cand: Candidate, step: number): BpfObject {
  let obj = cand.obj;
  for (const [n, ins] of cand.inserted.entries()) {
    const sec = sectionNamed(obj, ins.section);
    // the first insertion is the one the report locates; the others (an exit block, a saved
    // context) are listed with it
    const mark = n === 0 ? step : step + 0.5;
    const insns = sec.insns.map((i, k) => (k >= ins.index && k < ins.index + ins.count ? ({ ...i, [STEP]: mark } as Stamped) : i));
    obj = { ...obj, code: obj.code.map((s) => (s.name === sec.name ? { ...sec, insns } : s)) };
  }
  return obj;
}

/** Where step `step`'s code ended up: the first stamped instruction of each run. */
function stepRuns(obj: BpfObject, step: number): { section: string; index: number; count: number }[] {
  const out: { section: string; index: number; count: number }[] = [];
  for (const sec of obj.code) {
    let k = 0;
    while (k < sec.insns.length) {
      if ((sec.insns[k] as Stamped)[STEP] === step) {
        const start = k;
        while (k < sec.insns.length && (sec.insns[k] as Stamped)[STEP] === step) k++;
        out.push({ section: sec.name, index: start, count: k - start });
      } else k++;
    }
  }
  return out;
}

/** The context field values a counterexample sets (its context bytes, as u32 fields; or fresh values standing for fields). */
export function contextOf(cex: Counterexample, progType: string, fields: CtxFields): Record<string, string> {
  const out: Record<string, string> = {};
  if (cex.ctx && contextNamed(progType)) {
    const bytes = Buffer.from(cex.ctx, 'hex');
    for (let off = 0; off + 4 <= bytes.length; off += 4) {
      const w = bytes.readUInt32LE(off);
      if (w) out[ctxFieldName(progType, off)] = w.toString();
    }
  }
  for (const [h, v] of Object.entries(cex.helpers)) {
    const m = /^h(\d+)#(\d+)$/.exec(h);
    const f = m ? fields.get(Number(m[1])) : undefined;
    if (f && m && m[2] === '0') out[ctxFieldName(progType, f.off)] = (BigInt(v) & ((1n << BigInt(8 * Math.min(f.size, 8))) - 1n)).toString();
  }
  return out;
}

/** A counterexample as a short description of the input it stands for. */
export function describeInput(cex: Counterexample, progType: string, fields: CtxFields = new Map()): string {
  const parts: string[] = [];
  if (cex.packetLen !== null) parts.push(`a packet of ${cex.packetLen} bytes${cex.packet && /[^0]/.test(cex.packet) ? ` (${cex.packet.slice(0, 64)}${cex.packet.length > 64 ? '…' : ''})` : ''}`);
  // context fields the proof left free carry their values in the fresh-value helpers
  const helpers = Object.entries(cex.helpers);
  for (const [h, v] of helpers) {
    const m = /^h(\d+)#(\d+)$/.exec(h);
    const f = m ? fields.get(Number(m[1])) : undefined;
    if (f && m) {
      const mask = (1n << BigInt(8 * Math.min(f.size, 8))) - 1n;
      const val = BigInt(v) & mask;
      parts.push(`${ctxFieldName(progType, f.off)} = ${val}${Number(m[2]) > 0 ? ` (read ${Number(m[2]) + 1})` : ''}`);
    }
  }
  if (cex.ctx && contextNamed(progType)) {
    const bytes = Buffer.from(cex.ctx, 'hex');
    for (let off = 0; off + 4 <= bytes.length; off += 4) {
      const w = bytes.readUInt32LE(off);
      if (w) parts.push(`${ctxFieldName(progType, off)} = ${w}`);
    }
  }
  const regs = Object.entries(cex.regs);
  if (regs.length) parts.push(regs.map(([r, v]) => `${r}=${v}`).join(' '));
  for (const [m, kv] of Object.entries(cex.maps)) for (const [k, v] of Object.entries(kv)) parts.push(`map ${m}[${k}] = ${v === null ? 'absent' : /^0*$/.test(v) ? 'zeros' : v}`);
  for (const [h, v] of helpers) {
    const m = /^h(\d+)#/.exec(h);
    if (!(m && fields.has(Number(m[1])))) parts.push(`${h} = ${v}`);
  }
  const d = cex.difference;
  const what = d.what === 'end' ? `the run ends differently (${endKind(d.a)} in the input program, ${endKind(d.b)} after the repair)` : `${d.what} differs (${d.a} vs ${d.b})`;
  return `${parts.join(', ') || 'any input'}: ${what}`;
}

/** The checker's end kinds (observe.ts: 0 exit, 1 fault, 2 tail call, 3 leaves the window). */
const endKind = (v: string): string => (['exit', 'fault', 'tail call', 'window exit'][Number(v)] ?? v);

function verdictOf(report: VerifyReport, prog: ProgramRef): ProgramVerdict | undefined {
  return report.programs.find((p) => p.name === prog.name && p.section === prog.section) ?? report.programs.find((p) => p.name === prog.name);
}

interface Located {
  failure: VerifierFailure;
  site: Site | null;
  why: string | null;
}

/** Parses a rejection and finds its failing instruction in the IR. */
function locate(obj: BpfObject, prog: ProgramRef, log: string): Located {
  const failure = parseVerifierLog(log);
  if (!failure || failure.insn === null) return { failure: failure ?? ({ insn: null, opcode: null, insnText: '', reason: '', failure: { kind: 'other' }, regs: new Map(), frame: 0, seen: [] }), site: null, why: 'the verifier log has no instruction trace' };
  let layout: LinkedLayout | null = null;
  for (const depthFirst of [true, false]) {
    const l = linkedLayout(obj, prog, depthFirst);
    if (layoutMatches(obj, l, failure.seen)) {
      layout = l;
      break;
    }
  }
  if (!layout) return { failure, site: null, why: 'the verifier log does not match the object\'s code (cannot place the failing instruction)' };
  const at = layout.at[failure.insn];
  if (!at) return { failure, site: null, why: `instruction ${failure.insn} is not in the linked program` };
  const func = funcAt(obj, at.section, at.index);
  const entry = funcAt(obj, prog.section, findLabel(sectionNamed(obj, prog.section), prog.entry));
  return { failure, site: { obj, prog, failure, section: at.section, index: at.index, func, entry }, why: null };
}

/** A failure's identity: what went wrong at which input instruction. */
function signature(loc: Located): string {
  const f = loc.failure.failure;
  const where = loc.site ? originOf(sectionNamed(loc.site.obj, loc.site.section).insns[loc.site.index]!) ?? 'inserted' : 'unknown';
  return `${f.kind}:${'reg' in f ? f.reg : ''}:${where}`;
}

function summarize(v: ProgramVerdict | undefined, obj: BpfObject, prog: ProgramRef): VerdictSummary {
  if (!v) return { verdict: 'cannot-load', verifiedInsns: null, reason: 'program not in the kernel report', insn: null, where: null };
  if (v.verdict !== 'rejected') return { verdict: v.verdict, verifiedInsns: v.verifiedInsns, reason: v.error, insn: null, where: null };
  const loc = locate(obj, prog, v.log);
  return {
    verdict: 'rejected', verifiedInsns: v.verifiedInsns, reason: loc.failure.reason || v.error, insn: loc.failure.insn,
    where: loc.site ? sourceLine(obj, loc.site.section, loc.site.index) : null,
  };
}

/** Does k2's verifier model reject `obj`'s program at the same input instruction? (null: no opinion) */
function modelSameFailure(obj: BpfObject, prog: ProgramRef): string | null {
  try {
    const v = checkLinked(linkProgram(obj, prog));
    if (v.safe || v.insn === null || v.section === null) return null;
    const insn = sectionNamed(obj, v.section).insns[v.insn];
    return `${v.reason}@${insn ? originOf(insn) ?? 'inserted' : '?'}`;
  } catch {
    return null;
  }
}

/** Repairs every program of `input` the kernel rejects (see the file comment). */
export async function repairObject(input: BpfObject, opts: RepairOptions = {}): Promise<RepairResult> {
  const t0 = performance.now();
  const say = opts.onEvent ?? (() => {});
  const verify = (o: BpfObject): Promise<VerifyReport> => verifyObject(objectBytes(o), { name: input.file, ...(opts.progType ? { progType: opts.progType } : {}) });
  const tagged = tagOrigins(input);
  const first = await verify(tagged);
  let current = tagged;
  // programs that must stay accepted: those the kernel accepted in the input, and those repaired so far
  const mustAccept = new Set(first.programs.filter((p) => p.accepted).map((p) => `${p.section}/${p.name}`));
  const programs: ProgramRepair[] = [];
  const stampsOf = new Map<ProgramRepair, number[]>();
  let step = 0;
  for (const prog of input.programs) {
    const v0 = verdictOf(first, prog);
    const before = summarize(v0, tagged, prog);
    const rec: ProgramRepair = {
      section: prog.section, name: prog.name, type: v0?.type ?? prog.progType, before, repaired: false, changes: [], proof: null,
      equivalence: null, after: null, unsafe: null, remaining: null, ms: 0,
    };
    programs.push(rec);
    if (v0?.verdict !== 'rejected') continue;
    const p0 = performance.now();
    const start = current;
    const seen = new Set<string>();
    let log = v0.log;
    let changes: RepairChange[] = [];
    let stamps: number[] = [];
    for (let round = 0; round < (opts.maxSteps ?? 12); round++) {
      const loc = locate(current, prog, log);
      if (!loc.site) {
        rec.remaining = `${loc.failure.reason || v0.error}: ${loc.why}`;
        break;
      }
      const sig = signature(loc);
      seen.add(sig);
      const cands = candidatesFor(loc.site);
      say(`${prog.name}: ${loc.failure.reason} at ${loc.site.section}:${loc.site.index} — ${cands.length} candidate(s)`);
      if (!cands.length) {
        rec.remaining = `${loc.failure.reason}: no repair known for this failure`;
        break;
      }
      const model = modelSameFailure(current, prog);
      const depth0 = loc.failure.failure.kind === 'call-depth' ? callDepth(current, loc.site.entry) : null;
      let next: { cand: Candidate; report: VerifyReport; v: ProgramVerdict } | null = null;
      let refuted: { cand: Candidate; detail: string; cex: Counterexample; fields: CtxFields; accepted: boolean } | null = null;
      let lastWhy = 'no candidate got the verifier further';
      for (const cand of cands) {
        if (performance.now() - p0 > (opts.budgetMs ?? 120000)) {
          lastWhy = 'time budget exhausted';
          break;
        }
        if (model !== null && modelSameFailure(cand.obj, prog) === model) {
          say(`  ${cand.kind}: k2's verifier model still fails the same way — skipped`);
          continue;
        }
        const report = await verify(cand.obj);
        const v = verdictOf(report, prog);
        if (!v) continue;
        const broke = report.programs.find((p) => mustAccept.has(`${p.section}/${p.name}`) && !p.accepted);
        if (broke) {
          say(`  ${cand.kind}: would make ${broke.name} fail — skipped`);
          continue;
        }
        let progress = v.accepted;
        if (!progress && v.verdict === 'rejected') {
          const after = locate(cand.obj, prog, v.log);
          const sig2 = signature(after);
          if (after.failure.failure.kind === 'call-depth' && depth0 !== null) {
            const d1 = after.site ? callDepth(cand.obj, after.site.entry) : null;
            progress = d1 !== null && d1 < depth0;
          } else progress = !seen.has(sig2) && !sig2.endsWith(':inserted');
        }
        say(`  ${cand.kind}: kernel ${v.accepted ? 'accepts' : `still rejects (${v.error ?? ''})`}${progress ? '' : ' — no progress'}`);
        // only a candidate that gets the verifier further is proven; when the proof refutes it,
        // the counterexample is an input on which the program really does what the verifier feared
        if (!progress) continue;
        const proof = await proveCandidate(tagged, current, cand, prog, { ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
        say(`  ${cand.kind}: proof ${proof.proven === true ? 'ok' : proof.proven === false ? 'refuted' : 'unknown'} (${proof.method}: ${proof.detail}, ${proof.ms} ms)`);
        if (proof.proven === true) {
          step++;
          const stamped = stamp(cand, step);
          const where = cand.inserted[0] ? sourceLine(cand.obj, cand.inserted[0].section, cand.inserted[0].index + cand.inserted[0].count) : null;
          changes.push({
            kind: cand.kind, summary: cand.summary, section: cand.inserted[0]?.section ?? loc.site.section, index: null, insns: [], where,
            proof: { method: proof.method, detail: proof.detail, ms: proof.ms },
            kernel: { accepted: v.accepted, reason: v.accepted ? null : v.error },
          });
          stamps.push(step);
          next = { cand: { ...cand, obj: stamped }, report, v };
          break;
        }
        // keep the refutation of a candidate the kernel accepts over one it only got further with
        if (proof.proven === false && proof.counterexample && (!refuted || (v.accepted && !refuted.accepted))) {
          refuted = { cand, detail: proof.detail, cex: proof.counterexample, fields: proof.fields ?? new Map(), accepted: v.accepted };
        }
        lastWhy = proof.proven === false ? `the candidate repairs change behaviour (${proof.detail})` : `no candidate could be proven (${proof.detail})`;
      }
      if (!next) {
        rec.remaining = `${loc.failure.reason}: ${lastWhy}`;
        if (refuted) {
          rec.unsafe = {
            reason: loc.failure.reason, where: sourceLine(current, loc.site.section, loc.site.index), candidate: refuted.cand.summary, kernelAccepts: refuted.accepted,
            refuted: refuted.detail, counterexample: refuted.cex,
            faults: refuted.cex.difference.what === 'end' && Number(refuted.cex.difference.a) === 1,
            context: contextOf(refuted.cex, prog.progType, refuted.fields),
            input: describeInput(refuted.cex, prog.progType, refuted.fields),
          };
        }
        break;
      }
      current = next.cand.obj;
      if (next.v.accepted) {
        rec.repaired = true;
        break;
      }
      log = next.v.log;
    }
    if (!rec.repaired) {
      current = start;
      changes = [];
      stamps = [];
      if (!rec.remaining) rec.remaining = 'step limit reached';
    }
    else mustAccept.add(`${prog.section}/${prog.name}`);
    rec.changes = changes;
    stampsOf.set(rec, stamps);
    rec.ms = Math.round(performance.now() - p0);
  }

  // The output: locations of every change, the kernel's verdict and whole-program equivalence.
  const finalReport = await verify(current);
  for (const rec of programs) {
    const prog = input.programs.find((p) => p.name === rec.name && p.section === rec.section)!;
    const stamps = stampsOf.get(rec) ?? [];
    rec.changes.forEach((c, k) => {
      const runs = stepRuns(current, stamps[k]!);
      const extra = stepRuns(current, stamps[k]! + 0.5);
      if (runs[0]) {
        c.section = runs[0].section;
        c.index = runs[0].index;
      }
      c.insns = runs.flatMap((r) => disasm(sectionNamed(current, r.section), r.index, r.count));
      if (extra.length) c.also = extra.map((r) => ({ section: r.section, index: r.index, insns: disasm(sectionNamed(current, r.section), r.index, r.count) }));
    });
    if (rec.before.verdict !== 'rejected') continue;
    rec.after = summarize(verdictOf(finalReport, prog), current, prog);
    if (rec.repaired && rec.after.verdict !== 'accepted') {
      // accepted alone but not together with the other repairs: keep it honest
      rec.repaired = false;
      rec.remaining = `rejected in the final object: ${rec.after.reason}`;
    }
    if (rec.repaired) {
      const r = await checkRepair(tagged, prog, current, prog, { timeoutMs: opts.timeoutMs ?? 20000 });
      rec.equivalence = { equivalent: r.equivalent, via: r.via, ...(r.reason ? { reason: r.reason } : {}) };
      rec.proof = r.equivalent === true ? 'equivalent' : 'stepwise';
    }
  }
  const rejected = programs.filter((p) => p.before.verdict === 'rejected').length;
  const repaired = programs.filter((p) => p.repaired).length;
  return { obj: current, programs, rejected, repaired, remaining: rejected - repaired, ms: Math.round(performance.now() - t0) };
}

