// Seeded generator of test inputs: well-formed packets that walk parser paths (Ethernet, VLAN,
// IPv4 with options, IPv6 with extension headers, TCP, UDP, ICMP/ICMPv6, ARP), truncated packets,
// random bytes, contexts (__sk_buff fields) and initial map contents keyed by the same addresses and
// ports the packets use, so that lookups hit.
import { ctxKindOf, MAP_TYPE, percpuStride, SKB, type MapSpec } from '../interp/index.js';

/** A small, fast, seeded PRNG (mulberry32). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

/** Initial contents of one map; per-CPU values hold `ncpu` values, each padded to 8 bytes. */
export interface MapInit {
  map: string;
  entries: { key: Uint8Array; value: Uint8Array }[];
}

export interface TestInput {
  packet: Uint8Array;
  ctx?: Uint8Array;
}

/** A session: maps are set to `maps` (every other map cleared), then `inputs` run in order. */
export interface Session {
  maps: MapInit[];
  inputs: TestInput[];
}

// Values the packets and the maps share.
const IP4_POOL = [
  [10, 0, 0, 1], [10, 0, 0, 2], [192, 168, 1, 10], [192, 0, 2, 1], [198, 51, 100, 2], [127, 0, 0, 1], [0, 1, 2, 3],
  [224, 0, 0, 5], [255, 255, 255, 255], [172, 16, 5, 4], [8, 8, 8, 8],
];
const PORTS = [7, 9, 22, 23, 25, 53, 80, 123, 443, 1234, 5000, 6000, 6001, 8080, 40000, 65535];
const ETH_TYPES = [0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x88cc, 0x0001, 0x0600];
const MACS = [
  [0, 0, 0, 0, 0, 0], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [1, 0, 0x5e, 0, 0, 5],
];

function ip4(r: Rng): number[] {
  return r.chance(0.75) ? [...r.pick(IP4_POOL)] : [...r.bytes(4)];
}
function ip6(r: Rng): number[] {
  if (r.chance(0.7)) {
    const a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, r.pick([1, 2, 3])];
    return a;
  }
  if (r.chance(0.3)) return [...Array(15).fill(0), 1]; // ::1
  return [...r.bytes(16)];
}
const be16 = (v: number): number[] => [(v >> 8) & 0xff, v & 0xff];

function csum16(bytes: number[]): number {
  let s = 0;
  for (let i = 0; i + 1 < bytes.length; i += 2) s += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length & 1) s += bytes[bytes.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function l4(r: Rng, proto: number): number[] {
  const payload = [...r.bytes(r.chance(0.8) ? r.int(48) : r.int(600))];
  const port = (): number => (r.chance(0.8) ? r.pick(PORTS) : r.int(65536));
  if (proto === 6) {
    const doff = r.chance(0.85) ? 5 : r.range(0, 15);
    const flags = r.chance(0.5) ? r.pick([0x02, 0x10, 0x12, 0x11, 0x18, 0x04, 0x03, 0x29]) : r.int(256);
    const h = [...be16(port()), ...be16(port()), ...r.bytes(8), (doff << 4) | (r.chance(0.9) ? 0 : r.int(16)), flags, ...be16(r.int(65536)), ...r.bytes(2), ...be16(r.chance(0.9) ? 0 : r.int(65536))];
    for (let i = 20; i < doff * 4; i++) h.push(r.chance(0.5) ? 1 : r.int(256));
    return [...h, ...payload];
  }
  if (proto === 17) {
    const len = r.chance(0.9) ? 8 + payload.length : r.int(65536);
    return [...be16(port()), ...be16(port()), ...be16(len), ...r.bytes(2), ...payload];
  }
  if (proto === 1 || proto === 58) {
    const type = r.chance(0.7) ? r.pick(proto === 1 ? [0, 8, 3, 11] : [128, 129, 133, 135, 136, 1]) : r.int(256);
    return [type, r.chance(0.8) ? 0 : r.int(256), ...r.bytes(2), ...r.bytes(4), ...payload];
  }
  return payload;
}

function ipv4(r: Rng): number[] {
  const proto = r.chance(0.85) ? r.pick([6, 17, 1]) : r.pick([0, 2, 47, 50, 132, r.int(256)]);
  const ihl = r.chance(0.85) ? 5 : r.range(0, 15);
  const body = l4(r, proto);
  const opts: number[] = [];
  for (let i = 20; i < ihl * 4; i++) opts.push(r.chance(0.5) ? 1 : r.int(256));
  const total = 20 + opts.length + body.length;
  const frag = r.chance(0.85) ? (r.chance(0.5) ? 0x4000 : 0) : r.pick([0x2000, 0x2001, 0x0010, r.int(65536)]);
  const ttl = r.chance(0.7) ? 64 : r.pick([0, 1, 2, 255]);
  const ver = r.chance(0.95) ? 4 : r.int(16);
  const h = [(ver << 4) | ihl, r.chance(0.7) ? 0 : r.int(256), ...be16(r.chance(0.9) ? total : r.int(65536)), ...r.bytes(2), ...be16(frag), ttl, proto, 0, 0, ...ip4(r), ...ip4(r), ...opts];
  const c = r.chance(0.9) ? csum16(h) : r.int(65536);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  return [...h, ...body];
}

function ipv6(r: Rng): number[] {
  let next = r.chance(0.8) ? r.pick([6, 17, 58]) : r.pick([0, 43, 44, 60, 59, r.int(256)]);
  const exts: number[][] = [];
  // Extension headers in front of the upper layer.
  const nExt = r.chance(0.7) ? 0 : r.range(1, 4);
  let first = next;
  for (let i = 0; i < nExt; i++) {
    const kind = r.pick([0, 43, 44, 60]);
    const len8 = kind === 44 ? 0 : r.int(3);
    const ext = [next, kind === 44 ? 0 : len8, ...r.bytes(6 + len8 * 8)];
    if (kind === 44 && r.chance(0.5)) {
      ext[2] = 0;
      ext[3] = r.chance(0.5) ? 0 : 1; // offset 0, maybe more fragments
    }
    exts.unshift(ext);
    next = kind;
    first = kind;
  }
  const upper = l4(r, exts.length ? firstUpper(exts, first) : first);
  const body = [...exts.flat(), ...upper];
  const hop = r.chance(0.7) ? 64 : r.pick([0, 1, 2, 255]);
  const ver = r.chance(0.95) ? 6 : r.int(16);
  return [ver << 4, 0, 0, 0, ...be16(r.chance(0.9) ? body.length : r.int(65536)), first, hop, ...ip6(r), ...ip6(r), ...body];
}

// The upper-layer protocol is the next-header of the last extension header.
function firstUpper(exts: number[][], _first: number): number {
  return exts[exts.length - 1]![0]!;
}

function arp(r: Rng): number[] {
  return [0, 1, 8, 0, 6, 4, 0, r.pick([1, 2]), ...r.bytes(6), ...ip4(r), ...r.bytes(6), ...ip4(r)];
}

/** One Ethernet frame: well-formed (mostly), truncated, or random bytes; at least 14 bytes. */
export function packet(r: Rng): Uint8Array {
  const kind = r.int(100);
  if (kind < 10) return r.bytes(r.range(14, 200));
  const dst = r.chance(0.8) ? r.pick(MACS) : [...r.bytes(6)];
  const src = r.chance(0.8) ? r.pick(MACS) : [...r.bytes(6)];
  const bytes: number[] = [...dst, ...src];
  const vlans = r.chance(0.8) ? 0 : r.range(1, 3);
  const inner = r.chance(0.9) ? r.pick([0x0800, 0x0800, 0x86dd, 0x86dd, 0x0806]) : r.pick(ETH_TYPES.concat([r.int(65536)]));
  for (let i = 0; i < vlans; i++) bytes.push(...be16(r.pick([0x8100, 0x88a8])), ...be16(r.int(65536)));
  bytes.push(...be16(inner));
  if (inner === 0x0800) bytes.push(...ipv4(r));
  else if (inner === 0x86dd) bytes.push(...ipv6(r));
  else if (inner === 0x0806) bytes.push(...arp(r));
  else bytes.push(...r.bytes(r.int(64)));
  let out = Uint8Array.from(bytes);
  if (kind < 25 && out.length > 14) out = out.slice(0, r.range(14, out.length - 1)); // truncated
  if (out.length < 14) {
    const pad = new Uint8Array(14);
    pad.set(out);
    out = pad;
  }
  if (out.length > 1500) out = out.slice(0, 1500);
  return out;
}

/**
 * The skb test run refuses (EINVAL) IPv4/IPv6 frames shorter than the network header: pad them with
 * random bytes to that length.
 */
export function skbAcceptable(p: Uint8Array, r: Rng): Uint8Array {
  const proto = (p[12]! << 8) | p[13]!;
  const need = proto === 0x0800 ? 14 + 20 : proto === 0x86dd ? 14 + 40 : 0;
  if (p.length >= need) return p;
  const out = new Uint8Array(need);
  out.set(p);
  out.set(r.bytes(need - p.length), p.length);
  return out;
}

/**
 * An XDP input with metadata in front of the packet: data_in = metadata + frame, and xdp_md
 * {data = metadata length, data_end = data_in length} as the test run requires.
 */
export function xdpWithMeta(r: Rng, frame: Uint8Array): TestInput {
  const meta = 4 * r.range(1, 8);
  const packet = new Uint8Array(meta + frame.length);
  packet.set(r.bytes(meta));
  packet.set(frame, meta);
  const ctx = new Uint8Array(24);
  const v = new DataView(ctx.buffer);
  v.setUint32(0, meta, true);
  v.setUint32(4, packet.length, true);
  return { packet, ctx };
}

/** __sk_buff fields a test run accepts as input (mark, priority, cb, tstamp, gso), random. */
export function skbCtx(r: Rng): Uint8Array {
  const c = new Uint8Array(SKB.size);
  const v = new DataView(c.buffer);
  if (r.chance(0.5)) v.setUint32(SKB.mark, r.chance(0.5) ? r.int(4) : r.u32(), true);
  if (r.chance(0.3)) v.setUint32(SKB.priority, r.int(8), true);
  if (r.chance(0.3)) for (let i = 0; i < 5; i++) v.setUint32(SKB.cb + 4 * i, r.chance(0.5) ? r.int(4) : r.u32(), true);
  if (r.chance(0.2)) v.setBigUint64(SKB.tstamp, BigInt(r.u32()) * 1000n, true);
  return c;
}

/** Keys of size n built from the values packets carry (addresses, ports, small integers). */
function mapKey(r: Rng, spec: MapSpec): Uint8Array {
  const n = spec.keySize;
  const k = new Uint8Array(n);
  if (spec.type === MAP_TYPE.LPM_TRIE) {
    const bits = 8 * (n - 4);
    const plen = r.chance(0.7) ? r.pick([8, 16, 24, 32, 48, 64, 128].filter((p) => p <= bits)) : r.int(bits + 1);
    new DataView(k.buffer).setUint32(0, plen, true);
    const addr = n - 4 === 4 ? ip4(r) : n - 4 === 16 ? ip6(r) : [...r.bytes(n - 4)];
    k.set(addr.slice(0, n - 4), 4);
    return k;
  }
  if (spec.type === MAP_TYPE.ARRAY || spec.type === MAP_TYPE.PERCPU_ARRAY) {
    new DataView(k.buffer).setUint32(0, r.int(Math.max(1, spec.maxEntries)), true);
    return k;
  }
  const choice = r.int(4);
  if (choice === 0 || n < 4) k.set(r.bytes(n));
  else if (choice === 1) new DataView(k.buffer).setUint32(0, r.int(8), true);
  else if (choice === 2) k.set(ip4(r), 0);
  else {
    // A flow-like key: two addresses and two ports, then a protocol.
    const parts = [...ip4(r), ...ip4(r), ...be16(r.pick(PORTS)), ...be16(r.pick(PORTS)), r.pick([6, 17, 1])];
    k.set(parts.slice(0, n));
  }
  return k;
}

/** Random initial contents for the modelled maps (prog arrays, outputs and .rodata are left alone). */
export function mapInits(r: Rng, specs: MapSpec[], ncpu: number): MapInit[] {
  const out: MapInit[] = [];
  for (const s of specs) {
    const t = s.type;
    const hashLike = t === MAP_TYPE.HASH || t === MAP_TYPE.LRU_HASH || t === MAP_TYPE.PERCPU_HASH || t === MAP_TYPE.LRU_PERCPU_HASH || t === MAP_TYPE.LPM_TRIE;
    const arrayLike = t === MAP_TYPE.ARRAY || t === MAP_TYPE.PERCPU_ARRAY;
    if (!hashLike && !arrayLike) continue;
    if (s.readonly || s.name.startsWith('.')) continue; // global data keeps its initial contents
    if (r.chance(0.4)) continue;
    const percpu = t === MAP_TYPE.PERCPU_ARRAY || t === MAP_TYPE.PERCPU_HASH || t === MAP_TYPE.LRU_PERCPU_HASH;
    const n = Math.min(r.range(1, 8), Math.max(1, Math.floor(s.maxEntries / 2)));
    const entries = new Map<string, { key: Uint8Array; value: Uint8Array }>();
    for (let i = 0; i < n; i++) {
      const key = mapKey(r, s);
      const stride = percpu ? percpuStride(s.valueSize) : s.valueSize;
      const value = new Uint8Array(percpu ? stride * ncpu : s.valueSize);
      for (let c = 0; c < (percpu ? ncpu : 1); c++) {
        const v = r.chance(0.5) ? smallValue(r, s.valueSize) : r.bytes(s.valueSize);
        value.set(v, c * stride);
      }
      // LPM keys that differ only past their prefix are one element: keep one of them.
      entries.set(t === MAP_TYPE.LPM_TRIE ? lpmIdentity(key) : Buffer.from(key).toString('hex'), { key, value });
    }
    out.push({ map: s.name, entries: [...entries.values()] });
  }
  return out;
}

function lpmIdentity(key: Uint8Array): string {
  const plen = new DataView(key.buffer, key.byteOffset).getUint32(0, true);
  const d = key.slice(4);
  for (let i = 0; i < d.length; i++) d[i]! &= (0xff00 >> Math.max(0, Math.min(8, plen - 8 * i))) & 0xff;
  return `${plen}:${Buffer.from(d).toString('hex')}`;
}

function smallValue(r: Rng, n: number): Uint8Array {
  const v = new Uint8Array(n);
  if (n >= 1) v[0] = r.int(4);
  return v;
}

export interface GenOptions {
  progType: string;
  maps: MapSpec[];
  ncpu: number;
  inputs: number;
  seed: number;
  /** Inputs per session (maps are re-initialised at the start of each). Default 8. */
  sessionLength?: number;
}

/** Sessions of inputs for a program: packets (repeating flows within a session) and map contents. */
export function generate(opts: GenOptions): Session[] {
  const r = new Rng(opts.seed);
  const per = opts.sessionLength ?? 8;
  const kind = ctxKindOf(opts.progType);
  const sessions: Session[] = [];
  let left = opts.inputs;
  while (left > 0) {
    const n = Math.min(per, left);
    left -= n;
    const maps = mapInits(r, opts.maps, opts.ncpu);
    const inputs: TestInput[] = [];
    for (let i = 0; i < n; i++) {
      let pkt = i > 0 && r.chance(0.4) ? inputs[r.int(i)]!.packet : packet(r);
      if (kind === 'skb_l2' || kind === 'skb_l3') pkt = skbAcceptable(pkt, r);
      const inp: TestInput = { packet: pkt };
      if ((kind === 'skb_l2' || kind === 'skb_l3') && r.chance(0.5)) inp.ctx = skbCtx(r);
      if (kind === 'xdp' && r.chance(0.15)) Object.assign(inp, xdpWithMeta(r, pkt));
      inputs.push(inp);
    }
    sessions.push({ maps, inputs });
  }
  return sessions;
}
