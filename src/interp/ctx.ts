// Program contexts as BPF_PROG_TEST_RUN builds them (net/bpf/test_run.c): the packet buffer with its
// headroom, the context struct the program reads (xdp_md, __sk_buff) with the kernel's
// data/data_end/data_meta conversion, and the packet and context the kernel copies back out.
import { F, type CtxModel, type Machine } from './machine.js';

/** How a program type is run. */
export type CtxKind = 'xdp' | 'skb_l2' | 'skb_l3' | 'none';

/** Packet layout kinds per program type name (ProgramRef.progType). */
export function ctxKindOf(progType: string): CtxKind {
  switch (progType) {
    case 'xdp':
      return 'xdp';
    case 'sched_cls':
    case 'sched_act':
      return 'skb_l2';
    case 'socket_filter':
    case 'cgroup_skb':
    case 'lwt_in':
    case 'lwt_out':
    case 'lwt_xmit':
      return 'skb_l3';
    default:
      return 'none';
  }
}

export interface PacketInput {
  /** data_in: the packet, starting with its Ethernet header. */
  packet: Uint8Array;
  /** ctx_in (optional): the xdp_md / __sk_buff bytes user space passes. */
  ctx?: Uint8Array;
}

export interface CtxOut {
  packet: Uint8Array | null;
  ctx: Uint8Array | null;
}

/** A program's context for one run: sets up regions and r1, answers context accesses, builds the output. */
export interface Env extends CtxModel {
  setup(m: Machine): void;
  finish(m: Machine): CtxOut;
  /** Packet access for skb helpers (load/store_bytes, csum): the buffer and the packet's [start, end). */
  packetView(): { buf: Uint8Array; start: number; end: number } | null;
  /** XDP helpers move the packet bounds; null for other contexts. */
  xdp: XdpState | null;
  /** The __sk_buff bytes of an skb context (helpers that change skb fields write here); null otherwise. */
  skb: Uint8Array | null;
  /** The sk_buff behind an skb context (helpers that move headers or resize the packet); null otherwise. */
  skbState: SkbState | null;
}

/**
 * The parts of a test run's sk_buff the helpers change. Offsets are into `buf`; `transport` is -1
 * while unset (the test run never sets it). `protocol` is skb->protocol in host order.
 */
export interface SkbState {
  buf: Uint8Array;
  data: number;
  end: number;
  mac: number;
  net: number;
  transport: number;
  protocol: number;
  encapsulation: boolean;
  /** skb->hash once known (set by bpf_set_hash, or computed): null while it would be recomputed. */
  hash: number | null;
  /** Region of the packet in the machine (set at setup). */
  region: number;
  /** Whether the buffer already has the room any resize can need. */
  roomy: boolean;
}

export const XDP_PACKET_HEADROOM = 256;
export const SKB_SHARED_INFO_ALIGNED = 320; // SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86_64
export const XDP_FRAME_SIZE = 40; // sizeof(struct xdp_frame)
export const XDP_METALEN_MAX = 252; // largest u32-aligned metadata length (skb_shared_info.meta_len is u8)
const PAGE = 4096;
const ETH_HLEN = 14;

export interface XdpState {
  buf: Uint8Array;
  meta: number;
  data: number;
  end: number;
  hardEnd: number;
  frameEnd: number;
}

const xdpPage = new Uint8Array(PAGE);

/** bpf_prog_test_run_xdp: 256 bytes headroom (less the metadata), frame of one page. */
export function xdpEnv(input: PacketInput): Env {
  const ctxIn = input.ctx ? Uint8Array.prototype.slice.call(input.ctx) : null;
  const metaLen = ctxIn ? u32(ctxIn, 0) : 0;
  const headroom = XDP_PACKET_HEADROOM - metaLen;
  const maxData = PAGE - headroom - SKB_SHARED_INFO_ALIGNED;
  const size = Math.min(input.packet.length, maxData);
  // One page reused from run to run (runs never overlap); zeroed like the kernel's kzalloc.
  const buf = xdpPage;
  buf.fill(0);
  buf.set(input.packet.subarray(0, size), headroom);
  const st: XdpState = { buf, meta: headroom, data: headroom + metaLen, end: headroom + size, hardEnd: PAGE - SKB_SHARED_INFO_ALIGNED, frameEnd: XDP_FRAME_SIZE };
  const ingress = ctxIn ? u32(ctxIn, 12) : 0;
  const rxq = ctxIn ? u32(ctxIn, 16) : 0;
  let pkt = -1;
  const env: Env = {
    xdp: st,
    skb: null,
    skbState: null,
    setup(m) {
      pkt = m.addRegion('packet', buf, F.WRITE | F.PACKET, st.meta, st.end);
      const ctx = m.addRegion('ctx', new Uint8Array(24), F.CTX);
      m.ctxRegion = ctx;
      m.ptr(ctx, 0);
      m.setReg(1, m.rlo, m.rhi);
    },
    load(m, off, size) {
      if (size === 4 && (off === 0 || off === 4 || off === 8)) {
        // Keep the region's bounds in step with the packet (helpers may have moved them).
        m.rStart[pkt] = st.meta;
        m.rEnd[pkt] = st.end;
        m.ptr(pkt, off === 0 ? st.data : off === 4 ? st.end : st.meta);
        return;
      }
      if (size === 4 && off === 12) return set32(m, ingress || 1); // loopback
      if (size === 4 && off === 16) return set32(m, rxq);
      if (size === 4 && off === 20) return set32(m, 0);
      m.fault(`invalid xdp_md access: ${size} bytes at offset ${off}`);
    },
    store(m, off) {
      m.fault(`store to xdp_md at offset ${off}`);
    },
    ldAbs(m) {
      return m.fault('ld_abs/ld_ind in an XDP program');
    },
    packetView: () => ({ buf, start: st.data, end: st.end }),
    finish() {
      let ctx: Uint8Array | null = null;
      if (ctxIn) {
        ctx = ctxIn;
        setU32(ctx, 0, st.data - st.meta);
        setU32(ctx, 4, st.end - st.meta);
      }
      return { packet: buf.slice(st.meta, st.end), ctx };
    },
  };
  return env;
}

/** Called after XDP helpers move bounds: updates the packet region. */
export function syncXdp(m: Machine, st: XdpState): void {
  for (let r = 0; r < m.nRegions; r++) {
    if (m.rFlags[r]! & F.PACKET) {
      m.rStart[r] = st.meta;
      m.rEnd[r] = st.end;
    }
  }
}

// struct __sk_buff offsets (include/uapi/linux/bpf.h).
export const SKB = {
  len: 0, pkt_type: 4, mark: 8, queue_mapping: 12, protocol: 16, vlan_present: 20, vlan_tci: 24, vlan_proto: 28,
  priority: 32, ingress_ifindex: 36, ifindex: 40, tc_index: 44, cb: 48, hash: 68, tc_classid: 72, data: 76, data_end: 80,
  napi_id: 84, family: 88, remote_ip4: 92, local_ip4: 96, remote_ip6: 100, local_ip6: 116, remote_port: 132, local_port: 136,
  data_meta: 140, flow_keys: 144, tstamp: 152, wire_len: 160, gso_segs: 164, sk: 168, gso_size: 176, tstamp_type: 180,
  hwtstamp: 184, size: 192,
} as const;

const NET_SKB_PAD = 64;

/**
 * bpf_prog_test_run_skb. For tc (`l2`) skb->data is the Ethernet header; for socket filters, cgroup_skb
 * and lwt it is the network header, and the kernel zeroes the 14 Ethernet bytes of the output.
 * Direct packet access (data/data_end) is set up for tc and lwt only.
 */
export function skbEnv(input: PacketInput, progType: string): Env {
  const l2 = ctxKindOf(progType) === 'skb_l2';
  const direct = l2 || progType.startsWith('lwt') || progType === 'cgroup_skb';
  const size = input.packet.length;
  const buf = new Uint8Array(NET_SKB_PAD + size + 64);
  buf.set(input.packet, NET_SKB_PAD);
  const mac = NET_SKB_PAD;
  const net = NET_SKB_PAD + ETH_HLEN;
  const ctxIn = input.ctx ? Uint8Array.prototype.slice.call(input.ctx) : new Uint8Array(SKB.size);
  const c = new Uint8Array(SKB.size);
  const cv = new DataView(c.buffer);
  const p = input.packet;
  // eth_type_trans on the loopback device (address 00:00:00:00:00:00).
  const dst = p.subarray(0, 6);
  let pktType = 0; // PACKET_HOST
  if (dst.some((x) => x !== 0)) pktType = dst[0]! & 1 ? (dst.every((x) => x === 0xff) ? 1 : 2) : 3;
  const ethProto = (p[12]! << 8) | p[13]!;
  let proto = ethProto;
  if (ethProto < 0x600) proto = p.length >= 16 && p[14] === 0xff && p[15] === 0xff ? 0x0001 : 0x0004;
  const sk: SkbState = {
    buf, data: l2 ? mac : net, end: NET_SKB_PAD + size, mac, net, transport: -1, protocol: proto, encapsulation: false, hash: null, region: -1, roomy: false,
  };
  cv.setUint32(SKB.pkt_type, pktType, true);
  cv.setUint32(SKB.mark, u32(ctxIn, SKB.mark), true);
  cv.setUint32(SKB.priority, u32(ctxIn, SKB.priority), true);
  cv.setUint32(SKB.ingress_ifindex, u32(ctxIn, SKB.ingress_ifindex), true);
  cv.setUint32(SKB.ifindex, 1, true);
  c.set(ctxIn.subarray(SKB.cb, SKB.cb + 20), SKB.cb);
  // The dummy socket of the test run takes the addresses of an IPv4/IPv6 packet.
  const l3len = size - ETH_HLEN;
  if (proto === 0x0800) {
    cv.setUint32(SKB.family, 2, true);
    if (l3len >= 20) {
      c.set(p.subarray(30, 34), SKB.remote_ip4);
      c.set(p.subarray(26, 30), SKB.local_ip4);
    }
  } else if (proto === 0x86dd) {
    cv.setUint32(SKB.family, 10, true);
    if (l3len >= 40) {
      c.set(p.subarray(38, 54), SKB.remote_ip6);
      c.set(p.subarray(22, 38), SKB.local_ip6);
    }
  }
  c.set(ctxIn.subarray(SKB.tstamp, SKB.tstamp + 8), SKB.tstamp);
  const wire = u32(ctxIn, SKB.wire_len);
  cv.setUint32(SKB.wire_len, wire === 0 ? sk.end - sk.data : wire, true);
  cv.setUint32(SKB.gso_segs, u32(ctxIn, SKB.gso_segs), true);
  cv.setUint32(SKB.gso_size, u32(ctxIn, SKB.gso_size), true);
  c.set(ctxIn.subarray(SKB.hwtstamp, SKB.hwtstamp + 8), SKB.hwtstamp);
  syncSkbCtx(sk, c);

  const env: Env = {
    xdp: null,
    skb: c,
    skbState: sk,
    setup(m) {
      sk.region = m.addRegion('packet', sk.buf, F.WRITE | F.PACKET, sk.data, sk.end);
      const ctx = m.addRegion('ctx', c, F.CTX | F.WRITE);
      m.ctxRegion = ctx;
      m.ptr(ctx, 0);
      m.setReg(1, m.rlo, m.rhi);
    },
    load(m, off, size) {
      if (off === SKB.data || off === SKB.data_end || off === SKB.data_meta) {
        if (size !== 4) m.fault(`${size}-byte load of a packet pointer field of __sk_buff`);
        if (!direct) m.fault('direct packet access in a program type without it');
        m.ptr(sk.region, off === SKB.data_end ? sk.end : sk.data);
        return;
      }
      if (off === SKB.napi_id || off === SKB.hash || off === SKB.tc_classid || off === SKB.vlan_tci || off === SKB.vlan_present || off === SKB.vlan_proto || off === SKB.queue_mapping || off === SKB.tc_index) {
        // Fields the test run leaves zero unless the program (or a helper) writes them.
      }
      if (off === SKB.sk || off === SKB.flow_keys) m.fault(`__sk_buff pointer field at offset ${off} is not modelled`);
      if (off + size > SKB.size) m.fault(`__sk_buff access beyond the struct at ${off}`);
      let lo = 0;
      let hi = 0;
      if (size === 1) lo = c[off]!;
      else if (size === 2) lo = cv.getUint16(off, true);
      else if (size === 4) lo = cv.getInt32(off, true);
      else {
        lo = cv.getInt32(off, true);
        hi = cv.getInt32(off + 4, true);
      }
      m.rlo = lo;
      m.rhi = hi;
    },
    store(m, off, size, lo, hi) {
      const ok = (off >= SKB.cb && off < SKB.cb + 20) || off === SKB.mark || off === SKB.priority || off === SKB.tc_index ||
        off === SKB.tc_classid || off === SKB.queue_mapping || off === SKB.tstamp || off === SKB.tstamp + 4;
      if (!ok) m.fault(`store to __sk_buff at offset ${off}`);
      if (size === 1) c[off] = lo & 0xff;
      else if (size === 2) cv.setUint16(off, lo & 0xffff, true);
      else if (size === 4) cv.setInt32(off, lo, true);
      else {
        cv.setInt32(off, lo, true);
        cv.setInt32(off + 4, hi, true);
      }
    },
    ldAbs(_m, k, size) {
      // bpf_skb_load_helper: offsets from skb->data, or SKF_NET_OFF / SKF_LL_OFF from the network / mac header.
      let at: number;
      if (k >= 0) {
        if (sk.end - sk.data - k < size) return null;
        at = sk.data + k;
      } else if (k >= -0x100000) {
        at = sk.net + k + 0x100000;
      } else if (k >= -0x200000) {
        at = sk.mac + k + 0x200000;
      } else return null;
      if (k < 0 && (at < 0 || at + size > sk.end)) return null;
      const b = sk.buf;
      if (size === 1) return b[at]!;
      if (size === 2) return (b[at]! << 8) | b[at + 1]!;
      return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) | 0;
    },
    packetView: () => ({ buf: sk.buf, start: sk.data, end: sk.end }),
    finish() {
      const out = ctxIn;
      for (const f of [SKB.mark, SKB.priority, SKB.ingress_ifindex, SKB.ifindex, SKB.wire_len, SKB.gso_segs]) out.set(c.subarray(f, f + 4), f);
      out.set(c.subarray(SKB.cb, SKB.cb + 20), SKB.cb);
      out.set(c.subarray(SKB.tstamp, SKB.tstamp + 8), SKB.tstamp);
      out.set(c.subarray(SKB.hwtstamp, SKB.hwtstamp + 8), SKB.hwtstamp);
      let packet: Uint8Array;
      if (l2) packet = sk.buf.slice(sk.data, sk.end);
      else {
        // The test run pushes the Ethernet header back, zeroed, for the other types.
        packet = new Uint8Array(ETH_HLEN + sk.end - sk.data);
        packet.set(sk.buf.subarray(sk.data, sk.end), ETH_HLEN);
      }
      return { packet, ctx: out };
    },
  };
  return env;
}

/** __sk_buff fields that follow the sk_buff (len, protocol, hash). */
function syncSkbCtx(sk: SkbState, c: Uint8Array): void {
  const cv = new DataView(c.buffer, c.byteOffset);
  cv.setUint32(SKB.len, sk.end - sk.data, true);
  cv.setUint32(SKB.protocol, ((sk.protocol & 0xff) << 8) | (sk.protocol >> 8), true); // __be16 as a u32 load sees it
  cv.setUint32(SKB.hash, sk.hash ?? 0, true);
}

/** Largest skb a helper may make (BPF_SKB_MAX_LEN = SKB_MAX_ALLOC: 16 KiB less skb_shared_info). */
export const SKB_MAX_LEN = 4 * PAGE - SKB_SHARED_INFO_ALIGNED;

/**
 * Before a helper resizes the packet: a buffer with room for any size up to SKB_MAX_LEN at either
 * end (the kernel reallocates the head as needed; the program cannot observe where the data lives).
 */
export function skbMakeRoom(m: Machine, sk: SkbState): void {
  if (sk.roomy) return;
  const head = NET_SKB_PAD + SKB_MAX_LEN;
  const buf = new Uint8Array(head + SKB_MAX_LEN + SKB_MAX_LEN + 64);
  const from = Math.min(sk.mac, sk.data);
  const shift = head - from;
  buf.set(sk.buf.subarray(from, sk.end), head);
  sk.buf = buf;
  sk.data += shift;
  sk.end += shift;
  sk.mac += shift;
  sk.net += shift;
  if (sk.transport >= 0) sk.transport += shift;
  sk.roomy = true;
  m.rBuf[sk.region] = buf;
  m.rView[sk.region] = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** After a helper changed the skb: the packet region's bounds and the __sk_buff fields that follow it. */
export function syncSkb(m: Machine, env: Env): void {
  const sk = env.skbState!;
  m.rStart[sk.region] = sk.data;
  m.rEnd[sk.region] = sk.end;
  syncSkbCtx(sk, env.skb!);
}

/** Programs without a packet (tracing, kprobe, ...): r1 points to a zeroed context of `ctxSize` bytes. */
export function plainEnv(ctxSize = 256): Env {
  const c = new Uint8Array(ctxSize);
  return {
    xdp: null,
    skb: null,
    skbState: null,
    setup(m) {
      const r = m.addRegion('ctx', c, F.CTX);
      m.ctxRegion = r;
      m.ptr(r, 0);
      m.setReg(1, m.rlo, m.rhi);
    },
    load(m, off, size) {
      if (off + size > c.length) m.fault(`context access beyond ${c.length} bytes`);
      const v = new DataView(c.buffer);
      m.rlo = size === 1 ? c[off]! : size === 2 ? v.getUint16(off, true) : v.getInt32(off, true);
      m.rhi = size === 8 ? v.getInt32(off + 4, true) : 0;
    },
    store(m, off) {
      m.fault(`store to the context at offset ${off}`);
    },
    ldAbs(m) {
      return m.fault('ld_abs/ld_ind without a packet');
    },
    packetView: () => null,
    finish: () => ({ packet: null, ctx: null }),
  };
}

export function makeEnv(progType: string, input: PacketInput): Env {
  const kind = ctxKindOf(progType);
  if (kind === 'xdp') return xdpEnv(input);
  if (kind === 'skb_l2' || kind === 'skb_l3') return skbEnv(input, progType);
  return plainEnv();
}

function set32(m: Machine, v: number): void {
  m.rlo = v | 0;
  m.rhi = 0;
}

const u32 = (b: Uint8Array, at: number): number => (b.length >= at + 4 ? new DataView(b.buffer, b.byteOffset).getUint32(at, true) : 0);
const setU32 = (b: Uint8Array, at: number, v: number): void => new DataView(b.buffer, b.byteOffset).setUint32(at, v, true);
