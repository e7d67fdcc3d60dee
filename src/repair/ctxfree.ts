// Names of context fields for reports, and the checker's fresh-value "source" helpers the proofs use
// (proof.ts). Proofs no longer rewrite context reads into fresh values: the SMT checker's context
// is the production one (src/smt/ctxmodel.ts: every field the kernel does not fix is free).

/** Program types whose counterexamples carry context bytes worth naming. */
const NAMED = new Set(['sched_cls', 'sched_act', 'lwt_in', 'lwt_out', 'lwt_xmit', 'cgroup_skb', 'socket_filter', 'xdp']);
export const contextNamed = (progType: string): boolean => NAMED.has(progType);

/** 64-bit "source" helpers of the checker (no arguments, no effects, a fresh value per call). */
export const SOURCES = [5, 125, 160, 14, 15, 35, 80];

const SKB_FIELDS: Record<number, string> = {
  0: 'len', 4: 'pkt_type', 8: 'mark', 12: 'queue_mapping', 16: 'protocol', 20: 'vlan_present', 24: 'vlan_tci', 28: 'vlan_proto',
  32: 'priority', 36: 'ingress_ifindex', 40: 'ifindex', 44: 'tc_index', 48: 'cb[0]', 52: 'cb[1]', 56: 'cb[2]', 60: 'cb[3]', 64: 'cb[4]',
  68: 'hash', 72: 'tc_classid', 84: 'napi_id', 88: 'family', 92: 'remote_ip4', 96: 'local_ip4', 164: 'gso_size', 176: 'gso_segs',
};
const XDP_FIELDS: Record<number, string> = { 12: 'ingress_ifindex', 16: 'rx_queue_index', 20: 'egress_ifindex' };

/** The context field at `off` of a program type, for messages. */
export function ctxFieldName(progType: string, off: number): string {
  const t = progType === 'xdp' ? XDP_FIELDS : SKB_FIELDS;
  return t[off] ? `${progType === 'xdp' ? 'xdp_md' : '__sk_buff'}.${t[off]}` : `context+${off}`;
}

