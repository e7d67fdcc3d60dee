// Window-by-window superoptimization of one code section: for each straight-line window, search
// for a cheaper rewrite (deletions, then MCMC), prove it equivalent with the SMT checker under the
// registers live after the window, and keep it only if `gate` (the safety model) accepts the
// program with it. Counterexamples become test cases for the next search round (CEGIS).
import type { Insn } from '../isa/index.js';
import { CLASS, LD_IMM64, opClass, slotsOf } from '../isa/index.js';
import { liveIn, successors, liveOutAt, regList, blockStarts, constantsIn } from '../analysis/index.js';
import { replaceWindow, type BpfObject, type CodeSection, type IrInsn } from '../ir/index.js';
import { checkWindow, type Counterexample, type WindowPre } from '../smt/index.js';
import { makeTest, perfCost, randomInput, type TestCase } from './cost.js';
import { STACK_SIZE, cloneState } from './eval.js';
import { Rng } from './rng.js';
import { searchWindow, DEFAULT_SEARCH, type SearchOptions } from './search.js';

export interface SynthOptions {
  windowSizes: number[]; // tried largest first
  tests: number; // random test cases per window
  search: SearchOptions;
  timeoutMs: number; // per SMT query
  budgetMs: number; // per section; windows after the budget are left alone
  cegisRounds: number;
}

export const DEFAULT_SYNTH: SynthOptions = { windowSizes: [4, 3, 2, 1], tests: 16, search: DEFAULT_SEARCH, timeoutMs: 2000, budgetMs: 20000, cegisRounds: 3 };

export interface SectionStats {
  windows: number;
  proposals: number; // candidates sent to the checker
  proven: number;
  refuted: number;
  unknown: number;
  gateRejected: number;
  rewrites: number;
  smtMs: number[];
}

const isControl = (i: IrInsn): boolean => {
  const c = opClass(i.code);
  return c === CLASS.JMP || c === CLASS.JMP32;
};

/** Can insns[start, end) be rewritten as a unit? Straight-line, no inner labels, nothing pinned. */
function windowOk(sec: CodeSection, blockEnd: Int32Array, start: number, end: number): boolean {
  if (end > sec.insns.length || blockEnd[start]! < end) return false;
  for (let k = start; k < end; k++) {
    const i = sec.insns[k]!;
    if (i.pinned || isControl(i) || (i.code === LD_IMM64 && i.src !== 0) || (k > start && i.labels?.length)) return false;
  }
  return true;
}

function blockEnds(sec: CodeSection): Int32Array {
  const starts = blockStarts(sec);
  const out = new Int32Array(sec.insns.length);
  starts.forEach((s, k) => {
    const e = starts[k + 1] ?? sec.insns.length;
    for (let i = s; i < e; i++) out[i] = e;
  });
  return out;
}

/** A checker counterexample as a window test case, when it is about registers and stack only. */
function testFromCex(window: readonly Insn[], cex: Counterexample, rng: Rng, known: [number, bigint][]): TestCase | null {
  const input = randomInput(rng);
  for (const [r, v] of known) input.regs[r] = v;
  for (const [k, v] of Object.entries(cex.regs)) {
    const m = /^r(\d)$/.exec(k);
    if (!m || !v.startsWith('0x')) return null;
    input.regs[Number(m[1])] = BigInt(v);
  }
  for (const [off, byte] of Object.entries(cex.stack)) {
    const i = STACK_SIZE + Number(off);
    if (i < 0 || i >= STACK_SIZE) return null;
    input.stack[i] = byte;
  }
  return makeTest(window, cloneState(input));
}

const key = (insns: readonly Insn[]): string => insns.map((i) => `${i.code},${i.dst},${i.src},${i.off},${i.imm},${i.imm2 ?? ''}`).join(';');

export async function optimizeSection(
  obj: BpfObject,
  secIndex: number,
  gate: (candidate: BpfObject) => boolean,
  opts: SynthOptions = DEFAULT_SYNTH,
  stats: SectionStats = { windows: 0, proposals: 0, proven: 0, refuted: 0, unknown: 0, gateRejected: 0, rewrites: 0, smtMs: [] },
): Promise<{ obj: BpfObject; stats: SectionStats }> {
  const t0 = Date.now();
  const progType = obj.programs.find((p) => p.section === obj.code[secIndex]!.name)?.progType;
  const withSection = (sec: CodeSection): BpfObject => ({ ...obj, code: obj.code.map((s, k) => (k === secIndex ? sec : s)) });
  let sec = obj.code[secIndex]!;
  let live = liveIn(sec), succ = successors(sec), ends = blockEnds(sec), consts = constantsIn(sec);
  const rng = new Rng(opts.search.seed);
  for (const size of opts.windowSizes) {
    for (let start = 0; start < sec.insns.length; start++) {
      if (Date.now() - t0 > opts.budgetMs) return { obj: withSection(sec), stats };
      const end = start + size;
      if (!windowOk(sec, ends, start, end)) continue;
      stats.windows++;
      const window: Insn[] = sec.insns.slice(start, end);
      const liveOut = regList(liveOutAt(sec, live, succ, end - 1));
      // Precondition: live-in registers known to be constant here (constant propagation).
      const pre: WindowPre = { regs: {} };
      const known: [number, bigint][] = [];
      // Any register's entry value can reach the exit (a rewrite may drop the write), so all count.
      consts[start]!.forEach((v, r) => {
        if (v !== undefined && r < 10) { pre.regs![r] = { kind: 'scalar', value: v }; known.push([r, v]); }
      });
      const withKnown = (s: ReturnType<typeof randomInput>) => { for (const [r, v] of known) s.regs[r] = v; return s; };
      const tests: TestCase[] = [];
      for (let k = 0; k < opts.tests; k++) {
        const t = makeTest(window, withKnown(randomInput(rng)));
        if (!t) break;
        tests.push(t);
      }
      if (tests.length < opts.tests) continue; // the window leaves the evaluator's model (memory beyond the stack)
      const refuted = new Set<string>();
      for (let round = 0; round < opts.cegisRounds; round++) {
        const cand = searchWindow(window, tests, liveOut, { ...opts.search, seed: opts.search.seed + start * 31 + round }, (c) => refuted.has(key(c)));
        if (!cand || perfCost(cand) >= perfCost(window)) break;
        stats.proposals++;
        const res = await checkWindow(window, cand, pre, { regs: liveOut }, { timeoutMs: opts.timeoutMs, object: obj, progType });
        stats.smtMs.push(res.ms);
        if (res.equivalent === true) {
          stats.proven++;
          const next = replaceWindow(sec, start, end, cand as IrInsn[]);
          if (!gate(withSection(next))) {
            stats.gateRejected++;
            refuted.add(key(cand));
            continue;
          }
          sec = next;
          stats.rewrites++;
          live = liveIn(sec);
          succ = successors(sec);
          ends = blockEnds(sec);
          consts = constantsIn(sec);
          start = Math.max(-1, start - size); // earlier windows may simplify now
          break;
        }
        refuted.add(key(cand));
        if (res.equivalent === null) { stats.unknown++; break; }
        stats.refuted++;
        const t = res.counterexample ? testFromCex(window, res.counterexample, rng, known) : null;
        if (t) tests.push(t);
      }
    }
  }
  return { obj: withSection(sec), stats };
}

export const sectionSlots = (sec: CodeSection): number => sec.insns.reduce((n, i) => n + slotsOf(i), 0);
