// The checker: a path-sensitive abstract interpreter over a linked program that follows the rules
// of the Linux 6.x verifier (kernel/bpf/verifier.c). It explores paths depth-first like the kernel,
// prunes a path when an already fully explored state at the same instruction covers it, and stops
// with "too complex" past a budget. Every uncertainty is resolved towards "unsafe".
import {
  ALU, ATOMIC, CALL_HELPER, CALL_KFUNC, CALL_PSEUDO, CLASS, JMP, LD_IMM64, MODE, SIZE, SRC_X,
  aluOp, invalidReason, jmpOp, memMode, memSize, opClass, srcBit,
} from '../isa/index.js';
import {
  S64_MIN, U32, UNKNOWN, ZERO, alu32, alu64, branchTaken, constValue, isConst, negate, refine, scalarConst, scalarURange, sync,
  truncate, unknownOfSize, zext32, tnumIsAligned, tnumAdd, tnumConst, type AluOp, type CmpOp, type Scalar,
} from './scalar.js';
import {
  NOT_INIT, RT, RT_NAME, SB, UNKNOWN_REG, ZERO_REG, cloneState, cur, isPtr, mapAllRegs, newFrame, ptrReg,
  scalarReg, slotMarked, slotRead, subsumes, type Frame, type Precision, type Reg, type Slot, type State,
} from './state.js';
import { ctxAccess, ldAbsAllowed, pktAccessAllowed, returnRange, supportedProgType } from './ctx.js';
import { helperFor, mapAllowedFor, type ArgKind } from './helpers.js';
import { MAP_TYPE, type GlobalArg, type MapInfo, type SafetyInsn, type SafetyProgram } from './program.js';
import { liveness } from './liveness.js';

export class Unsafe extends Error {
  constructor(readonly reason: string, readonly insn: number | null) {
    super(insn === null ? reason : `insn ${insn}: ${reason}`);
  }
}

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

const SIZE_BYTES = [4, 2, 1, 8];
const sizeBytes = (code: number): number => SIZE_BYTES[(code >> 3) & 3]!;
const BPF_MAX_VAR_OFF = 1 << 29;
const BPF_MAX_VAR_SIZ = 1n << 29n;
const MAX_PACKET_OFF = 0xffff;
const MAX_CALL_FRAMES = 8;
const MAX_STATES_PER_INSN = 64;
const HELPER_LOOP = 181; // bpf_loop(nr_loops, callback_fn, callback_ctx, flags)
const HELPER_FOR_EACH = 164; // bpf_for_each_map_elem(map, callback_fn, callback_ctx, flags)
/** Helpers that call a callback (maybe many times); they come back to the helper call after each. */
const isCallbackHelper = (imm: number): boolean => imm === HELPER_LOOP || imm === HELPER_FOR_EACH;
const isLoopCall = (i: SafetyInsn): boolean => i.code === (CLASS.JMP | JMP.CALL) && i.src === CALL_HELPER && isCallbackHelper(i.imm);
/** Maps with a for-each iterator (map_for_each_callback). */
const FOR_EACH_MAPS: number[] = [MAP_TYPE.HASH, MAP_TYPE.PERCPU_HASH, MAP_TYPE.LRU_HASH, MAP_TYPE.LRU_PERCPU_HASH, MAP_TYPE.ARRAY, MAP_TYPE.PERCPU_ARRAY];
/** A read-only region the size of a map's key (PTR_TO_MAP_KEY), one per map. */
const KEY_REGIONS = new WeakMap<MapInfo, MapInfo>();
const keyRegion = (m: MapInfo): MapInfo => {
  let k = KEY_REGIONS.get(m);
  if (!k) { k = { uid: -m.uid, name: `key of ${m.name}`, type: MAP_TYPE.ARRAY, keySize: 4, valueSize: m.keySize, maxEntries: 1, inner: null, rdonly: true }; KEY_REGIONS.set(m, k); }
  return k;
};
/** Trail notes of callback frames: the helper call that entered one, and the callback's exit. */
const NOTE_CB_CALL = 1023, NOTE_CB_EXIT = 1022;

const ALU_OPS: Record<number, AluOp> = {
  [ALU.ADD]: 'add', [ALU.SUB]: 'sub', [ALU.MUL]: 'mul', [ALU.AND]: 'and', [ALU.OR]: 'or', [ALU.XOR]: 'xor',
  [ALU.LSH]: 'lsh', [ALU.RSH]: 'rsh', [ALU.ARSH]: 'arsh',
};
const CMP_OPS: Record<number, CmpOp> = {
  [JMP.JEQ]: 'eq', [JMP.JNE]: 'ne', [JMP.JGT]: 'gt', [JMP.JGE]: 'ge', [JMP.JSET]: 'set', [JMP.JSGT]: 'sgt',
  [JMP.JSGE]: 'sge', [JMP.JLT]: 'lt', [JMP.JLE]: 'le', [JMP.JSLT]: 'slt', [JMP.JSLE]: 'sle',
};

/** Per-program results of the static passes (programs are immutable once linked). */
const LIVE_CACHE = new WeakMap<SafetyProgram, Uint16Array>();
const FN_AT_CACHE = new WeakMap<SafetyProgram, Int32Array>();
const CFG_CACHE = new WeakMap<SafetyProgram, { prunePoint: Uint8Array; loopHead: Uint8Array } | Unsafe>();

interface Checkpoint {
  pc: number;
  state: State;
  parent: Checkpoint | null;
  branches: number;
  done: boolean;
  /** Instructions the path processed from `parent` to this state (see Trail); null if not kept. */
  trail: number[] | null;
  prec: Precision;
}

/**
 * Trail entries: `pc * TRAIL_PC + note` for each processed instruction, where note is 0 or, for
 * an access to a stack slot, 1 + frame * 64 + slot (the kernel's jump history with stack flags).
 */
const TRAIL_PC = 1024;
/** Longer trails are dropped: the states before them then count as exact (all scalars precise). */
const MAX_TRAIL = 4096;

interface Path {
  state: State;
  pc: number;
  cp: Checkpoint | null;
  since?: number; // instructions processed since the path's last stored state
  trail?: number[] | null;
  cb?: boolean; // the path enters a callback at the helper call it forked at
}

const newPrecision = (st: State): Precision => ({
  exact: false, regs: new Array<number>(st.frames.length).fill(0), slots: new Array<number>(2 * st.frames.length).fill(0),
  read: new Array<number>(2 * st.frames.length).fill(0),
});

/** Registers and stack slots, per frame, whose values are being traced back (the kernel's backtrack_state). */
interface Backtrack { regs: number[]; slots: number[] }
function btEmpty(bt: Backtrack): boolean {
  for (let i = 0; i < bt.regs.length; i++) if (bt.regs[i] !== 0) return false;
  for (let i = 0; i < bt.slots.length; i++) if (bt.slots[i] !== 0) return false;
  return true;
}

/** Outcome of one instruction on one path. */
type Step = { next: number } | { fork: [Path, Path] } | { end: true };

/** Exact result of an ALU operation on two constants (the kernel's tnums give the same). */
function constAlu(op: AluOp, x: bigint, y: bigint, is64: boolean): Scalar {
  const w = is64 ? 64 : 32;
  const m = is64 ? (1n << 64n) - 1n : 0xffffffffn;
  const a = x & m, b = y & m;
  const k = BigInt(Number(b & BigInt(w - 1)));
  let r: bigint;
  switch (op) {
    case 'add': r = a + b; break;
    case 'sub': r = a - b; break;
    case 'mul': r = a * b; break;
    case 'and': r = a & b; break;
    case 'or': r = a | b; break;
    case 'xor': r = a ^ b; break;
    case 'lsh': if (b >= BigInt(w)) return is64 ? UNKNOWN : zext32(UNKNOWN); r = a << k; break;
    case 'rsh': if (b >= BigInt(w)) return is64 ? UNKNOWN : zext32(UNKNOWN); r = a >> k; break;
    case 'arsh': if (b >= BigInt(w)) return is64 ? UNKNOWN : zext32(UNKNOWN); r = BigInt.asUintN(w, BigInt.asIntN(w, a) >> k); break;
  }
  return scalarConst(r & m);
}

export class Checker {
  readonly stats: CheckStats = { steps: 0, states: 0, pruned: 0 };
  private idGen = 0;
  private explored = new Map<number, Checkpoint[]>();
  private prunePoint: Uint8Array;
  private loopHead: Uint8Array;
  private fnAt: Int32Array; // instruction -> function index
  /** Deepest stack use (bytes) seen per function, and call edges seen, for the combined-depth check. */
  readonly depth: number[];
  readonly calls = new Set<string>();
  private pc = 0;
  private readonly maxSteps: number;
  private readonly maxPending: number;
  /** Functions whose code may change packet data (transitively). */
  private changesPktCache: boolean[] | null = null;
  private get changesPkt(): boolean[] { return (this.changesPktCache ??= this.computeChangesPkt()); }

  constructor(readonly prog: SafetyProgram, opts: CheckOptions = {}) {
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
  }

  private readonly useLiveness: boolean;
  private readonly gap: number;
  private readonly usePrecision: boolean;
  /** The current path's trail and last checkpoint (for precision marking during `step`). */
  private trail: number[] | null = null;
  private cp: Checkpoint | null = null;
  private note = 0;
  private zeroStore = false;

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

  private fail(reason: string): never {
    throw new Unsafe(reason, this.pc);
  }

  // ---- static checks (check_cfg, check_subprogs) ----

  /** Structural checks; throws Unsafe. */
  checkCfg(): void {
    const cached = CFG_CACHE.get(this.prog);
    if (cached instanceof Unsafe) throw cached;
    if (cached) { this.prunePoint = cached.prunePoint; this.loopHead = cached.loopHead; return; } // shared, read-only
    try {
      this.checkCfgUncached();
    } catch (e) {
      if (e instanceof Unsafe) CFG_CACHE.set(this.prog, e);
      throw e;
    }
    CFG_CACHE.set(this.prog, { prunePoint: this.prunePoint, loopHead: this.loopHead });
  }

  private checkCfgUncached(): void {
    const { insns, funcs } = this.prog;
    for (const p of this.prog.problems) throw new Unsafe(p.why, p.insn);
    if (!supportedProgType(this.prog.progType)) throw new Unsafe(`program type ${this.prog.progType} is not modelled`, null);
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
          if (insn.src === CALL_PSEUDO) { visit(insn.tgt); this.prunePoint[insn.tgt] = 1; }
          // Callback-calling helpers are loop heads: every call of the callback comes back to them.
          if (insn.src === CALL_HELPER && isCallbackHelper(insn.imm)) { this.prunePoint[i] = 1; this.loopHead[i] = 1; }
          visit(i + 1);
          if (i + 1 < insns.length) this.prunePoint[i + 1] = 1;
          continue;
        }
        if (insn.tgt >= 0 && insn.tgt <= i && op !== JMP.CALL) this.loopHead[insn.tgt] = 1;
        if (op === JMP.JA) { visit(insn.tgt); this.prunePoint[insn.tgt] = 1; continue; }
        visit(insn.tgt);
        visit(i + 1);
        this.prunePoint[insn.tgt] = 1;
        this.prunePoint[i + 1] = 1;
        continue;
      }
      if (insn.code === LD_IMM64 && insn.ld?.kind === 'func') { visit(insn.ld.start); this.prunePoint[insn.ld.start] = 1; }
      visit(i + 1);
    }
    for (let i = 0; i < insns.length; i++) if (!seen[i]) {
      // Functions not reached through calls are not part of the program the kernel sees.
      const f = this.prog.funcs[this.fnAt[i]!];
      if (f && f.start !== 0 && !seen[f.start]) continue;
      throw new Unsafe(`unreachable insn ${i}`, i);
    }
  }

  private computeChangesPkt(): boolean[] {
    const { insns, funcs } = this.prog;
    const own = funcs.map((f) => {
      for (let i = f.start; i < f.end; i++) {
        const insn = insns[i]!;
        if (insn.code === (CLASS.JMP | JMP.CALL) && insn.src === CALL_HELPER) {
          const h = helperFor(insn.imm, this.prog.progType);
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
          if (insn.code === (CLASS.JMP | JMP.CALL) && insn.src === CALL_PSEUDO && own[this.fnAt[insn.tgt] ?? -1]) { own[k] = true; changed = true; return; }
        }
      });
    }
    return own;
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
    const pending: Path[] = [{ state: start, pc, cp: null }];
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
                if (this.usePrecision) this.propagatePrecision(c, state, trail, cp);
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
                Checker.markExact(cp); // everything on the path up to here mattered for the cut
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
        const [a, b] = r.fork;
        a.cp = cp;
        b.cp = cp;
        b.since = since;
        b.trail = trail ? trail.slice() : null;
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

  // ---- precision tracking (mark_chain_precision, backtrack_insn, propagate_precision) ----

  /** The values of registers `regs` of the current frame decide something: mark them precise back along the path. */
  private markPrecise(st: State, ...regs: number[]): void {
    if (!this.usePrecision) return;
    const n = st.frames.length;
    const bt: Backtrack = { regs: new Array<number>(n).fill(0), slots: new Array<number>(2 * n).fill(0) };
    for (const r of regs) if (r < 10) bt.regs[n - 1]! |= 1 << r;
    this.backtrack(bt, n - 1, this.trail, this.cp);
  }

  /** A path pruned against `old` relies on the scalars `old` relied on: mark them along the path. */
  private propagatePrecision(old: Checkpoint, cs: State, trail: number[] | null, cp: Checkpoint | null): void {
    const n = cs.frames.length;
    const bt: Backtrack = { regs: new Array<number>(n).fill(0), slots: new Array<number>(2 * n).fill(0) };
    const p = old.prec;
    old.state.frames.forEach((fr, f) => {
      for (let r = 0; r < 10; r++) {
        const reg = fr.regs[r]!;
        if (reg.t !== RT.SCALAR) continue;
        if (p.exact || (p.regs[f]! & (1 << r)) || (reg.id && p.ids?.has(reg.id))) bt.regs[f]! |= 1 << r;
      }
      fr.stack.forEach((sl, k) => {
        if (!sl?.spill || sl.spill.t !== RT.SCALAR) return;
        if (p.exact || slotMarked(p, f, k) || (sl.spill.id && p.ids?.has(sl.spill.id))) bt.slots[2 * f + (k >> 5)]! |= 1 << (k & 31);
      });
    });
    if (!btEmpty(bt)) this.backtrack(bt, n - 1, trail, cp);
    // ... and read what its paths read (propagate_liveness).
    old.state.frames.forEach((fr, f) => {
      for (let k = 0; k < fr.stack.length; k++) if (fr.stack[k] && (p.exact || slotRead(p, f, k))) this.markStackRead(f, k, trail, cp);
    });
  }

  /** Stack slot `k` of frame `f` is read: every stored state since its last full write depends on it (mark_reg_read). */
  private markStackRead(f: number, k: number, trail: number[] | null = this.trail, cp: Checkpoint | null = this.cp): void {
    const insns = this.prog.insns;
    const note = 1 + f * 64 + k;
    const w = k >> 5, bit = 1 << (k & 31);
    for (;;) {
      if (!trail) { Checker.markExact(cp); return; }
      for (let i = trail.length - 1; i >= 0; i--) {
        const e = trail[i]!;
        if (e % TRAIL_PC !== note) continue;
        const insn = insns[Math.floor(e / TRAIL_PC)]!;
        const cls = opClass(insn.code);
        // A full 8-byte store (not an atomic) hides the older contents.
        if ((cls === CLASS.ST || (cls === CLASS.STX && memMode(insn.code) === MODE.MEM)) && sizeBytes(insn.code) === 8) return;
      }
      if (!cp) return;
      const p = cp.prec;
      if (p.exact || f >= cp.state.frames.length || p.read[2 * f + w]! & bit) return;
      p.read[2 * f + w]! |= bit;
      trail = cp.trail;
      cp = cp.parent;
    }
  }

  private static markExact(cp: Checkpoint | null): void {
    for (let c = cp; c && !c.prec.exact; c = c.parent) c.prec.exact = true;
  }

  /** Walks the path backwards from its current point, marking what `bt` depends on in each stored state. */
  private backtrack(bt: Backtrack, depth: number, trail: number[] | null, cp: Checkpoint | null): void {
    for (;;) {
      if (!trail) { Checker.markExact(cp); return; }
      for (let i = trail.length - 1; i >= 0; i--) {
        depth = this.backtrackInsn(bt, depth, trail[i]!);
        if (depth < 0) { Checker.markExact(cp); return; }
        if (btEmpty(bt)) return;
      }
      if (!cp) return;
      const p = cp.prec;
      if (p.exact) return;
      const frames = cp.state.frames;
      if (frames.length !== depth + 1) { Checker.markExact(cp); return; }
      for (let f = 0; f <= depth; f++) {
        let m = bt.regs[f]!;
        for (let r = 0; m && r < 11; r++) {
          if (!(m & (1 << r))) continue;
          // Already precise: its history was marked when it became so. Not a scalar: compared exactly anyway.
          if (frames[f]!.regs[r]!.t !== RT.SCALAR || p.regs[f]! & (1 << r)) m &= ~(1 << r);
          else p.regs[f]! |= 1 << r;
        }
        bt.regs[f] = m;
        for (let h = 0; h < 2; h++) {
          let sm = bt.slots[2 * f + h]!;
          for (let b = 0; sm && b < 32; b++) {
            if (!((sm >>> b) & 1)) continue;
            const sl = frames[f]!.stack[h * 32 + b];
            if (!sl?.spill || sl.spill.t !== RT.SCALAR || (p.slots[2 * f + h]! >>> b) & 1) sm &= ~(1 << b);
            else p.slots[2 * f + h]! |= 1 << b;
          }
          bt.slots[2 * f + h] = sm;
        }
      }
      if (btEmpty(bt)) return;
      trail = cp.trail;
      cp = cp.parent;
    }
  }

  /** backtrack_insn: what the values in `bt` after trail entry `e` depend on before it. Returns the frame depth before it, -1 if lost. */
  private backtrackInsn(bt: Backtrack, depth: number, e: number): number {
    const pc = Math.floor(e / TRAIL_PC);
    const note = e - pc * TRAIL_PC;
    const insn = this.prog.insns[pc]!;
    const code = insn.code;
    const cls = code & 7;
    const R = bt.regs;
    let m = R[depth]!; // registers of the current frame
    const dbit = insn.dst < 10 ? 1 << insn.dst : 0;
    const sbit = insn.src < 10 ? 1 << insn.src : 0;
    switch (cls) {
      case CLASS.ALU:
      case CLASS.ALU64: {
        if (!(m & dbit)) return depth;
        const op = code & 0xf0;
        const x = (code & 8) !== 0;
        if (op === ALU.MOV) { m &= ~dbit; if (x) m |= sbit; }
        else if (op !== ALU.END && op !== ALU.NEG && x) m |= sbit;
        R[depth] = m;
        return depth;
      }
      case CLASS.LDX:
        if (!(m & dbit)) return depth;
        R[depth] = m & ~dbit;
        if (note) {
          const sf = (note - 1) >> 6, sk = (note - 1) & 63;
          if (sf < R.length) bt.slots[2 * sf + (sk >> 5)]! |= 1 << (sk & 31);
        }
        return depth;
      case CLASS.ST:
      case CLASS.STX: {
        if (!note) return depth;
        const sf = (note - 1) >> 6, sk = (note - 1) & 63;
        const wi = 2 * sf + (sk >> 5), bit = 1 << (sk & 31);
        const slotSet = sf < R.length && (bt.slots[wi]! & bit) !== 0;
        if (cls === CLASS.STX && memMode(code) === MODE.ATOMIC) {
          // Results of atomics are unknown values: nothing before them decides them.
          if (slotSet) bt.slots[wi]! &= ~bit;
          if (insn.imm === ATOMIC.CMPXCHG) R[depth] = m & ~1;
          else if (insn.imm & ATOMIC.FETCH) R[depth] = m & ~sbit;
          return depth;
        }
        if (!slotSet) return depth;
        bt.slots[wi]! &= ~bit;
        if (cls === CLASS.STX) R[depth] = m | sbit;
        return depth;
      }
      case CLASS.LD:
        R[depth] = code === LD_IMM64 ? m & ~dbit : m & ~0b111111;
        return depth;
      case CLASS.JMP:
      case CLASS.JMP32: {
        const op = code & 0xf0;
        if (op === JMP.EXIT && note === NOTE_CB_EXIT) {
          // A callback's exit: the caller's registers were untouched; going back, enter the callback.
          depth++;
          while (R.length <= depth) { R.push(0); bt.slots.push(0, 0); }
          R[depth] = 0;
          bt.slots[2 * depth] = 0;
          bt.slots[2 * depth + 1] = 0;
          return depth;
        }
        if (op === JMP.CALL && note === NOTE_CB_CALL) {
          // The helper call that entered a callback: the context (bpf_loop's R2, for_each's R4) was the
          // caller's R3; the other arguments are fresh values or pointers.
          R[depth] = 0;
          bt.slots[2 * depth] = 0;
          bt.slots[2 * depth + 1] = 0;
          depth--;
          if (depth < 0) return -1;
          if (m & (insn.imm === HELPER_FOR_EACH ? 16 : 4)) R[depth]! |= 8;
          return depth;
        }
        if (op === JMP.EXIT) {
          // Returned from a callee into this frame: going back, enter the callee.
          const r0 = m & 1;
          R[depth] = m & ~0b111111;
          depth++;
          while (R.length <= depth) { R.push(0); bt.slots.push(0, 0); }
          R[depth] = r0;
          bt.slots[2 * depth] = 0;
          bt.slots[2 * depth + 1] = 0;
          return depth;
        }
        if (op === JMP.CALL) {
          const fn = insn.src === CALL_PSEUDO ? this.fnAt[insn.tgt] ?? -1 : -1;
          if (fn >= 0 && !this.prog.funcs[fn]!.global) {
            // Back out of the callee's frame into the caller's: arguments were the caller's R1-R5.
            R[depth] = 0;
            bt.slots[2 * depth] = 0;
            bt.slots[2 * depth + 1] = 0;
            depth--;
            if (depth < 0) return -1;
            R[depth]! |= m & 0b111110;
          } else R[depth] = m & ~0b111111;
          return depth;
        }
        if (op === JMP.JA) return depth;
        if ((code & 8) !== 0 && m & (dbit | sbit)) R[depth] = m | dbit | sbit;
        return depth;
      }
    }
    return depth;
  }

  // ---- one instruction ----

  step(st: State, pc: number): Step {
    this.pc = pc;
    const insn = this.prog.insns[pc]!;
    const cls = opClass(insn.code);
    if (insn.dst > 10 || insn.src > 10) {
      if (!(insn.code === LD_IMM64)) this.fail(`R${Math.max(insn.dst, insn.src)} is invalid`);
    }
    if (insn.coreVal) {
      const cv = insn.coreVal;
      if (!cv.resolves) this.fail(cv.why);
      const aluK = (cls === CLASS.ALU || cls === CLASS.ALU64) && srcBit(insn.code) !== SRC_X && aluOp(insn.code) !== ALU.END && aluOp(insn.code) !== ALU.NEG;
      const mem = cls === CLASS.LDX || cls === CLASS.ST || cls === CLASS.STX;
      // Loads and stores carry the patched offset already (program.ts); other kinds are not modelled there.
      if (!aluK && insn.code !== LD_IMM64 && !(mem && cv.memOff !== undefined)) this.fail('CO-RE relocation on this instruction is not modelled');
    }
    switch (cls) {
      case CLASS.ALU:
      case CLASS.ALU64:
        this.alu(st, insn);
        return { next: pc + 1 };
      case CLASS.LDX:
        this.ldx(st, insn);
        return { next: pc + 1 };
      case CLASS.ST:
      case CLASS.STX:
        this.store(st, insn);
        return { next: pc + 1 };
      case CLASS.LD:
        if (insn.code === LD_IMM64) this.ldImm64(st, insn);
        else this.ldAbs(st, insn);
        return { next: pc + 1 };
      case CLASS.JMP:
      case CLASS.JMP32:
        return this.jmp(st, insn, pc);
    }
    this.fail(`unknown opcode 0x${insn.code.toString(16)}`);
  }

  private readReg(st: State, r: number): Reg {
    if (r > 10) this.fail(`R${r} is invalid`);
    const reg = cur(st).regs[r]!;
    if (reg.t === RT.NOT_INIT) this.fail(`R${r} !read_ok`);
    return reg;
  }

  private writeReg(st: State, r: number, v: Reg): void {
    if (r === 10) this.fail('frame pointer is read only');
    if (r > 10) this.fail(`R${r} is invalid`);
    cur(st).regs[r] = v;
  }

  // ---- ALU ----

  private alu(st: State, insn: SafetyInsn): void {
    const is64 = opClass(insn.code) === CLASS.ALU64;
    const op = aluOp(insn.code);
    const x = srcBit(insn.code) === SRC_X;
    // Reserved fields (check_alu_op).
    if (op === ALU.NEG) {
      if (x || insn.src !== 0 || insn.off !== 0 || insn.imm !== 0) this.fail('BPF_NEG uses reserved fields');
    } else if (op === ALU.END) {
      if (insn.off !== 0 || insn.src !== 0 || ![16, 32, 64].includes(insn.imm) || (is64 && x)) this.fail('BPF_END uses reserved fields');
    } else if (op === ALU.MOV) {
      if (x) {
        if (insn.imm !== 0 || !(is64 ? [0, 8, 16, 32] : [0, 8, 16]).includes(insn.off)) this.fail('BPF_MOV uses reserved fields');
      } else if (insn.src !== 0 || insn.off !== 0) this.fail('BPF_MOV uses reserved fields');
    } else if (op > ALU.END) {
      this.fail(`invalid BPF_ALU opcode ${op >> 4}`);
    } else {
      const divmod = op === ALU.DIV || op === ALU.MOD;
      if (x ? insn.imm !== 0 : insn.src !== 0) this.fail('BPF_ALU uses reserved fields');
      if (insn.off !== 0 && !(divmod && insn.off === 1)) this.fail('BPF_ALU uses reserved fields');
      const cv = insn.coreVal;
      if (divmod && !x && (cv ? cv.lo === 0n : insn.imm === 0)) this.fail('div by zero');
      if ((op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH) && !x &&
          (cv ? cv.hi >= (is64 ? 64n : 32n) : insn.imm < 0 || insn.imm >= (is64 ? 64 : 32))) {
        this.fail(`invalid shift ${insn.imm}`);
      }
    }
    const regs = cur(st).regs;
    if (op === ALU.MOV) {
      if (!x) {
        if (insn.coreVal) { this.writeReg(st, insn.dst, scalarReg(scalarURange(insn.coreVal.lo, insn.coreVal.hi))); return; }
        this.writeReg(st, insn.dst, scalarReg(is64 ? scalarConst(BigInt(insn.imm)) : scalarConst(BigInt(insn.imm >>> 0))));
        return;
      }
      const src = this.readReg(st, insn.src);
      if (insn.dst === 10) this.fail('frame pointer is read only');
      if (insn.off !== 0) {
        if (isPtr(src)) this.fail(`R${insn.src} sign-extension part of pointer`);
        this.writeReg(st, insn.dst, scalarReg(is64 ? UNKNOWN : zext32(UNKNOWN)));
        return;
      }
      if (!is64) {
        this.writeReg(st, insn.dst, scalarReg(isPtr(src) ? zext32(UNKNOWN) : zext32(src.s)));
        return;
      }
      if (src.t === RT.SCALAR && insn.src !== insn.dst) {
        let s = src;
        if (s.id === 0) {
          s = { ...s, id: ++this.idGen };
          regs[insn.src] = s;
        }
        this.writeReg(st, insn.dst, s);
        return;
      }
      this.writeReg(st, insn.dst, src);
      return;
    }
    const src = x && op !== ALU.END ? this.readReg(st, insn.src) : null;
    const dst = this.readReg(st, insn.dst);
    if (insn.dst === 10) this.fail('frame pointer is read only');
    if (isPtr(dst) || (src && isPtr(src))) {
      if (!is64) {
        // Privileged: a 32-bit subtraction involving a pointer yields an unknown scalar.
        if (op === ALU.SUB) { this.writeReg(st, insn.dst, UNKNOWN_REG); return; }
        this.fail(`R${insn.dst} 32-bit pointer arithmetic prohibited`);
      }
      // The scalar operand's value becomes part of the pointer: it must be precise.
      if (src && !isPtr(src)) this.markPrecise(st, insn.src);
      else if (src && !isPtr(dst)) this.markPrecise(st, insn.dst);
      this.writeReg(st, insn.dst, this.ptrAlu(insn, op, dst, src));
      return;
    }
    const a = dst.s;
    const b = src ? src.s : insn.coreVal ? scalarURange(insn.coreVal.lo, insn.coreVal.hi) : scalarConst(BigInt(insn.imm));
    const name = ALU_OPS[op];
    let r: Scalar;
    if (name && isConst(a) && isConst(b)) r = constAlu(name, a.t.v, b.t.v, is64);
    else if (name) r = is64 ? alu64(name, a, b) : alu32(name, a, b);
    else r = is64 ? UNKNOWN : zext32(UNKNOWN); // div, mod, neg, end: not tracked
    this.writeReg(st, insn.dst, scalarReg(r));
  }

  /** adjust_ptr_min_max_vals, 64-bit ADD/SUB of a pointer and a scalar. */
  private ptrAlu(insn: SafetyInsn, op: number, dst: Reg, src: Reg | null): Reg {
    const opName = op === ALU.ADD ? 'add' : op === ALU.SUB ? 'sub' : null;
    if (src && isPtr(dst) && isPtr(src)) {
      if (op === ALU.SUB) return UNKNOWN_REG; // privileged: pointer difference is an unknown scalar
      this.fail(`R${insn.dst} pointer ${RT_NAME[dst.t]} ${RT_NAME[src.t]} prohibited`);
    }
    if (!opName) this.fail(`R${insn.dst} pointer arithmetic with ALU op 0x${op.toString(16)} prohibited`);
    let ptr: Reg, off: Scalar;
    if (isPtr(dst)) {
      ptr = dst;
      off = src ? src.s : insn.coreVal ? scalarURange(insn.coreVal.lo, insn.coreVal.hi) : scalarConst(BigInt(insn.imm));
    } else {
      if (op === ALU.SUB) this.fail(`R${insn.dst} tried to subtract pointer from scalar`);
      ptr = src!;
      off = dst.s;
    }
    if (ptr.nul) this.fail(`R${insn.dst} pointer arithmetic on ${RT_NAME[ptr.t]}_or_null prohibited, null-check it first`);
    if (ptr.t === RT.MAP_PTR || ptr.t === RT.PKT_END || ptr.t === RT.FUNC) this.fail(`R${insn.dst} pointer arithmetic on ${RT_NAME[ptr.t]} prohibited`);
    const known = isConst(off);
    if (known) {
      const v = BigInt.asIntN(64, constValue(off));
      if (v >= BigInt(BPF_MAX_VAR_OFF) || v <= -BigInt(BPF_MAX_VAR_OFF)) this.fail(`math between ${RT_NAME[ptr.t]} pointer and ${v} is not allowed`);
      const noff = ptr.off + (opName === 'add' ? Number(v) : -Number(v));
      if (noff >= BPF_MAX_VAR_OFF || noff <= -BPF_MAX_VAR_OFF) this.fail(`${RT_NAME[ptr.t]} pointer offset ${noff} is not allowed`);
      return { ...ptr, off: noff };
    }
    if (off.smin === S64_MIN) this.fail(`math between ${RT_NAME[ptr.t]} pointer and register with unbounded min value is not allowed`);
    if (off.smin >= BigInt(BPF_MAX_VAR_OFF) || off.smin <= -BigInt(BPF_MAX_VAR_OFF)) this.fail(`value ${off.smin} makes ${RT_NAME[ptr.t]} pointer be out of bounds`);
    if (off.smax >= BigInt(BPF_MAX_VAR_OFF)) this.fail(`value ${off.smax} makes ${RT_NAME[ptr.t]} pointer be out of bounds`);
    const v = alu64(opName, ptr.s, off);
    if (v.smin <= -BigInt(BPF_MAX_VAR_OFF) || v.smax >= BigInt(BPF_MAX_VAR_OFF)) this.fail(`${RT_NAME[ptr.t]} pointer variable offset is out of bounds`);
    if (ptr.t === RT.PKT || ptr.t === RT.PKT_META) return { ...ptr, s: v, id: ++this.idGen, range: 0 };
    return { ...ptr, s: v };
  }

  // ---- memory ----

  private ldx(st: State, insn: SafetyInsn): void {
    const mode = memMode(insn.code);
    if ((mode !== MODE.MEM && mode !== MODE.MEMSX) || insn.imm !== 0) this.fail('BPF_LDX uses reserved fields');
    const ptr = this.readReg(st, insn.src);
    if (insn.dst === 10) this.fail('frame pointer is read only');
    const size = sizeBytes(insn.code);
    let v = this.access(st, insn.src, ptr, insn.off, size, 'read', null);
    if (mode === MODE.MEMSX) {
      if (isPtr(v)) this.fail('sign-extending load of a pointer');
      v = UNKNOWN_REG;
    }
    this.writeReg(st, insn.dst, v);
  }

  private store(st: State, insn: SafetyInsn): void {
    const cls = opClass(insn.code);
    const mode = memMode(insn.code);
    const size = sizeBytes(insn.code);
    if (cls === CLASS.ST) {
      if (mode !== MODE.MEM || insn.src !== 0) this.fail('BPF_ST uses reserved fields');
      const ptr = this.readReg(st, insn.dst);
      if (ptr.t === RT.CTX) this.fail(`BPF_ST stores into R${insn.dst} ctx is not allowed`);
      this.access(st, insn.dst, ptr, insn.off, size, 'write', scalarReg(scalarConst(BigInt(insn.imm))));
      return;
    }
    if (mode === MODE.ATOMIC) return this.atomic(st, insn, size);
    if (mode !== MODE.MEM || insn.imm !== 0) this.fail('BPF_STX uses reserved fields');
    const val = this.readReg(st, insn.src);
    const ptr = this.readReg(st, insn.dst);
    this.zeroStore = false;
    this.access(st, insn.dst, ptr, insn.off, size, 'write', val);
    // Stack bytes recorded as zero depend on the stored value being exactly zero.
    if (this.zeroStore) this.markPrecise(st, insn.src);
  }

  private atomic(st: State, insn: SafetyInsn, size: number): void {
    if (size !== 4 && size !== 8) this.fail('invalid atomic operand size');
    const ok = [ATOMIC.ADD, ATOMIC.OR, ATOMIC.AND, ATOMIC.XOR].flatMap((a) => [a, a | ATOMIC.FETCH]);
    ok.push(ATOMIC.XCHG, ATOMIC.CMPXCHG);
    if (!ok.includes(insn.imm)) this.fail(`BPF_ATOMIC uses invalid atomic opcode 0x${insn.imm.toString(16)}`);
    const val = this.readReg(st, insn.src);
    const ptr = this.readReg(st, insn.dst);
    if (insn.imm === ATOMIC.CMPXCHG) {
      const r0 = this.readReg(st, 0);
      if (isPtr(r0)) this.fail('R0 leaks addr into mem');
    }
    if (isPtr(val)) this.fail(`R${insn.src} leaks addr into mem`);
    if (ptr.t !== RT.STACK && ptr.t !== RT.MAP_VALUE && ptr.t !== RT.MEM) this.fail(`BPF_ATOMIC stores into R${insn.dst} ${RT_NAME[ptr.t]} is not allowed`);
    this.access(st, insn.dst, ptr, insn.off, size, 'read', null);
    this.access(st, insn.dst, ptr, insn.off, size, 'write', UNKNOWN_REG);
    const fetched = scalarReg(size === 8 ? UNKNOWN : zext32(UNKNOWN));
    if (insn.imm === ATOMIC.CMPXCHG) this.writeReg(st, 0, fetched);
    else if (insn.imm & ATOMIC.FETCH) this.writeReg(st, insn.src, fetched);
  }

  /** check_mem_access: returns the loaded value for reads. */
  private access(st: State, regno: number, ptr: Reg, off: number, size: number, kind: 'read' | 'write', val: Reg | null): Reg {
    const write = kind === 'write';
    if (write && val && isPtr(val) && ptr.t !== RT.STACK) this.fail(`R${regno} storing a pointer into ${RT_NAME[ptr.t]} is not modelled`);
    if (ptr.nul) this.fail(`R${regno} invalid mem access '${RT_NAME[ptr.t]}_or_null'`);
    switch (ptr.t) {
      case RT.STACK: return this.stackAccess(st, regno, ptr, off, size, write, val);
      case RT.CTX: {
        if (ptr.off !== 0) this.fail(`dereference of modified ctx ptr R${regno} off=${ptr.off} disallowed`);
        if (!isConst(ptr.s) || constValue(ptr.s) !== 0n) this.fail(`variable ctx access R${regno} disallowed`);
        const a = ctxAccess(this.prog.progType, off, size, write, this.prog.attach);
        if (!a.ok) this.fail(a.why);
        if (write) return NOT_INIT;
        switch (a.field) {
          case 'pkt': return ptrReg(RT.PKT);
          case 'pkt_meta': return ptrReg(RT.PKT_META);
          case 'pkt_end': return ptrReg(RT.PKT_END);
          default: return scalarReg(unknownOfSize(size));
        }
      }
      case RT.PKT:
      case RT.PKT_META: {
        if (!pktAccessAllowed(this.prog.progType, write)) this.fail(write ? `cannot write into packet` : `cannot read packet directly in ${this.prog.progType}`);
        this.pktRange(regno, ptr, off, size);
        return write ? NOT_INIT : scalarReg(unknownOfSize(size));
      }
      case RT.MAP_VALUE: {
        if (write && ptr.map!.rdonly) this.fail(`write into map forbidden, value_size=${ptr.map!.valueSize} off=${off} size=${size}`);
        this.regionRange(regno, ptr, off, size, ptr.map!.valueSize, 'map value');
        if (write) return NOT_INIT;
        // Loads at a known offset of a frozen read-only map give its contents (bpf_map_direct_read).
        const fz = ptr.map!.frozen;
        if (fz && isConst(ptr.s)) {
          const o = Number(BigInt.asIntN(64, constValue(ptr.s))) + ptr.off + off;
          if (o >= 0 && o + size <= fz.length) {
            let v = 0n;
            for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(fz[o + i]!);
            return scalarReg(scalarConst(v));
          }
        }
        return scalarReg(unknownOfSize(size));
      }
      case RT.MEM: {
        this.regionRange(regno, ptr, off, size, ptr.range, 'memory');
        return write ? NOT_INIT : scalarReg(unknownOfSize(size));
      }
      default:
        this.fail(`R${regno} invalid mem access '${RT_NAME[ptr.t]}'`);
    }
  }

  private pktRange(regno: number, ptr: Reg, off: number, size: number): void {
    if (ptr.s.smin < 0n) this.fail(`R${regno} min value is negative, either use unsigned index or do a if (index >=0) check.`);
    const o = off + ptr.off;
    if (o < 0 || size < 0 || o + size > ptr.range) this.fail(`invalid access to packet, off=${o} size=${size}, R${regno}(id=${ptr.id},off=${ptr.off},r=${ptr.range})`);
  }

  /** check_mem_region_access for map values and sized memory. */
  private regionRange(regno: number, ptr: Reg, off: number, size: number, memSize: number, what: string): void {
    const o = BigInt(off + ptr.off);
    const s = ptr.s;
    if (s.smin < 0n && (s.smin === S64_MIN || s.smin + o < 0n)) this.fail(`R${regno} min value is negative, either use unsigned index or do a if (index >=0) check.`);
    if (s.smin + o < 0n || s.smin + o + BigInt(size) > BigInt(memSize)) this.fail(`invalid access to ${what}, size=${memSize} off=${s.smin + o} size=${size}`);
    if (s.umax >= BigInt(BPF_MAX_VAR_OFF)) this.fail(`R${regno} unbounded memory access`);
    if (s.umax + o + BigInt(size) > BigInt(memSize)) this.fail(`invalid access to ${what}, size=${memSize} off=${s.umax + o} size=${size}`);
  }

  private stackOffset(regno: number, ptr: Reg, off: number, size: number, strictAlign: boolean): number {
    if (!isConst(ptr.s)) this.fail(`variable stack access R${regno} is not modelled`);
    const o = Number(BigInt.asIntN(64, constValue(ptr.s))) + ptr.off + off;
    if (strictAlign && !tnumIsAligned(tnumAdd(ptr.s.t, tnumConst(BigInt(ptr.off + off))), size)) this.fail(`misaligned stack access off ${o} size ${size}`);
    if (o < -512 || o + size > 0 || size < 0) this.fail(`invalid stack off=${o} size=${size}`);
    return o;
  }

  private noteDepth(st: State, frameNo: number, o: number): void {
    const fn = st.frames[frameNo]!.fn;
    if (-o > this.depth[fn]!) this.depth[fn] = -o;
  }

  private stackAccess(st: State, regno: number, ptr: Reg, off: number, size: number, write: boolean, val: Reg | null): Reg {
    const o = this.stackOffset(regno, ptr, off, size, true);
    const frame = st.frames[ptr.frame];
    if (!frame) this.fail('stack pointer into a returned frame');
    this.noteDepth(st, ptr.frame, o);
    const k = (-o - 1) >> 3;
    const at = (o + 512) & 7;
    this.note = 1 + ptr.frame * 64 + k;
    if (write) {
      if (val && isPtr(val) && size !== 8) this.fail('invalid size of register spill');
      if (size === 8 && val && (isPtr(val) || val.t === RT.SCALAR)) {
        if (val.t === RT.SCALAR && isConst(val.s) && constValue(val.s) === 0n && !val.id) {
          frame.stack[k] = { b: [2, 2, 2, 2, 2, 2, 2, 2], spill: null };
          this.zeroStore = true;
        }
        else frame.stack[k] = { b: [3, 3, 3, 3, 3, 3, 3, 3], spill: val };
        return NOT_INIT;
      }
      const old = frame.stack[k];
      const b = old ? old.b.map((x) => (x === SB.SPILL ? SB.MISC : x)) : [0, 0, 0, 0, 0, 0, 0, 0];
      const zero = !val || (val.t === RT.SCALAR && isConst(val.s) && constValue(val.s) === 0n);
      for (let i = at; i < at + size; i++) b[i] = zero && val ? SB.ZERO : SB.MISC;
      if (zero && val) this.zeroStore = true;
      frame.stack[k] = { b, spill: null };
      return NOT_INIT;
    }
    const sl = frame.stack[k];
    this.markStackRead(ptr.frame, k);
    if (!sl) this.fail(`invalid read from stack off ${o}+0 size ${size}`);
    let spills = 0, zeros = 0;
    for (let i = at; i < at + size; i++) {
      const b = sl.b[i]!;
      if (b === SB.INVALID) this.fail(`invalid read from stack off ${o}+${i - at} size ${size}`);
      if (b === SB.SPILL) spills++;
      if (b === SB.ZERO) zeros++;
    }
    if (spills && sl.spill && isPtr(sl.spill)) {
      if (size !== 8 || spills !== 8) this.fail('invalid size of register fill');
      return sl.spill;
    }
    if (spills === 8 && size === 8 && sl.spill) return sl.spill;
    if (zeros === size) return ZERO_REG;
    return scalarReg(unknownOfSize(size));
  }

  // ---- ld_imm64, ld_abs ----

  private ldImm64(st: State, insn: SafetyInsn): void {
    if (insn.dst > 10) this.fail(`R${insn.dst} is invalid`);
    const ld = insn.ld ?? { kind: 'const', value: 0n };
    if (insn.coreVal) { this.writeReg(st, insn.dst, scalarReg(scalarURange(insn.coreVal.lo, insn.coreVal.hi))); return; }
    switch (ld.kind) {
      case 'const': this.writeReg(st, insn.dst, scalarReg(scalarConst(ld.value))); return;
      case 'map': this.writeReg(st, insn.dst, ptrReg(RT.MAP_PTR, { map: ld.map })); return;
      case 'func': {
        const fn = this.fnAt[ld.start];
        if (fn === undefined || fn < 0 || this.prog.funcs[fn]!.start !== ld.start) this.fail('callback is not a function');
        this.writeReg(st, insn.dst, ptrReg(RT.FUNC, { off: ld.start }));
        return;
      }
      case 'value':
        if (ld.off < 0 || ld.off >= ld.map.valueSize) this.fail(`invalid access to map value pointer, value_size=${ld.map.valueSize} off=${ld.off}`);
        this.writeReg(st, insn.dst, ptrReg(RT.MAP_VALUE, { map: ld.map, off: ld.off }));
        return;
      case 'funcref': this.fail('callback function pointers are not modelled here');
      case 'unsupported': this.fail(ld.why);
    }
  }

  private ldAbs(st: State, insn: SafetyInsn): void {
    const mode = memMode(insn.code);
    if (mode !== MODE.ABS && mode !== MODE.IND) this.fail('unknown load');
    if (insn.dst !== 0 || insn.off !== 0 || memSize(insn.code) === SIZE.DW || (mode === MODE.ABS && insn.src !== 0)) this.fail('BPF_LD_[ABS|IND] uses reserved fields');
    if (!ldAbsAllowed(this.prog.progType)) this.fail('BPF_LD_[ABS|IND] instructions not allowed for this program type');
    if (st.frames.length > 1) this.fail('BPF_LD_[ABS|IND] in a subprogram is not modelled');
    if (st.refs.length) this.fail('BPF_LD_[ABS|IND] cannot be mixed with socket references');
    const r6 = this.readReg(st, 6);
    if (r6.t !== RT.CTX || r6.off !== 0) this.fail('at the time of BPF_LD_ABS|IND R6 != pointer to skb');
    if (mode === MODE.IND) {
      const s = this.readReg(st, insn.src);
      if (isPtr(s)) this.fail(`R${insn.src} leaks addr`);
    }
    const regs = cur(st).regs;
    for (let r = 1; r <= 5; r++) regs[r] = NOT_INIT;
    regs[0] = scalarReg(unknownOfSize(sizeBytes(insn.code)));
  }

  // ---- jumps ----

  private jmp(st: State, insn: SafetyInsn, pc: number): Step {
    const cls = opClass(insn.code);
    const op = jmpOp(insn.code);
    const x = srcBit(insn.code) === SRC_X;
    if (op === JMP.JA) {
      if (cls === CLASS.JMP && (insn.imm !== 0 || insn.src !== 0 || insn.dst !== 0 || x)) this.fail('BPF_JA uses reserved fields');
      if (cls === CLASS.JMP32 && (insn.off !== 0 || insn.src !== 0 || insn.dst !== 0 || x)) this.fail('BPF_JA uses reserved fields');
      return { next: insn.tgt };
    }
    if (op === JMP.CALL) {
      if (cls !== CLASS.JMP || x) this.fail('BPF_CALL uses reserved fields');
      if (insn.src === CALL_PSEUDO) return this.pseudoCall(st, insn, pc);
      if (insn.src === CALL_KFUNC) this.fail('kernel function calls are not modelled');
      if (insn.src === CALL_HELPER && isCallbackHelper(insn.imm) && insn.off === 0 && insn.dst === 0) return this.loopCall(st, insn, pc);
      if (insn.off !== 0 || insn.src !== CALL_HELPER || insn.dst !== 0) this.fail('BPF_CALL uses reserved fields');
      this.helperCall(st, insn);
      return { next: pc + 1 };
    }
    if (op === JMP.EXIT) {
      if (cls !== CLASS.JMP || x || insn.imm !== 0 || insn.src !== 0 || insn.dst !== 0 || insn.off !== 0) this.fail('BPF_EXIT uses reserved fields');
      return this.exit(st, pc);
    }
    const cmp = CMP_OPS[op];
    if (!cmp) this.fail(`invalid BPF_JMP/JMP32 opcode ${op >> 4}`);
    if (x ? insn.imm !== 0 : insn.src !== 0) this.fail('BPF_JMP/JMP32 uses reserved fields');
    const is32 = cls === CLASS.JMP32;
    const a = this.readReg(st, insn.dst);
    const b = x ? this.readReg(st, insn.src) : scalarReg(scalarConst(BigInt(insn.imm)));
    const taken = () => ({ state: st, pc: insn.tgt, cp: null });
    if (a.t === RT.SCALAR && b.t === RT.SCALAR) {
      const t = branchTaken(cmp, a.s, b.s, is32);
      // A decided branch depends on the operands' values (check_cond_jmp_op).
      if (t !== -1) { if (x) this.markPrecise(st, insn.dst, insn.src); else this.markPrecise(st, insn.dst); }
      if (t === 1) return { next: insn.tgt };
      if (t === 0) return { next: pc + 1 };
      const other = cloneState(st);
      this.refineBranch(other, insn, cmp, is32, x); // jump taken: cmp holds
      const neg = negate(cmp);
      if (neg) this.refineBranch(st, insn, neg, is32, x);
      return { fork: [{ state: st, pc: pc + 1, cp: null }, { state: other, pc: insn.tgt, cp: null }] };
    }
    if (is32) this.fail(`R${insn.dst} 32-bit comparison involving a pointer is not modelled`);
    // Null checks: nullable pointer against 0.
    const isZero = (r: Reg) => r.t === RT.SCALAR && isConst(r.s) && constValue(r.s) === 0n;
    if ((cmp === 'eq' || cmp === 'ne') && ((a.nul && isZero(b)) || (b.nul && isZero(a)))) {
      const p = a.nul ? a : b;
      if (x) this.markPrecise(st, a.nul ? insn.src : insn.dst);
      const other = cloneState(st);
      // On the jump edge of `== 0` the pointer is NULL; of `!= 0` it is not.
      this.markNull(other, p.id, cmp === 'eq');
      this.markNull(st, p.id, cmp !== 'eq');
      return { fork: [{ state: st, pc: pc + 1, cp: null }, { state: other, pc: insn.tgt, cp: null }] };
    }
    if (a.nul || b.nul) this.fail(`R${a.nul ? insn.dst : insn.src} comparison of a ${RT_NAME[(a.nul ? a : b).t]}_or_null pointer is not modelled`);
    const other = cloneState(st);
    if (x) this.pktCompare(st, other, insn, cmp, a, b);
    void taken;
    return { fork: [{ state: st, pc: pc + 1, cp: null }, { state: other, pc: insn.tgt, cp: null }] };
  }

  /** Applies `dst op src` to the operands in `st` and to their linked copies. */
  private refineBranch(st: State, insn: SafetyInsn, op: CmpOp, is32: boolean, x: boolean): void {
    const regs = cur(st).regs;
    const a = regs[insn.dst]!;
    const b = x ? regs[insn.src]! : scalarReg(scalarConst(BigInt(insn.imm)));
    let [ra, rb] = refine(op, a.s, b.s, is32);
    if (op === 'eq' && !is32 && x && insn.src !== insn.dst) {
      // Equal scalars are the same scalar.
      void 0;
    }
    this.setScalar(st, insn.dst, a, ra);
    if (x) this.setScalar(st, insn.src, cur(st).regs[insn.src]!, rb);
    void rb;
  }

  private setScalar(st: State, r: number, old: Reg, s: Scalar): void {
    const nreg: Reg = { ...old, s };
    cur(st).regs[r] = nreg;
    if (old.id) mapAllRegs(st, (q) => (q.t === RT.SCALAR && q.id === old.id ? nreg : undefined));
  }

  private markNull(st: State, id: number, isNull: boolean): void {
    if (!id) return;
    let ref = 0;
    mapAllRegs(st, (q) => {
      if (!q.nul || q.id !== id) return undefined;
      if (q.ref) ref = q.ref;
      return isNull ? ZERO_REG : { ...q, nul: false };
    });
    if (isNull && ref) st.refs = st.refs.filter((x) => x !== ref);
  }

  /** try_match_pkt_pointers: comparisons of packet pointers against the packet end. */
  private pktCompare(fall: State, jump: State, insn: SafetyInsn, op: CmpOp, a: Reg, b: Reg): void {
    // Only pkt vs pkt_end and pkt_meta vs an unmodified pkt pointer are recognised (as the kernel does).
    let data: Reg, dataIsDst: boolean;
    if (a.t === RT.PKT && b.t === RT.PKT_END) { data = a; dataIsDst = true; }
    else if (a.t === RT.PKT_END && b.t === RT.PKT) { data = b; dataIsDst = false; }
    else if (a.t === RT.PKT_META && b.t === RT.PKT && b.off === 0 && isConst(b.s) && constValue(b.s) === 0n) { data = a; dataIsDst = true; }
    else if (a.t === RT.PKT && b.t === RT.PKT_META && a.off === 0 && isConst(a.s) && constValue(a.s) === 0n) { data = b; dataIsDst = false; }
    else return;
    // Normalise to `data OP end`.
    const o = dataIsDst ? op : ({ gt: 'lt', ge: 'le', lt: 'gt', le: 'ge' } as Record<string, CmpOp>)[op];
    if (!o) return;
    const dataReg = dataIsDst ? insn.dst : insn.src;
    const endIsPkt = a.t === RT.PKT_END || b.t === RT.PKT_END;
    // mark_pkt_end: on the edge where data' is at or beyond the end, nothing can be read through it.
    const beyond = (st: State) => { if (endIsPkt && data.t === RT.PKT) cur(st).regs[dataReg] = { ...data, range: -1 }; };
    switch (o) {
      case 'gt': this.goodPkt(fall, data, false); beyond(jump); break; // data > end jumps; fall-through: data <= end
      case 'ge': this.goodPkt(fall, data, true); beyond(jump); break; // fall-through: data < end
      case 'lt': this.goodPkt(jump, data, true); beyond(fall); break; // jump: data < end
      case 'le': this.goodPkt(jump, data, false); beyond(fall); break; // jump: data <= end
    }
  }

  private goodPkt(st: State, p: Reg, rightOpen: boolean): void {
    if (p.off < 0 || (p.off === 0 && rightOpen)) return;
    if (p.s.umax > BigInt(MAX_PACKET_OFF) || p.s.umax + BigInt(p.off) > BigInt(MAX_PACKET_OFF)) return;
    const range = p.off - (rightOpen ? 1 : 0);
    mapAllRegs(st, (q) => (q.t === p.t && q.id === p.id && q.range < range ? { ...q, range } : undefined));
  }

  // ---- calls ----

  private pseudoCall(st: State, insn: SafetyInsn, pc: number): Step {
    if (insn.off !== 0 || insn.dst !== 0) this.fail('BPF_CALL uses reserved fields');
    const fn = this.fnAt[insn.tgt];
    if (fn === undefined || fn < 0 || this.prog.funcs[fn]!.start !== insn.tgt) this.fail('call to a non-function');
    const callerFn = cur(st).fn;
    this.calls.add(`${callerFn}>${fn}`);
    const f = this.prog.funcs[fn]!;
    if (f.global) {
      this.globalCall(st, f.global, fn);
      return { next: pc + 1 };
    }
    if (st.frames.length >= MAX_CALL_FRAMES) this.fail(`the call stack of ${st.frames.length + 1} frames is too deep`);
    const caller = cur(st);
    const frame = newFrame(fn, pc, st.frames.length);
    for (let r = 1; r <= 5; r++) frame.regs[r] = caller.regs[r]!;
    st.frames.push(frame);
    return { next: insn.tgt };
  }

  private globalCall(st: State, args: GlobalArg[], fn: number): void {
    const regs = cur(st).regs;
    args.forEach((a, k) => {
      const r = k + 1;
      if (r > 5) this.fail('global function with more than 5 arguments');
      const reg = this.readReg(st, r);
      switch (a.kind) {
        case 'scalar': if (reg.t !== RT.SCALAR) this.fail(`R${r} is not a scalar`); break;
        case 'ctx':
          if (reg.t !== RT.CTX || reg.off !== 0 || !isConst(reg.s) || constValue(reg.s) !== 0n) this.fail(`R${r} is not an unmodified ctx pointer`);
          break;
        case 'mem':
          if (reg.t === RT.SCALAR && isConst(reg.s) && constValue(reg.s) === 0n && a.nullable) { this.markPrecise(st, r); break; }
          this.helperMem(st, r, reg, BigInt(a.size), BigInt(a.size), 'read');
          this.helperMem(st, r, reg, BigInt(a.size), BigInt(a.size), 'write');
          break;
        case 'unsupported': this.fail(`global function argument: ${a.why}`);
      }
    });
    if (this.changesPkt[fn]) this.clearPkt(st);
    for (let r = 1; r <= 5; r++) regs[r] = NOT_INIT;
    regs[0] = UNKNOWN_REG;
  }

  private clearPkt(st: State): void {
    mapAllRegs(st, (q) => (q.t === RT.PKT || q.t === RT.PKT_META || q.t === RT.PKT_END ? NOT_INIT : undefined));
  }

  private exit(st: State, _pc: number): Step {
    const frame = cur(st);
    if (frame.cb) {
      // bpf_loop callback: R0 in [0, 1]; then back to the helper call with the caller's registers as they were.
      const r0 = frame.regs[0]!;
      if (r0.t === RT.NOT_INIT) this.fail('R0 !read_ok');
      if (r0.t !== RT.SCALAR) this.fail(`At callback return the register R0 is not a known value (${RT_NAME[r0.t]})`);
      this.markPrecise(st, 0);
      if (r0.s.smin < 0n || r0.s.smax > 1n) this.fail(`At callback return the register R0 has smin=${r0.s.smin} smax=${r0.s.smax} should have been in [0, 1]`);
      const depthNo = st.frames.length - 1;
      st.frames.pop();
      let escaped = false;
      mapAllRegs(st, (q) => { if (q.t === RT.STACK && q.frame >= depthNo) escaped = true; return undefined; });
      if (escaped) this.fail('pointer to a returned stack frame escapes');
      this.note = NOTE_CB_EXIT;
      return { next: frame.callsite };
    }
    if (st.frames.length > 1) {
      const r0 = frame.regs[0]!;
      const depthNo = st.frames.length - 1;
      if (r0.t === RT.STACK && r0.frame >= depthNo) this.fail('cannot return stack pointer to the caller');
      st.frames.pop();
      let escaped = false;
      mapAllRegs(st, (q) => { if (q.t === RT.STACK && q.frame >= depthNo) escaped = true; return undefined; });
      if (escaped) this.fail('pointer to a returned stack frame escapes');
      const caller = cur(st);
      caller.regs[0] = r0;
      for (let r = 1; r <= 5; r++) caller.regs[r] = NOT_INIT;
      return { next: frame.callsite + 1 };
    }
    const r0 = frame.regs[0]!;
    if (r0.t === RT.NOT_INIT) this.fail('R0 !read_ok');
    if (st.refs.length) this.fail(`Unreleased reference id=${st.refs[0]}`);
    const fn = this.prog.funcs[frame.fn]!;
    const globalFn = !!fn.global && frame.fn !== 0;
    const range = globalFn ? null : returnRange(this.prog.progType, this.prog.attach);
    // Privileged programs may return a pointer when the type has no return range; global
    // functions and ranged types need a scalar.
    if (r0.t !== RT.SCALAR && (globalFn || range)) this.fail(`At program exit the register R0 is not a scalar value (${RT_NAME[r0.t]})`);
    if (range) this.markPrecise(st, 0);
    if (range && (r0.s.smin < range[0] || r0.s.smax > range[1])) {
      this.fail(`At program exit the register R0 has smin=${r0.s.smin} smax=${r0.s.smax} should have been in [${range[0]}, ${range[1]}]`);
    }
    return { end: true };
  }

  /**
   * bpf_loop: either the loop is over (R0 = unknown, R1-R5 clobbered) or the callback runs once
   * more in a new frame with R1 = index, R2 = callback_ctx, and comes back to this call.
   */
  private loopCall(st: State, insn: SafetyInsn, pc: number): Step {
    const h = helperFor(insn.imm, this.prog.progType);
    if (typeof h === 'string') this.fail(h);
    const forEach = insn.imm === HELPER_FOR_EACH;
    const regs = cur(st).regs;
    const r1 = this.readReg(st, 1);
    if (forEach) {
      if (r1.t !== RT.MAP_PTR || r1.nul || r1.off !== 0) this.fail(`R1 type=${RT_NAME[r1.t]} expected=map_ptr`);
      if (!FOR_EACH_MAPS.includes(r1.map!.type)) this.fail(`cannot pass map_type ${r1.map!.type} into func bpf_for_each_map_elem#164`);
    }
    const fnReg = this.readReg(st, 2);
    const ctx = this.readReg(st, 3);
    this.readReg(st, 4);
    if (fnReg.t !== RT.FUNC) this.fail(`R2 type=${RT_NAME[fnReg.t]} expected=func`);
    const fn = this.fnAt[fnReg.off]!;
    const f = this.prog.funcs[fn]!;
    if (f.global) this.fail('global callback functions are not modelled');
    if (ctx.t === RT.SCALAR) {
      if (!isConst(ctx.s) || constValue(ctx.s) !== 0n) this.fail('R3 type=scalar expected=fp');
      this.markPrecise(st, 3);
    } else if (ctx.t !== RT.STACK || ctx.nul) this.fail(`R3 type=${RT_NAME[ctx.t]} expected=fp`);
    if (st.frames.length >= MAX_CALL_FRAMES) this.fail(`the call stack of ${st.frames.length + 1} frames is too deep`);
    this.calls.add(`${cur(st).fn}>${fn}`);
    // The callback path.
    const other = cloneState(st);
    const frame = newFrame(fn, pc, other.frames.length);
    frame.cb = true;
    if (forEach) {
      // callback(map, key, value, ctx): the key is read-only memory of key_size, the value a map value.
      const m = r1.map!;
      frame.regs[1] = r1;
      frame.regs[2] = ptrReg(RT.MAP_VALUE, { map: keyRegion(m) });
      frame.regs[3] = ptrReg(RT.MAP_VALUE, { map: m });
      frame.regs[4] = ctx;
    } else {
      frame.regs[1] = UNKNOWN_REG;
      frame.regs[2] = ctx;
    }
    other.frames.push(frame);
    // The path after the loop.
    for (let r = 1; r <= 5; r++) regs[r] = NOT_INIT;
    regs[0] = UNKNOWN_REG;
    if (h.pktData) this.clearPkt(st);
    return { fork: [{ state: st, pc: pc + 1, cp: null }, { state: other, pc: f.start, cp: null, cb: true }] };
  }

  private helperCall(st: State, insn: SafetyInsn): void {
    const h = helperFor(insn.imm, this.prog.progType);
    if (typeof h === 'string') this.fail(h);
    if (h.gpl && !this.prog.gpl) this.fail(`cannot call GPL-restricted function from non-GPL compatible program`);
    const regs = cur(st).regs;
    let map: Reg | null = null;
    let allocSize = 0;
    const stackWrites: [Reg, number][] = [];
    let releaseRef = 0;
    const args = h.args;
    for (let k = 0; k < args.length; k++) {
      const r = k + 1;
      const kind: ArgKind = args[k]!;
      const reg = this.readReg(st, r);
      switch (kind) {
        case 'anything': break;
        case 'map':
          if (reg.t !== RT.MAP_PTR || reg.nul || reg.off !== 0) this.fail(`R${r} type=${RT_NAME[reg.t]} expected=map_ptr`);
          if (!mapAllowedFor(h, reg.map!.type)) this.fail(`cannot pass map_type ${reg.map!.type} into func bpf_${h.name}#${h.id}`);
          map = reg;
          break;
        case 'ctx_or_null':
        case 'ctx':
          if (kind === 'ctx_or_null' && reg.t === RT.SCALAR && isConst(reg.s) && constValue(reg.s) === 0n) { this.markPrecise(st, r); break; }
          if (reg.t !== RT.CTX) this.fail(`R${r} type=${RT_NAME[reg.t]} expected=ctx`);
          if (reg.off !== 0 || !isConst(reg.s) || constValue(reg.s) !== 0n) this.fail(`dereference of modified ctx ptr R${r} off=${reg.off} disallowed`);
          break;
        case 'key':
        case 'value':
        case 'uninit_value': {
          if (!map) this.fail('map argument missing');
          const m = map.map!;
          const n = BigInt(kind === 'key' ? m.keySize : m.valueSize);
          const w = kind === 'uninit_value' ? 'write' : 'read';
          this.helperMem(st, r, reg, n, n, w);
          if (w === 'write' && reg.t === RT.STACK) stackWrites.push([reg, Number(n)]);
          break;
        }
        case 'mem':
        case 'mem_or_null':
        case 'uninit_mem': {
          const sizeKind = args[k + 1];
          const sreg = this.readReg(st, r + 1);
          if (sreg.t !== RT.SCALAR) this.fail(`R${r + 1} type=${RT_NAME[sreg.t]} expected=scalar`);
          this.markPrecise(st, r + 1);
          const s = sreg.s;
          if (s.smin < 0n) this.fail(`R${r + 1} min value is negative, either use unsigned or 'var &= const'`);
          if (s.umax >= BPF_MAX_VAR_SIZ) this.fail(`R${r + 1} unbounded memory access, use 'var &= const' or 'if (var < const)'`);
          if (sizeKind === 'size' && s.umin === 0n) this.fail(`R${r + 1} invalid zero-sized read`);
          if (sizeKind !== 'size' && sizeKind !== 'size_or_zero') this.fail('helper prototype without a size argument');
          if (kind === 'mem_or_null' && reg.t === RT.SCALAR && isConst(reg.s) && constValue(reg.s) === 0n) {
            this.markPrecise(st, r);
            if (!(isConst(s) && constValue(s) === 0n)) this.fail(`R${r} NULL memory with a non-zero size`);
          } else {
            const w = kind === 'uninit_mem' ? 'write' : 'read';
            this.helperMem(st, r, reg, s.umax, s.umin, w);
            if (w === 'write' && reg.t === RT.STACK) stackWrites.push([reg, Number(s.umax)]);
          }
          k++; // the size argument is consumed
          break;
        }
        case 'size':
        case 'size_or_zero':
          this.fail('size argument without memory');
        case 'alloc_size':
          this.markPrecise(st, r);
          if (reg.t !== RT.SCALAR || !isConst(reg.s)) this.fail(`R${r} is not a known constant`);
          allocSize = Number(constValue(reg.s));
          break;
        case 'ringbuf_mem':
          if (reg.t !== RT.MEM || reg.nul || !reg.ref) this.fail(`R${r} type=${RT_NAME[reg.t]} expected=ringbuf_mem`);
          if (reg.off !== 0 || !isConst(reg.s) || constValue(reg.s) !== 0n) this.fail(`R${r} must have zero offset when passed to release func`);
          releaseRef = reg.ref;
          break;
      }
    }
    if (h.name === 'tail_call') {
      if (st.refs.length) this.fail('tail_call would lead to reference leak');
      if (st.frames.length > 1) this.fail('tail_call from a subprogram is not modelled');
    }
    for (const [p, n] of stackWrites) this.markStackMisc(st, p, n);
    if (releaseRef) {
      if (!st.refs.includes(releaseRef)) this.fail('release of an unacquired reference');
      st.refs = st.refs.filter((x) => x !== releaseRef);
      mapAllRegs(st, (q) => (q.ref === releaseRef ? NOT_INIT : undefined));
    }
    for (let r = 1; r <= 5; r++) regs[r] = NOT_INIT;
    switch (h.ret) {
      case 'integer': regs[0] = UNKNOWN_REG; break;
      case 'void': regs[0] = NOT_INIT; break;
      case 'map_value_or_null': {
        const m = map!.map!;
        const id = ++this.idGen;
        if (m.type === MAP_TYPE.ARRAY_OF_MAPS || m.type === MAP_TYPE.HASH_OF_MAPS) {
          if (!m.inner) this.fail('map-in-map without an inner map definition');
          regs[0] = ptrReg(RT.MAP_PTR, { map: m.inner, nul: true, id });
        } else regs[0] = ptrReg(RT.MAP_VALUE, { map: m, nul: true, id });
        break;
      }
      case 'ringbuf_mem_or_null': {
        const id = ++this.idGen;
        st.refs = [...st.refs, id];
        regs[0] = ptrReg(RT.MEM, { range: allocSize, nul: true, id, ref: id });
        break;
      }
    }
    if (h.pktData) this.clearPkt(st);
  }

  /** check_helper_mem_access: `maxSize` bytes (and `minSize`) at `reg` must be accessible. */
  private helperMem(st: State, r: number, reg: Reg, maxSize: bigint, minSize: bigint, kind: 'read' | 'write'): void {
    const write = kind === 'write';
    if (reg.nul) this.fail(`R${r} type=${RT_NAME[reg.t]}_or_null expected=fp, pkt, map_value, mem`);
    const n = Number(maxSize);
    void minSize;
    switch (reg.t) {
      case RT.STACK: {
        if (n === 0) return;
        const o = this.stackOffset(r, reg, 0, n, false);
        const frame = st.frames[reg.frame];
        if (!frame) this.fail('stack pointer into a returned frame');
        this.noteDepth(st, reg.frame, o);
        if (!write) {
          for (let k = (-o - 1) >> 3; k >= (-(o + n - 1) - 1) >> 3; k--) this.markStackRead(reg.frame, k);
          for (let i = o; i < o + n; i++) {
            const sl = frame.stack[(-i - 1) >> 3];
            if (!sl || sl.b[(i + 512) & 7] === SB.INVALID) this.fail(`invalid indirect read from stack R${r} off ${o}+${i - o} size ${n}`);
          }
        }
        return;
      }
      case RT.PKT:
      case RT.PKT_META:
        if (!pktAccessAllowed(this.prog.progType, write)) this.fail(write ? 'cannot write into packet' : 'cannot read packet');
        if (n === 0) return;
        this.pktRange(r, reg, 0, n);
        return;
      case RT.MAP_VALUE:
        if (write && reg.map!.rdonly) this.fail('write into map forbidden');
        this.regionRange(r, reg, 0, n, reg.map!.valueSize, 'map value');
        return;
      case RT.MEM:
        this.regionRange(r, reg, 0, n, reg.range, 'memory');
        return;
      default:
        this.fail(`R${r} type=${RT_NAME[reg.t]} expected=fp, pkt, pkt_meta, map_value, mem`);
    }
  }

  private markStackMisc(st: State, reg: Reg, n: number): void {
    if (n <= 0) return;
    const frame = st.frames[reg.frame]!;
    const o = Number(BigInt.asIntN(64, constValue(reg.s))) + reg.off;
    for (let i = o; i < o + n; i++) {
      const k = (-i - 1) >> 3;
      const old: Slot | undefined = frame.stack[k];
      const b = old ? old.b.map((x) => (x === SB.SPILL ? SB.MISC : x)) : [0, 0, 0, 0, 0, 0, 0, 0];
      b[(i + 512) & 7] = SB.MISC;
      frame.stack[k] = { b, spill: null };
    }
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
