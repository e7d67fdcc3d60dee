// Turning a differing assignment into a counterexample a person (or the interpreter) can use.
import { Evaluator, type Env } from './eval.js';
import type { Machine } from './machine.js';
import type { Observable } from './observe.js';
import type { Counterexample } from './types.js';
import { toSigned } from './term.js';

const hex = (v: bigint): string => '0x' + v.toString(16);

/** Splits the flat memory of a model into per-region arrays (mem:stack0, mem:pkt, mem:ctx, ...). */
function unflatten(M: Machine, env: Env): void {
  const flat = env.arrays.get('mem:flat');
  if (!flat) return;
  const ev = new Evaluator(env);
  const spans = M.regions().map((r) => {
    const base = ev.bv(r.base);
    const hi = r.hi === 'len' ? env.vars.get('pkt_len') ?? 0n : r.hi ?? 1n << 32n;
    const key = r.kind === 'hashval' ? ev.bv(r.key!) : null;
    return { r, base, lo: r.lo, hi, key };
  });
  for (const [addr, v] of flat) {
    for (const s of spans) {
      const off = BigInt.asIntN(64, addr - s.base);
      if (off < s.lo || off >= s.hi) continue;
      const name = `mem:${s.r.mem}`;
      const idx = s.key !== null ? (s.key << 32n) | BigInt.asUintN(32, off) : BigInt.asUintN(64, off);
      let m = env.arrays.get(name);
      if (!m) env.arrays.set(name, (m = new Map()));
      if (!m.has(idx)) m.set(idx, v);
      break;
    }
  }
}

/** A readable place for a memory index: region+offset for flat addresses. */
function locateAddress(M: Machine, ev: Evaluator, i: bigint, flat: boolean): string {
  if (!flat) return BigInt.asIntN(64, i).toString();
  for (const r of M.regions()) {
    const off = BigInt.asIntN(64, i - ev.bv(r.base));
    if (off >= r.lo - 4096n && off < (r.hi === 'len' || r.hi === null ? 1n << 32n : r.hi) + 4096n) return `${r.mem}${off >= 0n ? '+' : ''}${off}`;
  }
  return hex(i);
}

export function counterexample(M: Machine, env: Env, obs: Observable[], regNames: Map<string, string> = new Map()): Counterexample {
  const ev = new Evaluator(env);
  unflatten(M, env);
  let difference = { what: '?', a: '?', b: '?' };
  for (const o of obs) {
    const a = ev.bv(o.a), b = ev.bv(o.b);
    if (a !== b) {
      let what = o.name;
      if (o.index && what.endsWith('[?]')) {
        const i = ev.bv(o.index);
        const at = locateAddress(M, ev, i, what.startsWith('flat'));
        what = what.replace('[?]', `[${at}]`);
      }
      difference = { what, a: hex(a), b: hex(b) };
      break;
    }
  }
  const vars: Record<string, string> = {};
  for (const [k, v] of [...env.vars].sort()) vars[k] = v.toString();
  const arrays: Record<string, Record<string, number>> = {};
  for (const [k, m] of [...env.arrays].sort()) {
    const o: Record<string, number> = {};
    for (const [i, v] of [...m].sort((p, q) => (p[0] < q[0] ? -1 : 1))) o[i.toString()] = Number(v);
    arrays[k] = o;
  }

  // Registers: initial values of live-in register variables, pointers named by region.
  const regs: Record<string, string> = {};
  for (const [name, reg] of regNames) {
    const v = env.vars.get(name);
    if (v !== undefined) regs[reg] = hex(v);
  }

  const pktLen = env.vars.get('pkt_len');
  const pktBytes = env.arrays.get('mem:pkt');
  let packet: string | null = null;
  if (pktLen !== undefined) {
    // a production packet may be up to 4 GiB long: only its first 64 KiB are spelled out
    const n = Math.min(Number(pktLen), 0x10000);
    const b = new Uint8Array(n);
    for (const [i, v] of pktBytes ?? []) if (i < BigInt(n)) b[Number(i)] = Number(v);
    packet = Buffer.from(b).toString('hex');
  }
  let ctx: string | null = null;
  const ctxBytes = env.arrays.get('mem:ctx');
  if (ctxBytes && ctxBytes.size) {
    const size = M.ctx.size ?? Math.max(...[...ctxBytes.keys()].map((k) => Number(k) + 1));
    const b = new Uint8Array(size);
    for (const [i, v] of ctxBytes) if (i < BigInt(size)) b[Number(i)] = Number(v);
    ctx = Buffer.from(b).toString('hex');
  }
  const stack: Record<string, number> = {};
  for (const [i, v] of env.arrays.get('mem:stack0') ?? []) stack[toSigned(i, 64).toString()] = Number(v);

  // Maps: presence and value bytes by key.
  const maps: Record<string, Record<string, string | null>> = {};
  for (const m of M.env.maps) {
    const entries: Record<string, string | null> = {};
    const keyHex = (k: bigint): string => {
      const b = new Uint8Array(m.keySize);
      for (let i = 0; i < m.keySize; i++) b[i] = Number((k >> BigInt(8 * i)) & 0xffn);
      return Buffer.from(b).toString('hex');
    };
    const pres = env.arrays.get(`present:${m.name}`);
    const hv = env.arrays.get(`mem:hv:${m.name}`);
    const mv = env.arrays.get(`mem:mv:${m.name}`);
    const keys = new Set<bigint>();
    for (const k of pres?.keys() ?? []) keys.add(k);
    for (const i of hv?.keys() ?? []) keys.add(i >> 32n);
    for (const k of keys) {
      if (pres && pres.get(k) === 0n) {
        entries[keyHex(k)] = null;
        continue;
      }
      const b = new Uint8Array(m.valueSize);
      for (let j = 0; j < m.valueSize; j++) b[j] = Number(hv?.get((k << 32n) | BigInt(j)) ?? 0n);
      entries[keyHex(k)] = Buffer.from(b).toString('hex');
    }
    if (mv && mv.size) {
      const idxs = new Set<number>();
      for (const i of mv.keys()) idxs.add(Math.floor(Number(i) / m.valueSize));
      for (const e of idxs) {
        const b = new Uint8Array(m.valueSize);
        for (let j = 0; j < m.valueSize; j++) b[j] = Number(mv.get(BigInt(e * m.valueSize + j)) ?? 0n);
        entries[keyHex(BigInt(e))] = Buffer.from(b).toString('hex');
      }
    }
    if (Object.keys(entries).length) maps[m.name] = entries;
  }

  const helpers: Record<string, string> = {};
  for (const [k, v] of env.vars) if (/^(h\d+#|ret#|tail#|out#)/.test(k)) helpers[k] = hex(v);

  return { regs, packet, packetLen: pktLen === undefined ? null : Number(pktLen), ctx, stack, maps, helpers, difference, vars, arrays };
}
