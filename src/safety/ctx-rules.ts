// Hand-written context rules (the kernel's *_is_valid_access callbacks, net/core/filter.c and
// kernel/trace/bpf_trace.c) for the program types k2 modelled before the rules were probed from
// the kernel (ctx-table.json): used only when no probed table is available. Where the kernel's
// rule depends on things k2 does not model, the rule here is narrower.

export type CtxField = 'scalar' | 'pkt' | 'pkt_meta' | 'pkt_end';

/** What an access of `size` bytes at `off` yields, or a reason string when the kernel refuses it. */
export type RuleAccess = { ok: true; field: CtxField } | { ok: false; why: string };

type Rule = (off: number, size: number, write: boolean, attach: string) => RuleAccess;

const ok = (field: CtxField = 'scalar'): RuleAccess => ({ ok: true, field });
const no = (off: number, size: number, write: boolean): RuleAccess =>
  ({ ok: false, why: `invalid bpf_context access off=${off} size=${size}${write ? ' (write)' : ''}` });

/** bpf_ctx_narrow_access_ok for a field of `fieldSize` bytes starting at `start`. */
const narrowOk = (off: number, size: number, start: number, fieldSize: number): boolean =>
  size <= fieldSize && off + size <= start + fieldSize && (size & (size - 1)) === 0;

// ---- struct xdp_md ----
const xdp: Rule = (off, size, write) => {
  if (write || off < 0 || off >= 24 || off % 4 !== 0 || size !== 4) return no(off, size, write);
  if (off === 0) return ok('pkt');
  if (off === 4) return ok('pkt_end');
  if (off === 8) return ok('pkt_meta');
  return ok();
};

// ---- struct __sk_buff (size 192 on 6.x) ----
const SKB = {
  len: 0, pkt_type: 4, mark: 8, queue_mapping: 12, protocol: 16, vlan_present: 20, vlan_tci: 24, vlan_proto: 28,
  priority: 32, ingress_ifindex: 36, ifindex: 40, tc_index: 44, cb0: 48, cbEnd: 68, hash: 68, tc_classid: 72,
  data: 76, data_end: 80, napi_id: 84, family: 88, remote_ip4: 92, local_ip4: 96, remote_ip6: 100, local_ip6: 116,
  remote_port: 132, local_port: 136, data_meta: 140, flow_keys: 144, tstamp: 152, wire_len: 160, gso_segs: 164,
  sk: 168, gso_size: 176, tstamp_type: 180, hwtstamp: 184, size: 192,
} as const;
const inField = (off: number, start: number, size: number) => off >= start && off < start + size;

/** bpf_skb_is_valid_access, with the sk/flow_keys pointer fields refused (not modelled). */
function skbCommon(off: number, size: number, write: boolean): RuleAccess {
  if (off < 0 || off >= SKB.size || off % size !== 0) return no(off, size, write);
  if (inField(off, SKB.cb0, 20)) {
    if (off + size > SKB.cbEnd) return no(off, size, write);
    if (write && size > 4 && size !== 8) return no(off, size, write);
    return ok();
  }
  if (inField(off, SKB.remote_ip6, 16) || inField(off, SKB.local_ip6, 16) || off === SKB.remote_ip4 || off === SKB.local_ip4 ||
      inField(off, SKB.data, 4) || inField(off, SKB.data_end, 4) || inField(off, SKB.data_meta, 4)) {
    return size === 4 ? ok() : no(off, size, write);
  }
  if (inField(off, SKB.flow_keys, 8) || inField(off, SKB.sk, 8) || inField(off, SKB.tstamp_type, 4)) return no(off, size, write);
  if (inField(off, SKB.tstamp, 8) || inField(off, SKB.hwtstamp, 8)) return size === 8 ? ok() : no(off, size, write);
  if (write) return size === 4 ? ok() : no(off, size, write);
  // Default fields are 4 bytes; narrow reads allowed.
  const start = off & ~3;
  return narrowOk(off, size, start, 4) ? ok() : no(off, size, write);
}

const socketFilter: Rule = (off, size, write) => {
  if (inField(off, SKB.tc_classid, 4) || inField(off, SKB.data, 4) || inField(off, SKB.data_meta, 4) || inField(off, SKB.data_end, 4) ||
      (off >= SKB.family && off < SKB.local_port + 4) || inField(off, SKB.tstamp, 8) || inField(off, SKB.wire_len, 4) || inField(off, SKB.hwtstamp, 8)) {
    return no(off, size, write);
  }
  if (write && !inField(off, SKB.cb0, 20)) return no(off, size, write);
  return skbCommon(off, size, write);
};

const tcClsAct: Rule = (off, size, write) => {
  if (write && !(inField(off, SKB.mark, 4) || inField(off, SKB.tc_index, 4) || inField(off, SKB.priority, 4) ||
      inField(off, SKB.cb0, 20) || inField(off, SKB.tstamp, 8) || inField(off, SKB.queue_mapping, 4) ||
      inField(off, SKB.tc_classid, 4))) return no(off, size, write);
  if (off >= SKB.family && off < SKB.local_port + 4) return no(off, size, write);
  const r = skbCommon(off, size, write);
  if (!r.ok) return r;
  if (off === SKB.data) return ok('pkt');
  if (off === SKB.data_end) return ok('pkt_end');
  if (off === SKB.data_meta) return ok('pkt_meta');
  return r;
};

const cgroupSkb: Rule = (off, size, write) => {
  if (inField(off, SKB.tc_classid, 4) || inField(off, SKB.data_meta, 4) || inField(off, SKB.wire_len, 4)) return no(off, size, write);
  if (write && !(inField(off, SKB.mark, 4) || inField(off, SKB.priority, 4) || inField(off, SKB.cb0, 20) || inField(off, SKB.tstamp, 8))) return no(off, size, write);
  const r = skbCommon(off, size, write);
  if (!r.ok) return r;
  if (off === SKB.data) return ok('pkt');
  if (off === SKB.data_end) return ok('pkt_end');
  return r;
};

// ---- struct pt_regs (x86-64: 21 longs) ----
const PT_REGS_SIZE = 168;
const kprobe: Rule = (off, size, write) =>
  write || off < 0 || off >= PT_REGS_SIZE || off % size !== 0 || off + size > PT_REGS_SIZE ? no(off, size, write) : ok();

// ---- tracepoint: raw record after the 8-byte common header; k2 allows a conservative 2048 bytes ----
const tracepoint: Rule = (off, size, write) =>
  write || off < 8 || off >= 2048 || off % size !== 0 ? no(off, size, write) : ok();

// ---- raw tracepoint: up to 12 u64 arguments ----
const rawTracepoint: Rule = (off, size, write) =>
  write || off < 0 || off >= 96 || off % size !== 0 || off + size > 96 ? no(off, size, write) : ok();

// ---- struct bpf_perf_event_data: pt_regs, sample_period, addr ----
const perfEvent: Rule = (off, size, write) => {
  if (write || off < 0 || off % size !== 0) return no(off, size, write);
  if (off + size <= PT_REGS_SIZE) return size === 8 ? ok() : no(off, size, write);
  if ((off === PT_REGS_SIZE || off === PT_REGS_SIZE + 8) && size === 8) return ok();
  return no(off, size, write);
};

// ---- struct bpf_sock_ops (size 224) ----
const sockOps: Rule = (off, size, write) => {
  if (off < 0 || off >= 224 || off % size !== 0) return no(off, size, write);
  if (write) return (off === 4 || off === 164) && size === 4 ? ok() : no(off, size, write); // reply, sk_txhash
  if (off === 168 || off === 176 || off === 216) return size === 8 ? ok() : no(off, size, write);
  if (off >= 184 && off < 208) return no(off, size, write); // sk, skb_data, skb_data_end pointers: not modelled
  return size === 4 ? ok() : no(off, size, write);
};

// ---- struct bpf_sock (cgroup/sock, size 80); some fields depend on the attach point ----
const cgroupSock = (off: number, size: number, write: boolean, attach: string): RuleAccess => {
  if (off < 0 || off >= 80 || off % size !== 0) return no(off, size, write);
  const create = attach === 'cgroup/sock' || attach.startsWith('cgroup/sock_create') || attach.startsWith('cgroup/sock_release');
  if (off === 0 || off === 16 || off === 20) return create && size === 4 ? ok() : no(off, size, write); // bound_dev_if, mark, priority
  if (write) return no(off, size, write);
  if (off >= 24 && off < 28 && !attach.startsWith('cgroup/post_bind4')) return no(off, size, write); // src_ip4
  if (off >= 28 && off < 44 && !attach.startsWith('cgroup/post_bind6')) return no(off, size, write); // src_ip6
  if (off >= 44 && off < 48 && !attach.startsWith('cgroup/post_bind')) return no(off, size, write); // src_port
  if (off >= 50 && off < 52) return no(off, size, write);
  if (off >= 48 && off < 50) return (off === 48 && (size === 2 || size === 4)) ? ok() : no(off, size, write); // dst_port (__be16)
  return narrowOk(off, size, off & ~3, 4) ? ok() : no(off, size, write);
};

// ---- struct bpf_sock_addr (cgroup/connect4 etc., size 72); address fields depend on the attach point ----
const sockAddr = (off: number, size: number, write: boolean, attach: string): RuleAccess => {
  if (off < 0 || off >= 72 || off % size !== 0) return no(off, size, write);
  const kind = attach.replace(/^cgroup\//, '');
  const v4 = /^(bind4|connect4|getpeername4|getsockname4|sendmsg4|recvmsg4)/.test(kind);
  const v6 = /^(bind6|connect6|getpeername6|getsockname6|sendmsg6|recvmsg6)/.test(kind);
  const addr = (off >= 4 && off < 8 && v4) || (off >= 8 && off < 24 && v6) || (off >= 40 && off < 44 && kind.startsWith('sendmsg4')) ||
    (off >= 44 && off < 60 && kind.startsWith('sendmsg6')) || (off >= 24 && off < 28);
  if ((off >= 4 && off < 28) || (off >= 40 && off < 60)) {
    if (!addr) return no(off, size, write);
    if (write) return size === 4 ? ok() : no(off, size, write);
    return narrowOk(off, size, off & ~3, 4) ? ok() : no(off, size, write);
  }
  if (off >= 64) return no(off, size, write); // sk: PTR_TO_SOCKET, not modelled
  return !write && size === 4 ? ok() : no(off, size, write);
};

export const RULES: Record<string, Rule> = {
  xdp, socket_filter: socketFilter, sched_cls: tcClsAct, sched_act: tcClsAct, cgroup_skb: cgroupSkb,
  kprobe, tracepoint, raw_tracepoint: rawTracepoint, perf_event: perfEvent, sock_ops: sockOps, cgroup_sock: cgroupSock, cgroup_sock_addr: sockAddr,
};

/** may_access_direct_pkt_data */
export function rulePktAccess(progType: string, write: boolean): boolean {
  switch (progType) {
    case 'xdp': case 'sched_cls': case 'sched_act': return true;
    case 'cgroup_skb': return !write;
    default: return false;
  }
}

/** Legacy LD_ABS/LD_IND packet loads (may_access_skb). */
export const ruleLdAbs = (progType: string): boolean =>
  progType === 'socket_filter' || progType === 'sched_cls' || progType === 'sched_act';

/** Range R0 must be in at program exit, or null when the kernel does not check it. */
export function ruleReturnRange(progType: string, attach = ''): [bigint, bigint] | null {
  if (progType === 'cgroup_sock_addr' && /^cgroup\/(recvmsg|getpeername|getsockname)/.test(attach)) return [1n, 1n];
  switch (progType) {
    case 'cgroup_skb': case 'cgroup_sock': case 'sock_ops': case 'cgroup_sock_addr': case 'cgroup_device':
    case 'cgroup_sysctl': case 'cgroup_sockopt': case 'sk_lookup':
      return [0n, 1n];
    default:
      return null;
  }
}
