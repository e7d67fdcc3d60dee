// What the symbolic machine knows about a program type's context struct (include/uapi/linux/bpf.h
// and BPF_PROG_TEST_RUN, as the interpreter models them in src/interp/ctx.ts): its size, which
// accesses are valid, which fields the kernel rewrites into packet pointers, and which fields have
// known contents. Other fields are context bytes shared by the two programs (any value).

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
  /** Initial context bytes with known values: offset → value (a byte), or 'len' for skb->len bytes. */
  fixed: Map<number, number | { lenByte: number }>;
  /** Byte offsets whose initial value is known to be non-zero as a u32 (xdp ingress_ifindex). */
  nonZeroU32: number[];
}

// struct __sk_buff offsets.
const SKB = {
  len: 0, mark: 8, queue_mapping: 12, vlan_present: 20, vlan_tci: 24, vlan_proto: 28, priority: 32, ifindex: 40,
  tc_index: 44, cb: 48, hash: 68, tc_classid: 72, data: 76, data_end: 80, napi_id: 84, data_meta: 140, flow_keys: 144,
  tstamp: 152, sk: 168, size: 192,
} as const;

function xdp(): CtxLayout {
  const fixed = new Map<number, number | { lenByte: number }>();
  for (let i = 0; i < 4; i++) fixed.set(20 + i, 0); // egress_ifindex is 0 in a test run
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
    nonZeroU32: [12],
  };
}

function skb(direct: boolean): CtxLayout {
  const fixed = new Map<number, number | { lenByte: number }>();
  for (let i = 0; i < 4; i++) fixed.set(SKB.len + i, { lenByte: i });
  const zeroU32 = [SKB.queue_mapping, SKB.vlan_present, SKB.vlan_tci, SKB.vlan_proto, SKB.tc_index, SKB.hash, SKB.tc_classid, SKB.napi_id];
  for (const f of zeroU32) for (let i = 0; i < 4; i++) fixed.set(f + i, 0);
  fixed.set(SKB.ifindex, 1);
  for (let i = 1; i < 4; i++) fixed.set(SKB.ifindex + i, 0);
  return {
    name: '__sk_buff',
    size: SKB.size,
    packet: true,
    load(off, size) {
      if (off === SKB.data || off === SKB.data_end || off === SKB.data_meta) {
        if (size !== 4) return { kind: 'fault', reason: `${size}-byte load of a packet pointer field of __sk_buff` };
        if (!direct) return { kind: 'fault', reason: 'direct packet access in a program type without it' };
        return { kind: 'packet', field: off === SKB.data_end ? 'data_end' : 'data' };
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
