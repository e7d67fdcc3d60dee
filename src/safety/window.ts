// Per-window incremental checking, for the synthesizer.
//
// A window is a straight-line range [start, end) of one function of a linked program (no jump
// targets inside it, no jumps, calls or exits in it). `prepare` runs the whole-program check once
// and records every abstract state that reaches `start` and `end`. `check(site, replacement)` then:
//   1. runs the replacement from each recorded entry state (any violation: unsafe);
//   2. for each resulting exit state, looks for a recorded original exit state that covers it
//      (same subsumption test as the explorer's pruning): the original continuation was verified
//      from that more general state, so the replacement's continuation is safe too;
//   3. explores downstream only from exit states not covered, in the spliced program, pruning
//      against the original run's completed states at instructions that cannot reach the window.
// The answer is the same as a whole-program check of the spliced program would give, up to the
// precision lost by reusing states; when unsure it says unsafe.
import { CLASS, JMP, LD_IMM64, invalidReason, jmpOp, opClass } from '../isa/index.js';
import type { BpfObject, IrInsn, ProgramRef } from '../ir/types.js';
import { Checker, Unsafe, type CheckOptions } from './check.js';
import { coreValue, patchCoreInsn } from './core.js';
import type { KBtf } from './kbtf.js';
import type { Btf } from '../elf/btf.js';
import { linkProgram, objectKBtf, objectMaps, type MapResolver, type SafetyInsn, type SafetyProgram } from './program.js';
import { RT, cloneState, mapAllRegs, subsumes, type State } from './state.js';

export interface WindowSite {
  start: number; // linear index of the first instruction of the window
  end: number; // one past the last
  entries: State[]; // abstract states reaching `start` in the original program
  exits: State[]; // abstract states reaching `end` in the original program
}

export interface WindowVerdict {
  safe: boolean;
  reason: string | null;
  insn: number | null; // linear index in the spliced program
  /** Exit states not covered by the original's, explored downstream. */
  downstream: number;
}

/** Jumps, exits, calls of functions and callback-calling helpers (bpf_loop) end straight-line code. */
const isControl = (i: IrInsn): boolean => {
  const c = opClass(i.code);
  return (c === CLASS.JMP || c === CLASS.JMP32) && !(jmpOp(i.code) === JMP.CALL && i.src === 0 && i.imm !== 181 && i.imm !== 164);
};

/** Every window of `len` instructions the checker accepts: straight-line, no jump target inside. */
export function windowsOf(prog: SafetyProgram, len: number): [number, number][] {
  const target = new Uint8Array(prog.insns.length + 1);
  for (const i of prog.insns) if (i.tgt >= 0) target[i.tgt] = 1;
  const out: [number, number][] = [];
  for (const f of prog.funcs) {
    for (let s = f.start; s + len <= f.end; s++) {
      let ok = true;
      for (let i = s; i < s + len && ok; i++) if (isControl(prog.insns[i]!) || (i > s && target[i])) ok = false;
      if (ok) out.push([s, s + len]);
    }
  }
  return out;
}

export class WindowChecker {
  /** A window checker for one program of an object. */
  static forProgram(obj: BpfObject, prog: ProgramRef, opts: CheckOptions = {}): WindowChecker {
    const resolver = objectMaps(obj);
    return new WindowChecker(linkProgram(obj, prog, resolver), resolver, opts, objectKBtf(obj));
  }

  private sites = new Map<string, WindowSite>();
  private baselineOk = false;
  private reason: string | null = null;
  private canReach = new Map<number, Uint8Array>();
  private base: { explored: Map<number, State[]>; depth: number[]; calls: Set<string>; lastId: number } | null = null;

  /**
   * `prog` must be a program the whole-program check accepts; `resolver` resolves map references
   * of replacement ld_imm64 instructions to the same maps as the program's own.
   */
  constructor(
    readonly prog: SafetyProgram,
    private readonly resolver: MapResolver,
    private readonly opts: CheckOptions = {},
    private readonly btf: KBtf | Btf | null = null, // for CO-RE relocations carried by replacement instructions
  ) {}

  /** Records entry and exit states of each window with one whole-program run. */
  prepare(windows: [number, number][]): WindowSite[] {
    const out: WindowSite[] = [];
    const want = new Map<number, { st: State[] }>();
    for (const [s, e] of windows) {
      this.validateWindow(s, e);
      const key = `${s}:${e}`;
      let site = this.sites.get(key);
      if (!site) {
        site = { start: s, end: e, entries: [], exits: [] };
        this.sites.set(key, site);
        if (!want.has(s)) want.set(s, { st: [] });
        if (!want.has(e)) want.set(e, { st: [] });
      }
      out.push(site);
    }
    if (want.size) {
      // Recorded states must keep registers that are dead in the original but may be read after
      // a replacement, and every path must reach the window with its exact state (a replacement
      // may rely on values the original did not): no liveness and no precision tracking here.
      const c = new Checker(this.prog, { ...this.opts, liveness: false, precision: false });
      try {
        c.checkCfg();
        for (const fn of c.verificationRoots()) {
          c.explore(c.entryState(fn), this.prog.funcs[fn]!.start, (pc, st) => {
            const w = want.get(pc);
            if (w) w.st.push(cloneState(st));
            return false;
          });
        }
        c.checkStackDepth();
        this.baselineOk = true;
        this.base = { explored: c.exploredStates(), depth: c.depth, calls: c.calls, lastId: c.lastId };
      } catch (e) {
        if (!(e instanceof Unsafe)) throw e;
        this.baselineOk = false;
        this.reason = e.message;
      }
      for (const site of out) {
        if (site.entries.length || site.exits.length) continue;
        site.entries = want.get(site.start)?.st ?? [];
        site.exits = want.get(site.end)?.st ?? [];
      }
    }
    return out;
  }

  private validateWindow(s: number, e: number): void {
    const { insns, funcs } = this.prog;
    const f = funcs.find((x) => x.start <= s && s < x.end);
    if (!f || e > f.end || e <= s) throw new Error(`window [${s}, ${e}) is not inside one function`);
    for (let i = s; i < e; i++) if (isControl(insns[i]!)) throw new Error(`window [${s}, ${e}) contains a jump, call or exit`);
    for (const insn of insns) if (insn.tgt > s && insn.tgt < e) throw new Error(`window [${s}, ${e}) contains a jump target`);
  }

  /** Checks `replacement` in place of the window `site`. */
  check(site: WindowSite, replacement: IrInsn[]): WindowVerdict {
    if (!this.baselineOk) return { safe: false, reason: `the original program is not safe: ${this.reason}`, insn: null, downstream: 0 };
    for (const r of replacement) {
      if (isControl(r)) return { safe: false, reason: 'replacement contains a jump, call or exit', insn: null, downstream: 0 };
      const bad = invalidReason(r);
      if (bad) return { safe: false, reason: `invalid instruction (${bad})`, insn: null, downstream: 0 };
    }
    const delta = replacement.length - (site.end - site.start);
    const spliced = this.splice(site, replacement);
    const c = new Checker(spliced, this.opts);
    const base = this.base!;
    c.startIdsAfter(base.lastId);
    // Instruction indices held by states (call sites, callback pointers) move with the code after the window.
    const remap = (st: State): State => {
      if (delta === 0) return st;
      let func = false;
      mapAllRegs(st, (q) => { if (q.t === RT.FUNC && q.off >= site.end) func = true; return undefined; });
      if (!func && !st.frames.some((f) => f.callsite >= site.end)) return st;
      const n = cloneState(st);
      for (const f of n.frames) if (f.callsite >= site.end) f.callsite += delta;
      if (func) mapAllRegs(n, (q) => (q.t === RT.FUNC && q.off >= site.end ? { ...q, off: q.off + delta } : undefined));
      return n;
    };
    const exits = site.exits.map(remap);
    const uncovered: State[] = [];
    try {
      for (let k = 0; k < site.entries.length; k++) {
        const st = cloneState(remap(site.entries[k]!));
        for (let pc = site.start; pc < site.start + replacement.length; pc++) {
          const r = c.step(st, pc);
          if (!('next' in r) || r.next !== pc + 1) throw new Unsafe('replacement changed control flow', pc);
        }
        // The exit recorded on the same path usually covers it: try that one first.
        const paired = exits[k];
        if (!(paired && subsumes(paired, st)) && !exits.some((x) => subsumes(x, st))) uncovered.push(st);
      }
      if (uncovered.length) {
        c.checkCfg();
        const reach = this.reaching(site.start);
        const seeds = new Map<number, State[]>();
        for (const [pc, list] of base.explored) {
          if (reach[pc] || (pc >= site.start && pc < site.end)) continue;
          seeds.set(pc >= site.end ? pc + delta : pc, list.map(remap));
        }
        c.seedExplored(seeds);
        for (const st of uncovered) c.explore(st, site.start + replacement.length);
      }
      // Stack depth may have grown: fold the original depths in and check again.
      c.checkStackDepthWith(base);
      return { safe: true, reason: null, insn: null, downstream: uncovered.length };
    } catch (e) {
      if (!(e instanceof Unsafe)) throw e;
      return { safe: false, reason: e.reason, insn: e.insn, downstream: uncovered.length };
    }
  }

  /** Instructions from which `target` is reachable in the CFG (including through calls). */
  private reaching(target: number): Uint8Array {
    const cached = this.canReach.get(target);
    if (cached) return cached;
    const { insns } = this.prog;
    const preds: number[][] = insns.map(() => []);
    insns.forEach((insn, i) => {
      const c = opClass(insn.code);
      const op = jmpOp(insn.code);
      const jmp = c === CLASS.JMP || c === CLASS.JMP32;
      if (jmp && op === JMP.EXIT) return;
      if (jmp && op === JMP.CALL && insn.tgt >= 0) preds[insn.tgt]!.push(i);
      if (jmp && op !== JMP.CALL && insn.tgt >= 0) preds[insn.tgt]!.push(i);
      if (!(jmp && op === JMP.JA) && i + 1 < insns.length) preds[i + 1]!.push(i);
    });
    // A callee's exit returns to every call site: any instruction of a function that reaches a
    // call of a function containing the window reaches the window. Treat whole functions as
    // reaching when they contain a reaching instruction (conservative).
    const reach = new Uint8Array(insns.length);
    // Callbacks (bpf_loop) come back to their helper call from anywhere: no instruction is known
    // not to reach the window then.
    if (insns.some((i) => i.code === (CLASS.JMP | JMP.CALL) && i.src === 0 && (i.imm === 181 || i.imm === 164))) {
      reach.fill(1);
      this.canReach.set(target, reach);
      return reach;
    }
    const todo = [target];
    reach[target] = 1;
    while (todo.length) {
      const i = todo.pop()!;
      for (const p of preds[i]!) if (!reach[p]) { reach[p] = 1; todo.push(p); }
      const f = this.prog.funcs.find((x) => x.start <= i && i < x.end)!;
      for (let k = f.start; k < f.end; k++) if (!reach[k]) { reach[k] = 1; todo.push(k); }
    }
    this.canReach.set(target, reach);
    return reach;
  }

  /** The program with the window replaced (what `check` judges). */
  splice(site: WindowSite, replacement: IrInsn[]): SafetyProgram {
    const p = this.prog;
    const delta = replacement.length - (site.end - site.start);
    const shift = (i: number) => (i >= site.end ? i + delta : i);
    const repl: SafetyInsn[] = replacement.map((r) => {
      const s: SafetyInsn = { ...r, tgt: -1 };
      if (r.code === LD_IMM64) {
        s.ld = this.resolver.resolve(r);
        if (s.ld.kind === 'funcref') {
          // A callback: the function already linked at that place of its section.
          const ref = s.ld;
          const at = p.origin.findIndex((o) => o.section === ref.section && o.index === ref.index);
          s.ld = at >= 0 && p.funcs.some((f) => f.start === at) ? { kind: 'func', start: at } : { kind: 'unsupported', why: 'callback function not linked' }; // shifted below
        }
      }
      // Instructions taken from the linked program carry their patched values already (coreVal).
      if (r.core?.length && !(r as SafetyInsn).coreVal) {
        const p = patchCoreInsn(s, coreValue(this.btf, r.core));
        if ('fatal' in p) s.coreVal = { resolves: false, lo: 0n, hi: 0n, why: p.fatal };
        else {
          s.coreVal = p.cv;
          if (p.code !== undefined) s.code = p.code;
          if (p.off !== undefined) s.off = p.off;
          if (p.imm !== undefined) s.imm = p.imm;
          if (p.imm2 !== undefined) s.imm2 = p.imm2;
          if (s.code === LD_IMM64 && !r.reloc) s.ld = { kind: 'const', value: (BigInt(s.imm2 ?? 0) << 32n) | BigInt(s.imm >>> 0) };
        }
      }
      return s;
    });
    const insns = [...p.insns.slice(0, site.start), ...repl, ...p.insns.slice(site.end)].map((i) => {
      if (i.ld?.kind === 'func' && i.ld.start >= site.end) return { ...i, ld: { kind: 'func' as const, start: shift(i.ld.start) } };
      return i.tgt >= 0 ? { ...i, tgt: shift(i.tgt) } : i;
    });
    const origin = [...p.origin.slice(0, site.start), ...repl.map((_, k) => ({ section: p.origin[site.start]?.section ?? '?', index: (p.origin[site.start]?.index ?? 0) + k })), ...p.origin.slice(site.end)];
    const funcs = p.funcs.map((f) => ({ ...f, start: shift(f.start), end: f.end >= site.end ? f.end + delta : f.end }));
    return { ...p, insns, origin, funcs };
  }
}
