// What the symbolic machine knows about a program type's context struct (include/uapi/linux/bpf.h):
// its size, which accesses are valid, which fields the kernel rewrites into packet pointers, what
// the kernel guarantees about the other fields' contents on every run (`bounds`, `lenField`,
// `nonZeroU32`, `meta`: the production model, used in proofs), and the values BPF_PROG_TEST_RUN
// gives them (`fixed`: the test-run model of src/interp/ctx.ts, used only to prefer counterexamples
// the interpreter can replay). Every other field is a context byte shared by the two programs
// (any value).

export type PacketField = 'data' | 'data_end' | 'data_meta';

export type CtxLoad =
  | { kind: 'packet'; field: PacketField }
  | { kind: 'bytes' }
  | { kind: 'fault'; reason: string };

export interface CtxLayout {
  name: string;
  /** Size of the context struct in bytes; null when not modelled (no bounds check). */
  size: number | null;
  /** The program has packet data (direct packet access or ld_abs). */
  packet: boolean;
  load(off: number, size: number): CtxLoad;
  /** null when the store is allowed, else why not. */
  store(off: number, size: number): string | null;
  /**
   * Test run only: initial context bytes BPF_PROG_TEST_RUN fixes: offset → value (a byte), or
   * byte `lenByte` of the packet length (skb->len). Never assumed in proofs.
   */
  fixed: Map<number, number | { lenByte: number }>;
  /** Byte offsets of u32 fields the kernel never gives the value 0 (xdp ingress_ifindex: dev->ifindex ≥ 1). */
  nonZeroU32: number[];
  /** u32 fields whose value the kernel's context rewrite bounds (a 16-bit load, a 0/1 test): offset → largest value. */
  bounds?: Map<number, bigint>;
  /** u32 field holding skb->len: never less than data_end - data (skb_headlen(skb) <= skb->len). */
  lenField?: number;
  /** data_meta: up to `maxLen` metadata bytes right before data; `invalid`: data_meta may be data + 1 (no metadata support). */
  meta?: { maxLen: number; invalid: boolean };
  /** Stores the kernel narrows (bpf_convert_ctx_access): offset → bytes written; `skipAtLeast`: no store when the value is ≥ it. */
  narrowStores?: Map<number, { bytes: number; skipAtLeast?: bigint }>;
}

// struct __sk_buff offsets.
const SKB = {
  len: 0, pkt_type: 4, mark: 8, queue_mapping: 12, protocol: 16, vlan_present: 20, vlan_tci: 24, vlan_proto: 28, priority: 32, ifindex: 40,
  tc_index: 44, cb: 48, hash: 68, tc_classid: 72, data: 76, data_end: 80, napi_id: 84, family: 88, local_port: 136, data_meta: 140, flow_keys: 144,
  tstamp: 152, sk: 168, size: 192,
} as const;

function xdp(): CtxLayout {
  const fixed = new Map<number, number | { lenByte: number }>();
  for (let i = 0; i < 4; i++) fixed.set(20 + i, 0); // egress_ifindex is 0 in a test run
  for (let i = 0; i < 4; i++) fixed.set(12 + i, i === 0 ? 1 : 0); // ingress_ifindex: loopback (1)
  return {
    name: 'xdp_md',
    size: 24,
    packet: true,
    load(off, size) {
      if (size !== 4 || off % 4 !== 0 || off < 0 || off >= 24) return { kind: 'fault', reason: `invalid xdp_md access: ${size} bytes at offset ${off}` };
      if (off === 0) return { kind: 'packet', field: 'data' };
      if (off === 4) return { kind: 'packet', field: 'data_end' };
      if (off === 8) return { kind: 'packet', field: 'data_meta' };
      return { kind: 'bytes' };
    },
    store: (off) => `store to xdp_md at offset ${off}`,
    fixed,
    // xdp_md.ingress_ifindex is rxq->dev->ifindex (net/core/filter.c xdp_convert_ctx_access): ≥ 1
    nonZeroU32: [12],
    // xdp_prepare_buff(): data_meta = data, or data + 1 when the driver has no metadata support;
    // bpf_xdp_adjust_meta() (a program earlier in a tail-call chain) allows up to 32 bytes
    // (xdp_metalen_invalid: a multiple of 4, at most 32)
    meta: { maxLen: 32, invalid: true },
  };
}

function skb(direct: boolean): CtxLayout {
  const fixed = new Map<number, number | { lenByte: number }>();
  for (let i = 0; i < 4; i++) fixed.set(SKB.len + i, { lenByte: i });
  const zeroU32 = [SKB.queue_mapping, SKB.vlan_present, SKB.vlan_tci, SKB.vlan_proto, SKB.tc_index, SKB.hash, SKB.tc_classid, SKB.napi_id];
  for (const f of zeroU32) for (let i = 0; i < 4; i++) fixed.set(f + i, 0);
  fixed.set(SKB.ifindex, 1);
  for (let i = 1; i < 4; i++) fixed.set(SKB.ifindex + i, 0);
  // bpf_convert_ctx_access (net/core/filter.c) loads these with BPF_H, masks pkt_type with
  // PKT_TYPE_MAX (7), and turns vlan_present into 0/1 (vlan_all != 0)
  const u16 = 0xffffn;
  const bounds = new Map<number, bigint>([
    [SKB.pkt_type, 7n], [SKB.queue_mapping, u16], [SKB.protocol, u16], [SKB.vlan_present, 1n], [SKB.vlan_tci, u16],
    [SKB.vlan_proto, u16], [SKB.tc_index, u16], [SKB.tc_classid, u16], [SKB.family, u16], [SKB.local_port, u16],
  ]);
  // writes: queue_mapping is a 16-bit store skipped for values >= NO_QUEUE_MAPPING (0xffff);
  // tc_index and tc_classid are 16-bit stores (BPF_EMIT_STORE(BPF_H, ...))
  const narrowStores = new Map<number, { bytes: number; skipAtLeast?: bigint }>([
    [SKB.queue_mapping, { bytes: 2, skipAtLeast: 0xffffn }], [SKB.tc_index, { bytes: 2 }], [SKB.tc_classid, { bytes: 2 }],
  ]);
  return {
    name: '__sk_buff',
    size: SKB.size,
    packet: true,
    load(off, size) {
      if (off === SKB.data || off === SKB.data_end || off === SKB.data_meta) {
        if (size !== 4) return { kind: 'fault', reason: `${size}-byte load of a packet pointer field of __sk_buff` };
        if (!direct) return { kind: 'fault', reason: 'direct packet access in a program type without it' };
        return { kind: 'packet', field: off === SKB.data_end ? 'data_end' : off === SKB.data_meta ? 'data_meta' : 'data' };
      }
      if (off === SKB.sk || off === SKB.flow_keys) return { kind: 'fault', reason: `__sk_buff pointer field at offset ${off} is not modelled` };
      if (off < 0 || off + size > SKB.size) return { kind: 'fault', reason: `__sk_buff access beyond the struct at ${off}` };
      return { kind: 'bytes' };
    },
    store(off) {
      const ok = (off >= SKB.cb && off < SKB.cb + 20) || off === SKB.mark || off === SKB.priority || off === SKB.tc_index ||
        off === SKB.tc_classid || off === SKB.queue_mapping || off === SKB.tstamp || off === SKB.tstamp + 4;
      return ok ? null : `store to __sk_buff at offset ${off}`;
    },
    fixed,
    nonZeroU32: [],
    bounds,
    lenField: SKB.len,
    // data_meta = skb->data - skb_metadata_len(skb) (bpf_convert_data_meta_access); the length is a u8
    ...(direct ? { meta: { maxLen: 255, invalid: false } } : {}),
    narrowStores,
  };
}

function plain(): CtxLayout {
  return {
    name: 'context',
    size: 256,
    packet: false,
    load: (off, size) => (off < 0 || off + size > 256 ? { kind: 'fault', reason: `context access beyond 256 bytes` } : { kind: 'bytes' }),
    store: (off) => `store to the context at offset ${off}`,
    fixed: new Map(),
    nonZeroU32: [],
  };
}

export function ctxLayout(progType: string): CtxLayout {
  switch (progType) {
    case 'xdp':
      return xdp();
    case 'sched_cls':
    case 'sched_act':
    case 'lwt_in':
    case 'lwt_out':
    case 'lwt_xmit':
    case 'cgroup_skb':
      return skb(true);
    case 'socket_filter':
      return skb(false);
    default:
      return plain();
  }
}
