// Helper prototypes (include/linux/bpf.h bpf_func_proto, as defined in kernel/bpf/helpers.c,
// net/core/filter.c, kernel/trace/bpf_trace.c) for the helpers k2 models, which program types may
// call them, and which map types each accepts (check_map_func_compatibility).
// A helper not listed here is rejected: k2 cannot vouch for it.
import { MAP_TYPE } from './program.js';

export type ArgKind =
  | 'anything' // any initialised register
  | 'map' // CONST_PTR_TO_MAP
  | 'key' // readable, initialised memory of the map's key_size
  | 'value' // readable, initialised memory of the map's value_size
  | 'uninit_value' // writable memory of the map's value_size (map_pop/peek_elem)
  | 'ctx' // PTR_TO_CTX, unmodified
  | 'ctx_or_null' // PTR_TO_CTX or NULL
  | 'mem' // readable initialised memory; the next argument is its size
  | 'mem_or_null' // like mem, or NULL with a zero size
  | 'uninit_mem' // writable memory; the next argument is its size
  | 'size' // ARG_CONST_SIZE: (0, 2^29)
  | 'size_or_zero' // ARG_CONST_SIZE_OR_ZERO
  | 'alloc_size' // ARG_CONST_ALLOC_SIZE_OR_ZERO: a known constant
  | 'ringbuf_mem'; // PTR_TO_MEM|MEM_RINGBUF|MEM_ALLOC with a reference, offset 0

export type RetKind = 'integer' | 'void' | 'map_value_or_null' | 'ringbuf_mem_or_null';

export interface HelperProto {
  id: number;
  name: string;
  args: ArgKind[];
  ret: RetKind;
  gpl: boolean;
  pktData?: boolean; // may change packet data: every packet pointer is invalidated
  release?: boolean; // releases the reference held by its ringbuf_mem argument
  maps?: number[]; // map types accepted by its 'map' argument (default: the generic data maps)
}

const GENERIC_MAPS = [MAP_TYPE.HASH, MAP_TYPE.ARRAY, MAP_TYPE.PERCPU_HASH, MAP_TYPE.PERCPU_ARRAY, MAP_TYPE.LRU_HASH, MAP_TYPE.LRU_PERCPU_HASH, MAP_TYPE.LPM_TRIE];

const P = (id: number, name: string, args: ArgKind[], ret: RetKind = 'integer', extra: Partial<HelperProto> = {}): HelperProto =>
  ({ id, name, args, ret, gpl: false, ...extra });

export const HELPERS: Record<number, HelperProto> = {};
for (const h of [
  P(1, 'map_lookup_elem', ['map', 'key'], 'map_value_or_null', { maps: [...GENERIC_MAPS, MAP_TYPE.ARRAY_OF_MAPS, MAP_TYPE.HASH_OF_MAPS] }),
  P(2, 'map_update_elem', ['map', 'key', 'value', 'anything'], 'integer', { maps: GENERIC_MAPS }),
  P(3, 'map_delete_elem', ['map', 'key'], 'integer', { maps: GENERIC_MAPS }),
  P(4, 'probe_read', ['uninit_mem', 'size_or_zero', 'anything'], 'integer', { gpl: true }),
  P(5, 'ktime_get_ns', []),
  P(6, 'trace_printk', ['mem', 'size'], 'integer', { gpl: true }), // the variadic arguments are not checked
  P(7, 'get_prandom_u32', []),
  P(8, 'get_smp_processor_id', []),
  P(9, 'skb_store_bytes', ['ctx', 'anything', 'mem', 'size', 'anything'], 'integer', { pktData: true }),
  P(10, 'l3_csum_replace', ['ctx', 'anything', 'anything', 'anything', 'anything'], 'integer', { pktData: true }),
  P(11, 'l4_csum_replace', ['ctx', 'anything', 'anything', 'anything', 'anything'], 'integer', { pktData: true }),
  P(12, 'tail_call', ['ctx', 'map', 'anything'], 'void', { maps: [MAP_TYPE.PROG_ARRAY] }),
  P(13, 'clone_redirect', ['ctx', 'anything', 'anything'], 'integer', { pktData: true }),
  P(14, 'get_current_pid_tgid', []),
  P(15, 'get_current_uid_gid', []),
  P(16, 'get_current_comm', ['uninit_mem', 'size']),
  P(17, 'get_cgroup_classid', ['ctx']),
  P(18, 'skb_vlan_push', ['ctx', 'anything', 'anything'], 'integer', { pktData: true }),
  P(19, 'skb_vlan_pop', ['ctx'], 'integer', { pktData: true }),
  P(20, 'skb_get_tunnel_key', ['ctx', 'uninit_mem', 'size', 'anything']),
  P(21, 'skb_set_tunnel_key', ['ctx', 'mem', 'size', 'anything']),
  P(22, 'perf_event_read', ['map', 'anything'], 'integer', { maps: [MAP_TYPE.PERF_EVENT_ARRAY] }),
  P(23, 'redirect', ['anything', 'anything']),
  P(25, 'perf_event_output', ['ctx', 'map', 'anything', 'mem', 'size_or_zero'], 'integer', { maps: [MAP_TYPE.PERF_EVENT_ARRAY] }),
  P(26, 'skb_load_bytes', ['ctx', 'anything', 'uninit_mem', 'size']),
  P(27, 'get_stackid', ['ctx', 'map', 'anything'], 'integer', { maps: [MAP_TYPE.STACK_TRACE] }),
  P(28, 'csum_diff', ['mem_or_null', 'size_or_zero', 'mem_or_null', 'size_or_zero', 'anything']),
  P(29, 'skb_get_tunnel_opt', ['ctx', 'uninit_mem', 'size']),
  P(30, 'skb_set_tunnel_opt', ['ctx', 'mem', 'size']),
  P(31, 'skb_change_proto', ['ctx', 'anything', 'anything'], 'integer', { pktData: true }),
  P(32, 'skb_change_type', ['ctx', 'anything']),
  P(34, 'get_hash_recalc', ['ctx']),
  P(35, 'get_current_task', [], 'integer', { gpl: true }),
  P(38, 'skb_change_tail', ['ctx', 'anything', 'anything'], 'integer', { pktData: true }),
  P(39, 'skb_pull_data', ['ctx', 'anything'], 'integer', { pktData: true }),
  P(40, 'csum_update', ['ctx', 'anything']),
  P(41, 'set_hash_invalid', ['ctx']),
  P(42, 'get_numa_node_id', []),
  P(43, 'skb_change_head', ['ctx', 'anything', 'anything'], 'integer', { pktData: true }),
  P(44, 'xdp_adjust_head', ['ctx', 'anything'], 'integer', { pktData: true }),
  P(45, 'probe_read_str', ['uninit_mem', 'size_or_zero', 'anything'], 'integer', { gpl: true }),
  P(46, 'get_socket_cookie', ['ctx']),
  P(47, 'get_socket_uid', ['ctx']),
  P(48, 'set_hash', ['ctx', 'anything']),
  P(49, 'setsockopt', ['ctx', 'anything', 'anything', 'mem', 'size']),
  P(50, 'skb_adjust_room', ['ctx', 'anything', 'anything', 'anything'], 'integer', { pktData: true }),
  P(51, 'redirect_map', ['map', 'anything', 'anything'], 'integer', { maps: [MAP_TYPE.DEVMAP, MAP_TYPE.DEVMAP_HASH, MAP_TYPE.CPUMAP, MAP_TYPE.XSKMAP] }),
  P(54, 'xdp_adjust_meta', ['ctx', 'anything'], 'integer', { pktData: true }),
  P(55, 'perf_event_read_value', ['map', 'anything', 'uninit_mem', 'size'], 'integer', { gpl: true, maps: [MAP_TYPE.PERF_EVENT_ARRAY] }),
  P(57, 'getsockopt', ['ctx', 'anything', 'anything', 'uninit_mem', 'size']),
  P(59, 'sock_ops_cb_flags_set', ['ctx', 'anything']),
  P(65, 'xdp_adjust_tail', ['ctx', 'anything'], 'integer', { pktData: true }),
  P(69, 'fib_lookup', ['ctx', 'mem', 'size', 'anything']),
  P(68, 'skb_load_bytes_relative', ['ctx', 'anything', 'uninit_mem', 'size', 'anything']),
  P(80, 'get_current_cgroup_id', []),
  P(87, 'map_push_elem', ['map', 'value', 'anything'], 'integer', { maps: [MAP_TYPE.QUEUE, MAP_TYPE.STACK] }),
  P(88, 'map_pop_elem', ['map', 'uninit_value'], 'integer', { maps: [MAP_TYPE.QUEUE, MAP_TYPE.STACK] }),
  P(89, 'map_peek_elem', ['map', 'uninit_value'], 'integer', { maps: [MAP_TYPE.QUEUE, MAP_TYPE.STACK] }),
  P(112, 'probe_read_user', ['uninit_mem', 'size_or_zero', 'anything'], 'integer', { gpl: true }),
  P(113, 'probe_read_kernel', ['uninit_mem', 'size_or_zero', 'anything'], 'integer', { gpl: true }),
  P(114, 'probe_read_user_str', ['uninit_mem', 'size_or_zero', 'anything'], 'integer', { gpl: true }),
  P(115, 'probe_read_kernel_str', ['uninit_mem', 'size_or_zero', 'anything'], 'integer', { gpl: true }),
  P(118, 'jiffies64', []),
  P(122, 'get_netns_cookie', ['ctx_or_null']),
  P(125, 'ktime_get_boot_ns', []),
  P(130, 'ringbuf_output', ['map', 'mem', 'size_or_zero', 'anything'], 'integer', { maps: [MAP_TYPE.RINGBUF] }),
  P(131, 'ringbuf_reserve', ['map', 'alloc_size', 'anything'], 'ringbuf_mem_or_null', { maps: [MAP_TYPE.RINGBUF] }),
  P(132, 'ringbuf_submit', ['ringbuf_mem', 'anything'], 'void', { release: true }),
  P(133, 'ringbuf_discard', ['ringbuf_mem', 'anything'], 'void', { release: true }),
  P(135, 'csum_level', ['ctx', 'anything']),
  P(152, 'redirect_neigh', ['anything', 'mem_or_null', 'size_or_zero', 'anything']),
  P(155, 'redirect_peer', ['anything', 'anything']),
  P(134, 'ringbuf_query', ['map', 'anything'], 'integer', { maps: [MAP_TYPE.RINGBUF] }),
  // Checked by the checker itself (the callback runs in its own frame): func, stack or NULL context.
  P(181, 'loop', ['anything', 'anything', 'anything', 'anything']),
  P(164, 'for_each_map_elem', ['anything', 'anything', 'anything', 'anything']),
]) HELPERS[h.id] = h;

// Which program types may call which helpers (the *_func_proto switch statements).
const BASE = [1, 2, 3, 5, 7, 8, 12, 42, 87, 88, 89, 118, 125, 130, 131, 132, 133, 134, 164, 181,
  /* perfmon-capable base helpers */ 6, 35, 112, 113, 114, 115];
const TRACING = [...BASE, 4, 14, 15, 16, 22, 25, 27, 45, 55, 80];
const BY_TYPE: Record<string, number[]> = {
  kprobe: TRACING,
  tracepoint: TRACING,
  raw_tracepoint: TRACING,
  perf_event: TRACING,
  socket_filter: [...BASE, 25, 26, 46, 47, 68],
  sched_cls: [...BASE, 9, 10, 11, 13, 17, 18, 19, 20, 21, 23, 25, 26, 28, 29, 30, 31, 32, 34, 38, 39, 40, 41, 43, 46, 47, 48, 50, 68, 69, 135, 152, 155],
  sched_act: [...BASE, 9, 10, 11, 13, 17, 18, 19, 20, 21, 23, 25, 26, 28, 29, 30, 31, 32, 34, 38, 39, 40, 41, 43, 46, 47, 48, 50, 68, 69, 135, 152, 155],
  xdp: [...BASE, 23, 25, 28, 44, 51, 54, 65, 69],
  cgroup_skb: [...BASE, 25, 26, 46, 47, 68],
  sock_ops: [...BASE, 25, 46, 49, 57, 59, 122],
  cgroup_sock_addr: [...BASE, 15, 25, 46, 122],
  cgroup_sock: [...BASE, 14, 15, 16, 25, 46, 80, 122],
};
const ALLOWED = new Map(Object.entries(BY_TYPE).map(([k, v]) => [k, new Set(v)]));

/** The prototype of helper `id` when program type `progType` may call it, else a reason. */
export function helperFor(id: number, progType: string): HelperProto | string {
  const h = HELPERS[id];
  if (!h || !ALLOWED.get(progType)?.has(id)) return `unknown func #${id} for program type ${progType}`;
  return h;
}

/** Map types whose lookups k2 can model (values are plain memory). */
export const mapAllowedFor = (h: HelperProto, mapType: number): boolean => (h.maps ?? GENERIC_MAPS).includes(mapType);
