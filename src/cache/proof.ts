// Re-proof of a cached result: is the cached code of every section equivalent to the code clang
// produced, from every entry (programs and function symbols)? Both versions share one ELF (same
// symbols, maps, BTF), so instructions compare exactly, relocations included.
//
// The proof pairs positions of the two versions (A = clang's, B = cached) starting from the entries,
// like a bisimulation: identical instructions step together; `goto`s are followed (tail merging
// turns tails into gotos); an inverted branch pairs swapped successors; where the code differs, the
// two straight-line runs up to the next control instruction (common tail cut off) are a window
// proven by the SMT checker (checkWindow), after which the pairing goes on. Invariant at a pair
// (i, j): the two states have the same helper history, the same memory except stack bytes of the
// current frame that B does not read before writing from j, and agree on every register B reads
// before writing from j (B's register and byte-level stack liveness, src/analysis). Identical instructions keep it (they read only such
// registers and stack bytes); a window keeps it when the checker proves both runs leave the same
// memory (stack: the bytes live in B after them) and the same values in the registers live in B, from a state that satisfies A's facts
// (constants, known-zero bits at i) and B's facts on registers B reads. If every pair is consistent,
// both versions behave the same from every entry. Anything unexpected is a failed proof (the
// entry is then not used), never a pass.
import { CLASS, JMP, LD_IMM64, invertedJump, jmpOp, opClass } from '../isa/index.js';
import type { BpfObject, CodeSection, IrInsn, Label } from '../ir/index.js';
import { END_LABEL, programCode } from '../ir/index.js';
import { constantsIn, labelIndex, liveRanges, nonzeroBitsIn, objectLiveness, objectMapSizes, preciseStackLiveness, regList, type CalleeReads, type ConstRegs, type NonzeroBits, type StackLiveness } from '../analysis/index.js';
import type { EquivResult, RegFact, WindowPre } from '../smt/index.js';
import { applyStep, type Step } from '../synth/parallel-steps.js';

const strip = (x: IrInsn): IrInsn => ({ code: x.code, dst: x.dst, src: x.src, off: x.off, imm: x.imm, ...(x.imm2 !== undefined ? { imm2: x.imm2 } : {}) });

/**
 * Where two differing instruction runs first agree again: the first pair of the longest common
 * subsequence (by sameOp) with at least one instruction of difference before it, or null.
 */
function firstCommon(a: IrInsn[], b: IrInsn[]): [number, number] | null {
  const n = a.length, m = b.length;
  if (n * m > 40000) return null;
  // lcs[x][y]: longest common subsequence of a[x..] and b[y..]
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let x = n - 1; x >= 0; x--) for (let y = m - 1; y >= 0; y--) {
    lcs[x]![y] = sameOp(a[x]!, b[y]!) ? lcs[x + 1]![y + 1]! + 1 : Math.max(lcs[x + 1]![y]!, lcs[x]![y + 1]!);
  }
  let x = 0, y = 0;
  while (x < n && y < m) {
    if (sameOp(a[x]!, b[y]!) && lcs[x]![y] === lcs[x + 1]![y + 1]! + 1) return x === 0 && y === 0 ? null : [x, y];
    if (lcs[x + 1]![y]! >= lcs[x]![y + 1]!) x++;
    else y++;
  }
  return null;
}

export interface ProofResult {
  proven: boolean;
  reason: string | null; // why not (proven: null)
  windows: number; // windows sent to the checker
  smtMs: number; // time in the checker
  wholeProgram: boolean; // the pairing failed and the whole-program checker decided
}

export interface ProofOptions {
  timeoutMs: number; // per window query
}

const ALL_BITS = (1n << 64n) - 1n;
/**
 * Solver timeout of a window's first try (without the safety model's facts) when a wider one can be
 * tried next (see proveSameBehaviour): 0, no solver — the normal form decides or the wider window
 * is tried (a solver query there cost 100-160 ms to time out, the wider window a few ms).
 */
const QUICK_WINDOW_MS = 0;
const R1_R5 = 0b111110;

const isJmp = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP || opClass(i.code) === CLASS.JMP32;
/** An unconditional jump: to its label, or `ja +0` (a nop, e.g. from relinking) to the next instruction. */
const isGoto = (i: IrInsn): boolean => isJmp(i) && jmpOp(i.code) === JMP.JA && (i.target !== undefined || (opClass(i.code) === CLASS.JMP && i.off === 0 && i.imm === 0));
const isExit = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.EXIT;
const isCall = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.CALL;
const isCond = (i: IrInsn | undefined): i is IrInsn => !!i && isJmp(i) && !isCall(i) && !isExit(i) && !isGoto(i) && i.target !== undefined;
/** `if c goto T` and `if !c goto T'`: one branch with swapped successors. */
const inverted = (a: IrInsn, b: IrInsn): boolean => b.code === invertedJump(a.code) && a.dst === b.dst && a.src === b.src && a.imm === b.imm;

/** Instructions a window never contains: control flow, relocated or CO-RE-patched, legacy packet loads, pinned. */
const isSyncPoint = (i: IrInsn): boolean =>
  isJmp(i) || !!i.pinned || !!i.reloc || !!i.core?.length || !!i.callee ||
  (opClass(i.code) === CLASS.LD && (i.code !== LD_IMM64 || i.src !== 0));

/** Same operation and operands; jump targets and call targets are compared by the pairing. */
function sameOp(a: IrInsn, b: IrInsn): boolean {
  if (a.code !== b.code || a.dst !== b.dst || a.src !== b.src || (a.imm2 ?? 0) !== (b.imm2 ?? 0)) return false;
  if ((a.target === undefined) !== (b.target === undefined) || !!a.callee !== !!b.callee) return false;
  if (a.target === undefined && a.off !== b.off) return false; // a jump's offset encodes its (paired) target
  if (!a.callee && a.imm !== b.imm) return false; // a bpf-to-bpf call's immediate encodes its (paired) callee
  if (a.callee && a.callee.section !== b.callee!.section) return false;
  if (a.reloc?.sym !== b.reloc?.sym || a.reloc?.type !== b.reloc?.type) return false;
  const ca = a.core ?? [], cb = b.core ?? [];
  return ca.length === cb.length && ca.every((c, k) => c.typeId === cb[k]!.typeId && c.accessStrOff === cb[k]!.accessStrOff && c.kind === cb[k]!.kind);
}

class Side {
  readonly sections: Map<string, CodeSection>;
  readonly labels = new Map<string, Map<Label, number>>();
  readonly live: Map<string, Uint16Array>;
  private consts = new Map<string, ConstRegs[]>();
  private stack = new Map<string, StackLiveness>();
  private safety = new Map<string, Map<number, WindowPre> | null>();
  private bits = new Map<string, NonzeroBits[]>();
  constructor(readonly obj: BpfObject) {
    this.sections = new Map(obj.code.map((s) => [s.name, s]));
    for (const s of obj.code) this.labels.set(s.name, labelIndex(s));
    this.live = objectLiveness(obj.code);
    this.mapOf = objectMapSizes(obj);
  }
  at(sec: string, label: Label): number | undefined {
    return this.labels.get(sec)?.get(label);
  }
  insn(sec: string, k: number): IrInsn | undefined {
    return this.sections.get(sec)?.insns[k];
  }
  liveAt(sec: string, k: number): number {
    return this.live.get(sec)?.[k] ?? 0;
  }
  private constsOf(sec: string): ConstRegs[] {
    if (!this.consts.has(sec)) this.consts.set(sec, constantsIn(this.sections.get(sec)!));
    return this.consts.get(sec)!;
  }
  constsAt(sec: string, k: number): ConstRegs {
    return this.constsOf(sec)[k] ?? [];
  }
  /** What a bpf-to-bpf call reads: its callee's live-in registers. */
  private readonly callee: CalleeReads = (insn) => {
    const c = (insn as IrInsn).callee;
    const at = c ? this.labels.get(c.section)?.get(c.label) : undefined;
    return c && at !== undefined ? this.live.get(c.section)?.[at] : undefined;
  };
  private readonly mapOf: ReturnType<typeof objectMapSizes>;
  /**
   * What k2's safety model knows at instruction k (pointer kinds, packet range, bounds), joined
   * over every state of every program that runs the section; null when it knows nothing there.
   */
  async safetyAt(sec: string, k: number): Promise<WindowPre | null> {
    if (!this.safety.has(sec)) {
      let pres: Map<number, WindowPre> | null = null;
      try {
        const { sectionPres } = await import('../synth/facts.js');
        pres = sectionPres(this.obj, sec);
      } catch {
        pres = null; // the model cannot follow these programs: constants and known bits only
      }
      this.safety.set(sec, pres);
    }
    return this.safety.get(sec)?.get(k) ?? null;
  }
  /** Stack bytes of the frame that may be read from k on before being written (r10-relative runs). */
  stackLiveAt(sec: string, k: number): { off: number; size: number }[] {
    // with helpers' memory effects and callees' reads, as the optimizer's own analysis
    if (!this.stack.has(sec)) this.stack.set(sec, preciseStackLiveness(this.sections.get(sec)!, this.live.get(sec)!, this.callee, this.mapOf, this.constsOf(sec)));
    const l = this.stack.get(sec)!.liveIn[k];
    return l ? liveRanges(l) : []; // past the end: nothing is read
  }
  bitsAt(sec: string, k: number): NonzeroBits {
    if (!this.bits.has(sec)) this.bits.set(sec, nonzeroBitsIn(this.sections.get(sec)!));
    return this.bits.get(sec)![k] ?? [];
  }
  /** Follows gotos from k (they have no effect); a cycle of gotos stays where it is. */
  settle(sec: string, k: number): number {
    const insns = this.sections.get(sec)!.insns;
    for (let n = 0; n <= insns.length && k < insns.length && isGoto(insns[k]!); n++) {
      const t = this.target(sec, insns[k]!, k);
      if (t === undefined) return k;
      k = t;
    }
    return k;
  }
  target(sec: string, insn: IrInsn, k: number): number | undefined {
    if (insn.target === undefined) return k + 1; // ja +0
    return insn.target === END_LABEL ? this.sections.get(sec)!.insns.length : this.at(sec, insn.target);
  }
  /**
   * The straight-line path executed from k up to the next sync point, gotos followed: the positions
   * of its instructions and where it ends (the sync point, or the section end).
   */
  path(sec: string, k: number): { at: number[]; end: number } {
    const insns = this.sections.get(sec)!.insns;
    const at: number[] = [];
    let p = this.settle(sec, k);
    while (p < insns.length && !isSyncPoint(insns[p]!)) {
      if (at.length > insns.length) throw new ProofFailed(`section ${sec}: endless straight-line path at instruction ${k}`);
      at.push(p);
      p = this.settle(sec, p + 1);
    }
    return { at, end: p };
  }
}

class ProofFailed extends Error {}

/**
 * Where the straight-line run of a pair started — the pair (i, j) — and the pairs after it on the
 * run (`chain`, keys), through at most one conditional jump (`crossed`: the pair is on one of its
 * successors' paths).
 */
interface Origin {
  i: number;
  j: number;
  crossed: boolean;
  chain: { key: string; i: number; j: number }[];
}

/**
 * Window precondition at A's position i and B's position j (see the file comment): the safety
 * model's facts about A at i, then constants and known-zero bits of A, and of B for registers B reads.
 */
async function windowPre(A: Side, B: Side, sec: string, i: number, j: number, withModel: boolean): Promise<WindowPre> {
  const ca = A.constsAt(sec, i), cb = B.constsAt(sec, j);
  const ba = A.bitsAt(sec, i), bb = B.bitsAt(sec, j);
  const readByB = B.liveAt(sec, j);
  const model = withModel ? await A.safetyAt(sec, i) : null;
  const regs: Partial<Record<number, RegFact>> = { ...(model?.regs ?? {}) };
  for (let r = 0; r <= 9; r++) {
    const known = regs[r];
    if (known && known.kind !== 'unknown' && !(known.kind === 'scalar' && known.value === undefined)) continue;
    const inB = (readByB & (1 << r)) !== 0;
    const v = ca[r] ?? (inB ? cb[r] : undefined);
    if (v !== undefined) {
      regs[r] = { kind: 'scalar', value: v };
      continue;
    }
    const m = (ba[r] ?? ALL_BITS) & (inB ? bb[r] ?? ALL_BITS : ALL_BITS);
    if (m !== ALL_BITS && !known) regs[r] = { kind: 'scalar', umax: m, tnum: { value: 0n, mask: m } };
  }
  return { ...(model ?? {}), regs };
}

/**
 * Proves that `b` (same ELF as `a`, code sections possibly rewritten) behaves like `a` from every
 * program entry and every function symbol. Sections whose code is identical are skipped unless
 * reached from changed code.
 */
export async function proveSameBehaviour(a: BpfObject, b: BpfObject, opts: ProofOptions): Promise<ProofResult> {
  const { checkWindow } = await import('../smt/index.js');
  const A = new Side(a), B = new Side(b);
  const result: ProofResult = { proven: false, reason: null, windows: 0, smtMs: 0, wholeProgram: false };
  const seen = new Set<string>();
  const arrivals = new Map<string, number>(); // how many steps lead to each pair
  const sealed = new Set<string>(); // pairs a wider window replaced (see widen): no other way in allowed
  const work: [string, number, number, Origin | null][] = [];
  const progType = (sec: string): string | undefined => a.programs.find((p) => p.section === sec)?.progType;
  /** Queues the pair (i, j); `from`: the origin of the straight-line run it continues (null: it starts one). */
  const pair = (sec: string, i: number | undefined, j: number | undefined, from: Origin | null = null): void => {
    if (i === undefined || j === undefined) throw new ProofFailed(`section ${sec}: a jump or call target is missing`);
    const key = `${sec}|${i}|${j}`;
    if (sealed.has(key)) throw new ProofFailed(`section ${sec}: instructions ${i}/${j} are reached another way than the window that replaced them`);
    arrivals.set(key, (arrivals.get(key) ?? 0) + 1);
    if (seen.has(key)) return;
    seen.add(key);
    work.push([sec, i, j, from ? { ...from, chain: [...from.chain, { key, i, j }] } : null]);
  };
  try {
    if ([...A.sections.keys()].sort().join('\0') !== [...B.sections.keys()].sort().join('\0')) throw new ProofFailed('the code sections differ');
    // Only code that differs needs walking: an entry into a section both versions have alike runs
    // the same instructions until it calls a function (or takes a function's address) — so the
    // entries walked are the programs and symbols of the sections that differ, and every callee in
    // them that alike code names (its label need not be a symbol). The pairing is per function: a
    // callee's equivalence is proven from its entry, the caller relies on it after the call.
    const differs = new Set(a.code.filter((s) => JSON.stringify(s.insns) !== JSON.stringify(b.code.find((x) => x.name === s.name)?.insns)).map((s) => s.name));
    for (const p of a.programs) if (differs.has(p.section)) pair(p.section, A.at(p.section, p.entry), B.at(p.section, p.entry));
    for (const sec of a.code) {
      if (differs.has(sec.name)) for (const s of sec.symbols) pair(sec.name, A.at(sec.name, s.start), B.at(sec.name, s.start));
      else for (const i of sec.insns) if (i.callee && differs.has(i.callee.section)) pair(i.callee.section, A.at(i.callee.section, i.callee.label), B.at(i.callee.section, i.callee.label));
    }
    /**
     * The windows that start at the pair (i, j): the straight-line paths from i and j (gotos
     * followed) up to the next sync point, and, where they end in conditional jumps, with the
     * branches and their successors' paths. Queues the pairs where they end; returns why none was
     * proven, or null. `wide`: a window from an origin (see widen), whose run so far agreed —
     * the whole run, never the smallest stretch; `crossed`: only the one across its branch.
     */
    const attempt = async (sec: string, i: number, j: number, origin: Origin | null, wide: { crossed: boolean } | null, quick = false): Promise<string | null> => {
      const timeoutMs = quick ? QUICK_WINDOW_MS : opts.timeoutMs;
      const pa = A.path(sec, i), pb = B.path(sec, j);
      const ja = A.insn(sec, pa.end), jb = B.insn(sec, pb.end);
      const branches = isCond(ja) && isCond(jb);
      // constants and known bits first; the safety model's facts (pointer kinds, packet range) only
      // when a window needs them (running the model costs more than most windows)
      const pres: (WindowPre | null)[] = [await windowPre(A, B, sec, i, j, false), null];
      const check = async (wa: IrInsn[], wb: IrInsn[], regs: number, stack: { off: number; size: number }[]): Promise<EquivResult> => {
        let r: EquivResult | null = null;
        for (let k = 0; k < (quick ? 1 : 2) && r?.equivalent !== true; k++) {
          if (k === 1) pres[1] ??= await windowPre(A, B, sec, i, j, true);
          if (k === 1 && JSON.stringify(pres[1], (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) === JSON.stringify(pres[0], (_k, v) => (typeof v === 'bigint' ? v.toString() : v))) break;
          result.windows++;
          r = await checkWindow(wa, wb, pres[k]!, { regs: regList(regs).filter((x) => x <= 9), stack }, { timeoutMs, object: a, ...(progType(sec) ? { progType: progType(sec) } : {}) });
          result.smtMs += r.ms;
          if (process.env.K2_PROOF_DEBUG) process.stderr.write(`proof: ${sec} ${i}/${j} window ${wa.length}/${wb.length}${wa.at(-1)?.target ? ' with branch' : ''}${k ? ' (model facts)' : ''} -> ${r.equivalent} ${r.via} ${Math.round(r.ms)} ms ${r.reason ?? ''} regs ${regList(regs).join(',')}\n`);
        }
        return r!;
      };
      /**
       * The two paths with the conditional jumps that end them, each side leaving by E1 (A's
       * target) or E2 (A's fall-through); B's successors are tried both ways round. Pairs the exits.
       */
      const branchWindow = async (): Promise<EquivResult> => {
        const ta = A.target(sec, ja!, pa.end), fa = pa.end + 1, tb = B.target(sec, jb!, pb.end), fb = pb.end + 1;
        if (ta === undefined || tb === undefined) throw new ProofFailed(`section ${sec}: a jump target is missing`);
        const goto = (label: string): IrInsn => ({ code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0, target: label });
        const wa = [...pa.at.map((k) => strip(A.insn(sec, k)!)), { ...strip(ja!), target: 'E1' }, goto('E2')];
        const regs = B.liveAt(sec, tb) | B.liveAt(sec, fb);
        const stack = [...B.stackLiveAt(sec, tb), ...B.stackLiveAt(sec, fb)];
        let r: EquivResult | null = null;
        for (const [e1, e2] of [[tb, fb], [fb, tb]] as const) {
          const wb = [...pb.at.map((k) => strip(B.insn(sec, k)!)), { ...strip(jb!), target: e1 === tb ? 'E1' : 'E2' }, goto(e1 === tb ? 'E2' : 'E1')];
          r = await check(wa, wb, regs, stack);
          if (r.equivalent === true) {
            pair(sec, ta, e1);
            pair(sec, fa, e2);
            return r;
          }
        }
        return r!;
      };
      /**
       * The branch window with each successor's straight-line path inside it, up to the next sync
       * points (exits XT, XF): a register one version sets before the branch and the other on
       * both successors (a hoisted constant) only agrees there. Pairs those sync points.
       */
      const treeWindow = async (): Promise<EquivResult | null> => {
        const ta = A.target(sec, ja!, pa.end), tb = B.target(sec, jb!, pb.end);
        if (ta === undefined || tb === undefined) throw new ProofFailed(`section ${sec}: a jump target is missing`);
        const goto = (label: string, labels?: string[]): IrInsn => ({ code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0, target: label, ...(labels ? { labels } : {}) });
        const build = (S: Side, p: { at: number[] }, jmp: IrInsn, t: { at: number[] }, f: { at: number[] }, tExit: string, fExit: string): IrInsn[] => {
          const tCode = t.at.map((k) => strip(S.insn(sec, k)!));
          const tHead: IrInsn = tCode.length ? { ...tCode[0]!, labels: ['T'] } : goto(tExit, ['T']);
          return [
            ...p.at.map((k) => strip(S.insn(sec, k)!)), { ...strip(jmp), target: 'T' },
            ...f.at.map((k) => strip(S.insn(sec, k)!)), goto(fExit),
            tHead, ...tCode.slice(1), ...(tCode.length ? [goto(tExit)] : []),
          ];
        };
        const aT = A.path(sec, ta), aF = A.path(sec, pa.end + 1), bT = B.path(sec, tb), bF = B.path(sec, pb.end + 1);
        if (aT.at.length + aF.at.length + bT.at.length + bF.at.length > 200) return null;
        const wa = build(A, pa, ja!, aT, aF, 'XT', 'XF');
        const regs = B.liveAt(sec, bT.end) | B.liveAt(sec, bF.end);
        const stack = [...B.stackLiveAt(sec, bT.end), ...B.stackLiveAt(sec, bF.end)];
        // B's taken arm pairs with A's taken arm, or (an inverted or rewritten branch) with A's fall-through
        const orders: boolean[] = sameOp(ja!, jb!) ? [true] : inverted(ja!, jb!) ? [false] : [true, false];
        let r: EquivResult | null = null;
        for (const straight of orders) {
          const wb = build(B, pb, jb!, bT, bF, straight ? 'XT' : 'XF', straight ? 'XF' : 'XT');
          r = await check(wa, wb, regs, stack);
          if (r.equivalent === true) {
            pair(sec, aT.end, straight ? bT.end : bF.end);
            pair(sec, aF.end, straight ? bF.end : bT.end);
            return r;
          }
        }
        return r;
      };
      const failure = (r: EquivResult | null, what: string): string =>
        `section ${sec}: ${what} at instruction ${i} ${r?.equivalent === false ? 'differs' : `not proven (${r?.reason ?? 'unknown'})`}`;
      if (wide?.crossed) {
        // the run agreed up to its branch and differs on a successor: the branch with both successors
        if (!branches) return `section ${sec}: no branch ends the run at instruction ${i}`;
        const r = await treeWindow();
        return r?.equivalent === true ? null : failure(r, 'branch with its successors');
      }
      if (branches && !sameOp(ja!, jb!) && !inverted(ja!, jb!)) {
        const r = await branchWindow(); // the branches themselves differ: compare them with the paths
        return r.equivalent === true || (await treeWindow())?.equivalent === true ? null : failure(r, 'branch');
      }
      let la = pa.at.length, lb = pb.at.length;
      while (la > 0 && lb > 0 && sameOp(A.insn(sec, pa.at[la - 1]!)!, B.insn(sec, pb.at[lb - 1]!)!)) { la--; lb--; }
      const ea = la < pa.at.length ? pa.at[la]! : pa.end, eb = lb < pb.at.length ? pb.at[lb]! : pb.end;
      if (la === 0 && lb === 0) {
        if (!wide && (ea !== i || eb !== j)) { pair(sec, ea, eb, origin); return null; } // only gotos in between
        return `section ${sec}: instruction ${i} differs from instruction ${j} of the cached code`;
      }
      const ia0 = pa.at.map((k) => A.insn(sec, k)!), ib0 = pb.at.map((k) => B.insn(sec, k)!);
      // smallest first: up to where the runs agree again; the differing stretch; the whole paths
      // (a value computed in the common tail may be dead only at the sync point)
      const tries: [number, number][] = [];
      const m = wide ? null : firstCommon(ia0.slice(0, la), ib0.slice(0, lb));
      if (m) tries.push(m);
      tries.push([la, lb]);
      if (la < pa.at.length || lb < pb.at.length) tries.push([pa.at.length, pb.at.length]);
      let last: EquivResult | null = null;
      for (const [ka, kb] of tries) {
        const na = ka < pa.at.length ? pa.at[ka]! : pa.end, nb = kb < pb.at.length ? pb.at[kb]! : pb.end;
        last = await check(ia0.slice(0, ka).map(strip), ib0.slice(0, kb).map(strip), B.liveAt(sec, nb), B.stackLiveAt(sec, nb));
        if (last.equivalent === true) {
          pair(sec, na, nb, wide ? null : origin); // the run goes on (a wide window ends the run it replaced)
          return null;
        }
      }
      // values the paths leave may matter only on one side of the branch that ends them
      if (branches && (await branchWindow()).equivalent === true) return null;
      if (branches && (await treeWindow())?.equivalent === true) return null;
      return failure(last, `window (${la} → ${lb} instructions)`);
    };

    /**
     * A window that failed at the pair at the end of `origin.chain` may lack a fact that the run
     * before it establishes (a register copied, a value loaded earlier): the same windows from the
     * run's origin, over the whole run. That replaces every pair of the chain, so it is allowed only
     * when each of them is reached from the origin alone (one arrival, no label reached from
     * elsewhere) — and they are sealed: a later step into one fails the proof. The pairs they led to
     * on the way (the other successor of a branch) stay: the origin's facts hold there too.
     */
    const widenable = (origin: Origin): boolean => origin.chain.length > 0 && origin.chain.every((c) => arrivals.get(c.key) === 1);
    const widen = async (sec: string, origin: Origin): Promise<boolean> => {
      if (!widenable(origin)) return false;
      // sealed before the window is tried: a window that would end on a pair of the chain (whose
      // own steps lead to the failed pair) fails the proof rather than vouch for it
      const fresh = origin.chain.map((c) => c.key).filter((k) => !sealed.has(k));
      for (const k of fresh) sealed.add(k);
      if ((await attempt(sec, origin.i, origin.j, null, { crossed: origin.crossed })) === null) return true;
      for (const k of fresh) sealed.delete(k); // (a window that failed queued nothing)
      return false;
    };

    while (work.length) {
      const [sec, i, j, from] = work.pop()!;
      const ia = A.insn(sec, i), ib = B.insn(sec, j);
      if (!ia || !ib) {
        if (ia || ib) throw new ProofFailed(`section ${sec}: one version runs off the end of the section, the other does not`);
        continue;
      }
      // the straight-line run this pair is on: where it started (itself when it starts one)
      const origin: Origin = from ?? { i, j, crossed: false, chain: [] };
      if (sameOp(ia, ib) && !isGoto(ia)) {
        if (isExit(ia)) continue;
        if (isJmp(ia) && !isCall(ia) && ia.target === undefined) throw new ProofFailed(`section ${sec}: a jump at instruction ${i} has no label`);
        // a run goes on through one conditional jump (into both successors) and through instructions
        // a window may contain; it ends at any other sync point
        const through = isCond(ia) ? (origin.crossed ? null : { ...origin, crossed: true }) : isSyncPoint(ia) ? null : origin;
        if (ia.target !== undefined) pair(sec, A.target(sec, ia, i), B.target(sec, ib, j), through);
        if (ia.callee) pair(ia.callee.section, A.at(ia.callee.section, ia.callee.label), B.at(ib.callee!.section, ib.callee!.label));
        // r1-r5 are scratch after a call (the pairing cannot vouch for them): B must not read them
        if (isCall(ia) && B.liveAt(sec, j + 1) & R1_R5) throw new ProofFailed(`section ${sec}: reads a clobbered argument register after the call at instruction ${j}`);
        pair(sec, i + 1, j + 1, through);
        continue;
      }
      if (isCond(ia) && isCond(ib) && inverted(ia, ib)) {
        // `if c goto T` against `if !c goto F`: the same branch with its successors swapped
        const through = origin.crossed ? null : { ...origin, crossed: true };
        pair(sec, A.target(sec, ia, i), j + 1, through);
        pair(sec, i + 1, B.target(sec, ib, j), through);
        continue;
      }
      // A window that can be widened is tried first with a short solver timeout and without the
      // safety model's facts: one that lacks a fact from earlier in the run often takes the solver
      // seconds to refute, and the wider window then decides in milliseconds. Only if that fails
      // too, the window gets its full tries.
      const quick = widenable(origin) && opts.timeoutMs > 0;
      const why = await attempt(sec, i, j, origin, null, quick);
      if (why === null || (await widen(sec, origin))) continue;
      if (!quick) throw new ProofFailed(why);
      const again = await attempt(sec, i, j, origin, null);
      if (again !== null) throw new ProofFailed(again);
    }
    result.proven = true;
  } catch (e) {
    if (!(e instanceof ProofFailed)) throw e;
    result.reason = e.message;
  }
  if (!result.proven) await wholeProgramFallback(a, b, opts, result);
  return result;
}

/**
 * When the pairing fails (a rewrite it cannot line up), the whole-program checker on every program
 * — valid only if every changed section is code some program runs (other code has no program to
 * be proven with).
 */
async function wholeProgramFallback(a: BpfObject, b: BpfObject, opts: ProofOptions, result: ProofResult): Promise<void> {
  const { checkPrograms } = await import('../smt/index.js');
  const changed = b.code.filter((s) => {
    const o = a.code.find((x) => x.name === s.name);
    return !o || JSON.stringify(o.insns) !== JSON.stringify(s.insns);
  }).map((s) => s.name);
  const covered = new Set(a.programs.flatMap((p) => programCode(a, p).map((s) => s.name)));
  if (!a.programs.length || changed.some((n) => !covered.has(n))) return;
  result.wholeProgram = true;
  for (const p of a.programs) {
    const t0 = performance.now();
    const r = await checkPrograms(a, p, b, p, { timeoutMs: opts.timeoutMs });
    result.smtMs += performance.now() - t0;
    if (r.equivalent !== true) return;
  }
  result.proven = true;
  result.reason = null;
}

/** A section's rewrites as steps from clang's code (the optimizer's proof order), for proveStepwise. */
export type SectionSteps = ReadonlyMap<string, readonly Step[]>;

/**
 * Above this many steps in all, a one-shot proof is tried before the step-by-step one: each step's
 * proof walks the sections that differ again, which on a huge section (cilium's 32k instructions)
 * with hundreds of steps costs more than the search did.
 */
export const MANY_STEPS = 32;
export const stepCount = (steps: SectionSteps): number => [...steps.values()].reduce((n, l) => n + l.length, 0);

export interface StepwiseResult extends ProofResult {
  /** Sections whose chain of steps could not be followed (the result holds clang's code there). */
  failed: string[];
  /** `a` with the sections whose every step was proven (the object the proof is about). */
  obj: BpfObject;
}

/**
 * Re-proof of an optimized object one rewrite at a time: each section's steps are applied in the
 * order the optimizer proved them, and every step is proven (proveSameBehaviour) between the code
 * before it and after it — so each window is checked with the facts of the code it was found in
 * (a rewrite that relies on an earlier one, or on a fact the earlier one created, is followed),
 * where one proof of clang's code against the final code has only clang's facts. Equivalence
 * composes: a proven chain from clang's code to the final code proves them equivalent. A section
 * with a step that is not proven keeps clang's code (listed in `failed`); `proven` is true when
 * no section failed.
 */
export async function proveStepwise(a: BpfObject, steps: SectionSteps, opts: ProofOptions): Promise<StepwiseResult> {
  let cur = a;
  const out: StepwiseResult = { proven: true, reason: null, windows: 0, smtMs: 0, wholeProgram: false, failed: [], obj: a };
  for (const [name, list] of steps) {
    const at = cur.code.findIndex((s) => s.name === name);
    if (at < 0) {
      out.failed.push(name);
      out.reason ??= `section ${name} is not in the object`;
      continue;
    }
    let sec: CodeSection = cur.code[at]!;
    let obj = cur;
    let ok = true;
    for (const [k, step] of list.entries()) {
      if (step.start < 0 || step.remove < 0 || step.start + step.remove > sec.insns.length) {
        ok = false;
        out.reason ??= `section ${name}: step ${k + 1} does not fit the code`;
        break;
      }
      const nextSec: CodeSection = { ...sec, insns: applyStep(sec.insns, step) };
      const next: BpfObject = { ...obj, code: obj.code.map((s, i) => (i === at ? nextSec : s)) };
      const r = await proveSameBehaviour(obj, next, opts);
      out.windows += r.windows;
      out.smtMs += r.smtMs;
      out.wholeProgram ||= r.wholeProgram;
      if (!r.proven) {
        ok = false;
        out.reason ??= `section ${name}, step ${k + 1} of ${list.length}: ${r.reason}`;
        break;
      }
      sec = nextSec;
      obj = next;
    }
    if (ok) cur = obj;
    else out.failed.push(name);
  }
  out.proven = out.failed.length === 0;
  out.obj = cur;
  return out;
}
