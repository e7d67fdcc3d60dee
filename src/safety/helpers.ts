// Helper calls: which helpers a program may call and what each expects.
//
// Availability per program type and expected attach type (the kernel's *_func_proto switch
// statements) and GPL-only-ness come from the running kernel, probed by
// scripts/gen-kernel-tables.ts into helper-table.json. Argument and return kinds (struct
// bpf_func_proto: ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, RET_PTR_TO_MAP_VALUE_OR_NULL
// ...) are written here from the kernel's definitions (kernel/bpf/helpers.c, net/core/filter.c,
// kernel/trace/bpf_trace.c) for the helpers k2 models; a helper the kernel allows but k2 has no
// prototype for is "not modelled" (unsafe). Map compatibility follows check_map_func_compatibility.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MAP_TYPE } from './program.js';
import type { ProgKind } from './progtypes.js';

export type ArgKind =
  | 'anything' // ARG_ANYTHING: any initialised register
  | 'map' // ARG_CONST_MAP_PTR
  | 'key' // ARG_PTR_TO_MAP_KEY: readable, initialised memory of the map's key_size
  | 'value' // ARG_PTR_TO_MAP_VALUE: readable, initialised memory of the map's value_size
  | 'value_or_null' // ARG_PTR_TO_MAP_VALUE_OR_NULL
  | 'uninit_value' // ARG_PTR_TO_UNINIT_MAP_VALUE: writable memory of the map's value_size (map_pop/peek_elem)
  | 'ctx' // ARG_PTR_TO_CTX, unmodified
  | 'ctx_or_null' // ARG_PTR_TO_CTX_OR_NULL
  | 'mem' // ARG_PTR_TO_MEM | MEM_RDONLY: readable initialised memory; the next argument is its size
  | 'mem_rw' // ARG_PTR_TO_MEM: initialised memory the helper reads and writes; the next argument is its size
  | 'mem_or_null' // like mem, or NULL with a zero size
  | 'uninit_mem' // ARG_PTR_TO_UNINIT_MEM: writable memory; the next argument is its size
  | 'size' // ARG_CONST_SIZE: (0, 2^29)
  | 'size_or_zero' // ARG_CONST_SIZE_OR_ZERO
  | 'alloc_size' // ARG_CONST_ALLOC_SIZE_OR_ZERO: a known constant
  | 'long_out' // ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED: 8 writable aligned bytes
  | 'const_str' // ARG_PTR_TO_CONST_STR: a NUL-terminated string in a frozen read-only map
  | 'btf_task' // ARG_PTR_TO_BTF_ID (struct task_struct)
  | 'btf_task_or_null' // ARG_PTR_TO_BTF_ID_OR_NULL (struct task_struct)
  | 'btf_seq_file' // ARG_PTR_TO_BTF_ID (struct seq_file)
  | 'ringbuf_mem' // ARG_PTR_TO_RINGBUF_MEM | OBJ_RELEASE: a reserved record, offset 0
  | 'sock_common' // ARG_PTR_TO_SOCK_COMMON: any socket pointer, not NULL
  | 'sock_or_null' // ARG_PTR_TO_SOCKET_OR_NULL: a full socket or NULL
  | 'btf_sock_common' // ARG_PTR_TO_BTF_ID_SOCK_COMMON: any socket pointer, not NULL
  | 'sock_release'; // ARG_PTR_TO_BTF_ID_SOCK_COMMON | OBJ_RELEASE: a referenced socket, offset 0

export type RetKind =
  | 'integer'
  | 'void'
  | 'map_value_or_null'
  | 'map_value' // get_local_storage: never NULL
  | 'ringbuf_mem_or_null'
  | 'btf_task_trusted' // RET_PTR_TO_BTF_ID_TRUSTED struct task_struct
  | 'btf_pt_regs' // RET_PTR_TO_BTF_ID struct pt_regs
  | 'sock_or_null_acquire' // RET_PTR_TO_SOCKET_OR_NULL with a new reference (socket lookups)
  | 'sock_common_or_null_acquire' // RET_PTR_TO_SOCK_COMMON_OR_NULL with a new reference
  | 'sock_or_null_cast' // RET_PTR_TO_SOCKET_OR_NULL sharing the argument's reference (sk_fullsock)
  | 'tcp_sock_or_null_cast'; // RET_PTR_TO_TCP_SOCK_OR_NULL sharing the argument's reference (bpf_tcp_sock)

export interface HelperProto {
  id: number;
  name: string;
  args: ArgKind[];
  ret: RetKind;
  pktData?: boolean; // may change packet data: every packet pointer is invalidated
  release?: boolean; // releases the reference held by its ringbuf_mem argument
  maps?: number[]; // map types its 'map' argument accepts (default: the generic data maps)
  /** Program types where the helper has a different prototype k2 does not model. */
  notFor?: string[];
}

const GENERIC_MAPS = [MAP_TYPE.HASH, MAP_TYPE.ARRAY, MAP_TYPE.PERCPU_HASH, MAP_TYPE.PERCPU_ARRAY, MAP_TYPE.LRU_HASH, MAP_TYPE.LRU_PERCPU_HASH, MAP_TYPE.LPM_TRIE];
const PERCPU_MAPS = [MAP_TYPE.PERCPU_ARRAY, MAP_TYPE.PERCPU_HASH, MAP_TYPE.LRU_PERCPU_HASH];
const CGROUP_ARRAY = 8, CGROUP_STORAGE = 19, PERCPU_CGROUP_STORAGE = 21, TASK_STORAGE = 29;
/** Socket-typed prototypes in tracing programs (BTF sock_common arguments): not modelled. */
const BTF_SOCK_TYPES = ['tracing', 'lsm', 'struct_ops', 'syscall'];

const P = (id: number, name: string, args: ArgKind[], ret: RetKind = 'integer', extra: Partial<HelperProto> = {}): HelperProto =>
  ({ id, name, args, ret, ...extra });

const MEM_OUT: ArgKind[] = ['uninit_mem', 'size_or_zero', 'anything'];

export const HELPERS: Record<number, HelperProto> = {};
for (const h of [
  // Lookups: map-in-map gives the inner map, devmap values (read-only) may be read; sockets (sockmap, xskmap) are not modelled.
  P(1, 'map_lookup_elem', ['map', 'key'], 'map_value_or_null', { maps: [...GENERIC_MAPS, MAP_TYPE.ARRAY_OF_MAPS, MAP_TYPE.HASH_OF_MAPS, MAP_TYPE.DEVMAP, MAP_TYPE.DEVMAP_HASH, MAP_TYPE.SOCKMAP, MAP_TYPE.SOCKHASH] }),
  P(2, 'map_update_elem', ['map', 'key', 'value', 'anything'], 'integer', { maps: GENERIC_MAPS }),
  P(3, 'map_delete_elem', ['map', 'key'], 'integer', { maps: GENERIC_MAPS }),
  P(4, 'probe_read', MEM_OUT),
  P(5, 'ktime_get_ns', []),
  P(6, 'trace_printk', ['mem', 'size']), // the variadic arguments are not checked
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
  P(24, 'get_route_realm', ['ctx']),
  P(25, 'perf_event_output', ['ctx', 'map', 'anything', 'mem', 'size_or_zero'], 'integer', { maps: [MAP_TYPE.PERF_EVENT_ARRAY] }),
  P(26, 'skb_load_bytes', ['ctx', 'anything', 'uninit_mem', 'size']),
  P(27, 'get_stackid', ['ctx', 'map', 'anything'], 'integer', { maps: [MAP_TYPE.STACK_TRACE] }),
  P(28, 'csum_diff', ['mem_or_null', 'size_or_zero', 'mem_or_null', 'size_or_zero', 'anything']),
  P(29, 'skb_get_tunnel_opt', ['ctx', 'uninit_mem', 'size']),
  P(30, 'skb_set_tunnel_opt', ['ctx', 'mem', 'size']),
  P(31, 'skb_change_proto', ['ctx', 'anything', 'anything'], 'integer', { pktData: true }),
  P(32, 'skb_change_type', ['ctx', 'anything']),
  P(33, 'skb_under_cgroup', ['ctx', 'map', 'anything'], 'integer', { maps: [CGROUP_ARRAY] }),
  P(34, 'get_hash_recalc', ['ctx']),
  P(35, 'get_current_task', []),
  P(37, 'current_task_under_cgroup', ['map', 'anything'], 'integer', { maps: [CGROUP_ARRAY] }),
  P(38, 'skb_change_tail', ['ctx', 'anything', 'anything'], 'integer', { pktData: true }),
  P(39, 'skb_pull_data', ['ctx', 'anything'], 'integer', { pktData: true }),
  P(40, 'csum_update', ['ctx', 'anything']),
  P(41, 'set_hash_invalid', ['ctx']),
  P(42, 'get_numa_node_id', []),
  P(43, 'skb_change_head', ['ctx', 'anything', 'anything'], 'integer', { pktData: true }),
  P(44, 'xdp_adjust_head', ['ctx', 'anything'], 'integer', { pktData: true }),
  P(45, 'probe_read_str', MEM_OUT),
  P(46, 'get_socket_cookie', ['ctx'], 'integer', { notFor: BTF_SOCK_TYPES }),
  P(47, 'get_socket_uid', ['ctx']),
  P(48, 'set_hash', ['ctx', 'anything']),
  P(49, 'setsockopt', ['ctx', 'anything', 'anything', 'mem', 'size'], 'integer', { notFor: [...BTF_SOCK_TYPES, 'cgroup_sockopt'] }),
  P(50, 'skb_adjust_room', ['ctx', 'anything', 'anything', 'anything'], 'integer', { pktData: true }),
  P(51, 'redirect_map', ['map', 'anything', 'anything'], 'integer', { maps: [MAP_TYPE.DEVMAP, MAP_TYPE.DEVMAP_HASH, MAP_TYPE.CPUMAP, MAP_TYPE.XSKMAP] }),
  P(52, 'sk_redirect_map', ['ctx', 'map', 'anything', 'anything'], 'integer', { maps: [MAP_TYPE.SOCKMAP] }),
  P(53, 'sock_map_update', ['ctx', 'map', 'key', 'anything'], 'integer', { maps: [MAP_TYPE.SOCKMAP] }),
  P(54, 'xdp_adjust_meta', ['ctx', 'anything'], 'integer', { pktData: true }),
  P(55, 'perf_event_read_value', ['map', 'anything', 'uninit_mem', 'size'], 'integer', { maps: [MAP_TYPE.PERF_EVENT_ARRAY] }),
  P(56, 'perf_prog_read_value', ['ctx', 'uninit_mem', 'size']),
  P(57, 'getsockopt', ['ctx', 'anything', 'anything', 'uninit_mem', 'size'], 'integer', { notFor: [...BTF_SOCK_TYPES, 'cgroup_sockopt'] }),
  P(59, 'sock_ops_cb_flags_set', ['ctx', 'anything']),
  P(60, 'msg_redirect_map', ['ctx', 'map', 'anything', 'anything'], 'integer', { maps: [MAP_TYPE.SOCKMAP] }),
  P(61, 'msg_apply_bytes', ['ctx', 'anything']),
  P(62, 'msg_cork_bytes', ['ctx', 'anything']),
  P(63, 'msg_pull_data', ['ctx', 'anything', 'anything', 'anything'], 'integer', { pktData: true }),
  P(64, 'bind', ['ctx', 'mem', 'size']),
  P(65, 'xdp_adjust_tail', ['ctx', 'anything'], 'integer', { pktData: true }),
  P(66, 'skb_get_xfrm_state', ['ctx', 'anything', 'uninit_mem', 'size', 'anything']),
  P(67, 'get_stack', ['ctx', 'uninit_mem', 'size_or_zero', 'anything']),
  P(68, 'skb_load_bytes_relative', ['ctx', 'anything', 'uninit_mem', 'size', 'anything']),
  P(69, 'fib_lookup', ['ctx', 'mem_rw', 'size', 'anything']),
  P(70, 'sock_hash_update', ['ctx', 'map', 'key', 'anything'], 'integer', { maps: [MAP_TYPE.SOCKHASH] }),
  P(71, 'msg_redirect_hash', ['ctx', 'map', 'key', 'anything'], 'integer', { maps: [MAP_TYPE.SOCKHASH] }),
  P(72, 'sk_redirect_hash', ['ctx', 'map', 'key', 'anything'], 'integer', { maps: [MAP_TYPE.SOCKHASH] }),
  P(79, 'skb_cgroup_id', ['ctx']),
  P(80, 'get_current_cgroup_id', []),
  P(81, 'get_local_storage', ['map', 'anything'], 'map_value', { maps: [CGROUP_STORAGE, PERCPU_CGROUP_STORAGE] }),
  P(83, 'skb_ancestor_cgroup_id', ['ctx', 'anything']),
  P(84, 'sk_lookup_tcp', ['ctx', 'mem', 'size', 'anything', 'anything'], 'sock_or_null_acquire'),
  P(85, 'sk_lookup_udp', ['ctx', 'mem', 'size', 'anything', 'anything'], 'sock_or_null_acquire'),
  P(86, 'sk_release', ['sock_release']),
  P(87, 'map_push_elem', ['map', 'value', 'anything'], 'integer', { maps: [MAP_TYPE.QUEUE, MAP_TYPE.STACK] }),
  P(88, 'map_pop_elem', ['map', 'uninit_value'], 'integer', { maps: [MAP_TYPE.QUEUE, MAP_TYPE.STACK] }),
  P(89, 'map_peek_elem', ['map', 'uninit_value'], 'integer', { maps: [MAP_TYPE.QUEUE, MAP_TYPE.STACK] }),
  P(95, 'sk_fullsock', ['sock_common'], 'sock_or_null_cast'),
  P(96, 'tcp_sock', ['sock_common'], 'tcp_sock_or_null_cast'),
  P(97, 'skb_ecn_set_ce', ['ctx']),
  P(99, 'skc_lookup_tcp', ['ctx', 'mem', 'size', 'anything', 'anything'], 'sock_common_or_null_acquire'),
  P(101, 'sysctl_get_name', ['ctx', 'uninit_mem', 'size', 'anything']),
  P(102, 'sysctl_get_current_value', ['ctx', 'uninit_mem', 'size']),
  P(103, 'sysctl_get_new_value', ['ctx', 'uninit_mem', 'size']),
  P(104, 'sysctl_set_new_value', ['ctx', 'mem', 'size']),
  P(105, 'strtol', ['mem', 'size', 'anything', 'long_out']),
  P(106, 'strtoul', ['mem', 'size', 'anything', 'long_out']),
  P(109, 'send_signal', ['anything']),
  P(112, 'probe_read_user', MEM_OUT),
  P(113, 'probe_read_kernel', MEM_OUT),
  P(114, 'probe_read_user_str', MEM_OUT),
  P(115, 'probe_read_kernel_str', MEM_OUT),
  P(117, 'send_signal_thread', ['anything']),
  P(118, 'jiffies64', []),
  P(120, 'get_ns_current_pid_tgid', ['anything', 'anything', 'uninit_mem', 'size']),
  P(122, 'get_netns_cookie', ['ctx_or_null']),
  P(123, 'get_current_ancestor_cgroup_id', ['anything']),
  P(124, 'sk_assign', ['ctx', 'btf_sock_common', 'anything'], 'integer', { notFor: ['sk_lookup'] }),
  P(125, 'ktime_get_boot_ns', []),
  P(126, 'seq_printf', ['btf_seq_file', 'mem', 'size', 'mem_or_null', 'size_or_zero']),
  P(127, 'seq_write', ['btf_seq_file', 'mem', 'size_or_zero']),
  P(130, 'ringbuf_output', ['map', 'mem', 'size_or_zero', 'anything'], 'integer', { maps: [MAP_TYPE.RINGBUF] }),
  P(131, 'ringbuf_reserve', ['map', 'alloc_size', 'anything'], 'ringbuf_mem_or_null', { maps: [MAP_TYPE.RINGBUF] }),
  P(132, 'ringbuf_submit', ['ringbuf_mem', 'anything'], 'void', { release: true }),
  P(133, 'ringbuf_discard', ['ringbuf_mem', 'anything'], 'void', { release: true }),
  P(134, 'ringbuf_query', ['map', 'anything'], 'integer', { maps: [MAP_TYPE.RINGBUF] }),
  P(135, 'csum_level', ['ctx', 'anything']),
  P(141, 'get_task_stack', ['btf_task', 'uninit_mem', 'size_or_zero', 'anything']),
  P(151, 'skb_cgroup_classid', ['ctx']),
  P(152, 'redirect_neigh', ['anything', 'mem_or_null', 'size_or_zero', 'anything']),
  P(155, 'redirect_peer', ['anything', 'anything']),
  P(156, 'task_storage_get', ['map', 'btf_task_or_null', 'value_or_null', 'anything'], 'map_value_or_null', { maps: [TASK_STORAGE] }),
  P(157, 'task_storage_delete', ['map', 'btf_task'], 'integer', { maps: [TASK_STORAGE] }),
  P(158, 'get_current_task_btf', [], 'btf_task_trusted'),
  P(160, 'ktime_get_coarse_ns', []),
  P(173, 'get_func_ip', ['ctx']),
  P(174, 'get_attach_cookie', ['ctx']),
  P(175, 'task_pt_regs', ['btf_task'], 'btf_pt_regs'),
  P(177, 'trace_vprintk', ['mem', 'size', 'mem_or_null', 'size_or_zero']),
  P(182, 'strncmp', ['mem', 'size', 'const_str']),
  P(183, 'get_func_arg', ['ctx', 'anything', 'long_out']),
  P(184, 'get_func_ret', ['ctx', 'long_out']),
  P(185, 'get_func_arg_cnt', ['ctx']),
  P(186, 'get_retval', []),
  P(187, 'set_retval', ['anything']),
  P(188, 'xdp_get_buff_len', ['ctx']),
  P(189, 'xdp_load_bytes', ['ctx', 'anything', 'uninit_mem', 'size']),
  P(190, 'xdp_store_bytes', ['ctx', 'anything', 'mem', 'size']),
  P(192, 'skb_set_tstamp', ['ctx', 'anything', 'anything']),
  P(195, 'map_lookup_percpu_elem', ['map', 'key', 'anything'], 'map_value_or_null', { maps: PERCPU_MAPS }),
  P(208, 'ktime_get_tai_ns', []),
  // Checked by calls.ts itself (the callback runs in its own frame): func, stack or NULL context.
  P(181, 'loop', ['anything', 'anything', 'anything', 'anything']),
  P(164, 'for_each_map_elem', ['anything', 'anything', 'anything', 'anything']),
]) HELPERS[h.id] = h;

/** Helpers whose prototype depends on the program type (program type -> prototype). */
const VARIANTS: Record<number, Record<string, HelperProto>> = {
  124: { sk_lookup: P(124, 'sk_assign', ['ctx', 'sock_or_null', 'anything']) }, // bpf_sk_lookup_assign
};

// ---- availability (probed) ----

interface HelperTable { kernel: string; helpers: Record<string, string>; gplOnly: number[]; available: Record<string, Record<string, number[]>> }

function loadTable(): HelperTable | null {
  for (const rel of ['./helper-table.json', '../../src/safety/helper-table.json']) {
    try {
      const t = JSON.parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as HelperTable;
      if (t && t.available && Array.isArray(t.gplOnly)) return t;
    } catch { /* try the next place */ }
  }
  return null;
}
let table: HelperTable | null | undefined;
const helperTable = (): HelperTable | null => (table === undefined ? (table = loadTable()) : table);

/**
 * Helpers available to a program: its attach type's probed set; for an attach type that was not
 * probed (fentry/fexit/lsm cannot be loaded here), the set of a probed sibling that the kernel's
 * func_proto code makes a subset of it (raw tracepoints for trampolines); else, without an attach
 * type, the intersection of every attach type of the program type.
 */
const AVAILABLE = new Map<string, Set<number> | null>();
const AVAILABLE_BY_KIND = new WeakMap<ProgKind, Set<number> | null>();
function availableFor(k: ProgKind): Set<number> | null {
  const hit = AVAILABLE_BY_KIND.get(k);
  if (hit !== undefined) return hit;
  const key = `${k.type}\0${k.attach}`;
  if (AVAILABLE.has(key)) { AVAILABLE_BY_KIND.set(k, AVAILABLE.get(key)!); return AVAILABLE.get(key)!; }
  const t = helperTable();
  let ids: number[] | null = null;
  const byAttach = t?.available[k.type];
  if (byAttach) {
    if (byAttach[k.attach]) ids = byAttach[k.attach]!;
    else if (byAttach['']) ids = byAttach['']!;
    else {
      const sets = Object.values(byAttach);
      ids = sets.length ? sets[0]!.filter((id) => sets.every((s) => s.includes(id))) : null;
    }
  } else if (t && (k.type === 'tracing' || k.type === 'lsm')) {
    ids = t.available.tracing?.trace_raw_tp ?? null;
  }
  const s = ids ? new Set(ids) : t ? null : legacyAvailable(k.type);
  AVAILABLE.set(key, s);
  AVAILABLE_BY_KIND.set(k, s);
  return s;
}

/** The prototype of helper `id` when a program of this kind may call it, else a reason. */
export function helperFor(id: number, k: ProgKind, gpl = true): HelperProto | string {
  const avail = availableFor(k);
  const h0 = VARIANTS[id]?.[k.type] ?? HELPERS[id];
  if (avail && avail.has(id) && h0 && !h0.notFor?.includes(k.type) && (gpl || !helperTable()?.gplOnly.includes(id))) return h0;
  const t = helperTable();
  const name = t?.helpers[String(id)] ?? HELPERS[id]?.name ?? `#${id}`;
  if (!avail || !avail.has(id)) return `program of this type cannot use helper bpf_${name}#${id} (${k.type}${k.attach ? `/${k.attach}` : ''})`;
  const h = VARIANTS[id]?.[k.type] ?? HELPERS[id];
  if (!h || h.notFor?.includes(k.type)) return `helper bpf_${name}#${id} is not modelled${h ? ` for ${k.type}` : ''}`;
  if (!gpl && (t ? t.gplOnly.includes(id) : true)) return 'cannot call GPL-restricted function from non-GPL compatible program';
  return h;
}

/** check_map_func_compatibility, from the helper's side (the map's side is `mapAllowsHelper`). */
export const mapAllowedFor = (h: HelperProto, mapType: number): boolean => (h.maps ?? GENERIC_MAPS).includes(mapType);

// ---- fallback without a probed table: the hand-written lists k2 used before (6.x func_proto) ----

function legacyAvailable(progType: string): Set<number> | null {
  const BASE = [1, 2, 3, 5, 7, 8, 12, 42, 87, 88, 89, 118, 125, 130, 131, 132, 133, 134, 164, 181, 6, 35, 112, 113, 114, 115];
  const TRACING = [...BASE, 4, 14, 15, 16, 22, 25, 27, 45, 55, 80];
  const TC = [...BASE, 9, 10, 11, 13, 17, 18, 19, 20, 21, 23, 25, 26, 28, 29, 30, 31, 32, 34, 38, 39, 40, 41, 43, 46, 47, 48, 50, 68, 69, 135, 152, 155];
  const BY_TYPE: Record<string, number[]> = {
    kprobe: TRACING, tracepoint: TRACING, raw_tracepoint: TRACING, perf_event: TRACING,
    socket_filter: [...BASE, 25, 26, 46, 47, 68], sched_cls: TC, sched_act: TC,
    xdp: [...BASE, 23, 25, 28, 44, 51, 54, 65, 69], cgroup_skb: [...BASE, 25, 26, 46, 47, 68],
    sock_ops: [...BASE, 25, 46, 49, 57, 59, 122], cgroup_sock_addr: [...BASE, 15, 25, 46, 122],
    cgroup_sock: [...BASE, 14, 15, 16, 25, 46, 80, 122],
  };
  const ids = BY_TYPE[progType];
  return ids ? new Set(ids) : null;
}
