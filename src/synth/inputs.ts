// Test inputs for a window: random register values and memory shaped by the window's precondition
// (the safety model's facts at its entry: constants, bounds, known bits, and pointer kinds with the
// region each points into), and inputs rebuilt from the checker's counterexamples (CEGIS).
import type { MapInfo } from '../smt/machine.js';
import { ctxLayout } from '../smt/ctxmodel.js';
import type { Counterexample, RegFact, WindowPre } from '../smt/index.js';
import { FP, STACK_SIZE, type MemRegion, type WinEnv, type WinState } from './eval.js';
import type { Rng } from './rng.js';

/** What a window's inputs depend on besides its precondition. */
export interface WindowContext {
  progType: string;
  /** Maps and global data as the checker sees them (codeenv.objectMaps). */
  maps: MapInfo[];
}

// Region addresses: page-aligned with non-zero low 32 bits (code truncating a pointer to 32 bits
// must not see its offset), far apart, and far from the stack at 0x7fff_0000_0000_0000.
export const CTX_BASE = 0x6000_0000_1234_5000n;
export const PKT_BASE = 0x6100_0000_8765_3000n;
const MAPVAL_BASE = 0x6200_0000_4321_0000n;
const MEM_BASE = 0x6300_0000_2468_a000n;
const MAP_PTR_BASE = 0x6400_0000_1357_9000n;
const REGION_GAP = 1n << 36n;

/** Interesting 64-bit values for a register nothing is known about. */
export function randomValue(rng: Rng): bigint {
  switch (rng.int(6)) {
    case 0: return BigInt(rng.int(256));
    case 1: return BigInt.asUintN(64, BigInt(rng.int(65536) - 32768));
    case 2: return rng.next64() & 0xffff_ffffn;
    case 3: return 1n << BigInt(rng.int(64));
    case 4: return BigInt.asUintN(64, -BigInt(rng.int(16)));
    default: return rng.next64();
  }
}

/** A value satisfying a scalar fact (bounds and known bits), or null when sampling fails. */
function scalarValue(rng: Rng, f: Extract<RegFact, { kind: 'scalar' }>): bigint | null {
  if (f.value !== undefined) return f.value;
  const lo = f.umin ?? 0n, hi = f.umax ?? (1n << 64n) - 1n;
  const ok = (v: bigint): boolean => {
    if (v < lo || v > hi) return false;
    const s = BigInt.asIntN(64, v);
    if (f.smin !== undefined && s < f.smin) return false;
    if (f.smax !== undefined && s > f.smax) return false;
    if (f.tnum && (v & ~f.tnum.mask & ((1n << 64n) - 1n)) !== (f.tnum.value & ~f.tnum.mask)) return false;
    return true;
  };
  const fit = (v: bigint): bigint => (f.tnum ? (v & f.tnum.mask) | (f.tnum.value & ~f.tnum.mask) : v) & ((1n << 64n) - 1n);
  const first = rng.int(4);
  for (let k = first; k < first + 24; k++) {
    let v: bigint;
    switch (k % 4) {
      case 0: v = fit(randomValue(rng)); break;
      case 1: v = fit(hi - lo < 1n << 53n ? lo + BigInt(Math.floor(rng.float() * Number(hi - lo + 1n))) : lo + (rng.next64() % (hi - lo + 1n))); break;
      case 2: v = fit(lo + BigInt(rng.int(4))); break;
      default: v = fit(hi - BigInt(rng.int(4))); break;
    }
    if (ok(v)) return v;
  }
  for (const v of [lo, hi, fit(lo), fit(hi)]) if (ok(v)) return v;
  return null;
}

/** Builds a region layout for `pre` and one random input over it (null: the facts cannot be met). */
export function randomInputFor(rng: Rng, pre: WindowPre, wc: WindowContext): WinState | null {
  const regions: MemRegion[] = [];
  const env: WinEnv = { regions };
  const regs: bigint[] = Array.from({ length: 11 }, () => randomValue(rng));
  regs[10] = FP;
  const facts = pre.regs ?? {};
  let minLen = pre.packetMinLen ?? 0;
  for (const f of Object.values(facts)) if (f?.kind === 'packet' && f.minLen !== undefined) minLen = Math.max(minLen, f.minLen);
  // A packet of at least the verified length; sometimes exactly that long, so overreads fault.
  const len = Math.min(0xffff, minLen + (rng.int(3) === 0 ? 0 : rng.int(3) === 0 ? rng.int(8) : rng.int(256)));
  // packet data (also what ld_abs/ld_ind read)
  {
    env.pkt = { base: PKT_BASE, len };
    regions.push({ kind: 'pkt', name: 'packet', base: PKT_BASE, size: len, writable: true });
  }
  const layout = ctxLayout(wc.progType);
  if (Object.values(facts).some((f) => f?.kind === 'ctx')) {
    env.ctx = { base: CTX_BASE, layout };
    regions.push({ kind: 'ctx', name: 'ctx', base: CTX_BASE, size: layout.size ?? 256, writable: true });
  }
  let mapRegion = 0;
  for (let r = 0; r <= 9; r++) {
    const f = facts[r];
    if (!f) continue;
    switch (f.kind) {
      case 'unknown': break;
      case 'scalar': {
        const v = scalarValue(rng, f);
        if (v === null) return null;
        regs[r] = v;
        break;
      }
      case 'stack': regs[r] = FP + BigInt(f.off); break;
      case 'ctx': regs[r] = CTX_BASE + BigInt(f.off ?? 0); break;
      case 'packet': regs[r] = PKT_BASE + BigInt(f.off ?? rng.int(len + 1)); break;
      case 'packet_end': regs[r] = PKT_BASE + BigInt(len); break;
      case 'map': {
        const k = wc.maps.findIndex((m) => m.name === f.map);
        regs[r] = MAP_PTR_BASE + BigInt(k < 0 ? 0 : k) * 64n;
        break;
      }
      case 'map_value': {
        const m = wc.maps.find((x) => x.name === f.map);
        if (!m) return null;
        const base = MAPVAL_BASE + BigInt(mapRegion++) * REGION_GAP;
        regions.push({ kind: 'map', name: `${f.map}@r${r}`, base, size: m.valueSize, writable: !m.readonly });
        regs[r] = base + BigInt(f.off ?? 0);
        break;
      }
      case 'mem': {
        if (!f.size) break;
        const base = MEM_BASE + BigInt(r) * REGION_GAP;
        regions.push({ kind: 'mem', name: `mem@r${r}`, base, size: f.size, writable: true });
        regs[r] = base;
        break;
      }
    }
  }
  const stack = new Uint8Array(STACK_SIZE);
  const words = new Uint32Array(stack.buffer, stack.byteOffset, STACK_SIZE / 4);
  for (let i = 0; i < words.length; i++) words[i] = rng.next32();
  const st: WinState = { regs, stack, memSeed: rng.int(2 ** 31), env };
  // Known stack contents (spilled constants): store them little-endian.
  for (const s of pre.stack ?? []) {
    if (s.fact.kind !== 'scalar' || s.fact.value === undefined) continue;
    const i = STACK_SIZE + s.off;
    for (let k = 0; k < s.size && i + k >= 0 && i + k < STACK_SIZE; k++) stack[i + k] = Number((s.fact.value >> BigInt(8 * k)) & 0xffn);
  }
  return st;
}

/**
 * An input rebuilt from a checker counterexample: its register values, stack, packet, context and
 * map-value bytes placed where this evaluator keeps them. Null when the counterexample names
 * something the evaluator does not model (the test would not reproduce it).
 */
export function inputFromCex(rng: Rng, cex: Counterexample, pre: WindowPre, wc: WindowContext): WinState | null {
  const st = randomInputFor(rng, pre, wc);
  if (!st) return null;
  const facts = pre.regs ?? {};
  for (const [k, v] of Object.entries(cex.regs)) {
    const m = /^r(\d)$/.exec(k);
    if (!m || !v.startsWith('0x')) return null;
    const r = Number(m[1]);
    const f = facts[r];
    if (f && f.kind !== 'unknown' && f.kind !== 'scalar') continue; // pointers keep this layout
    st.regs[r] = BigInt(v);
  }
  for (const [off, byte] of Object.entries(cex.stack)) {
    const i = STACK_SIZE + Number(off);
    if (i < 0 || i >= STACK_SIZE) return null;
    st.stack[i] = byte;
  }
  const initial = new Map<bigint, number>();
  const env = st.env!;
  if (cex.packetLen !== null && env.pkt) {
    const len = cex.packetLen;
    env.pkt = { base: PKT_BASE, len };
    env.regions = env.regions.map((r) => (r.kind === 'pkt' ? { ...r, size: len } : r));
    for (let r = 0; r <= 9; r++) {
      const f = facts[r];
      if (f?.kind === 'packet_end') st.regs[r] = PKT_BASE + BigInt(len);
      if (f?.kind === 'packet' && f.off === undefined) {
        const off = cex.vars[`off:r${r}`];
        if (off !== undefined) st.regs[r] = PKT_BASE + BigInt(off);
      }
    }
    for (const [i, v] of Object.entries(cex.arrays['mem:pkt'] ?? {})) initial.set(PKT_BASE + BigInt(i), v);
  }
  if (env.ctx) for (const [i, v] of Object.entries(cex.arrays['mem:ctx'] ?? {})) initial.set(CTX_BASE + BigInt(i), v);
  // Map values: region of the register's element (array maps: idx:rN; hash maps: key:rN).
  for (let r = 0; r <= 9; r++) {
    const f = facts[r];
    if (f?.kind !== 'map_value') continue;
    const m = wc.maps.find((x) => x.name === f.map)!;
    const region = env.regions.find((x) => x.name === `${f.map}@r${r}`);
    if (!region) continue;
    const idx = cex.vars[`idx:r${r}`];
    const key = cex.vars[`key:r${r}`];
    if (idx !== undefined) {
      const from = BigInt(idx) * BigInt(m.valueSize);
      for (const [i, v] of Object.entries(cex.arrays[`mem:mv:${f.map}`] ?? {})) {
        const j = BigInt(i) - from;
        if (j >= 0n && j < BigInt(m.valueSize)) initial.set(region.base + j, v);
      }
    } else if (key !== undefined) {
      const k = BigInt(key);
      for (const [i, v] of Object.entries(cex.arrays[`mem:hv:${f.map}`] ?? {})) {
        const n = BigInt(i);
        if (n >> 32n === k) initial.set(region.base + (n & 0xffff_ffffn), v);
      }
    }
  }
  if (initial.size) env.initial = initial;
  return st;
}
