// BTF-typed program contexts (BPF_PROG_TYPE_TRACING, LSM): the context is the attach target's
// arguments as u64 slots, typed by the target's BTF prototype in the running kernel
// (kernel/bpf/btf.c btf_ctx_access). tp_btf/NAME takes the prototype of typedef btf_trace_NAME
// (minus its leading `void *__data`), fentry/fexit/fmod_ret/FUNC and lsm/HOOK (bpf_lsm_HOOK) that of
// the function, iter/NAME that of bpf_iter_NAME. Integer, enum and by-value struct arguments read
// as scalars; pointers to structs as PTR_TO_BTF_ID; other pointers as scalars.
import { KIND, isIntOrEnum, isStruct, skipMods, vmlinux, type KBtf, type KType } from './kbtf.js';
import { BTF_FLAG } from './btfaccess.js';
import type { ProgKind } from './progtypes.js';
import { ctxTables } from './ctx.js';

/** What reading one context argument gives. */
export type ArgRead = { kind: 'scalar' } | { kind: 'ptr'; btfId: number; flags: number; nullable: boolean } | { kind: 'bad'; why: string };

export interface TracingCtx {
  /** Byte offset of each argument slot (struct arguments may take more than one). */
  offsets: number[];
  args: ArgRead[];
  /** The return value (fexit, LSM), readable after the arguments. */
  ret: ArgRead | null;
  /** The target's return type. */
  retKind: 'void' | 'bool' | 'int' | 'other';
}

/**
 * Raw tracepoint arguments the kernel marks as possibly NULL (used when the probed table of the
 * running kernel, ctx-table.json's rawTpNullArgs, is not available) (4 bits per argument: 1 = may be
 * NULL, 2 = may be an ERR_PTR, which makes it a scalar); kernel/bpf/btf.c raw_tp_null_args. A
 * superset of the 6.18 list (a NULL-able argument k2 does not know of would be a false accept).
 */
const RAW_TP_NULL_ARGS: Record<string, number> = {
  sched_pi_setprio: 0x10, sched_stick_numa: 0x100, sched_swap_numa: 0x100, afs_make_fs_call: 0x10, afs_make_fs_calli: 0x10,
  afs_make_fs_call1: 0x10, afs_make_fs_call2: 0x10, afs_protocol_error: 0x1, afs_flock_ev: 0x10, cachefiles_lookup: 0x1 | 0x200,
  cachefiles_unlink: 0x1, cachefiles_rename: 0x1, cachefiles_prep_read: 0x1, cachefiles_mark_active: 0x1, cachefiles_mark_failed: 0x1,
  cachefiles_mark_inactive: 0x1, cachefiles_vfs_error: 0x1, cachefiles_io_error: 0x1, cachefiles_ondemand_open: 0x1,
  cachefiles_ondemand_copen: 0x1, cachefiles_ondemand_close: 0x1, cachefiles_ondemand_read: 0x1, cachefiles_ondemand_cread: 0x1,
  cachefiles_ondemand_fd_write: 0x1, cachefiles_ondemand_fd_release: 0x1, ext4_mballoc_discard: 0x10, ext4_mballoc_free: 0x10,
  fib_table_lookup: 0x100, posix_lock_inode: 0x10, fcntl_setlk: 0x10, locks_remove_posix: 0x10, flock_lock_inode: 0x10,
  break_lease_noblock: 0x10, break_lease_block: 0x10, break_lease_unblock: 0x10, generic_delete_lease: 0x10, time_out_leases: 0x10,
  host1x_cdma_push_gather: 0x10000, mm_khugepaged_scan_pmd: 0x10, mm_collapse_huge_page_isolate: 0x1, mm_khugepaged_scan_file: 0x10,
  mm_khugepaged_collapse_file: 0x10, mm_page_alloc: 0x1, mm_page_pcpu_drain: 0x1, mm_page_alloc_zone_locked: 0x1, netfs_failure: 0x10,
  device_pm_callback_start: 0x10, qdisc_dequeue: 0x1000, rxrpc_recvdata: 0x1, rxrpc_resend: 0x10, rxrpc_tq: 0x10, rxrpc_client: 0x1,
  kfree_skb: 0x1000, xs_stream_read_data: 0x1, xprt_reserve_cong: 0x10, xprt_release_cong: 0x10, xprt_get_cong: 0x10,
  xprt_put_cong: 0x10, tcp_send_reset: 0x11, tcp_sendmsg_locked: 0x100, tegra_dma_tx_status: 0x100, tmigr_update_events: 0x1,
  writeback_dirty_folio: 0x10, folio_wait_writeback: 0x10, mr_integ_alloc: 0x2000, amdgpu_vm_bo_map: 0x1, amdgpu_vm_bo_unmap: 0x1,
  netfs_folioq: 0x1, xfs_defer_create_intent: 0x1, xfs_defer_cancel_list: 0x1, xfs_defer_pending_finish: 0x1,
  xfs_defer_pending_abort: 0x1, xfs_defer_relog_intent: 0x1, xfs_defer_isolate_paused: 0x1, xfs_defer_item_pause: 0x1,
  xfs_defer_item_unpause: 0x1, xfs_defer_add_item: 0x1, xfs_defer_cancel_item: 0x1, xfs_defer_finish_item: 0x1,
  xfs_ioc_free_eofblocks: 0x10, xfs_blockgc_free_space: 0x10, xfs_btree_updkeys: 0x100, xfs_btree_overlapped_query_range: 0x100,
  xfs_map_blocks_found: 0x10000, xfs_map_blocks_alloc: 0x10000, xfs_iomap_alloc: 0x1000, xfs_iomap_found: 0x1000,
  xfs_inodegc_flush: 0x1, xfs_inodegc_push: 0x1, xfs_inodegc_start: 0x1, xfs_inodegc_stop: 0x1, xfs_inodegc_queue: 0x1,
  xfs_inodegc_throttle: 0x1, xfs_fs_sync_fs: 0x1, xfs_blockgc_start: 0x1, xfs_blockgc_stop: 0x1, xfs_blockgc_worker: 0x1,
  xfs_blockgc_flush_all: 0x1, xchk_nlinks_live_update: 0x10, xchk_metapath_lookup: 0x100, nfsd_dirent: 0x1, nfsd_file_acquire: 0x1001,
  nfsd_file_insert_err: 0x1, nfsd_file_cons_err: 0x1, nfs4_setup_sequence: 0x1, pnfs_update_layout: 0x10000,
  nfs4_inode_callback_event: 0x200, nfs4_inode_stateid_callback_event: 0x200, pnfs_mds_fallback_pg_init_read: 0x10000,
  pnfs_mds_fallback_pg_init_write: 0x10000, pnfs_mds_fallback_pg_get_mirror_count: 0x10000, pnfs_mds_fallback_read_done: 0x10000,
  pnfs_mds_fallback_write_done: 0x10000, pnfs_mds_fallback_read_pagelist: 0x10000, pnfs_mds_fallback_write_pagelist: 0x10000,
  coda_dec_pic_run: 0x10, coda_dec_pic_done: 0x10, cfg80211_scan_done: 0x11, rdev_set_coalesce: 0x10,
  cfg80211_report_wowlan_wakeup: 0x100, cfg80211_inform_bss_frame: 0x100, cfg80211_michael_mic_failure: 0x10000, wiphy_work_queue: 0x10,
  wiphy_work_run: 0x10, wiphy_work_cancel: 0x10, wiphy_work_flush: 0x10, hugetlbfs_alloc_inode: 0x10, spufs_context: 0x10,
  kvm_page_fault_enter: 0x100, dpu_crtc_setup_mixer: 0x100, binder_transaction: 0x100, btree_path_free: 0x100, hfi1_sdma_progress: 0x1000,
  iptfs_ingress_postq_event: 0x1000, neigh_update: 0x10, amdtp_packet: 0x100,
};

/** The prototype the program's context follows, or a reason it cannot be found. */
function targetProto(btf: KBtf, k: ProgKind): { proto: KType; skipFirst: boolean } | string {
  const name = k.target;
  if (!name) return `${k.type} program without an attach target in its section name`;
  let fnName: string;
  switch (k.attach) {
    case 'trace_raw_tp': {
      const td = btf.byName.get(`btf_trace_${name}`)?.find((t) => t.kind === KIND.TYPEDEF);
      const ptr = td && btf.types[td.sizeOrType];
      const proto = ptr && ptr.kind === KIND.PTR ? btf.types[ptr.sizeOrType] : undefined;
      if (!proto || proto.kind !== KIND.FUNC_PROTO) return `tracepoint ${name} not found in the kernel's BTF`;
      return { proto, skipFirst: true };
    }
    case 'trace_fentry': case 'trace_fexit': case 'modify_return': fnName = name; break;
    case '': {
      if (k.type !== 'struct_ops') return `attach type of ${k.type} is not modelled`;
      // struct_ops: the function pointer member of the kernel's ops struct ("tcp_congestion_ops.cong_avoid").
      const [st, member] = name.split('.');
      const t = btf.byName.get(st ?? '')?.find((x) => x.kind === KIND.STRUCT);
      const m = t?.members.find((x) => x.name === member);
      const ptr = m && skipMods(btf, m.type);
      const proto = ptr && ptr.t.kind === KIND.PTR ? skipMods(btf, ptr.t.sizeOrType)?.t : undefined;
      if (!proto || proto.kind !== KIND.FUNC_PROTO) return `struct_ops member ${name} not found in the kernel's BTF`;
      return { proto, skipFirst: false };
    }
    case 'lsm_mac': case 'lsm_cgroup': fnName = `bpf_lsm_${name}`; break;
    case 'trace_iter': fnName = `bpf_iter_${name}`; break;
    default: return `attach type ${k.attach || 'none'} of ${k.type} is not modelled`;
  }
  if (fnName.includes(':')) return `attach target ${fnName} in a kernel module is not modelled`;
  const fn = btf.byName.get(fnName)?.find((t) => t.kind === KIND.FUNC);
  const proto = fn && btf.types[fn.sizeOrType];
  if (!proto || proto.kind !== KIND.FUNC_PROTO) return `function ${fnName} not found in the kernel's BTF`;
  return { proto, skipFirst: false };
}

/** Arguments whose type-derived register the kernel trusts (prog_args_trusted). */
const trustedArgs = (k: ProgKind): boolean => k.attach === 'trace_raw_tp' || k.attach === 'trace_iter' || k.type === 'struct_ops';

function argRead(btf: KBtf, k: ProgKind, typeId: number, index: number, paramName: string): ArgRead {
  const s = skipMods(btf, typeId);
  if (!s) return { kind: 'bad', why: 'argument type not found' };
  const t = s.t;
  if ((t.kind === KIND.INT && t.sizeOrType <= 8) || isIntOrEnum(t) || isStruct(t)) return { kind: 'scalar' };
  if (t.kind !== KIND.PTR) return { kind: 'bad', why: `arg${index} has type ${t.kind}. Only pointer access is allowed` };
  const p = skipMods(btf, t.sizeOrType);
  if (!p || !isStruct(p.t)) return { kind: 'scalar' }; // void, int and multilevel pointers: scalars
  let nullable = paramName.endsWith('__nullable');
  if (k.attach === 'trace_raw_tp') {
    // Probed from this kernel (ctx-table.json) when available: exact; else the superset above.
    const probed = ctxTables()?.rawTpNullArgs;
    const mask = (probed ? probed[k.target] : RAW_TP_NULL_ARGS[k.target]) ?? 0;
    if (mask & (0x2 << (index * 4))) return { kind: 'scalar' }; // may encode an error: scrubbed to a scalar
    if (mask & (0x1 << (index * 4))) nullable = true;
  }
  // Iterator objects (ctx_arg_info) may be NULL at the end of the iteration; the meta argument is not.
  if (k.attach === 'trace_iter' && index > 0) nullable = true;
  // TCP congestion control ops see their struct sock arguments as struct tcp_sock (bpf_tcp_ca_is_valid_access).
  let id = p.id;
  if (k.type === 'struct_ops' && k.target.startsWith('tcp_congestion_ops.') && p.t.name === 'sock') {
    id = btf.byName.get('tcp_sock')?.find((x) => x.kind === KIND.STRUCT)?.id ?? id;
  }
  return { kind: 'ptr', btfId: id, flags: trustedArgs(k) ? BTF_FLAG.TRUSTED : 0, nullable };
}

const CTX_CACHE = new Map<string, TracingCtx | string>();

/** The argument layout of a BTF-typed program's context, or why k2 cannot model it. */
export function tracingCtx(k: ProgKind): TracingCtx | string {
  const key = `${k.type}\0${k.attach}\0${k.target}`;
  const hit = CTX_CACHE.get(key);
  if (hit) return hit;
  const btf = vmlinux();
  let r: TracingCtx | string;
  if (!btf) r = 'no kernel BTF (/sys/kernel/btf/vmlinux) to type the context';
  else {
    const tp = targetProto(btf, k);
    if (typeof tp === 'string') r = tp;
    else {
      const params = tp.skipFirst ? tp.proto.params.slice(1) : tp.proto.params;
      const offsets: number[] = [];
      let off = 0;
      let bad: string | null = null;
      for (const p of params) {
        offsets.push(off);
        const s = skipMods(btf, p.type);
        const size = s && s.t.kind !== KIND.PTR ? s.t.sizeOrType : 8;
        if (!s || (s.t.kind !== KIND.PTR && !size)) bad = 'argument without a size';
        off += Math.ceil(size / 8) * 8;
      }
      offsets.push(off);
      const retSlot = k.attach === 'trace_fexit' || k.attach === 'lsm_mac' || k.attach === 'lsm_cgroup';
      const retType = tp.proto.sizeOrType;
      const rt = skipMods(btf, retType);
      const retKind = retType === 0 ? 'void' : rt && rt.t.kind === KIND.INT ? (rt.t.name === '_Bool' ? 'bool' : 'int') : 'other';
      r = bad ?? {
        retKind,
        offsets,
        args: params.map((p, i) => argRead(btf, k, p.type, i, p.name)),
        ret: retSlot ? (retType === 0 ? { kind: 'bad', why: 'void return value' } : argRead(btf, k, retType, params.length, '')) : null,
      };
    }
  }
  CTX_CACHE.set(key, r);
  return r;
}

/** btf_ctx_access: what a context read of `size` bytes at `off` gives. */
export function tracingAccess(c: TracingCtx, off: number, size: number, write: boolean): ArgRead {
  if (off < 0 || off >= 8 * 12 || write || off % size !== 0) return { kind: 'bad', why: `invalid bpf_context access off=${off} size=${size}` };
  if (off % 8) return { kind: 'bad', why: `offset ${off} is not multiple of 8` };
  const n = c.args.length;
  // btf_ctx_arg_idx: the argument whose slots contain `off`; the return value follows the last one.
  let arg = c.offsets.findIndex((o, i) => i < n && off >= o && off < c.offsets[i + 1]!);
  if (arg < 0) arg = off >= c.offsets[n]! && off < c.offsets[n]! + 8 ? n : n + 1;
  if (arg > n) return { kind: 'bad', why: `doesn't have ${arg + 1}-th argument` };
  const a = arg === n ? c.ret : c.args[arg]!;
  if (!a) return { kind: 'bad', why: `doesn't have ${arg + 1}-th argument` };
  if (a.kind === 'ptr' && size !== 8) return { kind: 'bad', why: `size ${size} must be 8` };
  return a;
}
