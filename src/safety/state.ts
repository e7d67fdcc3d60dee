// Abstract machine state of the checker: registers, stack slots, call frames, held references.
// Reg and Slot values are immutable and shared freely; frames and states are copied on fork.
import { UNKNOWN, ZERO, scalarConst, scalarWithin, type Scalar } from './scalar.js';
import type { MapInfo } from './program.js';

/** Register types (enum bpf_reg_type, the subset k2 models). */
export const RT = {
  NOT_INIT: 0, SCALAR: 1, CTX: 2, STACK: 3, PKT: 4, PKT_META: 5, PKT_END: 6, MAP_VALUE: 7, MAP_PTR: 8, MEM: 9,
  FUNC: 10, // PTR_TO_FUNC (a callback); `off` is its first instruction
  BTF_ID: 11, // PTR_TO_BTF_ID: a kernel struct typed by the kernel's BTF (`btf`: its type id)
  SOCKET: 12, // PTR_TO_SOCKET (struct bpf_sock)
  SOCK_COMMON: 13, // PTR_TO_SOCK_COMMON (the struct sock_common part of struct bpf_sock)
  TCP_SOCK: 14, // PTR_TO_TCP_SOCK (struct bpf_tcp_sock)
} as const;
export type RegType = (typeof RT)[keyof typeof RT];
export const RT_NAME = ['?', 'scalar', 'ctx', 'fp', 'pkt', 'pkt_meta', 'pkt_end', 'map_value', 'map_ptr', 'mem', 'func', 'ptr_', 'sock', 'sock_common', 'tcp_sock'];
export const isSockType = (t: RegType): boolean => t === RT.SOCKET || t === RT.SOCK_COMMON || t === RT.TCP_SOCK;

export interface Reg {
  readonly t: RegType;
  /** Scalars: the value. Pointers: the variable part of the offset (var_off and bounds). */
  readonly s: Scalar;
  readonly off: number; // pointers: fixed offset
  readonly id: number; // scalars: linked copies; pkt: pointers sharing a range; nullable: null-check group
  readonly ref: number; // acquired reference (ringbuf memory), 0 if none
  readonly range: number; // pkt: verified bytes from the pointer with off 0; mem: size
  readonly map: MapInfo | null; // map_value, map_ptr
  readonly frame: number; // stack pointers: the frame whose stack they point into
  readonly nul: boolean; // may be NULL (must be null-checked before use)
  readonly btf: number; // btf_id: the kernel type a BTF_ID pointer points to
  readonly flags: number; // BTF_ID: BTF_FLAG (btfaccess.ts); MEM: MEM_FLAG
}

/** Flags of sized memory (PTR_TO_MEM): read-only, untrusted (from walking a kernel pointer). */
export const MEM_FLAG = { RDONLY: 1, UNTRUSTED: 2 } as const;

const base: Reg = { t: RT.NOT_INIT, s: UNKNOWN, off: 0, id: 0, ref: 0, range: 0, map: null, frame: 0, nul: false, btf: 0, flags: 0 };
export const NOT_INIT: Reg = base;
export const scalarReg = (s: Scalar, id = 0): Reg => ({ ...base, t: RT.SCALAR, s, id });
export const UNKNOWN_REG = scalarReg(UNKNOWN);
export const ZERO_REG = scalarReg(ZERO);
export const constReg = (c: bigint): Reg => scalarReg(scalarConst(c));
export const ptrReg = (t: RegType, fields: Partial<Reg> = {}): Reg => ({ ...base, s: ZERO, t, ...fields });

export const isPtr = (r: Reg): boolean => r.t !== RT.SCALAR && r.t !== RT.NOT_INIT;

/** Byte states of a stack slot (enum bpf_stack_slot_type). */
export const SB = { INVALID: 0, MISC: 1, ZERO: 2, SPILL: 3 } as const;

export interface Slot {
  readonly b: readonly number[]; // 8 byte states; b[i] is the byte at slot offset i (little-endian order)
  readonly spill: Reg | null; // the spilled register when bytes are SPILL
}

export const STACK_SLOTS = 64; // 512 bytes
export const MAX_STACK = 512;

export interface Frame {
  regs: Reg[];
  stack: (Slot | undefined)[]; // slot k covers bytes [-8k - 8, -8k) below the frame pointer; grows on demand
  callsite: number; // index of the call instruction in the caller (-1 for the entry frame)
  fn: number; // index in SafetyProgram.funcs
  /** A callback frame (bpf_loop): its exit goes back to the helper call, which may call it again. */
  cb?: boolean;
}

export interface State {
  frames: Frame[];
  refs: number[]; // acquired reference ids not yet released
}

export function newFrame(fn: number, callsite: number, frameNo: number): Frame {
  const regs: Reg[] = new Array(11).fill(NOT_INIT);
  regs[10] = ptrReg(RT.STACK, { frame: frameNo });
  return { regs, stack: [], callsite, fn };
}

export const cloneState = (s: State): State => ({
  frames: s.frames.map((f) => (f.cb ? { regs: f.regs.slice(), stack: f.stack.slice(), callsite: f.callsite, fn: f.fn, cb: true } : { regs: f.regs.slice(), stack: f.stack.slice(), callsite: f.callsite, fn: f.fn })),
  refs: s.refs.slice(),
});

export const cur = (s: State): Frame => s.frames[s.frames.length - 1]!;

/** Calls `f` on every register and spilled register of every frame; `f` returns a replacement or undefined. */
export function mapAllRegs(s: State, f: (r: Reg) => Reg | undefined): void {
  for (const fr of s.frames) {
    for (let i = 0; i < fr.regs.length; i++) {
      const n = f(fr.regs[i]!);
      if (n) fr.regs[i] = n;
    }
    for (let k = 0; k < fr.stack.length; k++) {
      const sl = fr.stack[k];
      if (!sl?.spill) continue;
      const n = f(sl.spill);
      if (n) fr.stack[k] = { b: sl.b, spill: n };
    }
  }
}

// ---- subsumption (states_equal): is every behaviour of `cur` covered by the explored `old`? ----

class IdMap {
  private fwd: Map<number, number> | null = null;
  private back: Map<number, number> | null = null;
  ok(o: number, c: number): boolean {
    if (o === 0) return true;
    if (c === 0) return false;
    if (!this.fwd) { this.fwd = new Map(); this.back = new Map(); }
    const f = this.fwd.get(o);
    const b = this.back!.get(c);
    if (f === undefined && b === undefined) {
      this.fwd.set(o, c);
      this.back!.set(c, o);
      return true;
    }
    return f === c && b === o;
  }
}

/**
 * Precision marks of an explored state (the kernel's `precise` flags): which scalars' values the
 * rest of its paths depended on. An unmarked scalar of the old state covers any scalar.
 */
export interface Precision {
  /** All scalars count as precise (no marks known). */
  exact: boolean;
  /** Per frame: bit r set when register r is precise. */
  regs: number[];
  /** Per frame: bit k of slots[2f] (k < 32) or slots[2f + 1] (k - 32) set when spill slot k is precise. */
  slots: number[];
  /** Per frame (two words, as `slots`): stack slots some path from the state read before overwriting them. */
  read: number[];
  /** Ids of precise scalars (computed once the marks are final); scalars linked to them count as precise. */
  ids?: Set<number>;
}

export const slotMarked = (p: Precision, f: number, k: number): boolean =>
  ((k < 32 ? p.slots[2 * f]! >>> k : p.slots[2 * f + 1]! >>> (k - 32)) & 1) === 1;
export const slotRead = (p: Precision, f: number, k: number): boolean =>
  ((k < 32 ? p.read[2 * f]! >>> k : p.read[2 * f + 1]! >>> (k - 32)) & 1) === 1;

/** Ids of scalars marked precise in `st` (linked copies of them must be compared exactly too). */
function preciseIds(st: State, p: Precision): Set<number> {
  const ids = new Set<number>();
  st.frames.forEach((fr, f) => {
    const m = p.regs[f] ?? 0;
    for (let r = 0; r < 11; r++) if (m & (1 << r) && fr.regs[r]!.id) ids.add(fr.regs[r]!.id);
    fr.stack.forEach((sl, k) => { if (sl?.spill?.id && slotMarked(p, f, k)) ids.add(sl.spill.id); });
  });
  return ids;
}

function regSafe(o: Reg, c: Reg, ids: IdMap, precise = true): boolean {
  if (o.t === RT.NOT_INIT) return true;
  if (!precise && o.t === RT.SCALAR) return c.t === RT.SCALAR;
  if (o === c) return ids.ok(o.id, c.id) && ids.ok(o.ref, c.ref);
  if (o.t !== c.t) return false;
  if (o.t === RT.SCALAR) return scalarWithin(o.s, c.s) && ids.ok(o.id, c.id);
  if (o.off !== c.off || o.nul !== c.nul || o.map !== c.map || o.frame !== c.frame || o.btf !== c.btf || o.flags !== c.flags) return false;
  if (!scalarWithin(o.s, c.s)) return false;
  if (!ids.ok(o.id, c.id) || !ids.ok(o.ref, c.ref)) return false;
  if (o.t === RT.PKT || o.t === RT.PKT_META) return o.range <= c.range;
  if (o.t === RT.MEM) return o.range === c.range;
  return true;
}

function slotSafe(o: Slot | undefined, c: Slot | undefined, ids: IdMap, precise = true): boolean {
  if (!o) return true;
  if (o === c) return !o.spill || regSafe(o.spill, o.spill, ids, precise);
  for (let i = 0; i < 8; i++) {
    const ob = o.b[i]!;
    const cb = c ? c.b[i]! : SB.INVALID;
    // Privileged programs read unwritten bytes as unknown values (allow_uninit_stack), so an old MISC
    // byte covers anything, as in the kernel's stacksafe().
    if (ob === SB.INVALID || ob === SB.MISC) continue;
    if (cb === SB.INVALID) return false;
    if (ob === SB.ZERO && cb !== SB.ZERO) return false;
    if (ob === SB.SPILL && cb !== SB.SPILL) return false;
  }
  if (o.b.includes(SB.SPILL)) {
    if (!c?.spill || !o.spill) return false;
    if (!regSafe(o.spill, c.spill, ids, precise)) return false;
  }
  return true;
}

/**
 * Whether `old` covers `cs`. Without `prec` every scalar is compared; with it, scalars of `old`
 * that are not marked precise (nor linked by id to a precise one) cover any scalar, as in the
 * kernel's regsafe().
 */
export function subsumes(old: State, cs: State, prec?: Precision | null): boolean {
  if (old.frames.length !== cs.frames.length || old.refs.length !== cs.refs.length) return false;
  for (let f = 0; f < old.frames.length; f++) {
    const of = old.frames[f]!, cf = cs.frames[f]!;
    if (of.callsite !== cf.callsite || of.fn !== cf.fn || !of.cb !== !cf.cb) return false;
  }
  const ids = new IdMap();
  const p = prec && !prec.exact ? prec : null;
  const linked = p ? (p.ids ??= preciseIds(old, p)) : null;
  for (let f = 0; f < old.frames.length; f++) {
    const of = old.frames[f]!, cf = cs.frames[f]!;
    if (!p) {
      for (let r = 0; r < 11; r++) if (!regSafe(of.regs[r]!, cf.regs[r]!, ids)) return false;
      for (let k = 0; k < of.stack.length; k++) if (!slotSafe(of.stack[k], cf.stack[k], ids)) return false;
      continue;
    }
    const m = p.regs[f] ?? 0;
    for (let r = 0; r < 11; r++) {
      const o = of.regs[r]!;
      if (!regSafe(o, cf.regs[r]!, ids, (m & (1 << r)) !== 0 || (o.id !== 0 && linked!.has(o.id)))) return false;
    }
    for (let k = 0; k < of.stack.length; k++) {
      const o = of.stack[k];
      // A slot no path from the old state read (before overwriting it) cannot matter.
      if (!slotRead(p, f, k)) continue;
      const precise = !o?.spill || slotMarked(p, f, k) || (o.spill.id !== 0 && linked!.has(o.spill.id));
      if (!slotSafe(o, cf.stack[k], ids, precise)) return false;
    }
  }
  for (let i = 0; i < old.refs.length; i++) if (!ids.ok(old.refs[i]!, cs.refs[i]!)) return false;
  return true;
}
