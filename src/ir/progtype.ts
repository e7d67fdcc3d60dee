// Program type from an ELF section name, following libbpf's section_defs (libbpf.c) and the older
// conventions of the corpus (e.g. "socket1", "classifier", "xdp_prog"). Names are bpftool's.

const PREFIXES: [string, string][] = [
  ['socket', 'socket_filter'],
  ['sk_reuseport', 'sk_reuseport'],
  ['kprobe', 'kprobe'], ['kretprobe', 'kprobe'], ['uprobe', 'kprobe'], ['uretprobe', 'kprobe'],
  ['ksyscall', 'kprobe'], ['kretsyscall', 'kprobe'], ['usdt', 'kprobe'],
  ['tracepoint', 'tracepoint'], ['tp/', 'tracepoint'],
  ['raw_tracepoint', 'raw_tracepoint'], ['raw_tp', 'raw_tracepoint'],
  ['tp_btf', 'tracing'], ['fentry', 'tracing'], ['fexit', 'tracing'], ['fmod_ret', 'tracing'], ['iter', 'tracing'],
  ['lsm', 'lsm'],
  ['xdp', 'xdp'],
  ['perf_event', 'perf_event'],
  ['lwt_in', 'lwt_in'], ['lwt_out', 'lwt_out'], ['lwt_xmit', 'lwt_xmit'], ['lwt_seg6local', 'lwt_seg6local'],
  ['cgroup_skb', 'cgroup_skb'], ['cgroup/skb', 'cgroup_skb'],
  ['cgroup/sock_create', 'cgroup_sock'], ['cgroup/sock_release', 'cgroup_sock'], ['cgroup/post_bind', 'cgroup_sock'], ['cgroup/sock', 'cgroup_sock'],
  ['cgroup/bind', 'cgroup_sock_addr'], ['cgroup/connect', 'cgroup_sock_addr'], ['cgroup/getpeername', 'cgroup_sock_addr'],
  ['cgroup/getsockname', 'cgroup_sock_addr'], ['cgroup/sendmsg', 'cgroup_sock_addr'], ['cgroup/recvmsg', 'cgroup_sock_addr'],
  ['cgroup/dev', 'cgroup_device'], ['cgroup/sysctl', 'cgroup_sysctl'],
  ['cgroup/getsockopt', 'cgroup_sockopt'], ['cgroup/setsockopt', 'cgroup_sockopt'],
  ['sockops', 'sock_ops'], ['sk_skb', 'sk_skb'], ['sk_msg', 'sk_msg'], ['lirc_mode2', 'lirc_mode2'],
  ['flow_dissector', 'flow_dissector'], ['struct_ops', 'struct_ops'], ['syscall', 'syscall'], ['sk_lookup', 'sk_lookup'],
  ['netfilter', 'netfilter'],
  ['tc', 'sched_cls'], ['classifier', 'sched_cls'], ['action', 'sched_act'],
];

export function progTypeOfSection(section: string): string {
  for (const [prefix, type] of PREFIXES) if (section.startsWith(prefix)) return type;
  if (section.startsWith('filter')) return 'socket_filter';
  return 'unspec';
}

/** Program types BPF_PROG_TEST_RUN can run with packet data on this kernel. */
export const TEST_RUN_PACKET_TYPES = new Set(['xdp', 'sched_cls', 'sched_act', 'socket_filter', 'cgroup_skb', 'lwt_in', 'lwt_out', 'lwt_xmit', 'lwt_seg6local', 'flow_dissector', 'sk_skb']);
