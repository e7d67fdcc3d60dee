// Helpers that resize a test run's sk_buff or move its headers, and the skb hash, as Linux 6.18
// implements them (net/core/filter.c: bpf_skb_change_tail, bpf_skb_change_head,
// bpf_skb_adjust_room, bpf_get_hash_recalc, bpf_set_hash, bpf_set_hash_invalid). The test run's skb
// is linear, not cloned, not GSO (gso_size 0), not encapsulated, transport header unset, and
// ip_summed CHECKSUM_NONE; an skb the model does not cover (gso_size from ctx_in) is "unmodelled".
import { SKB, SKB_MAX_LEN, skbMakeRoom, syncSkb, type Env, type SkbState } from './ctx.js';
import { Unmodelled, type HelperFn, type Machine } from './machine.js';
import type { HelperOracle } from './helpers.js';

const EINVAL = 22;
const EFAULT = 14;
const ENOMEM = 12;
const EALREADY = 114;
const ENOTSUPP = 524;
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;

// bpf_skb_adjust_room flags (include/uapi/linux/bpf.h).
const ADJ = {
  FIXED_GSO: 1n, ENCAP_L3_IPV4: 2n, ENCAP_L3_IPV6: 4n, ENCAP_L4_GRE: 8n, ENCAP_L4_UDP: 16n, NO_CSUM_RESET: 32n,
  ENCAP_L2_ETH: 64n, DECAP_L3_IPV4: 128n, DECAP_L3_IPV6: 256n, ENCAP_L2_MASK: 0xffn << 56n,
} as const;
const ADJ_DECAP = ADJ.DECAP_L3_IPV4 | ADJ.DECAP_L3_IPV6;
const ADJ_MASK = ADJ.FIXED_GSO | ADJ.ENCAP_L3_IPV4 | ADJ.ENCAP_L3_IPV6 | ADJ.ENCAP_L4_GRE | ADJ.ENCAP_L4_UDP | ADJ.ENCAP_L2_ETH | ADJ.ENCAP_L2_MASK | ADJ_DECAP;

const setRet = (m: Machine, v: number): void => m.setReg(0, v | 0, v < 0 ? -1 : 0);

function skbOf(m: Machine, helper: string): { env: Env; sk: SkbState } {
  const env = (m.hc as { env: Env }).env;
  const sk = env.skbState;
  if (!sk || !env.skb) return m.fault(`${helper} needs an skb context`);
  if (new DataView(env.skb.buffer, env.skb.byteOffset).getUint32(SKB.gso_size, true) !== 0) throw new Unmodelled(`${helper} on a GSO skb (gso_size from ctx_in) is not modelled`);
  return { env, sk };
}

const skbLen = (sk: SkbState): number => sk.end - sk.data;

/** Inserts `len` zero bytes `off` bytes after skb->data (bpf_skb_generic_push). */
function push(m: Machine, sk: SkbState, off: number, len: number): void {
  skbMakeRoom(m, sk);
  const b = sk.buf;
  sk.data -= len;
  b.copyWithin(sk.data, sk.data + len, sk.data + len + off);
  b.fill(0, sk.data + off, sk.data + off + len);
}

/** Removes `len` bytes `off` bytes after skb->data (bpf_skb_generic_pop). */
function pop(sk: SkbState, off: number, len: number): void {
  sk.buf.copyWithin(sk.data + len, sk.data, sk.data + off);
  sk.data += len;
}

const EAFNOSUPPORT = 97;
const FIB_LOOKUP_FLAGS = 0x3fn; // DIRECT | OUTPUT | SKIP_NEIGH | TBID | SRC | MARK
const FIB_LKUP_RET_NOT_FWDED = 4;

export function skbHelpers(h: (HelperFn | undefined)[]): void {
  h[69] = (m) => {
    // fib_lookup(ctx, params, plen, flags), XDP and tc alike up to the lookup itself, which
    // depends on this host's routes, neighbours and forwarding settings: the interpreter cannot
    // know its result (nor what it writes into params), so the run is marked nondeterministic.
    const plen = m.lo[3]!;
    const flags = m.reg(4) & 0xffffffffn;
    if (plen < 64) return setRet(m, -EINVAL);
    if (flags & ~FIB_LOOKUP_FLAGS) return setRet(m, -EINVAL);
    const params = m.readBytes(m.lo[2]!, m.hi[2]!, 64);
    if (params[0] !== 2 && params[0] !== 10) return setRet(m, -EAFNOSUPPORT);
    const env = (m.hc as { env: Env }).env;
    const sk = env.skbState;
    const answer = (m.hc as { oracle: HelperOracle | null }).oracle?.fibLookup(sk ? 'skb' : 'xdp', params, Number(flags), sk ? sk.end - sk.data : 0) ?? null;
    if (answer) {
      m.writeBytes(m.lo[2]!, m.hi[2]!, answer.params);
      return setRet(m, answer.ret);
    }
    m.nondet.push(BigInt(FIB_LKUP_RET_NOT_FWDED));
    setRet(m, FIB_LKUP_RET_NOT_FWDED);
  };

  h[38] = (m) => {
    // skb_change_tail(skb, new_len, flags)
    const { env, sk } = skbOf(m, 'skb_change_tail');
    const newLen = m.lo[2]! >>> 0;
    const flags = m.reg(3);
    // __bpf_skb_min_len: the network (or transport) header offset, when positive.
    let minLen = Math.max(0, sk.net - sk.data);
    if (sk.transport >= 0 && sk.transport - sk.data > 0) minLen = sk.transport - sk.data;
    let r = 0;
    if (flags !== 0n || newLen > SKB_MAX_LEN || newLen < minLen) r = -EINVAL;
    else if (sk.encapsulation) r = -ENOTSUPP;
    else if (newLen !== skbLen(sk)) {
      skbMakeRoom(m, sk);
      const old = sk.end;
      sk.end = sk.data + newLen;
      if (sk.end > old) sk.buf.fill(0, old, sk.end);
    }
    syncSkb(m, env);
    setRet(m, r);
  };

  h[43] = (m) => {
    // skb_change_head(skb, head_room, flags)
    const { env, sk } = skbOf(m, 'skb_change_head');
    const room = m.lo[2]! >>> 0;
    const flags = m.reg(3);
    const newLen = skbLen(sk) + room;
    let r = 0;
    if (flags !== 0n || room > 0x7fffffff || newLen > SKB_MAX_LEN) r = -EINVAL;
    else {
      push(m, sk, 0, room);
      sk.mac = sk.data; // skb_reset_mac_header; mac_len follows (net - mac)
    }
    syncSkb(m, env);
    setRet(m, r);
  };

  h[50] = (m) => {
    // skb_adjust_room(skb, len_diff, mode, flags)
    const { env, sk } = skbOf(m, 'skb_adjust_room');
    const diff = m.lo[2]!; // s32
    const mode = m.lo[3]! >>> 0;
    const flags = m.reg(4);
    const r = adjustRoom(m, sk, diff, mode, flags);
    syncSkb(m, env);
    setRet(m, r);
  };

  h[34] = (m) => {
    // get_hash_recalc(skb): skb_get_hash — a flow hash keyed with a secret chosen at boot, unless set.
    const { env, sk } = skbOf(m, 'get_hash_recalc');
    if (sk.hash === null) {
      // The host computes it from the frame as the test run's skb sees it: ask it, when the frame
      // says what the skb says (Ethernet header at the mac header, its type = skb->protocol).
      const frame = sk.buf.subarray(sk.mac, sk.end);
      const same = sk.net - sk.mac === 14 && frame.length >= 14 && ((frame[12]! << 8) | frame[13]!) === sk.protocol;
      const h = same ? (m.hc as { oracle: HelperOracle | null }).oracle?.skbHash(frame) ?? null : null;
      if (h !== null) sk.hash = h;
      else {
        let x = 0x811c9dc5;
        for (let i = sk.data; i < sk.end; i++) x = Math.imul(x ^ sk.buf[i]!, 0x01000193);
        sk.hash = x >>> 0 || 1;
        m.nondet.push(BigInt(sk.hash)); // the kernel's value is not the interpreter's
      }
    }
    syncSkb(m, env);
    m.setReg(0, sk.hash | 0, 0);
  };
  h[41] = (m) => {
    // set_hash_invalid(skb): the next skb_get_hash recomputes.
    const { env, sk } = skbOf(m, 'set_hash_invalid');
    sk.hash = null;
    syncSkb(m, env);
    setRet(m, 0);
  };
  h[48] = (m) => {
    // set_hash(skb, hash): a software L4 hash that skb_get_hash returns from now on.
    const { env, sk } = skbOf(m, 'set_hash');
    sk.hash = m.lo[2]! >>> 0;
    syncSkb(m, env);
    setRet(m, 0);
  };
}

function adjustRoom(m: Machine, sk: SkbState, diff: number, mode: number, flags: bigint): number {
  const abs = Math.abs(diff);
  const shrink = diff < 0;
  const base = sk.protocol === ETH_P_IP ? 20 : sk.protocol === ETH_P_IPV6 ? 40 : 0xffffffff;
  let lenMin = base;
  if (flags & ~(ADJ_MASK | ADJ.NO_CSUM_RESET)) return -EINVAL;
  if (abs > 0xfff) return -EFAULT;
  if (sk.protocol !== ETH_P_IP && sk.protocol !== ETH_P_IPV6) return -ENOTSUPP;
  const macLen = sk.net - sk.mac;
  let off = macLen;
  if (mode === 0) off += base; // BPF_ADJ_ROOM_NET
  else if (mode !== 1) return -ENOTSUPP; // BPF_ADJ_ROOM_MAC
  const decap = flags & ADJ_DECAP;
  if (decap) {
    if (!shrink) return -EINVAL;
    if (decap === ADJ.DECAP_L3_IPV4) lenMin = 20;
    else if (decap === ADJ.DECAP_L3_IPV6) lenMin = 40;
    else return -EINVAL;
  }
  const len = sk.end - sk.data;
  const lenCur = len - (sk.net - sk.data);
  if ((shrink && (abs >= lenCur || lenCur - abs < lenMin)) || (!shrink && len + abs > SKB_MAX_LEN)) return -ENOTSUPP;
  const transSame = sk.transport === sk.net;
  if (shrink) {
    // bpf_skb_net_shrink
    if (flags & ~(ADJ.FIXED_GSO | ADJ_DECAP | ADJ.NO_CSUM_RESET)) return -EINVAL;
    if (off + abs > len) return -ENOMEM; // pskb_may_pull
    pop(sk, off, abs);
    sk.mac += abs;
    sk.net += abs;
    if (transSame) sk.transport = sk.net;
    if (sk.protocol === ETH_P_IP && flags & ADJ.DECAP_L3_IPV6) sk.protocol = ETH_P_IPV6;
    else if (sk.protocol === ETH_P_IPV6 && flags & ADJ.DECAP_L3_IPV4) sk.protocol = ETH_P_IP;
    return 0;
  }
  // bpf_skb_net_grow
  const innerMacLen = Number((flags >> 56n) & 0xffn);
  const encap = (flags & (ADJ.ENCAP_L3_IPV4 | ADJ.ENCAP_L3_IPV6)) !== 0n;
  if (encap) {
    if (flags & ADJ.ENCAP_L3_IPV4 && flags & ADJ.ENCAP_L3_IPV6) return -EINVAL;
    if (flags & ADJ.ENCAP_L4_GRE && flags & ADJ.ENCAP_L4_UDP) return -EINVAL;
    if (flags & ADJ.ENCAP_L2_ETH && innerMacLen < 14) return -EINVAL;
    if (sk.encapsulation) return -EALREADY;
    if (innerMacLen > abs) return -EINVAL;
  }
  // Linux 6.18 refuses to move more header bytes than the packet has (measured: -ENOMEM when
  // off > skb->len, after the encapsulation checks).
  if (off > len) return -ENOMEM;
  push(m, sk, off, abs);
  sk.mac -= abs;
  sk.net -= abs;
  if (transSame) sk.transport = sk.net;
  if (encap) {
    sk.encapsulation = true;
    sk.net = sk.data + macLen; // skb_set_network_header(skb, mac_len)
    if (flags & (ADJ.ENCAP_L4_GRE | ADJ.ENCAP_L4_UDP)) sk.transport = sk.data + macLen + (flags & ADJ.ENCAP_L3_IPV6 ? 40 : 20);
    if (sk.protocol === ETH_P_IP && flags & ADJ.ENCAP_L3_IPV6) sk.protocol = ETH_P_IPV6;
    else if (sk.protocol === ETH_P_IPV6 && flags & ADJ.ENCAP_L3_IPV4) sk.protocol = ETH_P_IP;
  }
  return 0;
}
