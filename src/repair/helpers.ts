// Helper arguments a repair may bound: a memory argument and the size argument that goes with it
// (ARG_PTR_TO_MEM followed by ARG_CONST_SIZE[_OR_ZERO] in the helper's bpf_func_proto), and
// whether the helper's C definition takes that size as u32. A helper is `BPF_CALL_n(name, type1,
// arg1, ...)`: the macro casts each 64-bit register to the declared type, so a `u32` size only
// ever sees the register's low 32 bits (kernel/trace/bpf_trace.c, net/core/filter.c,
// kernel/bpf/helpers.c, include/linux/filter.h __BPF_CAST). A repair may change the upper half
// of such a register right before the call: the helper cannot observe it and the call clobbers r1-r5.

import { argBits } from '../smt/helpers.js';

export interface SizeArg {
  mem: number; // register holding the buffer
  size: number; // register holding its size
  u32: boolean; // the definition declares the size u32
}

export const HELPER_SIZE_ARGS: Readonly<Record<number, { name: string; args: SizeArg[] }>> = {
  4: { name: 'bpf_probe_read', args: [{ mem: 1, size: 2, u32: true }] }, // (void *dst, u32 size, const void *src)
  6: { name: 'bpf_trace_printk', args: [{ mem: 1, size: 2, u32: true }] }, // (char *fmt, u32 fmt_size, ...)
  9: { name: 'bpf_skb_store_bytes', args: [{ mem: 3, size: 4, u32: true }] }, // (skb, u32 offset, const void *from, u32 len, u64 flags)
  16: { name: 'bpf_get_current_comm', args: [{ mem: 1, size: 2, u32: true }] }, // (char *buf, u32 size)
  25: { name: 'bpf_perf_event_output', args: [{ mem: 4, size: 5, u32: false }] }, // (regs, map, u64 flags, void *data, u64 size)
  26: { name: 'bpf_skb_load_bytes', args: [{ mem: 3, size: 4, u32: true }] }, // (skb, u32 offset, void *to, u32 len)
  28: { name: 'bpf_csum_diff', args: [{ mem: 1, size: 2, u32: true }, { mem: 3, size: 4, u32: true }] }, // (from, u32, to, u32, seed)
  68: { name: 'bpf_skb_load_bytes_relative', args: [{ mem: 3, size: 4, u32: true }] }, // (skb, u32 offset, void *to, u32 len, u32 start_header)
  112: { name: 'bpf_probe_read_user', args: [{ mem: 1, size: 2, u32: true }] }, // (void *dst, u32 size, const void __user *src)
  113: { name: 'bpf_probe_read_kernel', args: [{ mem: 1, size: 2, u32: true }] },
  114: { name: 'bpf_probe_read_user_str', args: [{ mem: 1, size: 2, u32: true }] },
  115: { name: 'bpf_probe_read_kernel_str', args: [{ mem: 1, size: 2, u32: true }] },
  130: { name: 'bpf_ringbuf_output', args: [{ mem: 2, size: 3, u32: false }] }, // (map, void *data, u64 size, u64 flags)
};

/** The size argument in register `reg` of helper `id`, if k2 knows it. */
export function sizeArg(id: number, reg: number): SizeArg | null {
  const a = HELPER_SIZE_ARGS[id]?.args.find((x) => x.size === reg);
  // the argument widths are the SMT checker's table (src/smt/helpers.ts ARG_BITS), shared
  return a ? { ...a, u32: argBits(id, reg) === 32 } : null;
}

export const helperName = (id: number): string => HELPER_SIZE_ARGS[id]?.name ?? `helper #${id}`;

/** Where each program type's context keeps data_end: offset and load size (bytes). */
export const DATA_END: Readonly<Record<string, { off: number; size: 4 | 8 }>> = {
  xdp: { off: 4, size: 4 }, // struct xdp_md { u32 data; u32 data_end; ... }
  sched_cls: { off: 80, size: 4 }, // struct __sk_buff: data at 76, data_end at 80
  sched_act: { off: 80, size: 4 },
  cgroup_skb: { off: 80, size: 4 },
  lwt_in: { off: 80, size: 4 },
  lwt_out: { off: 80, size: 4 },
  lwt_xmit: { off: 80, size: 4 },
  lwt_seg6local: { off: 80, size: 4 },
  sk_skb: { off: 80, size: 4 },
  flow_dissector: { off: 80, size: 4 },
  sk_msg: { off: 8, size: 8 }, // struct sk_msg_md { void *data; void *data_end; ... }
};
