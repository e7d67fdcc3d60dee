// How the symbolic machine treats each BPF helper (ids from include/uapi/linux/bpf.h).
//
//  - 'source': no arguments, no side effect; its result is a fresh variable per call, numbered per
//    helper in program order and shared by the two programs (ktime_get_ns, get_prandom_u32, …).
//  - 'effect': anything else we model. The call is recorded in the effect trace with its id, its
//    arguments and the bytes it reads, and must match between the programs in order. Its result
//    and the bytes it writes are fresh variables per trace position, shared by both programs.
//  - map_lookup/update/delete have their own semantics over the symbolic map state.
// Helpers not in the table make the query unsupported (never "equal").

export interface MemArg {
  ptr: number; // argument index (1..5)
  size: number | { arg: number }; // constant size, or the argument holding it
}

/** A helper that rewrites packet bytes at (skb->data + arg `off`): fresh bytes, or a copy of its `from` memory. */
export interface PacketWrite {
  off: number; // argument holding the packet offset
  size: number | { arg: number };
  copyFrom?: number; // argument pointing to the new bytes (skb_store_bytes)
}

export interface HelperSpec {
  name: string;
  kind: 'source' | 'effect' | 'lookup' | 'update' | 'delete' | 'tail_call' | 'ringbuf_reserve' | 'ringbuf_finish' | 'skb_load_bytes';
  /** The helper copies from the address in this argument: unsupported when it is the program's own memory (the copy would depend on it). */
  external?: number;
  /** A string copy: only some of the `size` bytes are written (which ones depends on the source, shared by both programs). */
  str?: boolean;
  /** The result depends on the packet's bytes (unsupported once the program has written the packet). */
  readsPacket?: boolean;
  packetWrite?: PacketWrite;
  args: number; // number of arguments (r1..r_args) that are part of the call's identity
  reads?: MemArg[];
  writes?: MemArg[];
  /** Result width in bits when narrower than 64 (zero-extended), e.g. get_prandom_u32. */
  retBits?: number;
}

const src = (name: string, retBits?: number): HelperSpec => ({ name, kind: 'source', args: 0, ...(retBits ? { retBits } : {}) });
const eff = (name: string, args: number, extra: Partial<HelperSpec> = {}): HelperSpec => ({ name, kind: 'effect', args, ...extra });

export const HELPERS: Record<number, HelperSpec> = {
  1: { name: 'map_lookup_elem', kind: 'lookup', args: 2 },
  2: { name: 'map_update_elem', kind: 'update', args: 4 },
  3: { name: 'map_delete_elem', kind: 'delete', args: 2 },
  4: eff('probe_read', 3, { writes: [{ ptr: 1, size: { arg: 2 } }], external: 3 }),
  5: src('ktime_get_ns'),
  6: eff('trace_printk', 5, { reads: [{ ptr: 1, size: { arg: 2 } }] }),
  7: src('get_prandom_u32', 32),
  8: src('get_smp_processor_id', 32),
  9: eff('skb_store_bytes', 5, { reads: [{ ptr: 3, size: { arg: 4 } }], packetWrite: { off: 2, size: { arg: 4 }, copyFrom: 3 } }),
  10: eff('l3_csum_replace', 5, { packetWrite: { off: 2, size: 2 } }),
  11: eff('l4_csum_replace', 5, { packetWrite: { off: 2, size: 2 } }),
  12: { name: 'tail_call', kind: 'tail_call', args: 3 },
  14: src('get_current_pid_tgid'),
  15: src('get_current_uid_gid'),
  16: eff('get_current_comm', 2, { writes: [{ ptr: 1, size: { arg: 2 } }] }),
  17: eff('get_cgroup_classid', 1),
  23: eff('redirect', 2),
  25: eff('perf_event_output', 5, { reads: [{ ptr: 4, size: { arg: 5 } }] }),
  26: { name: 'skb_load_bytes', kind: 'skb_load_bytes', args: 4, writes: [{ ptr: 3, size: { arg: 4 } }] },
  28: eff('csum_diff', 5, { reads: [{ ptr: 1, size: { arg: 2 } }, { ptr: 3, size: { arg: 4 } }] }),
  34: eff('get_hash_recalc', 1, { readsPacket: true }),
  35: src('get_current_task'),
  42: src('get_numa_node_id', 32),
  46: eff('get_socket_cookie', 1),
  47: eff('get_socket_uid', 1),
  51: eff('redirect_map', 3),
  80: src('get_current_cgroup_id'),
  112: eff('probe_read_user', 3, { writes: [{ ptr: 1, size: { arg: 2 } }], external: 3 }),
  113: eff('probe_read_kernel', 3, { writes: [{ ptr: 1, size: { arg: 2 } }], external: 3 }),
  114: eff('probe_read_user_str', 3, { writes: [{ ptr: 1, size: { arg: 2 } }], external: 3, str: true }),
  115: eff('probe_read_kernel_str', 3, { writes: [{ ptr: 1, size: { arg: 2 } }], external: 3, str: true }),
  125: src('ktime_get_boot_ns'),
  68: eff('skb_load_bytes_relative', 5, { writes: [{ ptr: 3, size: { arg: 4 } }], readsPacket: true }),
  130: eff('ringbuf_output', 4, { reads: [{ ptr: 2, size: { arg: 3 } }] }),
  131: { name: 'ringbuf_reserve', kind: 'ringbuf_reserve', args: 3 },
  132: { name: 'ringbuf_submit', kind: 'ringbuf_finish', args: 2 },
  133: { name: 'ringbuf_discard', kind: 'ringbuf_finish', args: 2 },
  160: src('ktime_get_coarse_ns'),
};

export const helperName = (id: number): string => HELPERS[id]?.name ?? `helper ${id}`;

/**
 * Arguments a helper's C definition declares narrower than 64 bits. A helper is
 * `BPF_CALL_n(name, type1, arg1, ...)` (include/linux/filter.h): the macro casts each 64-bit
 * register to the declared type (__BPF_CAST), so a `u32` parameter only ever sees the register's
 * low 32 bits. By helper id → argument number (1..5). Every argument not listed is compared as 64
 * bits (never unsound: only less often "equal").
 */
export const ARG_BITS: Readonly<Record<number, Readonly<Record<number, 32>>>> = {
  4: { 2: 32 }, // bpf_probe_read_compat(void *dst, u32 size, const void *unsafe_ptr)
  6: { 2: 32 }, // bpf_trace_printk(char *fmt, u32 fmt_size, u64, u64, u64)
  9: { 2: 32, 4: 32 }, // bpf_skb_store_bytes(skb, u32 offset, const void *from, u32 len, u64 flags)
  10: { 2: 32 }, // bpf_l3_csum_replace(skb, u32 offset, u64 from, u64 to, u64 flags)
  11: { 2: 32 }, // bpf_l4_csum_replace(skb, u32 offset, u64 from, u64 to, u64 flags)
  12: { 3: 32 }, // bpf_tail_call(ctx, map, u32 index)
  16: { 2: 32 }, // bpf_get_current_comm(void *buf, u32 size)
  23: { 1: 32 }, // bpf_redirect(u32 ifindex, u64 flags)
  26: { 2: 32, 4: 32 }, // bpf_skb_load_bytes(skb, u32 offset, void *to, u32 len)
  28: { 2: 32, 4: 32, 5: 32 }, // bpf_csum_diff(__be32 *from, u32 from_size, __be32 *to, u32 to_size, __wsum seed)
  68: { 2: 32, 4: 32, 5: 32 }, // bpf_skb_load_bytes_relative(skb, u32 offset, void *to, u32 len, u32 start_header)
  112: { 2: 32 }, // bpf_probe_read_user(void *dst, u32 size, const void __user *unsafe_ptr)
  113: { 2: 32 }, // bpf_probe_read_kernel(void *dst, u32 size, const void *unsafe_ptr)
  114: { 2: 32 }, // bpf_probe_read_user_str(void *dst, u32 size, const void __user *unsafe_ptr)
  115: { 2: 32 }, // bpf_probe_read_kernel_str(void *dst, u32 size, const void *unsafe_ptr)
};

/** Bits of argument `arg` (1..5) helper `id` sees. */
export const argBits = (id: number, arg: number): 32 | 64 => ARG_BITS[id]?.[arg] ?? 64;

/** Largest buffer a variable-size helper argument is modelled for (bytes). */
export const MAX_VAR_SIZE = 4096;
