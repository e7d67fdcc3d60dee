// What the kernel is told about a program besides its code: the program type, the expected attach
// type and the sleepable flag that libbpf derives from the section name (libbpf.c section_defs),
// and the attach target named after the section's first '/' (tp_btf/NAME, fentry/FUNC, lsm/HOOK,
// iter/NAME). The verifier's rules for the context, helpers and return values depend on all three.

export interface ProgKind {
  /** bpf_prog_type, as bpftool names it ("xdp", "tracing", "cgroup_sock_addr"...). */
  type: string;
  /** Expected attach type as bpftool names it without BPF_ ("trace_raw_tp", "cgroup_inet4_connect"); '' when none. */
  attach: string;
  /** BPF_F_SLEEPABLE (".s" sections). */
  sleepable: boolean;
  /** The attach target (tracepoint, function, LSM hook, iterator) for BTF-typed programs. */
  target: string;
}

/** Section prefix (up to '/', or the whole name) -> expected attach type, per program type. */
const ATTACH: Record<string, [prefix: string, attach: string][]> = {
  tracing: [['tp_btf', 'trace_raw_tp'], ['fentry', 'trace_fentry'], ['fentry.s', 'trace_fentry'], ['fexit', 'trace_fexit'],
    ['fexit.s', 'trace_fexit'], ['fmod_ret', 'modify_return'], ['fmod_ret.s', 'modify_return'], ['iter', 'trace_iter'], ['iter.s', 'trace_iter']],
  lsm: [['lsm', 'lsm_mac'], ['lsm.s', 'lsm_mac'], ['lsm_cgroup', 'lsm_cgroup']],
  cgroup_skb: [['cgroup_skb/ingress', 'cgroup_inet_ingress'], ['cgroup_skb/egress', 'cgroup_inet_egress'], ['cgroup/skb', 'cgroup_inet_ingress']],
  cgroup_sock: [['cgroup/sock_create', 'cgroup_inet_sock_create'], ['cgroup/sock_release', 'cgroup_inet_sock_release'],
    ['cgroup/post_bind4', 'cgroup_inet4_post_bind'], ['cgroup/post_bind6', 'cgroup_inet6_post_bind'], ['cgroup/sock', 'cgroup_inet_sock_create']],
  cgroup_sock_addr: [['cgroup/bind4', 'cgroup_inet4_bind'], ['cgroup/bind6', 'cgroup_inet6_bind'], ['cgroup/connect4', 'cgroup_inet4_connect'],
    ['cgroup/connect6', 'cgroup_inet6_connect'], ['cgroup/connect_unix', 'cgroup_unix_connect'], ['cgroup/sendmsg4', 'cgroup_udp4_sendmsg'],
    ['cgroup/sendmsg6', 'cgroup_udp6_sendmsg'], ['cgroup/sendmsg_unix', 'cgroup_unix_sendmsg'], ['cgroup/recvmsg4', 'cgroup_udp4_recvmsg'],
    ['cgroup/recvmsg6', 'cgroup_udp6_recvmsg'], ['cgroup/recvmsg_unix', 'cgroup_unix_recvmsg'], ['cgroup/getpeername4', 'cgroup_inet4_getpeername'],
    ['cgroup/getpeername6', 'cgroup_inet6_getpeername'], ['cgroup/getpeername_unix', 'cgroup_unix_getpeername'],
    ['cgroup/getsockname4', 'cgroup_inet4_getsockname'], ['cgroup/getsockname6', 'cgroup_inet6_getsockname'],
    ['cgroup/getsockname_unix', 'cgroup_unix_getsockname']],
  cgroup_sockopt: [['cgroup/getsockopt', 'cgroup_getsockopt'], ['cgroup/setsockopt', 'cgroup_setsockopt']],
  sk_skb: [['sk_skb/stream_parser', 'sk_skb_stream_parser'], ['sk_skb/stream_verdict', 'sk_skb_stream_verdict'], ['sk_skb/verdict', 'sk_skb_verdict']],
  sk_msg: [['sk_msg', 'sk_msg_verdict']],
  sk_reuseport: [['sk_reuseport/migrate', 'sk_reuseport_select_or_migrate'], ['sk_reuseport', 'sk_reuseport_select']],
  sk_lookup: [['sk_lookup', 'sk_lookup']],
  xdp: [['xdp/devmap', 'xdp_devmap'], ['xdp.frags/devmap', 'xdp_devmap'], ['xdp/cpumap', 'xdp_cpumap'], ['xdp.frags/cpumap', 'xdp_cpumap']],
  kprobe: [['kprobe.multi', 'trace_kprobe_multi'], ['kretprobe.multi', 'trace_kprobe_multi'], ['uprobe.multi', 'trace_uprobe_multi'],
    ['uretprobe.multi', 'trace_uprobe_multi']],
  netfilter: [['netfilter', 'netfilter']],
};

const DEFAULT_ATTACH: Record<string, string> = {
  cgroup_sock: 'cgroup_inet_sock_create', sk_reuseport: 'sk_reuseport_select', cgroup_skb: 'cgroup_inet_ingress',
};

const SLEEPABLE = /^(uprobe|uretprobe|fentry|fexit|fmod_ret|lsm|iter|struct_ops|uprobe\.multi|uretprobe\.multi)\.s(\/|$)/;

const matches = (section: string, prefix: string): boolean => section === prefix || section.startsWith(prefix + '/');

const CACHE = new Map<string, ProgKind>();

/** The program type, expected attach type, sleepable flag and attach target of a section. */
export function progKind(type: string, section: string, structOps?: string): ProgKind {
  const key = `${type}\0${section}\0${structOps ?? ''}`;
  const hit = CACHE.get(key);
  if (hit) return hit;
  const s = section.startsWith('?') ? section.slice(1) : section;
  let attach = '';
  for (const [prefix, a] of ATTACH[type] ?? []) if (matches(s, prefix)) { attach = a; break; }
  // Sections libbpf does not know (old loaders): expected attach type 0, which the kernel reads as
  // BPF_CGROUP_INET_INGRESS, or fixes up (bpf_prog_load_fixup_attach_type).
  if (!attach) attach = DEFAULT_ATTACH[type] ?? '';
  const slash = s.indexOf('/');
  const k: ProgKind = { type, attach, sleepable: SLEEPABLE.test(s) || s === 'syscall', target: structOps ?? (slash >= 0 ? s.slice(slash + 1) : '') };
  CACHE.set(key, k);
  return k;
}
