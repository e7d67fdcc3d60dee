// The checker: a path-sensitive abstract interpreter over a linked program that follows the rules
// of the Linux 6.x verifier (kernel/bpf/verifier.c). It explores paths depth-first like the kernel,
// prunes a path when an already fully explored state at the same instruction covers it, and stops
// with "too complex" past a budget. Every uncertainty is resolved towards "unsafe".
//
// This file holds the exploration (states, pruning, budgets) and the bookkeeping the rules report
// to (the Env interface). The rules themselves: alu.ts (arithmetic), memory.ts (loads, stores,
// stack, context, maps, packets), branch.ts (conditional jumps, null checks, packet ranges),
// calls.ts (bpf-to-bpf calls, helpers, callbacks, exits); cfg.ts has the static passes and
// precision.ts the precision tracking.
import { ALU, CALL_HELPER, CLASS, JMP, LD_IMM64, SRC_X, aluOp, opClass, srcBit } from '../isa/index.js';
import { NOT_INIT, RT, UNKNOWN_REG, cloneState, newFrame, ptrReg, subsumes, type Frame, type Precision, type Reg, type State } from './state.js';
import { Unsafe, type Env, type Step } from './env.js';
import { checkCfg, functionsChangingPkt, type Cfg } from './cfg.js';
import { MAX_TRAIL, NOTE_CB_CALL, NOTE_CB_EXIT, PrecisionTracker, TRAIL_PC, markExact, newPrecision, slotNote, type Checkpoint } from './precision.js';
import { alu } from './alu.js';
import { ldImm64, ldAbs, ldx, store } from './memory.js';
import { jmp } from './branch.js';
import { call, exitInsn, isCallbackHelper } from './calls.js';
import type { GlobalArg, SafetyInsn, SafetyProgram } from './program.js';
import { progCtx, type ProgCtx } from './ctx.js';
import { liveness } from './liveness.js';
import { sync, truncate, U32, ZERO } from './scalar.js';

export { Unsafe } from './env.js';

export interface CheckOptions {
  /** Budget of instructions processed over all paths (the kernel's is 1M; k2 prunes less). */
  maxSteps?: number;
  /** Budget of pending branches (the kernel's BPF_COMPLEXITY_LIMIT_JMP_SEQ). */
  maxPending?: number;
  /** Instructions a path must process before another of its states is stored (default 0: every pruning point; the kernel uses 8). */
  checkpointGap?: number;
  /** Forget dead registers at pruning points (default true; off when states are recorded for reuse). */
  liveness?: boolean;
  /** Precision tracking: prune ignoring scalars no path relied on (default true, as the kernel). */
  precision?: boolean;
}

export interface CheckStats {
  steps: number; // instructions processed
  states: number; // checkpoints stored
  pruned: number;
}

const MAX_STATES_PER_INSN = 64;
const isLoopCall = (i: SafetyInsn): boolean => i.code === (CLASS.JMP | JMP.CALL) && i.src === CALL_HELPER && isCallbackHelper(i.imm);

/** Per-program results of the static passes (programs are immutable once linked). */
const LIVE_CACHE = new WeakMap<SafetyProgram, Uint16Array>();
const FN_AT_CACHE = new WeakMap<SafetyProgram, Int32Array>();
const CFG_CACHE = new WeakMap<SafetyProgram, Cfg | Unsafe>();

/** A path waiting to be explored. */
interface Pending {
  state: State;
  pc: number;
  cp: Checkpoint | null;
  since?: number; // instructions processed since the path's last stored state
  trail?: number[] | null;
  cb?: boolean; // the path enters a callback at the helper call it forked at
}

/** A CO-RE relocated instruction: what libbpf patches in must be known (see core.ts and program.ts). */
function checkCoreInsn(env: Env, insn: SafetyInsn): void {
  const cv = insn.coreVal;
  if (!cv) return;
  if (!cv.resolves) env.fail(cv.why);
  const cls = opClass(insn.code);
  const aluK = (cls === CLASS.ALU || cls === CLASS.ALU64) && srcBit(insn.code) !== SRC_X && aluOp(insn.code) !== ALU.END && aluOp(insn.code) !== ALU.NEG;
  const mem = cls === CLASS.LDX || cls === CLASS.ST || cls === CLASS.STX;
  // Loads and stores carry the patched offset already (program.ts); other kinds are not modelled there.
  if (mem && cv.memOff === undefined) env.fail(cv.why || 'CO-RE relocation of this load or store is not modelled');
  if (!aluK && !mem && insn.code !== LD_IMM64) env.fail('CO-RE relocation on this instruction is not modelled');
}

export class Checker implements Env {
  readonly stats: CheckStats = { steps: 0, states: 0, pruned: 0 };
  private idGen = 0;
  private explored = new Map<number, Checkpoint[]>();
  private prunePoint: Uint8Array;
  private loopHead: Uint8Array;
  readonly fnAt: Int32Array; // instruction -> function index
  /** Deepest stack use (bytes) seen per function, and call edges seen, for the combined-depth check. */
  readonly depth: number[];
  readonly calls = new Set<string>();
  private pc = 0;
  private readonly maxSteps: number;
  private readonly maxPending: number;
  private readonly useLiveness: boolean;
  private readonly gap: number;
  private readonly usePrecision: boolean;
  private readonly precision: PrecisionTracker;
  /** The current path's trail and last checkpoint (for precision marking during `step`). */
  private trail: number[] | null = null;
  private cp: Checkpoint | null = null;
  private note = 0;
  /** Functions whose code may change packet data (transitively). */
  private changesPktCache: boolean[] | null = null;

  readonly ctx: ProgCtx;

  constructor(readonly prog: SafetyProgram, opts: CheckOptions = {}) {
    this.ctx = progCtx(prog.progType, prog.attach, prog.structOps);
    this.maxSteps = opts.maxSteps ?? 250_000;
    this.maxPending = opts.maxPending ?? 8192;
    const n = prog.insns.length;
    this.prunePoint = new Uint8Array(n);
    this.loopHead = new Uint8Array(n);
    let fnAt = FN_AT_CACHE.get(prog);
    if (!fnAt) {
      fnAt = new Int32Array(n).fill(-1);
      prog.funcs.forEach((f, k) => { for (let i = f.start; i < f.end; i++) fnAt![i] = k; });
      FN_AT_CACHE.set(prog, fnAt);
    }
    this.fnAt = fnAt;
    this.depth = prog.funcs.map(() => 0);
    this.useLiveness = opts.liveness ?? true;
    this.gap = opts.checkpointGap ?? 0;
    this.usePrecision = opts.precision ?? true;
    this.precision = new PrecisionTracker(prog, fnAt);
  }

  private liveCache: Uint16Array | null = null;
  private get live(): Uint16Array {
    if (this.liveCache) return this.liveCache;
    let l = LIVE_CACHE.get(this.prog);
    if (!l) { l = liveness(this.prog); LIVE_CACHE.set(this.prog, l); }
    return (this.liveCache = l);
  }

  /** Forgets registers no path from here reads (in place). */
  private forgetDead(st: State, pc: number): void {
    const n = st.frames.length;
    for (let f = 0; f < n; f++) {
      const fr = st.frames[f]!;
      const callee = f === n - 1 ? null : st.frames[f + 1]!;
      // A caller resumes after the call (R0-R5 rewritten), or at a callback's helper call again (all kept).
      const mask = !callee ? this.live[pc]! : callee.cb ? this.live[callee.callsite]! : this.live[callee.callsite + 1]! & ~0b111111;
      const regs = fr.regs;
      for (let r = 0; r < 10; r++) if (!(mask & (1 << r)) && regs[r] !== NOT_INIT) regs[r] = NOT_INIT;
    }
  }

  // ---- Env: what the rules report to ----

  fail(reason: string): never {
    throw new Unsafe(reason, this.pc);
  }

  markPrecise(st: State, ...regs: number[]): void {
    if (this.usePrecision) this.precision.markRegs(st, regs, this.trail, this.cp);
  }

  markStackRead(frame: number, slot: number): void {
    this.precision.markStackRead(frame, slot, this.trail, this.cp);
  }

  noteSlot(frame: number, slot: number): void {
    this.note = slotNote(frame, slot);
  }

  noteCallbackExit(): void {
    this.note = NOTE_CB_EXIT;
  }

  noteDepth(st: State, frameNo: number, o: number): void {
    const fn = st.frames[frameNo]!.fn;
    if (-o > this.depth[fn]!) this.depth[fn] = -o;
  }

  newId(): number {
    return ++this.idGen;
  }

  noteCall(caller: number, callee: number): void {
    this.calls.add(`${caller}>${callee}`);
  }

  changesPkt(fn: number): boolean {
    return (this.changesPktCache ??= functionsChangingPkt(this.prog, this.fnAt))[fn] ?? false;
  }

  // ---- static checks (check_cfg, check_subprogs) ----

  /** Structural checks; throws Unsafe. */
  checkCfg(): void {
    let cfg = CFG_CACHE.get(this.prog);
    if (!cfg) {
      try {
        cfg = checkCfg(this.prog, this.fnAt);
      } catch (e) {
        if (e instanceof Unsafe) CFG_CACHE.set(this.prog, e);
        throw e;
      }
      CFG_CACHE.set(this.prog, cfg);
    }
    if (cfg instanceof Unsafe) throw cfg;
    this.prunePoint = cfg.prunePoint; // shared, read-only
    this.loopHead = cfg.loopHead;
  }

  // ---- entry states ----

  /** State at the entry of function `fn` when the kernel verifies it on its own (main or global). */
  entryState(fn: number): State {
    const frame = newFrame(fn, -1, 0);
    const f = this.prog.funcs[fn]!;
    if (fn === 0 || !f.global) frame.regs[1] = ptrReg(RT.CTX);
    else {
      f.global.forEach((a, k) => {
        if (k >= 5) return;
        frame.regs[k + 1] = this.globalArgReg(a);
      });
    }
    return { frames: [frame], refs: [] };
  }

  private globalArgReg(a: GlobalArg): Reg {
    switch (a.kind) {
      case 'scalar': return UNKNOWN_REG;
      case 'ctx': return ptrReg(RT.CTX);
      case 'mem': return ptrReg(RT.MEM, { range: a.size, nul: a.nullable, id: ++this.idGen });
      case 'unsupported': throw new Unsafe(`global function argument: ${a.why}`, null);
    }
  }

  // ---- exploration ----

  /** Explores every path from `start` at instruction `pc`; throws Unsafe on the first violation. */
  explore(start: State, pc: number, stopAt?: (pc: number, st: State) => boolean): void {
    const pending: Pending[] = [{ state: start, pc, cp: null }];
    const finish = (cp: Checkpoint | null) => {
      while (cp) {
        cp.branches--;
        if (cp.branches > 0) return;
        cp.done = true;
        cp = cp.parent;
      }
    };
    while (pending.length) {
      const path = pending.pop()!;
      let { state, pc: at, cp } = path;
      let since = path.since ?? 0;
      let trail: number[] | null = path.trail === undefined ? [] : path.trail;
      for (;;) {
        since++;
        this.pc = at;
        if (++this.stats.steps > this.maxSteps) this.fail(`program is too complex (more than ${this.maxSteps} instructions processed)`);
        if (at < 0 || at >= this.prog.insns.length) this.fail('fell off the end of the program');
        if (stopAt && stopAt(at, state)) { finish(cp); break; }
        if (this.prunePoint[at]) {
          if (this.useLiveness) this.forgetDead(state, at);
          const list = this.explored.get(at);
          let pruned = false;
          if (list) {
            for (const c of list) {
              if (c.done && subsumes(c.state, state, this.usePrecision ? c.prec : null)) {
                // The pruned path relies on what the old state's paths relied on (propagate_precision).
                if (this.usePrecision) this.precision.propagate(c, state, trail, cp);
                pruned = true;
                break;
              }
            }
          }
          if (!pruned && this.loopHead[at] && isLoopCall(this.prog.insns[at]!)) {
            // Another call of a callback: stop when an earlier call on this path covers it exactly (the
            // loop is at a fixpoint; that state's exploration, still in progress, covers this one).
            for (let c = cp; c; c = c.parent) {
              if (c.pc === at && subsumes(c.state, state, null)) {
                markExact(cp); // everything on the path up to here mattered for the cut
                pruned = true;
                break;
              }
            }
          }
          if (pruned) { this.stats.pruned++; finish(cp); break; }
          const l = list ?? [];
          if (!list) this.explored.set(at, l);
          // Optionally (checkpointGap, as the kernel does) store a new state only after some work since
          // the last one on this path, and always at loop heads.
          if (l.length < MAX_STATES_PER_INSN && (since >= this.gap || this.loopHead[at])) {
            since = 0;
            const c: Checkpoint = { pc: at, state: cloneState(state), parent: cp, branches: 1, done: false, trail, prec: newPrecision(state) };
            l.push(c);
            this.stats.states++;
            cp = c;
            trail = [];
          }
        }
        this.trail = trail;
        this.cp = cp;
        this.note = 0;
        const r = this.step(state, at);
        if (trail) {
          if (trail.length >= MAX_TRAIL) trail = null;
          else trail.push(at * TRAIL_PC + this.note);
        }
        if ('next' in r) { at = r.next; continue; }
        if ('end' in r) { finish(cp); break; }
        const [a, fb] = r.fork;
        const b: Pending = { state: fb.state, pc: fb.pc, cb: fb.cb, cp, since, trail: trail ? trail.slice() : null };
        if (b.cb && b.trail) b.trail[b.trail.length - 1] = at * TRAIL_PC + NOTE_CB_CALL;
        if (cp) cp.branches++;
        pending.push(b);
        if (pending.length > this.maxPending) this.fail(`the sequence of ${pending.length} jumps is too complex`);
        state = a.state;
        at = a.pc;
      }
    }
    this.trail = null;
    this.cp = null;
  }

  // ---- one instruction ----

  step(st: State, pc: number): Step {
    this.pc = pc;
    const insn = this.prog.insns[pc]!;
    const cls = opClass(insn.code);
    if (insn.dst > 10 || insn.src > 10) {
      if (!(insn.code === LD_IMM64)) this.fail(`R${Math.max(insn.dst, insn.src)} is invalid`);
    }
    checkCoreInsn(this, insn);
    switch (cls) {
      case CLASS.ALU:
      case CLASS.ALU64:
        alu(this, st, insn);
        return { next: pc + 1 };
      case CLASS.LDX:
        ldx(this, st, insn);
        return { next: pc + 1 };
      case CLASS.ST:
      case CLASS.STX:
        store(this, st, insn);
        return { next: pc + 1 };
      case CLASS.LD:
        if (insn.code === LD_IMM64) ldImm64(this, st, insn);
        else ldAbs(this, st, insn);
        return { next: pc + 1 };
      case CLASS.JMP:
      case CLASS.JMP32: {
        const op = insn.code & 0xf0;
        if (op === JMP.CALL) return call(this, st, insn, pc);
        if (op === JMP.EXIT) return exitInsn(this, st, insn, pc);
        return jmp(this, st, insn, pc);
      }
    }
    this.fail(`unknown opcode 0x${insn.code.toString(16)}`);
  }

  // ---- whole-program checks ----

  /** check_max_stack_depth over the call edges seen. */
  checkStackDepth(): void {
    const round = (d: number) => Math.ceil(Math.max(d, 1) / 32) * 32;
    const edges = new Map<number, number[]>();
    for (const e of this.calls) {
      const [a, b] = e.split('>').map(Number) as [number, number];
      if (!this.prog.funcs[b]!.global) (edges.get(a) ?? edges.set(a, []).get(a)!).push(b);
    }
    const walk = (fn: number, acc: number, seen: Set<number>): void => {
      const total = acc + round(this.depth[fn]!);
      if (total > 512) throw new Unsafe(`combined stack size of calls is ${total}. Too large`, null);
      for (const c of edges.get(fn) ?? []) if (!seen.has(c)) walk(c, total, new Set([...seen, c]));
    };
    this.prog.funcs.forEach((f, k) => { if (k === 0 || f.global) walk(k, 0, new Set([k])); });
  }

  /** Stack depth check including the depths and call edges of another run of the same functions. */
  checkStackDepthWith(base: { depth: number[]; calls: Set<string> }): void {
    base.depth.forEach((d, k) => { if (d > (this.depth[k] ?? 0)) this.depth[k] = d; });
    for (const e of base.calls) this.calls.add(e);
    this.checkStackDepth();
  }

  /** Ids of registers in states from another run must not be reused by this one. */
  get lastId(): number {
    return this.idGen;
  }
  startIdsAfter(n: number): void {
    if (n > this.idGen) this.idGen = n;
  }

  /** Completed states of another run, valid for this program at the given instructions. */
  exploredStates(): Map<number, State[]> {
    const m = new Map<number, State[]>();
    for (const [pc, list] of this.explored) m.set(pc, list.filter((c) => c.done).map((c) => c.state));
    return m;
  }
  seedExplored(states: Map<number, State[]>): void {
    const exact: Precision = { exact: true, regs: [], slots: [], read: [] };
    for (const [pc, list] of states) {
      if (!this.prunePoint[pc]) continue;
      const l = this.explored.get(pc) ?? [];
      for (const st of list) l.push({ pc, state: st, parent: null, branches: 0, done: true, trail: null, prec: exact });
      this.explored.set(pc, l);
    }
  }

  /** Functions the kernel verifies on their own: the entry and every reachable global function. */
  verificationRoots(): number[] {
    const roots = [0];
    this.prog.funcs.forEach((f, k) => { if (k > 0 && f.global) roots.push(k); });
    return roots;
  }
}

export { sync, truncate, U32, ZERO };
export type { Frame };
