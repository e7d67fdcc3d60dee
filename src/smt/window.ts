// Window equivalence: are two instruction sequences interchangeable at one place of a program,
// given what is known on entry (precondition) and what is used afterwards (postcondition)?
import type { IrInsn } from '../ir/types.js';
import { Terms, type Term } from './term.js';
import { Machine, NeedFlat, State, Unsupported, type MachineOptions, type MapInfo } from './machine.js';
import { codeEnv } from './codeenv.js';
import { differences, type ObserveSpec, type Observable } from './observe.js';
import { decide, differsOn } from './decide.js';
import { Env } from './eval.js';
import { counterexample } from './cex.js';
import type { CheckOptions, Counterexample, EquivResult, RegFact, WindowPost, WindowPre } from './types.js';
import { canonicalWindow, windowCache, windowKey } from './cache.js';

const ALL_REGS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/** The machine state a precondition describes, plus the facts it adds about the inputs. */
function entryState(M: Machine, pre: WindowPre, names: Map<string, string>): { st: State; assume: Term[] } {
  const T = M.T;
  const assume: Term[] = [];
  const regs: Term[] = [];
  const fact = (f: RegFact, tag: string): Term => {
    switch (f.kind) {
      case 'unknown': {
        names.set(tag, tag);
        return T.var(tag, 64);
      }
      case 'scalar': {
        if (f.value !== undefined) return T.bv(f.value, 64);
        const v = T.var(tag, 64);
        names.set(tag, tag);
        if (f.umin !== undefined) assume.push(T.ule(T.bv(f.umin, 64), v));
        if (f.umax !== undefined) assume.push(T.ule(v, T.bv(f.umax, 64)));
        if (f.smin !== undefined) assume.push(T.sle(T.bv(f.smin, 64), v));
        if (f.smax !== undefined) assume.push(T.sle(v, T.bv(f.smax, 64)));
        if (f.tnum) assume.push(T.eq(T.and(v, T.bv(~f.tnum.mask, 64)), T.bv(f.tnum.value & ~f.tnum.mask, 64)));
        return v;
      }
      case 'stack':
        return T.add(M.stackRegion(0).base, T.bv(BigInt(f.off), 64));
      case 'ctx':
        return T.add(M.ctxBase, T.bv(BigInt(f.off ?? 0), 64));
      case 'packet': {
        const pkt = T.var('base:pkt', 64);
        if (f.minLen !== undefined) assume.push(T.sle(T.bv(BigInt(f.minLen), 64), M.pktLen));
        if (f.off !== undefined) return T.add(pkt, T.bv(BigInt(f.off), 64));
        const off = T.var(`off:${tag}`, 64);
        assume.push(T.ule(off, T.bv(0xffffn, 64)));
        return T.add(pkt, off);
      }
      case 'packet_end':
        return T.add(T.var('base:pkt', 64), M.pktLen);
      case 'map':
        return M.mapPointer(mapNamed(M, f.map));
      case 'map_value': {
        const m = mapNamed(M, f.map);
        const off = T.bv(BigInt(f.off ?? 0), 64);
        if (M.arrayLike(m)) {
          const idx = T.var(`idx:${tag}`, 64);
          assume.push(T.ult(idx, T.bv(BigInt(m.maxEntries), 64)));
          return T.add(M.regionOfMap(m).base, T.mul(idx, T.bv(BigInt(m.valueSize), 64)), off);
        }
        const key = T.var(`key:${tag}`, 8 * m.keySize);
        return T.add(M.hashRegion(m, key).base, off);
      }
      case 'mem':
        return M.opaqueRegion(tag, f.size ?? null).base;
    }
  };
  for (const r of ALL_REGS) regs.push(fact(pre.regs?.[r] ?? { kind: 'unknown' }, `r${r}`));
  regs.push(M.stackRegion(0).base);
  const st = new State(regs, T.T);
  if (pre.packetMinLen !== undefined) {
    assume.push(T.sle(T.bv(BigInt(pre.packetMinLen), 64), M.pktLen));
    st.lenMin = BigInt(pre.packetMinLen);
  }
  for (const f of Object.values(pre.regs ?? {})) if (f?.kind === 'packet' && f.minLen !== undefined && BigInt(f.minLen) > st.lenMin) st.lenMin = BigInt(f.minLen);
  for (const s of pre.stack ?? []) {
    const v = fact(s.fact, `fp${s.off}`);
    const ok = M.store(st, T.add(M.stackRegion(0).base, T.bv(BigInt(s.off), 64)), s.size, v, []);
    if (!ok) throw new Unsupported(`precondition stack slot ${s.off} is outside the frame`);
  }
  return { st, assume };
}

function mapNamed(M: Machine, name: string): MapInfo {
  const m = M.env.maps.find((x) => x.name === name);
  if (!m) throw new Unsupported(`precondition names unknown map ${name}`);
  return m;
}

/** Symbolic execution may take up to 4× the solver timeout (default 2 s → 8 s; 1 s with no solver) before the answer is null. */
export const encodeDeadline = (o: CheckOptions): number => performance.now() + (o.timeoutMs === 0 ? 1000 : 4 * (o.timeoutMs ?? 2000));

export function machineOptions(o: CheckOptions, memTypes: boolean): MachineOptions {
  return {
    memTypes, mapTypes: o.mapTypes ?? true, offsets: o.offsets ?? true, maxPaths: o.maxPaths ?? 4096, maxSteps: o.maxSteps ?? 100000, deadline: encodeDeadline(o),
    ctx: o.ctx ?? 'production', ...(o.maxFrames !== undefined ? { maxFrames: o.maxFrames } : {}),
  };
}

interface Encoded {
  M: Machine;
  assume: Term[];
  diff: Term;
  obs: Observable[];
  names: Map<string, string>;
}

function encodeWindow(a: IrInsn[], b: IrInsn[], pre: WindowPre, post: WindowPost, o: CheckOptions, memTypes: boolean): Encoded {
  const T = new Terms();
  const progType = o.progType ?? o.object?.programs[0]?.progType ?? 'xdp';
  const env = codeEnv(new Map([['A', a], ['B', b]]), o.object, progType, false);
  const M = new Machine(T, env, machineOptions(o, memTypes));
  const names = new Map<string, string>();
  const { st, assume } = entryState(M, pre, names);
  const endsA = M.run('A', 0, st.clone());
  const endsB = M.run('B', 0, st.clone());
  const spec: ObserveSpec = { liveOut: post.regs ?? ALL_REGS, stack: post.stack ?? 'all', retBits: o.retBits ?? 64 };
  const { diff, obs } = differences(M, endsA, endsB, spec);
  return { M, assume: [...M.assumptions, ...assume], diff, obs, names };
}

/**
 * Are windows `a` and `b` equivalent under `pre` (facts at entry) and `post` (what is used after)?
 * true = proven; false = a counterexample exists (returned); null = unknown (timeout, unsupported).
 */
export async function checkWindow(a: IrInsn[], b: IrInsn[], pre: WindowPre = {}, post: WindowPost = {}, opts: CheckOptions = {}): Promise<EquivResult> {
  const t0 = performance.now();
  const ms = (): number => Math.round((performance.now() - t0) * 1000) / 1000;
  if (!(opts.cache ?? true)) return { ...(await checkWindowUncached(a, b, pre, post, opts)), ms: ms() };
  const c = canonicalWindow(a, b, pre, post);
  const key = windowKey(c.a, c.b, c.pre, c.post, opts);
  let result = windowCache.get(key);
  let via: EquivResult['via'] | null = null;
  if (result) via = 'cache';
  else {
    result = await checkWindowUncached(c.a, c.b, c.pre, c.post, opts);
    if (result.equivalent !== null) windowCache.set(key, result);
  }
  const counterexample = result.counterexample ? renameCex(result.counterexample, c.back) : null;
  return { ...result, counterexample, ms: ms(), via: via ?? result.via };
}

/** A counterexample of a canonical query in the original register names. */
function renameCex(cex: Counterexample, back: Map<number, number>): Counterexample {
  const ren = (s: string): string => s.replace(/(^|:)r(\d+)$/, (_m, p: string, n: string) => `${p}r${back.get(Number(n)) ?? n}`);
  const regs: Record<string, string> = {};
  for (const [k, v] of Object.entries(cex.regs)) regs[ren(k)] = v;
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(cex.vars)) vars[ren(k)] = v;
  const what = cex.difference.what.replace(/^r(\d+)$/, (_m, n: string) => `r${back.get(Number(n)) ?? n}`);
  return { ...cex, regs, vars, difference: { ...cex.difference, what } };
}

async function checkWindowUncached(a: IrInsn[], b: IrInsn[], pre: WindowPre, post: WindowPost, opts: CheckOptions): Promise<EquivResult> {
  let enc: Encoded;
  try {
    try {
      enc = encodeWindow(a, b, pre, post, opts, opts.memTypes ?? true);
    } catch (e) {
      if (!(e instanceof NeedFlat)) throw e;
      enc = encodeWindow(a, b, pre, post, opts, false);
    }
  } catch (e) {
    if (e instanceof Unsupported) return { equivalent: null, counterexample: null, ms: 0, via: 'none', reason: `unsupported: ${e.message}` };
    throw e;
  }
  return decideEncoded(enc, opts, opts.timeoutMs ?? 2000);
}

export async function decideEncoded(enc: Encoded, opts: CheckOptions, timeoutMs: number, packets: { data: Uint8Array; ctx?: Uint8Array }[] = []): Promise<EquivResult> {
  // with the packets, global data starts as the object defines it (a realistic starting point)
  const initial = (opts.object?.data ?? []).map((d) => {
    const bytes = new Uint8Array(d.size);
    bytes.set(d.init.subarray(0, d.size));
    return { mem: `mem:mv:${d.name}`, base: `base:mv:${d.name}`, bytes };
  });
  const M = enc.M;
  const v = await decide({
    T: M.T, assume: enc.assume, diff: enc.diff, fixed: (n, i, e) => M.fixedByte(n, i, e), packets, flat: M.flat, initial,
    havoc: M.T.bor(...M.havoc), prefer: M.T.band(...M.testRun),
  }, {
    timeoutMs, randomTests: opts.randomTests ?? 32, fastPaths: opts.fastPaths ?? true, seed: opts.seed ?? 1, ...(opts.rlimit !== undefined ? { rlimit: opts.rlimit } : {}),
  });
  if (v.equivalent === true) return { equivalent: true, counterexample: null, ms: 0, via: v.via };
  if (v.equivalent === null) return { equivalent: null, counterexample: null, ms: 0, via: 'none', reason: v.reason };
  const cex = counterexample(enc.M, v.env, enc.obs, enc.names);
  if (addressDependent(enc, v.env)) cex.addressDependent = true;
  if (!v.preferred) cex.ctxDependent = true;
  return { equivalent: false, counterexample: cex, ms: 0, via: v.via };
}

/**
 * Does the difference hinge on the numeric values of region addresses (e.g. a program that masks
 * or compares a pointer)? Re-evaluated with every region moved by 8 GiB: if the sides no longer
 * differ, the counterexample only holds for particular kernel addresses (the interpreter uses its
 * own, so it cannot replay it).
 */
function addressDependent(enc: Encoded, env: Env): boolean {
  if (enc.M.flat) return false;
  const moved = new Env(() => 0n, () => 0n);
  for (const [k, v] of env.vars) {
    const d = (1n << 33n) + 0x1238n; // changes low bits too, keeps 8-byte alignment
    moved.vars.set(k, k.startsWith('base:') ? (v + d < (1n << 64n) - (1n << 40n) ? v + d : v - d) : v);
  }
  for (const [k, m] of env.arrays) {
    if (k.startsWith('vb:')) {
      const mm = new Map<bigint, bigint>();
      for (const [i, v] of m) mm.set(i, v + (1n << 33n) + 0x1238n);
      moved.arrays.set(k, mm);
    } else moved.arrays.set(k, new Map(m));
  }
  try {
    return !differsOn({ T: enc.M.T, assume: enc.assume, diff: enc.diff }, moved);
  } catch {
    return false;
  }
}

export type { Encoded };

/**
 * A window under several possible entry states (e.g. every abstract state the safety checker
 * recorded at the window's start): equal only if equal under each; the first counterexample wins.
 */
export async function checkWindowStates(a: IrInsn[], b: IrInsn[], pres: WindowPre[], post: WindowPost = {}, opts: CheckOptions = {}): Promise<EquivResult> {
  const t0 = performance.now();
  let unknown: EquivResult | null = null;
  let via: EquivResult['via'] = 'none';
  for (const pre of pres.length ? pres : [{}]) {
    const r = await checkWindow(a, b, pre, post, opts);
    if (r.equivalent === false) return { ...r, ms: Math.round((performance.now() - t0) * 1000) / 1000 };
    if (r.equivalent === null) unknown ??= r;
    else via = r.via;
  }
  const ms = Math.round((performance.now() - t0) * 1000) / 1000;
  return unknown ? { ...unknown, ms } : { equivalent: true, counterexample: null, ms, via };
}
