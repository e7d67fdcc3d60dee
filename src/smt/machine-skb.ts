// Context bytes of __sk_buff that BPF_PROG_TEST_RUN derives from the packet (src/interp/ctx.ts),
// as test-run facts of whole-program queries (part of the symbolic machine, machine.ts): never
// assumed in proofs (a production skb's protocol need not match its first bytes: tunnels, no L2).
import type { Term } from './term.js';
import type { Machine } from './machine.js';

/**
 * __sk_buff fields the test run derives from the frame (src/interp/ctx.ts): protocol, packet
 * type, family and the socket addresses. For tc the frame is the packet; for socket filters,
 * cgroup and lwt programs the packet starts at the network header and the Ethernet header is
 * known only through protocol and packet type.
 */
export function skbDerivedFields(M: Machine, ctxByte: (off: number) => Term, A: Term[]): void {
  const T = M.T;
  const l2 = M.env.progType === 'sched_cls' || M.env.progType === 'sched_act';
  const pktByte = (off: number): Term =>
    M.flat ? T.select(T.avar('mem:flat', 64, 8), T.add(M.baseVar('pkt'), T.bv(off, 64))) : T.select(T.avar('mem:pkt', 64, 8), T.bv(off, 64));
  const u32 = (off: number): Term => T.concat(ctxByte(off + 3), ctxByte(off + 2), ctxByte(off + 1), ctxByte(off));
  const z8 = T.bv(0n, 8);
  const lenAtLeast = (n: number): Term => T.ule(T.bv(BigInt(n), 64), M.pktLen);
  // protocol: the Ethernet type as stored big-endian (bytes 16, 17), upper half zero
  A.push(T.eq(ctxByte(18), z8), T.eq(ctxByte(19), z8));
  let proto: Term; // 16-bit value, host order
  let frameOff: number; // frame offset → packet offset
  if (l2) {
    frameOff = 0;
    const eth = T.concat(pktByte(12), pktByte(13));
    const big = T.ule(T.bv(0x600n, 16), eth);
    const raw = T.ite(T.band(lenAtLeast(16), T.eq(pktByte(14), T.bv(0xffn, 8)), T.eq(pktByte(15), T.bv(0xffn, 8))), T.bv(1n, 16), T.bv(4n, 16));
    proto = T.ite(big, eth, raw);
    A.push(T.implies(lenAtLeast(14), T.eq(T.concat(ctxByte(16), ctxByte(17)), proto)));
    // packet type from the destination MAC
    const dst = [0, 1, 2, 3, 4, 5].map(pktByte);
    const zero = T.band(...dst.map((b) => T.eq(b, z8)));
    const bcast = T.band(...dst.map((b) => T.eq(b, T.bv(0xffn, 8))));
    const group = T.eq(T.extract(0, 0, dst[0]!), T.bv(1n, 1));
    const type = T.ite(zero, T.bv(0n, 32), T.ite(group, T.ite(bcast, T.bv(1n, 32), T.bv(2n, 32)), T.bv(3n, 32)));
    A.push(T.implies(lenAtLeast(14), T.eq(u32(4), type)));
  } else {
    frameOff = -14;
    proto = T.concat(ctxByte(16), ctxByte(17));
    A.push(T.ule(u32(4), T.bv(3n, 32)));
    // below 0x600 the test run only produces ETH_P_802_2 (4) or ETH_P_802_3 (1, an 0xffff payload start)
    const ff = T.band(lenAtLeast(2), T.eq(pktByte(0), T.bv(0xffn, 8)), T.eq(pktByte(1), T.bv(0xffn, 8)));
    A.push(T.bor(T.ule(T.bv(0x600n, 16), proto), T.band(T.eq(proto, T.bv(4n, 16)), T.bnot(ff)), T.band(T.eq(proto, T.bv(1n, 16)), ff)));
  }
  const v4 = T.eq(proto, T.bv(0x0800n, 16)), v6 = T.eq(proto, T.bv(0x86ddn, 16));
  A.push(T.eq(u32(88), T.ite(v4, T.bv(2n, 32), T.ite(v6, T.bv(10n, 32), T.bv(0n, 32)))));
  const frameLen = (n: number): Term => lenAtLeast(n + frameOff);
  const copy = (ctxOff: number, frameFrom: number, n: number, when: Term): void => {
    for (let i = 0; i < n; i++) A.push(T.eq(ctxByte(ctxOff + i), T.ite(when, pktByte(frameFrom + frameOff + i), z8)));
  };
  copy(92, 30, 4, T.band(v4, frameLen(34)));
  copy(96, 26, 4, T.band(v4, frameLen(34)));
  copy(100, 38, 16, T.band(v6, frameLen(54)));
  copy(116, 22, 16, T.band(v6, frameLen(54)));
}

