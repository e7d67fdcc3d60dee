// BPF helper functions as the kernel implements them (net/core/filter.c, kernel/bpf/helpers.c), with
// the return codes a program can observe. Effects the kernel would have outside the program
// (redirects, tail calls, outputs, trace output) are recorded in order on the machine.
import { F, REGION_HI, REGION_LO, FUNC_HI, type HelperFn, type Machine } from './machine.js';
import { ERRNO, MAP_TYPE } from './maps.js';
import { syncXdp, type Env } from './ctx.js';
import { toHex } from './outcome.js';
import { skbHelpers } from './skbhelpers.js';

export interface HelperContext {
  env: Env;
  progType: string;
  /** Program name → entry pc, for tail calls. */
  entries: Map<string, number>;
  /** Runs the subprogram at pc with r1..r5 = args; returns r0 (bpf_loop callbacks). */
  callback: (pc: number, args: bigint[]) => bigint;
  /** Answers for helpers whose result depends on this host (see HelperOracle), when available. */
  oracle: HelperOracle | null;
}

/**
 * The host's answers for helpers whose results no model can predict: the FIB behind bpf_fib_lookup
 * and the boot-time key of the skb flow hash. Null answers: unknown (the run is then nondeterministic).
 */
export interface HelperOracle {
  /** bpf_fib_lookup from an XDP or tc program: its return value and the params struct after the call. */
  fibLookup(kind: 'xdp' | 'skb', params: Uint8Array, flags: number, pktLen: number): { ret: number; params: Uint8Array } | null;
  /** skb_get_hash of a frame (Ethernet header first) on the test run's device. */
  skbHash(frame: Uint8Array): number | null;
}

const neg = (m: Machine, errno: number): void => m.setReg(0, -errno, -1);
const ok = (m: Machine, v: number): void => m.setReg(0, v | 0, 0);
const arg32 = (m: Machine, r: number): number => m.lo[r]! >>> 0;

function mapArg(m: Machine, r: number, helper: string): number {
  const mi = m.mapOf(r);
  if (mi < 0) m.fault(`${helper}: argument ${r} is not a map`);
  return mi;
}

/** Per-run state of helpers. */
export interface HelperState {
  ringUsed: Map<number, number>;
  pending: Map<number, { map: string; buf: Uint8Array }>;
}

export const newHelperState = (): HelperState => ({ ringUsed: new Map(), pending: new Map() });

const hcOf = (m: Machine): HelperContext => m.hc as HelperContext;
const envOf = (m: Machine): Env => (m.hc as HelperContext).env;

/** The helper table, indexed by helper id; helpers find the run's context in `m.hc` and `m.hs`. */
export const HELPERS: (HelperFn | undefined)[] = makeHelpers();

function makeHelpers(): (HelperFn | undefined)[] {
  const h: (HelperFn | undefined)[] = [];

  h[1] = (m) => {
    // map_lookup_elem(map, key)
    const mi = mapArg(m, 1, 'map_lookup_elem');
    const map = m.maps[mi]!;
    const t = map.type;
    if (t === MAP_TYPE.PROG_ARRAY || t === MAP_TYPE.PERF_EVENT_ARRAY || t === MAP_TYPE.RINGBUF) m.fault(`map_lookup_elem on map type ${t}`);
    if (t === MAP_TYPE.DEVMAP || t === MAP_TYPE.DEVMAP_HASH || t === MAP_TYPE.CPUMAP || t === MAP_TYPE.XSKMAP) {
      m.readBytes(m.lo[2]!, m.hi[2]!, map.spec.keySize);
      return ok(m, 0); // the test run's device maps are empty
    }
    const key = m.readBytes(m.lo[2]!, m.hi[2]!, map.spec.keySize);
    const v = map.lookup(key, m.cpu);
    if (!v) return ok(m, 0);
    m.ptr(m.valueRegion(v, mi), 0);
    m.setReg(0, m.rlo, m.rhi);
  };
  h[2] = (m) => {
    // map_update_elem(map, key, value, flags)
    const mi = mapArg(m, 1, 'map_update_elem');
    const map = m.maps[mi]!;
    const key = m.readBytes(m.lo[2]!, m.hi[2]!, map.spec.keySize);
    const val = m.readBytes(m.lo[3]!, m.hi[3]!, map.spec.valueSize);
    const flags = m.hi[4] !== 0 ? 0xffffffff : arg32(m, 4);
    const r = map.update(key, val, flags, m.cpu);
    m.setReg(0, r, r < 0 ? -1 : 0);
  };
  h[3] = (m) => {
    const mi = mapArg(m, 1, 'map_delete_elem');
    const map = m.maps[mi]!;
    const key = m.readBytes(m.lo[2]!, m.hi[2]!, map.spec.keySize);
    const r = map.delete(key);
    m.setReg(0, r, r < 0 ? -1 : 0);
  };
  h[5] = (m) => {
    // ktime_get_ns: a deterministic clock advancing 1 µs per call.
    m.clock += 1000n;
    m.nondet.push(m.clock);
    m.setRegBig(0, m.clock);
  };
  h[6] = (m) => {
    // trace_printk(fmt, fmt_size, arg1, arg2, arg3)
    const size = arg32(m, 2);
    const fmtBytes = m.readBytes(m.lo[1]!, m.hi[1]!, size);
    const nul = fmtBytes.indexOf(0);
    if (nul < 0) return neg(m, ERRNO.EINVAL);
    const fmt = Buffer.from(fmtBytes.subarray(0, nul)).toString('latin1');
    const args = [m.reg(3), m.reg(4), m.reg(5)];
    m.effects.push({ kind: 'trace_printk', fmt: toHex(fmtBytes.subarray(0, nul)), args: args.map(String) });
    const text = formatPrintk(m, fmt, args);
    if (text === null) return neg(m, ERRNO.EINVAL);
    ok(m, text.length);
  };
  h[7] = (m) => {
    // get_prandom_u32: xorshift32 from the run's seed.
    let x = m.prng | 0 || 1;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    m.prng = x;
    m.nondet.push(BigInt(x >>> 0));
    ok(m, x);
  };
  h[8] = (m) => ok(m, m.cpu);
  skbHelpers(h);
  h[9] = (m) => {
    // skb_store_bytes(skb, offset, from, len, flags)
    const pv = packetOf(m, envOf(m), 'skb_store_bytes');
    const off = m.hi[2] !== 0 ? -1 : arg32(m, 2);
    const len = arg32(m, 4);
    const flags = m.reg(5);
    if (flags & ~3n) return neg(m, ERRNO.EINVAL);
    if (off < 0 || off > 0x7fffffff || off + len > pv.end - pv.start) return neg(m, ERRNO.EFAULT);
    const data = m.readBytes(m.lo[3]!, m.hi[3]!, len);
    pv.buf.set(data, pv.start + off);
    ok(m, 0);
  };
  h[10] = (m) => csumReplace(m, envOf(m), false);
  h[11] = (m) => csumReplace(m, envOf(m), true);
  h[12] = (m) => {
    // tail_call(ctx, prog_array, index)
    const mi = mapArg(m, 2, 'tail_call');
    const map = m.maps[mi]!;
    const index = arg32(m, 3);
    const target = map.progs.get(index);
    const pc = target === undefined ? undefined : hcOf(m).entries.get(target);
    const taken = index < map.spec.maxEntries && pc !== undefined && m.tailCalls < 33;
    m.effects.push({ kind: 'tail_call', map: map.spec.name, index, taken });
    if (taken) {
      m.tailCalls++;
      m.pendingJump = pc;
      return;
    }
    ok(m, 0);
  };
  h[14] = (m) => m.setRegBig(0, 0n); // get_current_pid_tgid: the test has no task of interest
  h[20] = (m) => {
    // skb_get_tunnel_key(skb, key, size, flags): a test-run skb has no tunnel info.
    packetOf(m, envOf(m), 'skb_get_tunnel_key');
    m.writeBytes(m.lo[2]!, m.hi[2]!, new Uint8Array(arg32(m, 3)));
    neg(m, ERRNO.EINVAL);
  };
  h[32] = (m) => {
    // skb_change_type(skb, type): PACKET_HOST..PACKET_OTHERHOST only.
    const skb = envOf(m).skb;
    if (!skb) return m.fault('skb_change_type needs an skb context');
    const v = new DataView(skb.buffer, skb.byteOffset);
    const type = arg32(m, 2);
    if (v.getUint32(4, true) > 3 || type > 3 || m.hi[2] !== 0) return neg(m, ERRNO.EINVAL);
    v.setUint32(4, type, true);
    ok(m, 0);
  };
  h[39] = (m) => {
    // skb_pull_data(skb, len): the test-run skb is linear; fails only beyond its length.
    const pv = packetOf(m, envOf(m), 'skb_pull_data');
    const len = m.reg(2);
    if (len > BigInt(pv.end - pv.start)) return neg(m, 12); // ENOMEM
    ok(m, 0);
  };
  h[23] = (m) => {
    // redirect(ifindex, flags): XDP and tc implementations differ.
    const ifindex = arg32(m, 1);
    const flags = m.reg(2);
    m.effects.push({ kind: 'redirect', ifindex, flags: flags.toString() });
    if (envOf(m).xdp) return ok(m, flags !== 0n ? 0 : 4); // XDP_ABORTED / XDP_REDIRECT
    ok(m, flags & ~1n ? 2 : 7); // TC_ACT_SHOT / TC_ACT_REDIRECT
  };
  h[25] = (m) => output(m, 'perf_event_output');
  h[26] = (m) => {
    // skb_load_bytes(skb, offset, to, len)
    const pv = packetOf(m, envOf(m), 'skb_load_bytes');
    const off = arg32(m, 2);
    const len = arg32(m, 4);
    if (off > 0xffff || off + len > pv.end - pv.start) {
      m.writeBytes(m.lo[3]!, m.hi[3]!, new Uint8Array(len));
      return neg(m, ERRNO.EFAULT);
    }
    m.writeBytes(m.lo[3]!, m.hi[3]!, pv.buf.slice(pv.start + off, pv.start + off + len));
    ok(m, 0);
  };
  h[28] = (m) => {
    // csum_diff(from, from_size, to, to_size, seed), as since Linux 6.13 (any sizes, 16-bit result):
    // from32to16(partial(to, seed) - partial(from, 0)), or the one-sided forms.
    const fromSize = arg32(m, 2);
    const toSize = arg32(m, 4);
    const seed = arg32(m, 5);
    const from = fromSize ? m.readBytes(m.lo[1]!, m.hi[1]!, fromSize) : new Uint8Array(0);
    const to = toSize ? m.readBytes(m.lo[3]!, m.hi[3]!, toSize) : new Uint8Array(0);
    let r: number;
    if (fromSize && toSize) r = csumFrom32to16(csumSub(csumPartial(to, seed), csumPartial(from, 0)));
    else if (toSize) r = csumFrom32to16(csumPartial(to, seed));
    else if (fromSize) r = csumFrom32to16(~csumPartial(from, ~seed >>> 0) >>> 0);
    else r = seed;
    m.setReg(0, r | 0, 0);
  };
  h[44] = (m) => {
    // xdp_adjust_head(xdp, delta)
    const st = xdpOf(m, envOf(m), 'xdp_adjust_head');
    const delta = m.lo[2]!;
    const metalen = st.meta < st.data ? st.data - st.meta : 0;
    const data = st.data + delta;
    if (data < st.frameEnd + metalen || data > st.end - 14) return neg(m, ERRNO.EINVAL);
    if (metalen) st.buf.copyWithin(st.meta + delta, st.meta, st.meta + metalen);
    st.meta += delta;
    st.data = data;
    syncXdp(m, st);
    ok(m, 0);
  };
  h[47] = (m) => ok(m, 0); // get_socket_uid: the test run's socket belongs to uid 0
  h[51] = (m) => {
    // redirect_map(map, key, flags): the test run's device maps are empty, so the lookup fails.
    const mi = mapArg(m, 1, 'redirect_map');
    const key = arg32(m, 2);
    const flags = m.reg(3);
    m.effects.push({ kind: 'redirect_map', map: m.maps[mi]!.spec.name, key, flags: flags.toString() });
    if (flags & ~(3n | 8n | 16n)) return ok(m, 0);
    ok(m, Number(flags & 3n));
  };
  h[54] = (m) => {
    // xdp_adjust_meta(xdp, delta)
    const st = xdpOf(m, envOf(m), 'xdp_adjust_meta');
    const meta = st.meta + m.lo[2]!;
    if (meta < st.frameEnd || meta > st.data) return neg(m, ERRNO.EINVAL);
    const metalen = st.data - meta;
    if (metalen & 3 || metalen > 252) return neg(m, 13); // EACCES
    st.meta = meta;
    syncXdp(m, st);
    ok(m, 0);
  };
  h[65] = (m) => {
    // xdp_adjust_tail(xdp, delta)
    const st = xdpOf(m, envOf(m), 'xdp_adjust_tail');
    const delta = m.lo[2]!;
    const end = st.end + delta;
    if (end > st.hardEnd || end < st.data + 14) return neg(m, ERRNO.EINVAL);
    if (delta > 0) st.buf.fill(0, st.end, end);
    st.end = end;
    syncXdp(m, st);
    ok(m, 0);
  };
  h[68] = (m) => {
    // skb_load_bytes_relative(skb, offset, to, len, start_header)
    const pv = packetOf(m, envOf(m), 'skb_load_bytes_relative');
    const off = arg32(m, 2);
    const len = arg32(m, 4);
    const hdr = arg32(m, 5);
    const sk = envOf(m).skbState!;
    const start = hdr === 0 ? sk.mac : hdr === 1 ? sk.net : -1;
    if (off > 0xffff || start < 0 || start + off + len > pv.end) {
      m.writeBytes(m.lo[3]!, m.hi[3]!, new Uint8Array(len));
      return neg(m, ERRNO.EFAULT);
    }
    m.writeBytes(m.lo[3]!, m.hi[3]!, pv.buf.slice(start + off, start + off + len));
    ok(m, 0);
  };
  h[130] = (m) => output(m, 'ringbuf_output');
  h[131] = (m) => {
    // ringbuf_reserve(ringbuf, size, flags)
    const mi = mapArg(m, 1, 'ringbuf_reserve');
    const size = m.reg(2);
    if (m.reg(3) !== 0n || !reserveRing(m, mi, size)) return ok(m, 0);
    const buf = new Uint8Array(Number(size));
    const r = m.addRegion(`ringbuf sample of ${m.maps[mi]!.spec.name}`, buf, F.WRITE);
    (m.hs as HelperState).pending.set(r, { map: m.maps[mi]!.spec.name, buf });
    m.ptr(r, 0);
    m.setReg(0, m.rlo, m.rhi);
  };
  const finishSample = (m: Machine, submit: boolean): void => {
    const r = m.hi[1]! - REGION_HI;
    const pending = (m.hs as HelperState).pending;
    const p = pending.get(r);
    if (!p || m.lo[1] !== REGION_LO) m.fault('ringbuf submit/discard of a pointer that is not a reserved sample');
    pending.delete(r);
    m.rFlags[r] = F.NOACCESS;
    if (submit) m.effects.push({ kind: 'output', helper: 'ringbuf_output', map: p.map, flags: m.reg(2).toString(), data: toHex(p.buf) });
  };
  h[132] = (m) => finishSample(m, true);
  h[133] = (m) => finishSample(m, false);
  h[181] = (m) => {
    // loop(nr_loops, callback, ctx, flags)
    const n = arg32(m, 1);
    if (m.hi[2] !== FUNC_HI) m.fault('bpf_loop callback is not a function');
    const pc = m.lo[2]!;
    const ctx = m.reg(3);
    if (m.reg(4) !== 0n) return neg(m, ERRNO.EINVAL);
    if (m.hi[1] !== 0 || n > 1 << 23) return neg(m, ERRNO.E2BIG);
    let i = 0;
    for (; i < n; i++) {
      const r = hcOf(m).callback(pc, [BigInt(i), ctx, 0n, 0n, 0n]);
      if (r !== 0n) return ok(m, i + 1);
    }
    ok(m, i);
  };

  function output(m: Machine, helper: 'perf_event_output' | 'ringbuf_output'): void {
    if (helper === 'perf_event_output') {
      // perf_event_output(ctx, map, flags, data, size): no perf event is open in a test run.
      const mi = mapArg(m, 2, helper);
      const flags = m.reg(3);
      const data = m.readBytes(m.lo[4]!, m.hi[4]!, arg32(m, 5));
      const spec = m.maps[mi]!.spec;
      m.effects.push({ kind: 'output', helper, map: spec.name, flags: flags.toString(), data: toHex(data) });
      if (flags & ~0xfffff_ffffffffn) return neg(m, ERRNO.EINVAL);
      let index = Number(flags & 0xffffffffn);
      if (index === 0xffffffff) index = m.cpu;
      const max = spec.maxEntries || m.maps[mi]!.ncpu;
      return neg(m, index >= max ? ERRNO.E2BIG : ERRNO.ENOENT);
    }
    // ringbuf_output(ringbuf, data, size, flags)
    const mi = mapArg(m, 1, helper);
    const size = m.reg(3);
    const data = m.readBytes(m.lo[2]!, m.hi[2]!, Number(size));
    const flags = m.reg(4);
    if (flags & ~3n) return neg(m, ERRNO.EINVAL);
    if (!reserveRing(m, mi, size)) return neg(m, 11); // EAGAIN
    m.effects.push({ kind: 'output', helper, map: m.maps[mi]!.spec.name, flags: flags.toString(), data: toHex(data) });
    ok(m, 0);
  }

  function reserveRing(m: Machine, mi: number, size: bigint): boolean {
    const cap = m.maps[mi]!.spec.maxEntries;
    const need = (Number(size) + 8 + 7) & ~7;
    const ringUsed = (m.hs as HelperState).ringUsed;
    const used = ringUsed.get(mi) ?? 0;
    if (size > BigInt(cap) || used + need > cap) return false;
    ringUsed.set(mi, used + need);
    return true;
  }
  return h;
}

function packetOf(m: Machine, env: Env, helper: string): { buf: Uint8Array; start: number; end: number } {
  const pv = env.packetView();
  if (!pv || env.xdp) m.fault(`${helper} needs an skb context`);
  return pv;
}

function xdpOf(m: Machine, env: Env, helper: string) {
  if (!env.xdp) m.fault(`${helper} needs an XDP context`);
  return env.xdp;
}

// One's-complement checksum arithmetic (include/net/checksum.h).
export const csumAdd = (a: number, b: number): number => {
  const s = (a >>> 0) + (b >>> 0);
  return (s >= 4294967296 ? s - 4294967295 : s) >>> 0;
};
export const csumSub = (a: number, b: number): number => csumAdd(a, ~b >>> 0);
export const csumFold = (c: number): number => {
  let s = (c & 0xffff) + (c >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
};

/** csum_partial over 32-bit little-endian words plus a seed (x86-64 do_csum reduces to this sum). */
export function csumPartialWords(words: number[], seed: number): number {
  let s = seed >>> 0;
  for (const w of words) s = csumAdd(s, w);
  return s;
}

/**
 * csum_partial(buf, len, seed): the one's-complement sum of the bytes as little-endian words. Any
 * implementation's 32-bit result is the same: congruent modulo 2^32-1 and zero only for all zeros.
 */
export function csumPartial(b: Uint8Array, seed: number): number {
  let s = seed >>> 0;
  for (let i = 0; i < b.length; i += 4) {
    const w = (b[i]! | ((b[i + 1] ?? 0) << 8) | ((b[i + 2] ?? 0) << 16) | ((b[i + 3] ?? 0) << 24)) >>> 0;
    s = csumAdd(s, w);
  }
  return s;
}

/** csum_from32to16: fold a 32-bit sum to 16 bits with end-around carry (no complement). */
export const csumFrom32to16 = (x: number): number => {
  const sum = ((x >>> 0) + (((x >>> 16) | (x << 16)) >>> 0)) >>> 0;
  return sum >>> 16;
};

function csumReplace(m: Machine, env: Env, l4: boolean): void {
  // l3_csum_replace / l4_csum_replace(skb, offset, from, to, flags)
  const pv = packetOf(m, envOf(m), l4 ? 'l4_csum_replace' : 'l3_csum_replace');
  const off = m.hi[2] !== 0 ? 0x10000 : m.lo[2]! >>> 0;
  const from = m.reg(3);
  const to = m.reg(4);
  const flags = m.reg(5);
  const field = Number(flags & 0xfn);
  const allowed = l4 ? 0xfn | 0x10n | 0x20n | 0x40n | 0x80n : 0xfn;
  if (flags & ~allowed) return m.setReg(0, -ERRNO.EINVAL, -1);
  if (off > 0xffff || off & 1) return m.setReg(0, -ERRNO.EFAULT, -1);
  if (off + 2 > pv.end - pv.start) return m.setReg(0, -ERRNO.EFAULT, -1); // bpf_try_make_writable fails
  const at = pv.start + off;
  const v = new DataView(pv.buf.buffer, pv.buf.byteOffset);
  const cur = v.getUint16(at, true); // __sum16 as stored (network order bytes, host load)
  const mmzero = l4 && (flags & 0x20n) !== 0n;
  const mforce = l4 && (flags & 0x40n) !== 0n;
  if (mmzero && !mforce && cur === 0) return m.setReg(0, 0, 0);
  const f32 = Number(from & 0xffffffffn);
  const t32 = Number(to & 0xffffffffn);
  let res: number;
  if (field === 0) {
    if (from !== 0n) return m.setReg(0, -ERRNO.EINVAL, -1);
    res = csumFold(csumAdd(t32, ~cur >>> 0));
  } else if (field === 2 && !l4) {
    // csum_replace2: 16-bit one's-complement arithmetic.
    const add16 = (c: number, a: number): number => {
      let r = (c + a) & 0xffff;
      r += r < (a & 0xffff) ? 1 : 0;
      return r & 0xffff;
    };
    const f16 = f32 & 0xffff;
    const t16 = t32 & 0xffff;
    res = ~add16(add16(~cur & 0xffff, ~f16 & 0xffff), t16) & 0xffff;
  } else if (field === 4 || (field === 2 && l4)) {
    const fw = field === 2 ? f32 & 0xffff : f32;
    const tw = field === 2 ? t32 & 0xffff : t32;
    res = csumFold(csumAdd(csumSub(~cur >>> 0, fw), tw));
  } else return m.setReg(0, -ERRNO.EINVAL, -1);
  if (mmzero && res === 0) res = 0xffff; // CSUM_MANGLED_0
  v.setUint16(at, res, true);
  m.setReg(0, 0, 0);
}

/** The text bpf_trace_printk would write (for its return value): %d %i %u %x %X %ld %lu %lld %llu %lx %llx %p %c %%. */
function formatPrintk(m: Machine, fmt: string, args: bigint[]): string | null {
  let out = '';
  let ai = 0;
  for (let i = 0; i < fmt.length; i++) {
    const ch = fmt[i]!;
    if (ch !== '%') {
      out += ch;
      continue;
    }
    let j = i + 1;
    if (fmt[j] === '%') {
      out += '%';
      i = j;
      continue;
    }
    let longs = 0;
    while (fmt[j] === 'l') {
      longs++;
      j++;
    }
    const conv = fmt[j];
    if (ai >= 3) return null;
    const raw = args[ai++]!;
    const width = longs === 0 ? 32 : 64;
    const u = BigInt.asUintN(width, raw);
    switch (conv) {
      case 'd':
      case 'i': out += BigInt.asIntN(width, raw).toString(); break;
      case 'u': out += u.toString(); break;
      case 'x': out += u.toString(16); break;
      case 'X': out += u.toString(16).toUpperCase(); break;
      case 'c': out += String.fromCharCode(Number(raw & 0xffn)); break;
      case 'p': out += '0x' + BigInt.asUintN(64, raw).toString(16); break;
      case 's': {
        // Unmodelled in detail: strings are read by the kernel with probe_read.
        m.fault('trace_printk %s is not modelled');
        break;
      }
      default: return null;
    }
    i = j;
  }
  return out;
}
