// Whole-program equivalence: same return value, packet, context writes, map contents and helper
// effect sequence for every input (packet, context, map contents, helper results). With modular
// checking, programs that differ only in straight-line windows are compared window by window
// (under no assumptions about the window's inputs, all registers and memory observed afterwards),
// falling back to the whole program when that does not prove them equal.
import { CLASS, JMP, invertedJump, jmpOp, opClass } from '../isa/index.js';
import { programCode } from '../ir/index.js';
import type { BpfObject, IrInsn, ProgramRef } from '../ir/types.js';
import { K2Error } from '../util/errors.js';
import { cstring } from '../elf/read.js';
import { Terms } from './term.js';
import { Machine, NeedFlat, Unsupported, type CodeEnv, type MapInfo } from './machine.js';
import { objectMaps, relocResolver } from './codeenv.js';
import { differences } from './observe.js';
import { decideEncoded, checkWindow, encodeDeadline } from './window.js';
import type { CheckOptions, EquivResult } from './types.js';
import { Rng, packet } from '../testgen/index.js';

interface Side {
  obj: BpfObject;
  prog: ProgramRef;
  tag: string;
}

/** Instructions of a program's code with `ja +0` nops removed (their labels move to the next instruction). */
export function withoutNops(insns: IrInsn[]): IrInsn[] {
  const out: IrInsn[] = [];
  let carry: string[] = [];
  for (let k = 0; k < insns.length; k++) {
    const i = insns[k]!;
    const next = insns[k + 1];
    const ja = opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.JA;
    const isNop = ja && (i.target === undefined ? i.off === 0 :
      (next?.labels?.includes(i.target) ?? false) || (k === insns.length - 1 && i.target === '$end'));
    if (isNop && !i.pinned) {
      carry.push(...(i.labels ?? []));
      continue;
    }
    if (carry.length) {
      out.push({ ...i, labels: [...carry, ...(i.labels ?? [])] });
      carry = [];
    } else out.push(i);
  }
  if (carry.length) throw new Unsupported('labels after the last instruction');
  return out;
}

type RelocKey = (i: IrInsn) => string;

/**
 * What an instruction's relocations resolve to, comparable across objects: the map or global
 * data it points at, and its CO-RE records by type kind/name and access string (libbpf patches
 * the instruction from them, so two instructions with different records are different).
 */
function relocKey(obj: BpfObject): RelocKey {
  const r = relocResolver(obj);
  const maps = objectMaps(obj);
  const core = (i: IrInsn): string => (i.core ?? []).map((c) => {
    const t = obj.btf?.types[c.typeId];
    return `${c.kind}:${t ? `${t.kind}/${t.name}` : `?${c.typeId}`}:${obj.btf ? cstring(obj.btf.strings, c.accessStrOff) : `?${c.accessStrOff}`}`;
  }).join(';');
  return (i) => {
    const co = i.core?.length ? `core:${core(i)}` : '';
    if (!i.reloc) return co;
    const t = r(i, '');
    if (t.kind === 'error') return `?${i.reloc.sym}${co}`;
    return (t.kind === 'map' ? `map:${maps[t.map]!.name}` : `value:${maps[t.map]!.name}+${t.offset}`) + co;
  };
}

function sameInsn(a: IrInsn, b: IrInsn, ka: RelocKey, kb: RelocKey): boolean {
  // jump offsets and pc-relative call immediates are encodings of the (compared) symbolic targets
  const offOk = a.target !== undefined || a.off === b.off;
  const immOk = a.callee !== undefined || a.imm === b.imm;
  return a.code === b.code && a.dst === b.dst && a.src === b.src && offOk && immOk && (a.imm2 ?? 0) === (b.imm2 ?? 0) &&
    a.target === b.target && (a.callee?.section ?? '') === (b.callee?.section ?? '') && (a.callee?.label ?? '') === (b.callee?.label ?? '') &&
    ka(a) === kb(b) && (a.labels ?? []).join(',') === (b.labels ?? []).join(',');
}

function envFor(a: Side, b: Side, aCode: Map<string, IrInsn[]>, bCode: Map<string, IrInsn[]>): CodeEnv {
  const maps: MapInfo[] = objectMaps(a.obj);
  const mapsB = objectMaps(b.obj);
  const names = (ms: MapInfo[]): string => ms.map((m) => `${m.name}/${m.type}/${m.keySize}/${m.valueSize}/${m.maxEntries}`).join(',');
  if (names(maps) !== names(mapsB)) throw new Unsupported('the two objects define different maps or global data');
  const sections = new Map<string, IrInsn[]>();
  const prefix = (tag: string, code: Map<string, IrInsn[]>): void => {
    for (const [name, insns] of code) {
      sections.set(`${tag}${name}`, insns.map((i) => (i.callee ? { ...i, callee: { section: `${tag}${i.callee.section}`, label: i.callee.label } } : i)));
    }
  };
  prefix(a.tag, aCode);
  prefix(b.tag, bCode);
  const ra = relocResolver(a.obj), rb = relocResolver(b.obj);
  return {
    sections,
    maps,
    progType: a.prog.progType,
    whole: true,
    resolveReloc: (insn, section) => (section.startsWith(a.tag) ? ra(insn, section.slice(a.tag.length)) : rb(insn, section.slice(b.tag.length))),
  };
}

/**
 * A program's code with label names replaced by instruction positions ("@<index>"), so two versions
 * of a program compare instruction by instruction whatever their labels were called; with `strip`,
 * `ja +0` nops are removed first.
 */
function codeOf(s: Side, strip: boolean): { code: Map<string, IrInsn[]>; entry: string } {
  const raw = new Map<string, IrInsn[]>();
  for (const sec of programCode(s.obj, s.prog)) raw.set(sec.name, strip ? withoutNops(sec.insns) : sec.insns);
  const pos = new Map<string, Map<string, number>>();
  for (const [name, insns] of raw) {
    const m = new Map<string, number>();
    insns.forEach((i, k) => i.labels?.forEach((l) => m.set(l, k)));
    m.set('$end', insns.length);
    pos.set(name, m);
  }
  const at = (sec: string, label: string): string => {
    const k = pos.get(sec)?.get(label);
    if (k === undefined) throw new Unsupported(`undefined label ${label} in ${sec}`);
    return k === raw.get(sec)!.length ? '$end' : `@${k}`;
  };
  // Labels nobody refers to (left by removed nops, line info) are dropped.
  const used = new Set<string>([`${s.prog.section}|${s.prog.entry}`]);
  for (const [name, insns] of raw) {
    for (const i of insns) {
      if (i.target !== undefined) used.add(`${name}|${i.target}`);
      if (i.callee) used.add(`${i.callee.section}|${i.callee.label}`);
    }
  }
  const code = new Map<string, IrInsn[]>();
  for (const [name, insns] of raw) {
    code.set(name, insns.map((i, k) => {
      const c: IrInsn = { ...i };
      if (i.labels?.some((l) => used.has(`${name}|${l}`))) c.labels = [`@${k}`];
      else delete c.labels;
      if (i.target !== undefined) c.target = at(name, i.target);
      if (i.callee) c.callee = { section: i.callee.section, label: at(i.callee.section, i.callee.label) };
      return c;
    }));
  }
  return { code, entry: at(s.prog.section, s.prog.entry) };
}

/** Differing straight-line windows between two versions of the code, or null when not that simple. */
function windows(aCode: Map<string, IrInsn[]>, bCode: Map<string, IrInsn[]>, ka: RelocKey, kb: RelocKey): { a: IrInsn[]; b: IrInsn[] }[] | null {
  if ([...aCode.keys()].sort().join() !== [...bCode.keys()].sort().join()) return null;
  const out: { a: IrInsn[]; b: IrInsn[] }[] = [];
  for (const [name, a] of aCode) {
    const b = bCode.get(name)!;
    let p = 0;
    while (p < a.length && p < b.length && sameInsn(a[p]!, b[p]!, ka, kb)) p++;
    if (p === a.length && p === b.length) continue;
    let s = 0;
    while (s < a.length - p && s < b.length - p && sameInsn(a[a.length - 1 - s]!, b[b.length - 1 - s]!, ka, kb)) s++;
    const wa = a.slice(p, a.length - s), wb = b.slice(p, b.length - s);
    // the window checker does not model CO-RE patching
    if ([...wa, ...wb].some((i) => i.core?.length)) return null;
    const straight = (w: IrInsn[]): boolean => w.every((i, k) => {
      const c = opClass(i.code);
      if ((i.labels?.length ?? 0) > 0 && k > 0) return false;
      if (c === CLASS.JMP || c === CLASS.JMP32) return false;
      return true;
    });
    if (!straight(wa) || !straight(wb)) return null;
    if ((wa[0]?.labels ?? []).join() !== (wb[0]?.labels ?? []).join()) return null;
    out.push({ a: wa.map((i) => ({ ...i, labels: undefined })), b: wb.map((i) => ({ ...i, labels: undefined })) });
  }
  return out;
}

/**
 * Do the two programs execute the same instructions in the same order on every input? Walks both
 * control-flow graphs from their entries in lockstep (unconditional jumps are followed, not
 * compared): every pair of positions reached together must hold the same instruction (same
 * operands, relocation targets, CO-RE records), and their successors (fall-through, jump target,
 * called function) are paired in turn. A consistent pairing is a bisimulation: both programs run
 * identical instruction sequences, so every observable agrees. Proves code-layout changes such as
 * tail merging, block reordering and nop removal that the window comparison cannot.
 */
export function bisimilar(aCode: Map<string, IrInsn[]>, aEntry: [string, string], bCode: Map<string, IrInsn[]>, bEntry: [string, string], ka: RelocKey, kb: RelocKey): boolean {
  const posOf = (code: Map<string, IrInsn[]>, sec: string, label: string): number => {
    if (label === '$end') return code.get(sec)!.length;
    const k = Number(label.slice(1));
    if (!label.startsWith('@') || !Number.isInteger(k)) throw new Unsupported(`unexpected label ${label}`);
    return k;
  };
  /** Follows `goto`s from a position (a cycle of gotos is an infinite loop: compared as itself). */
  const settle = (code: Map<string, IrInsn[]>, sec: string, k: number): number => {
    const insns = code.get(sec)!;
    for (let n = 0; n < insns.length && k < insns.length; n++) {
      const i = insns[k]!;
      if (i.code !== (CLASS.JMP | JMP.JA) || i.target === undefined) return k;
      k = posOf(code, sec, i.target);
    }
    return k;
  };
  // A relation, not a one-to-one map: after tail merging one B position pairs with several A positions.
  const seen = new Set<string>();
  const work: [string, number, string, number][] = [];
  const pair = (sa: string, a: number, sb: string, b: number): true => {
    a = settle(aCode, sa, a);
    b = settle(bCode, sb, b);
    const key = `${sa}|${a}#${sb}|${b}`;
    if (seen.has(key)) return true;
    seen.add(key);
    work.push([sa, a, sb, b]);
    return true;
  };
  if (!aCode.has(aEntry[0]) || !bCode.has(bEntry[0])) return false;
  if (!pair(aEntry[0], posOf(aCode, aEntry[0], aEntry[1]), bEntry[0], posOf(bCode, bEntry[0], bEntry[1]))) return false;
  while (work.length) {
    const [sa, a, sb, b] = work.pop()!;
    const ia = aCode.get(sa)![a], ib = bCode.get(sb)![b];
    if (!ia || !ib) {
      if (ia || ib) return false; // one falls off its code, the other does not
      continue;
    }
    const ua = { ...ia, labels: undefined, target: undefined, callee: undefined };
    const ub = { ...ib, labels: undefined, target: undefined, callee: undefined };
    if ((ia.target === undefined) !== (ib.target === undefined) || !!ia.callee !== !!ib.callee) return false;
    // `if c goto T` against `if !c goto F`: the same branch with its two successors swapped
    if (ia.target !== undefined && ib.code === invertedJump(ia.code) && ia.dst === ib.dst && ia.src === ib.src && ia.imm === ib.imm) {
      pair(sa, posOf(aCode, sa, ia.target), sb, b + 1);
      pair(sa, a + 1, sb, posOf(bCode, sb, ib.target!));
      continue;
    }
    if (!sameInsn({ ...ua, off: ia.target !== undefined ? 0 : ia.off, imm: ia.callee ? 0 : ia.imm }, { ...ub, off: ib.target !== undefined ? 0 : ib.off, imm: ib.callee ? 0 : ib.imm }, ka, kb)) return false;
    const cls = opClass(ia.code);
    const op = jmpOp(ia.code);
    const isJmp = cls === CLASS.JMP || cls === CLASS.JMP32;
    if (isJmp && op === JMP.EXIT) continue;
    if (ia.target !== undefined && !pair(sa, posOf(aCode, sa, ia.target), sb, posOf(bCode, sb, ib.target!))) return false;
    if (ia.callee && !pair(ia.callee.section, posOf(aCode, ia.callee.section, ia.callee.label), ib.callee!.section, posOf(bCode, ib.callee!.section, ib.callee!.label))) return false;
    // the fall-through (ld_imm64 is one IR instruction)
    if (!pair(sa, a + 1, sb, b + 1)) return false;
  }
  return true;
}

/** Are program `pa` of `a` and program `pb` of `b` equivalent? */
export async function checkPrograms(a: BpfObject, pa: ProgramRef, b: BpfObject, pb: ProgramRef, opts: CheckOptions = {}): Promise<EquivResult> {
  const t0 = performance.now();
  const ms = (): number => Math.round((performance.now() - t0) * 1000) / 1000;
  const A: Side = { obj: a, prog: pa, tag: 'A:' };
  const B: Side = { obj: b, prog: pb, tag: 'B:' };
  const modular = opts.modular ?? true;
  const cache = opts.cache ?? true;
  try {
    const ca = codeOf(A, cache), cb = codeOf(B, cache);
    const aCode = ca.code, bCode = cb.code;
    A.prog = { ...pa, entry: ca.entry };
    B.prog = { ...pb, entry: cb.entry };
    if (modular && pa.section === pb.section && ca.entry === cb.entry) {
      const ws = windows(aCode, bCode, relocKey(a), relocKey(b));
      if (ws && ws.length === 0) return { equivalent: true, counterexample: null, ms: ms(), via: 'syntactic' };
      if (ws) {
        let all = true;
        for (const w of ws) {
          const r = await checkWindow(w.a, w.b, {}, {}, { ...opts, object: a, progType: pa.progType });
          if (r.equivalent !== true) {
            all = false;
            break;
          }
        }
        if (all) return { equivalent: true, counterexample: null, ms: ms(), via: 'modular' };
      }
    }
    if (modular && bisimilar(aCode, [pa.section, ca.entry], bCode, [pb.section, cb.entry], relocKey(a), relocKey(b))) {
      return { equivalent: true, counterexample: null, ms: ms(), via: 'syntactic' };
    }
    const r = await wholeProgram(A, B, aCode, bCode, opts);
    return { ...r, ms: ms() };
  } catch (e) {
    if (e instanceof Unsupported) return { equivalent: null, counterexample: null, ms: ms(), via: 'none', reason: `unsupported: ${e.message}` };
    throw e;
  }
}

async function wholeProgram(A: Side, B: Side, aCode: Map<string, IrInsn[]>, bCode: Map<string, IrInsn[]>, opts: CheckOptions): Promise<EquivResult> {
  // Symbolic execution takes instructions as written; libbpf patches CO-RE-relocated ones at load.
  for (const code of [aCode, bCode]) {
    for (const insns of code.values()) if (insns.some((i) => i.core?.length)) throw new Unsupported('CO-RE relocations are not modelled (only identical or re-laid-out programs are proven)');
  }
  const encode = (memTypes: boolean) => {
    const T = new Terms();
    const env = envFor(A, B, aCode, bCode);
    const M = new Machine(T, env, {
      memTypes, mapTypes: opts.mapTypes ?? true, offsets: opts.offsets ?? true, maxPaths: opts.maxPaths ?? 4096, maxSteps: opts.maxSteps ?? 100000,
      deadline: encodeDeadline({ ...opts, timeoutMs: opts.timeoutMs ?? 5000 }),
      ctx: opts.ctx ?? 'production', ...(opts.maxFrames !== undefined ? { maxFrames: opts.maxFrames } : {}),
    });
    const entry = (s: Side): number => {
      const insns = env.sections.get(`${s.tag}${s.prog.section}`)!;
      const i = insns.findIndex((x) => x.labels?.includes(s.prog.entry));
      if (i < 0) throw new Unsupported(`entry label ${s.prog.entry} not found`);
      return i;
    };
    const endsA = M.run(`${A.tag}${A.prog.section}`, entry(A), M.entryState());
    const endsB = M.run(`${B.tag}${B.prog.section}`, entry(B), M.entryState());
    const { diff, obs } = differences(M, endsA, endsB, { liveOut: [], stack: 'none', retBits: opts.retBits ?? 64 });
    return { M, assume: M.assumptions, diff, obs, names: new Map<string, string>() };
  };
  let enc;
  try {
    enc = encode(opts.memTypes ?? true);
  } catch (e) {
    if (!(e instanceof NeedFlat)) throw e;
    enc = encode(false);
  }
  return decideEncoded(enc, { ...opts, object: A.obj }, opts.timeoutMs ?? 5000, enc.M.ctx.packet && (opts.fastPaths ?? true) ? testPackets(A.prog.progType, opts.packetTests ?? 64, opts.seed ?? 1) : []);
}

/**
 * Generated packets as the program sees them (from the network header for socket/cgroup/lwt
 * programs), with the __sk_buff fields the test run derives from the frame (protocol, packet type,
 * family, addresses), so that random inputs walk the program's parser paths.
 */
function testPackets(progType: string, n: number, seed: number): { data: Uint8Array; ctx?: Uint8Array }[] {
  const r = new Rng(seed);
  const l3 = ['socket_filter', 'cgroup_skb', 'lwt_in', 'lwt_out', 'lwt_xmit'].includes(progType);
  const skb = l3 || progType === 'sched_cls' || progType === 'sched_act';
  const out: { data: Uint8Array; ctx?: Uint8Array }[] = [];
  for (let i = 0; i < n; i++) {
    const p = packet(r);
    const data = l3 ? p.slice(14) : p;
    out.push(skb ? { data, ctx: skbFields(p, data.length) } : { data });
  }
  return out;
}

/** __sk_buff as BPF_PROG_TEST_RUN fills it for an Ethernet frame (cf. src/interp/ctx.ts). */
function skbFields(frame: Uint8Array, len: number): Uint8Array {
  const c = new Uint8Array(192);
  const v = new DataView(c.buffer);
  v.setUint32(0, len, true);
  const dst = frame.subarray(0, 6);
  let pktType = 0;
  if (dst.some((x) => x !== 0)) pktType = dst[0]! & 1 ? (dst.every((x) => x === 0xff) ? 1 : 2) : 3;
  v.setUint32(4, pktType, true);
  const eth = (frame[12]! << 8) | frame[13]!;
  let proto = eth;
  if (eth < 0x600) proto = frame.length >= 16 && frame[14] === 0xff && frame[15] === 0xff ? 0x0001 : 0x0004;
  v.setUint32(16, ((proto & 0xff) << 8) | (proto >> 8), true);
  v.setUint32(40, 1, true);
  const l3len = frame.length - 14;
  if (proto === 0x0800) {
    v.setUint32(88, 2, true);
    if (l3len >= 20) {
      c.set(frame.subarray(30, 34), 92);
      c.set(frame.subarray(26, 30), 96);
    }
  } else if (proto === 0x86dd) {
    v.setUint32(88, 10, true);
    if (l3len >= 40) {
      c.set(frame.subarray(38, 54), 100);
      c.set(frame.subarray(22, 38), 116);
    }
  }
  v.setUint32(160, len, true);
  return c;
}

export interface ObjectsResult extends EquivResult {
  programs: ({ section: string; name: string } & EquivResult)[];
}

/** Compares every program of `a` with the program of the same name in `b` (optionally one section). */
export async function checkObjects(a: BpfObject, b: BpfObject, opts: CheckOptions & { section?: string } = {}): Promise<ObjectsResult> {
  const t0 = performance.now();
  const progs = a.programs.filter((p) => opts.section === undefined || p.section === opts.section);
  if (progs.length === 0) {
    throw new K2Error('input', opts.section === undefined ? 'no programs to compare' : `no program in section ${opts.section}`, { file: a.file });
  }
  const results: ({ section: string; name: string } & EquivResult)[] = [];
  for (const p of progs) {
    const q = b.programs.find((x) => x.name === p.name && x.section === p.section) ?? b.programs.find((x) => x.name === p.name);
    if (!q) throw new K2Error('input', `program ${p.name} (section ${p.section}) is missing`, { file: b.file });
    results.push({ section: p.section, name: p.name, ...(await checkPrograms(a, p, b, q, opts)) });
  }
  const firstFalse = results.find((r) => r.equivalent === false);
  const anyNull = results.some((r) => r.equivalent === null);
  const equivalent = firstFalse ? false : anyNull ? null : true;
  const reason = results.find((r) => r.reason)?.reason;
  return {
    equivalent,
    counterexample: firstFalse?.counterexample ?? null,
    ms: Math.round((performance.now() - t0) * 1000) / 1000,
    via: results.length === 1 ? results[0]!.via : 'none',
    ...(reason && equivalent === null ? { reason } : {}),
    programs: results,
  };
}
