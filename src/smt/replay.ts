// Replaying counterexamples in the interpreter: the checker's "different" must show up as different
// outcomes of concrete runs. Whole programs run on the counterexample's packet, context and map
// contents. A window runs inside a small program: a prologue that builds the counterexample's entry
// state (registers, stack bytes, pointers per the precondition), the window, and one epilogue per
// observable (the exit label taken, each live-out register, each stack byte) that returns it in r0.
import { asm } from './asm.js';
import type { IrInsn } from '../ir/types.js';
import type { BpfObject, ProgramRef } from '../ir/types.js';
import { prepareInsns, prepareObject, run, compareOutcomes, type MapSpec, type Outcome, type MapState } from '../interp/index.js';
import { CLASS, JMP, jmpOp, opClass } from '../isa/index.js';
import type { Counterexample, WindowPost, WindowPre } from './types.js';

const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

export interface ReplayResult {
  /** The interpreter shows different outcomes on the counterexample. */
  reproduced: boolean;
  /** What differed (observable / outcome field). */
  what: string | null;
  a: Outcome | null;
  b: Outcome | null;
}

/** The packet/context input of a counterexample for the interpreter (per program type). */
export function packetInput(cex: Counterexample, progType: string): { packet: Uint8Array; ctx?: Uint8Array } {
  let packet = cex.packet !== null ? fromHex(cex.packet) : new Uint8Array(64);
  const l3 = ['socket_filter', 'cgroup_skb', 'lwt_in', 'lwt_out', 'lwt_xmit'].includes(progType);
  const ctxBytes = cex.ctx ? fromHex(cex.ctx) : null;
  if (l3) {
    // The program's packet data starts at the network header: give it the Ethernet header the
    // counterexample's protocol and packet type stand for.
    const p = new Uint8Array(14 + packet.length);
    const proto = ctxBytes ? (ctxBytes[16]! << 8) | ctxBytes[17]! : 0x0800;
    p[12] = proto >> 8;
    p[13] = proto & 0xff;
    const type = ctxBytes ? ctxBytes[4]! : 0;
    if (type === 1) p.fill(0xff, 0, 6);
    else if (type === 2) p[0] = 0x01;
    else if (type === 3) p[0] = 0x02;
    p.set(packet, 14);
    packet = p;
  }
  if (progType === 'xdp') {
    if (!ctxBytes) return { packet };
    const c = new Uint8Array(24);
    c.set(ctxBytes.subarray(12, 20), 12); // ingress_ifindex, rx_queue_index
    return { packet, ctx: c };
  }
  if (ctxBytes && !l3 && progType !== 'sched_cls' && progType !== 'sched_act') return { packet };
  return ctxBytes ? { packet, ctx: ctxBytes } : { packet };
}

function setMaps(maps: MapState[], cex: Counterexample): void {
  for (const m of maps) {
    const entries = cex.maps[m.spec.name];
    if (!entries) continue;
    for (const [k, v] of Object.entries(entries)) {
      if (v === null) continue;
      const key = fromHex(k);
      let val = fromHex(v);
      if (m.ncpu > 1) {
        const stride = (m.spec.valueSize + 7) & ~7;
        const all = new Uint8Array(stride * m.ncpu);
        for (let c = 0; c < m.ncpu; c++) all.set(val, c * stride);
        val = all;
      }
      if (m.spec.keySize === 4 && m.spec.maxEntries === 1 && (m.spec.readonly !== undefined || m.spec.type === 2)) {
        // global data / array: merge the counterexample's bytes over the initial ones
        const cur = m.lookup(key);
        if (cur) {
          const merged = cur.slice();
          merged.set(val.subarray(0, merged.length));
          m.set(key, merged);
          continue;
        }
      }
      try {
        m.set(key, val);
      } catch {
        /* map type we cannot preload */
      }
    }
  }
}

/** Runs both programs on the counterexample's input. */
export function replayPrograms(a: BpfObject, pa: ProgramRef, b: BpfObject, pb: ProgramRef, cex: Counterexample): ReplayResult {
  const input = packetInput(cex, pa.progType);
  const ra = prepareObject(a), rb = prepareObject(b);
  const ma = ra.initialMaps(), mb = rb.initialMaps();
  setMaps(ma, cex);
  setMaps(mb, cex);
  // results of the checker's "source" helpers (clock, random numbers, ids), call by call
  const helperResults = new Map<string, bigint>();
  for (const [k, v] of Object.entries(cex.helpers)) if (/^h\d+#\d+$/.test(k)) helperResults.set(k, BigInt(v.startsWith('0x') ? v : `0x${v}`));
  const oa = run(ra.unit, pa.name, pa.progType, { ...input, packet: input.packet.slice(), ...(input.ctx ? { ctx: input.ctx.slice() } : {}) }, ma, { helperResults });
  const ob = run(rb.unit, pb.name, pb.progType, { ...input, packet: input.packet.slice(), ...(input.ctx ? { ctx: input.ctx.slice() } : {}) }, mb, { helperResults });
  const d = compareOutcomes(oa, ob, { effects: true });
  const r0 = oa.status === 'exit' && ob.status === 'exit' && oa.r0 !== ob.r0;
  return { reproduced: d !== null || r0, what: d?.field ?? (r0 ? 'r0' : null), a: oa, b: ob };
}

const isJump = (i: IrInsn): boolean => {
  const c = opClass(i.code);
  return (c === CLASS.JMP || c === CLASS.JMP32) && jmpOp(i.code) !== JMP.CALL && jmpOp(i.code) !== JMP.EXIT;
};

/** Labels a window jumps to without defining them (its exits), in first-use order. */
export function exitLabels(w: IrInsn[]): string[] {
  const defined = new Set(w.flatMap((i) => i.labels ?? []));
  const out: string[] = [];
  for (const i of w) if (isJump(i) && i.target && !defined.has(i.target) && !out.includes(i.target)) out.push(i.target);
  return out;
}

/**
 * Entry-state prologue for a window counterexample (r1 = ctx at entry): stack facts and pointer
 * registers first (they use r1), scalar registers next, r1 last, then the stack bytes read.
 */
function prologue(pre: WindowPre, cex: Counterexample, progType: string): IrInsn[] {
  // Bytes the difference does not depend on may be anything, but the interpreter faults on reads of
  // uninitialised stack: start from a zeroed frame.
  const lines: string[] = [];
  for (let k = 8; k <= 512; k += 8) lines.push(`*(u64 *)(r10 - ${k}) = 0`);
  const dataOff = progType === 'xdp' ? 0 : 76;
  const endOff = progType === 'xdp' ? 4 : 80;
  for (const s of pre.stack ?? []) {
    if (s.fact.kind === 'scalar' && s.fact.value !== undefined) {
      lines.push(`r0 = ${BigInt.asIntN(64, s.fact.value)} ll`, `*(u${8 * s.size} *)(r10 - ${-s.off}) = r0`);
    } else if (s.fact.kind === 'ctx' && s.size === 8) lines.push(`*(u64 *)(r10 - ${-s.off}) = r1`);
    else throw new Error(`replay: stack fact ${s.fact.kind} is not supported`);
  }
  const regLines = (r: number): string[] => {
    const f = pre.regs?.[r] ?? { kind: 'unknown' as const };
    const name = `r${r}`;
    switch (f.kind) {
      case 'unknown':
      case 'scalar': {
        const v = f.kind === 'scalar' && f.value !== undefined ? f.value : BigInt(cex.vars[name] ?? '0');
        return [`${name} = ${BigInt.asIntN(64, v)} ll`];
      }
      case 'stack':
        return [`${name} = r10`, `${name} += ${f.off}`];
      case 'ctx':
        return r === 1 ? [`r1 += ${f.off ?? 0}`] : [`${name} = r1`, `${name} += ${f.off ?? 0}`];
      case 'packet': {
        const off = f.off ?? Number(cex.vars[`off:${name}`] ?? '0');
        return [`${name} = *(u32 *)(r1 + ${dataOff})`, `${name} += ${off}`];
      }
      case 'packet_end':
        return [`${name} = *(u32 *)(r1 + ${endOff})`];
      default:
        throw new Error(`replay: precondition ${f.kind} is not supported`);
    }
  };
  const isPtr = (r: number): boolean => !['unknown', 'scalar'].includes(pre.regs?.[r]?.kind ?? 'unknown');
  const others = [0, 2, 3, 4, 5, 6, 7, 8, 9];
  for (const r of others.filter(isPtr)) lines.push(...regLines(r));
  for (const r of others.filter((x) => !isPtr(x))) lines.push(...regLines(r));
  lines.push(...regLines(1));
  for (const [off, byte] of Object.entries(cex.stack)) {
    const o = Number(off);
    if (o < -512 || o >= 0) continue;
    lines.push(`*(u8 *)(r10 - ${-o}) = ${byte}`);
  }
  return asm(lines);
}

/** What a window replay observes: the exit taken, each live-out register, each stack byte written. */
export function windowObservations(windows: IrInsn[][], post: WindowPost): { name: string; code: string[] }[] {
  const live = post.regs ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const stackOffs = new Set<number>();
  if (post.stack === undefined || post.stack === 'all') {
    for (const w of windows) for (const i of w) {
      const c = opClass(i.code);
      if ((c === CLASS.ST || c === CLASS.STX) && i.dst === 10) for (let k = 0; k < 8; k++) stackOffs.add(i.off + k);
    }
  } else for (const s of post.stack) for (let k = 0; k < s.size; k++) stackOffs.add(s.off + k);
  const observations: { name: string; code: string[] }[] = [{ name: 'end', code: [] }];
  for (const r of live) observations.push({ name: `r${r}`, code: [`r0 = r${r}`] });
  for (const o of [...stackOffs].filter((x) => x >= -512 && x < 0).sort((x, y) => x - y)) {
    observations.push({ name: `stack${o}`, code: [`r0 = *(u8 *)(r10 - ${-o})`] });
  }
  return observations;
}

/**
 * Runs window `w` in the interpreter from the counterexample's entry state, once per observation;
 * the observation's value is r0 of the outcome ('end': 0 when falling through, k+1 for `labels[k]`).
 */
export function runWindow(w: IrInsn[], labels: string[], pre: WindowPre, cex: Counterexample, obs: { name: string; code: string[] }, progType = 'xdp'): Outcome {
  const input = packetInput(cex, progType);
  const epi: string[] = [];
  epi.push(...(obs.name === 'end' ? ['r0 = 0'] : obs.code), 'exit');
  labels.forEach((l, k) => {
    epi.push(`${l}:`, ...(obs.name === 'end' ? [`r0 = ${k + 1}`] : obs.code), 'exit');
  });
  const p = prepareInsns([...prologue(pre, cex, progType), ...w.map((i) => ({ ...i })), ...asm(epi)], { maps: [] as MapSpec[] });
  return run(p.unit, 'prog', progType, { packet: input.packet.slice(), ...(input.ctx ? { ctx: input.ctx.slice() } : {}) }, p.initialMaps());
}

/** Runs windows a and b on the counterexample, one observable at a time. */
export function replayWindow(a: IrInsn[], b: IrInsn[], pre: WindowPre, post: WindowPost, cex: Counterexample, progType = 'xdp'): ReplayResult {
  const labels = [...new Set([...exitLabels(a), ...exitLabels(b)])];
  for (const obs of windowObservations([a, b], post)) {
    const oa = runWindow(a, labels, pre, cex, obs, progType), ob = runWindow(b, labels, pre, cex, obs, progType);
    const d = compareOutcomes(oa, ob, { effects: true });
    if (d || (oa.status === 'exit' && oa.r0 !== ob.r0)) return { reproduced: true, what: `${obs.name}${d ? ` (${d.field})` : ''}`, a: oa, b: ob };
  }
  return { reproduced: false, what: null, a: null, b: null };
}
