// Proofs for repairs must hold for every context the program can meet in production, but the
// SMT checker models the context as BPF_PROG_TEST_RUN fills it: for __sk_buff programs it pins
// queue_mapping, vlan_*, tc_index, hash, tc_classid, napi_id to 0, ifindex to 1, len to the packet
// length and protocol/pkt_type/family/addresses to what the test run derives from the frame; for
// xdp, egress_ifindex to 0 (src/smt/ctxmodel.ts, machine-skb.ts). A repair proven under those
// assumptions could add a check that changes behaviour on a real packet (a queue_mapping of 10).
//
// So before a repair is proven, every load of a context field (other than the packet pointers
// data / data_end / data_meta) in the program's entry function is replaced, in both programs
// compared, by a fresh value from a side-effect-free "source" helper of the checker (one helper per
// field, the n-th read of a field gets the n-th value, shared by both programs): the proof then
// covers every value of every field. Only done when it is complete: the context pointer must not
// escape the entry function's registers (stored to memory, passed to a bpf-to-bpf call, offset).
// These proof programs are never loaded; they use the checker's semantics only.
import { ALU, CLASS, JMP, MODE, REG_FP, SRC_X, aluOp, jmpOp, memMode, opClass, sizeBytes, srcBit } from '../isa/index.js';
import { liveIn, successors } from '../analysis/index.js';
import { findLabel, programCode } from '../ir/index.js';
import type { BpfObject, IrInsn, ProgramRef } from '../ir/types.js';
import { andImm, ldxDw, mov32Reg, movReg, sectionNamed, stxDw, withSection } from './edit.js';
import { funcAt, type FuncRange } from './layout.js';
import { frameDepth } from './inline.js';

/** Program types whose context the checker pins (in part) to test-run values. */
const PINNED = new Set(['sched_cls', 'sched_act', 'lwt_in', 'lwt_out', 'lwt_xmit', 'cgroup_skb', 'socket_filter', 'xdp']);
/** Does the proof replace this program type's context reads with fresh values? */
export const contextMadeFree = (progType: string): boolean => PINNED.has(progType);
/** Context offsets that hold packet pointers (the checker models them as pointers, keep them). */
const POINTER_FIELDS: Record<string, number[]> = { xdp: [0, 4, 8], default: [76, 80, 140] };

/** 64-bit "source" helpers of the checker (no arguments, no effects, a fresh value per call). */
export const SOURCES = [5, 125, 160, 14, 15, 35, 80];

const SKB_FIELDS: Record<number, string> = {
  0: 'len', 4: 'pkt_type', 8: 'mark', 12: 'queue_mapping', 16: 'protocol', 20: 'vlan_present', 24: 'vlan_tci', 28: 'vlan_proto',
  32: 'priority', 36: 'ingress_ifindex', 40: 'ifindex', 44: 'tc_index', 48: 'cb[0]', 52: 'cb[1]', 56: 'cb[2]', 60: 'cb[3]', 64: 'cb[4]',
  68: 'hash', 72: 'tc_classid', 84: 'napi_id', 88: 'family', 92: 'remote_ip4', 96: 'local_ip4', 164: 'gso_size', 176: 'gso_segs',
};
const XDP_FIELDS: Record<number, string> = { 12: 'ingress_ifindex', 16: 'rx_queue_index', 20: 'egress_ifindex' };

/** The context field at `off` of a program type, for messages. */
export function ctxFieldName(progType: string, off: number): string {
  const t = progType === 'xdp' ? XDP_FIELDS : SKB_FIELDS;
  return t[off] ? `${progType === 'xdp' ? 'xdp_md' : '__sk_buff'}.${t[off]}` : `context+${off}`;
}

export interface FreeCtx {
  obj: BpfObject;
  /** Source helper id → the context field (offset, load size) its values stand for. */
  fields: Map<number, { off: number; size: number }>;
}

const isCall = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.CALL;

/**
 * `obj` with the context loads of `prog`'s entry function replaced by fresh values (see above),
 * `{ obj, fields }`; the object itself when the checker pins nothing for this program type; null
 * when the replacement cannot be complete (the proof would only cover test-run contexts).
 */
export function freeContext(obj: BpfObject, prog: ProgramRef, avoid: ReadonlySet<number> = new Set()): FreeCtx | { why: string } {
  if (!PINNED.has(prog.progType)) return { obj, fields: new Map() };
  const ptrFields = POINTER_FIELDS[prog.progType === 'xdp' ? 'xdp' : 'default']!;
  const entrySec = sectionNamed(obj, prog.section);
  const entry = funcAt(obj, prog.section, findLabel(entrySec, prog.entry));
  // Per function, "holds the context pointer" on entry: must (every call site) and may (some).
  const key = (f: FuncRange) => `${f.section}:${f.start}`;
  const funcs = new Map<string, { f: FuncRange; must: number; may: number; exitMay: number | null; callers: Set<string> }>([
    [key(entry), { f: entry, must: 1 << 1, may: 1 << 1, exitMay: null, callers: new Set() }],
  ]);
  /** What r0-r5 may hold after a call to `i`'s callee: what they may hold at its exits. */
  const calleeOf = (i: IrInsn): string | null => {
    if (!i.callee) return null;
    const t = sectionNamed(obj, i.callee.section);
    return key(funcAt(obj, t.name, findLabel(t, i.callee.label)));
  };
  const work = [key(entry)];
  const loads = new Map<string, Set<number>>(); // section -> instruction indices to replace
  let why: string | null = null;
  const analyse = (fk: string): void => {
    const { f, must: m0, may: a0 } = funcs.get(fk)!;
    const sec = sectionNamed(obj, f.section);
    const succ = successors(sec);
    const n = f.end - f.start;
    const must = new Uint16Array(n);
    const may = new Uint16Array(n);
    const reached = new Uint8Array(n);
    must[0] = m0;
    may[0] = a0;
    reached[0] = 1;
    const transfer = (i: IrInsn, m: number, isMay: boolean): number => {
      const cls = opClass(i.code);
      if (cls === CLASS.ALU64 && aluOp(i.code) === ALU.MOV && srcBit(i.code) === SRC_X) return m & (1 << i.src) ? m | (1 << i.dst) : m & ~(1 << i.dst);
      // the checker's semantics: a helper writes only r0; after a bpf-to-bpf call r0-r5 are the callee's
      if (isCall(i)) {
        if (i.src === 0) return m & ~1;
        if (!isMay) return m & ~0b111111;
        const g = calleeOf(i);
        const exitMay = g ? funcs.get(g)?.exitMay ?? (m & 0x3fe ? 0b111111 : 0) : 0b111111;
        return (m & ~0b111111) | (exitMay & 0b111111);
      }
      if (cls === CLASS.ALU || cls === CLASS.ALU64 || cls === CLASS.LDX || i.code === 0x18) return m & ~(1 << i.dst);
      if (cls === CLASS.STX && memMode(i.code) === MODE.ATOMIC) return m & ~1 & ~(1 << i.src);
      if (cls === CLASS.LD) return m & ~0b111111;
      return m;
    };
    for (let changed = true; changed; ) {
      changed = false;
      for (let k = 0; k < n; k++) {
        if (!reached[k]) continue;
        const i = sec.insns[f.start + k]!;
        const mu = transfer(i, must[k]!, false);
        const ma = transfer(i, may[k]!, true);
        for (const sx of succ[f.start + k]!) {
          const j = sx - f.start;
          if (j < 0 || j >= n) continue;
          const nm = reached[j] ? must[j]! & mu : mu;
          const na = may[j]! | ma;
          if (!reached[j] || nm !== must[j] || na !== may[j]) {
            reached[j] = 1;
            must[j] = nm;
            may[j] = na;
            changed = true;
          }
        }
      }
    }
    // what the registers may hold when the function returns
    let exitMay = 0;
    for (let k = 0; k < n; k++) {
      const i = sec.insns[f.start + k]!;
      if (reached[k] && opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.EXIT) exitMay |= may[k]!;
    }
    const rec = funcs.get(fk)!;
    if (rec.exitMay !== exitMay) {
      rec.exitMay = exitMay;
      for (const c of rec.callers) if (!work.includes(c)) work.push(c);
    }
    // callees that get the context in an argument register
    for (let k = 0; k < n; k++) {
      const i = sec.insns[f.start + k]!;
      if (!reached[k] || !(isCall(i) && i.src === 1 && i.callee && (may[k]! & 0x3fe))) continue;
      const gk = calleeOf(i)!;
      const t = sectionNamed(obj, i.callee.section);
      const g = funcAt(obj, t.name, findLabel(t, i.callee.label));
      const cm = must[k]! & 0b111110, ca = may[k]! & 0x3fe;
      const old = funcs.get(gk);
      const nm = old ? old.must & cm : cm, na = old ? old.may | ca : ca;
      if (!old || nm !== old.must || na !== old.may) {
        funcs.set(gk, { f: g, must: nm, may: na, exitMay: old?.exitMay ?? null, callers: old?.callers ?? new Set() });
        if (!work.includes(gk)) work.push(gk);
      }
      funcs.get(gk)!.callers.add(fk);
    }
    states.set(fk, { must, may, reached });
  };
  const states = new Map<string, { must: Uint16Array; may: Uint16Array; reached: Uint8Array }>();
  /** With the final states: the loads to replace, or why the context escapes. */
  const check = (fk: string): void => {
    const { f } = funcs.get(fk)!;
    const sec = sectionNamed(obj, f.section);
    const n = f.end - f.start;
    const { must, may, reached } = states.get(fk)!;
    const own = loads.get(f.section) ?? new Set<number>();
    loads.set(f.section, own);
    for (let k = 0; k < n && !why; k++) {
      if (!reached[k]) continue;
      const i = sec.insns[f.start + k]!;
      const cls = opClass(i.code);
      const maybe = (r: number) => (may[k]! & (1 << r)) !== 0;
      const sure = (r: number) => (must[k]! & (1 << r)) !== 0;
      if (cls === CLASS.LDX && maybe(i.src)) {
        if (!sure(i.src)) why = 'the context pointer is only sometimes in the register a load uses';
        else if (!ptrFields.includes(i.off)) own.add(f.start + k);
        continue;
      }
      if (cls === CLASS.STX && maybe(i.src)) why = 'the context pointer is stored to memory';
      if ((cls === CLASS.ST || cls === CLASS.STX) && maybe(i.dst)) continue; // stores to the context: modelled as they are
      if (cls === CLASS.ALU64 || cls === CLASS.ALU) {
        const x = srcBit(i.code) === SRC_X;
        const isMov = aluOp(i.code) === ALU.MOV;
        if (isMov && cls === CLASS.ALU64) continue; // a copy (followed above) or a constant
        if ((!isMov && maybe(i.dst)) || (x && maybe(i.src))) why = 'arithmetic on the context pointer';
      }
    }
  };
  for (let guard = 0; work.length && guard < 400; guard++) analyse(work.shift()!);
  if (work.length) return { why: 'too many functions to follow the context pointer through' };
  for (const fk of funcs.keys()) if (!why) check(fk);
  if (why) return { why };
  const all = [...loads.entries()].flatMap(([sec, ks]) => [...ks].map((k) => ({ sec, k })));
  if (!all.length) return { obj, fields: new Map() };
  // r0 is kept across the source call in the lowest stack slot, when it is live there
  const keepR0 = new Set<string>();
  for (const [secName, ks] of loads) {
    if (!ks.size) continue;
    const sec = sectionNamed(obj, secName);
    const live = liveIn(sec);
    for (const k of ks) {
      if (sec.insns[k]!.dst === 0 || !(k + 1 < sec.insns.length && live[k + 1]! & 1)) continue;
      const d = frameDepth(sec, funcAt(obj, secName, k));
      if (d === null || d > 504) return { why: 'no free stack slot to keep r0 in' };
      keepR0.add(`${secName}:${k}`);
    }
  }
  const used = new Set<number>(avoid);
  for (const sx of programCode(obj, prog)) for (const i of sx.insns) if (isCall(i) && i.src === 0) used.add(i.imm);
  const free = SOURCES.filter((h) => !used.has(h));
  const insnAt = ({ sec, k }: { sec: string; k: number }) => sectionNamed(obj, sec).insns[k]!;
  const offs = [...new Set(all.map((x) => insnAt(x).off))];
  if (offs.length > free.length) return { why: `${offs.length} context fields read, ${free.length} fresh-value sources left` };
  const srcOf = new Map(offs.map((o, k) => [o, free[k]!]));
  let out = obj;
  for (const [secName, ks] of loads) {
    if (!ks.size) continue;
    const sec = sectionNamed(out, secName);
    const insns: IrInsn[] = [];
    sec.insns.forEach((i, k) => {
      if (!ks.has(k)) {
        insns.push(i);
        return;
      }
      const d = i.dst;
      const size = sizeBytes(i.code);
      const call: IrInsn = { code: CLASS.JMP | JMP.CALL, dst: 0, src: 0, off: 0, imm: srcOf.get(i.off)! };
      const keep0 = keepR0.has(`${secName}:${k}`);
      const seq: IrInsn[] = [
        ...(keep0 ? [stxDw(REG_FP, -512, 0)] : []),
        call,
        size === 8 ? movReg(d, 0) : mov32Reg(d, 0),
        ...(size < 4 ? [andImm(d, size === 1 ? 0xff : 0xffff)] : []),
        ...(keep0 ? [ldxDw(0, REG_FP, -512)] : []),
      ];
      // position metadata stays with the first instruction (labels: jumps to the load)
      const first: IrInsn = { ...seq[0]!, ...(i.labels ? { labels: i.labels } : {}), ...(i.funcInfo ? { funcInfo: i.funcInfo } : {}) };
      insns.push(first, ...seq.slice(1));
    });
    out = withSection(out, { ...sec, insns });
  }
  const sizeOf = new Map(all.map((x) => [insnAt(x).off, sizeBytes(insnAt(x).code)]));
  return { obj: out, fields: new Map([...srcOf].map(([o, h]) => [h, { off: o, size: sizeOf.get(o)! }])) };
}
