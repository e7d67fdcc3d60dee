// Loader knowledge shared by the libbpf and bpftool backends, as pure functions:
// - program types for section names libbpf 1.x no longer knows (the prefix rules of libbpf < 1.0);
// - max_entries for maps declared with 0;
// - turning libbpf messages, errno values and verifier logs into one verdict and one-line reason.

import type { Verdict } from './types.js';

/**
 * Section-name prefixes that older loaders accepted but libbpf 1.1 does not — libbpf < 1.0's
 * "sloppy" prefix matching (`socket1`, `xdp_prog`, `cgroup/sock1`, `classifier_foo`) and
 * cilium/ebpf's `tc/...` — mapped to the libbpf 1.1 section name with the same program type.
 * Longest prefix wins.
 */
const LEGACY_PREFIXES: readonly (readonly [string, string])[] = [
  ...[
    'socket', 'sk_reuseport/migrate', 'sk_reuseport', 'classifier', 'action', 'xdp', 'perf_event',
    'lwt_in', 'lwt_out', 'lwt_xmit', 'lwt_seg6local', 'cgroup_skb/ingress', 'cgroup_skb/egress', 'cgroup/skb',
    'cgroup/sock_create', 'cgroup/sock_release', 'cgroup/sock', 'cgroup/post_bind4', 'cgroup/post_bind6',
    'cgroup/dev', 'sockops', 'sk_skb/stream_parser', 'sk_skb/stream_verdict', 'sk_skb', 'sk_msg',
    'lirc_mode2', 'flow_dissector', 'cgroup/bind4', 'cgroup/bind6', 'cgroup/connect4', 'cgroup/connect6',
    'cgroup/sendmsg4', 'cgroup/sendmsg6', 'cgroup/recvmsg4', 'cgroup/recvmsg6', 'cgroup/getpeername4',
    'cgroup/getpeername6', 'cgroup/getsockname4', 'cgroup/getsockname6', 'cgroup/sysctl',
    'cgroup/getsockopt', 'cgroup/setsockopt',
  ].map((p) => [p, p] as const),
  ['tc/', 'tc'],
];

/** The section prefix an older loader would have matched `section` to, and the libbpf 1.1 name
 * giving the same program type; null when none applies. */
export function legacySectionType(section: string): { prefix: string; canonical: string } | null {
  let best: readonly [string, string] | null = null;
  for (const e of LEGACY_PREFIXES) if (section.startsWith(e[0]) && (!best || e[0].length > best[0].length)) best = e;
  return best ? { prefix: best[0], canonical: best[1] } : null;
}

/** Map types for which max_entries 0 is valid (the kernel or libbpf sizes them). */
const ZERO_ENTRIES_OK = new Set([
  'perf_event_array', // libbpf sets the number of possible CPUs
  'cgroup_storage', 'percpu_cgroup_storage', 'sk_storage', 'inode_storage', 'task_storage', 'cgrp_storage',
  'struct_ops',
]);

/** Entries k2 gives a map declared with max_entries 0 when the kernel needs a positive value. */
export function fixedMaxEntries(mapType: string): number | null {
  if (ZERO_ENTRIES_OK.has(mapType)) return null;
  if (mapType === 'ringbuf' || mapType === 'user_ringbuf') return 4096; // one page, a power of 2
  return 64;
}

/** Program types that need kernel trampolines / BTF attach targets (not available on every kernel). */
export const TRAMPOLINE_TYPES = new Set(['tracing', 'lsm', 'ext', 'struct_ops']);

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 7: 'E2BIG', 9: 'EBADF', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT',
  16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 28: 'ENOSPC', 95: 'EOPNOTSUPP', 524: 'ENOTSUPP',
  4000: 'LIBBPF_ERRNO__LIBELF', 4001: 'LIBBPF_ERRNO__FORMAT', 4003: 'LIBBPF_ERRNO__ENDIAN', 4006: 'LIBBPF_ERRNO__RELOC',
  4007: 'LIBBPF_ERRNO__LOAD', 4008: 'LIBBPF_ERRNO__VERIFY', 4009: 'LIBBPF_ERRNO__PROG2BIG', 4010: 'LIBBPF_ERRNO__KVER',
};
export const errnoName = (e: number): string => ERRNO_NAMES[Math.abs(e)] ?? `errno ${Math.abs(e)}`;

/** Strips libbpf's "libbpf: " prefix and trailing newlines. */
export const cleanMessage = (m: string): string => m.replace(/^libbpf: /, '').replace(/\s+$/, '');

const STAT_LINE = /^(processed \d+ insns|verification time|stack depth|max_states_per_insn|Live regs before insn|func#\d+ @\d+|\s*\d+: [.0-9]+\s+\()/;
const INSN_LINE = /^\d+: (\(|R\d|frame)/;

/** "processed N insns" of a verifier log (the last one), or null. */
export function processedInsns(log: string): number | null {
  const all = [...log.matchAll(/processed (\d+) insns/g)];
  return all.length ? Number(all[all.length - 1]![1]) : null;
}

/** The last `n` non-empty lines of a log. */
export function lastLines(log: string, n: number): string[] {
  return log.split('\n').filter((l) => l.trim() !== '').slice(-n);
}

/** The verifier's complaint: the lines after the last traced instruction, without statistics. */
export function verifierComplaint(log: string): string | null {
  const lines = log.split('\n').filter((l) => l.trim() !== '');
  let lastInsn = -1;
  lines.forEach((l, i) => {
    if (INSN_LINE.test(l)) lastInsn = i;
  });
  let tail = lines.slice(lastInsn + 1).map((l) => l.replace(/(.)processed \d+ insns .*$/, '$1')).filter((l) => !STAT_LINE.test(l) && !l.startsWith(';') && !l.startsWith('-- '));
  if (tail.length === 0) tail = lines.filter((l) => !STAT_LINE.test(l)).slice(-2);
  if (tail.length === 0) return null;
  const text = tail.slice(0, 3).join('; ');
  return text.length > 300 ? text.slice(0, 297) + '...' : text;
}

/** The libbpf message mentioning program `name`, most specific first. */
function messageAbout(messages: string[], name: string, pattern: RegExp): string | null {
  for (const m of messages) if (m.includes(`'${name}'`) && pattern.test(m)) return cleanMessage(m);
  return null;
}

export interface FailureFacts {
  name: string; // program name
  type: string; // libbpf program type name
  errno: number; // positive errno of the failed load (bpf_object__load's -ret)
  log: string; // verifier log captured for this program ('' if none)
  messages: string[]; // libbpf messages of this load
}

/** Turns a failed load of one program into a verdict and a one-line reason. */
export function classifyFailure(f: FailureFacts): { verdict: Exclude<Verdict, 'accepted'>; error: string } {
  const cannot = (why: string) => ({ verdict: 'cannot-load' as const, error: `cannot load here: ${why}` });
  const msgs = f.messages.map(cleanMessage);
  const any = (re: RegExp) => msgs.find((m) => re.test(m)) ?? null;
  const kernelRefused = messageAbout(f.messages, f.name, /BPF program load failed/);

  if (!kernelRefused) {
    // libbpf stopped before asking the kernel.
    const missingType = messageAbout(f.messages, f.name, /missing BPF prog type/);
    if (missingType) return cannot(`libbpf does not know the program type of this section (${missingType}); pass --type TYPE`);
    const btfTarget = messageAbout(f.messages, f.name, /failed to find kernel BTF type ID|attach target|find_kernel_btf_id/) ?? any(/failed to find kernel BTF type ID/);
    if (btfTarget) return cannot(`attach target missing in this kernel (${btfTarget})`);
    const map = any(/map '.*': (failed to create|failed to auto-pin|can't|couldn't)/) ?? any(/map '.*':.*(failed|error)/i);
    if (map) return cannot(`map setup failed (${map})`);
    const relo = messageAbout(f.messages, f.name, /relo|reloc/) ?? any(/relo|CO-RE|core/i);
    if (relo) return cannot(`relocation failed (${relo})`);
    const kconfig = any(/extern|kconfig|ksym/i);
    if (kconfig) return cannot(`unresolved extern (${kconfig})`);
    const prog = messageAbout(f.messages, f.name, /./) ?? any(/failed|error|not supported|unsupported/i) ?? msgs[msgs.length - 1];
    return cannot(`${prog ?? `libbpf failed (${errnoName(f.errno)})`}`);
  }
  const c = classifyLoadError({ errno: f.errno, log: f.log, type: f.type });
  if (c.verdict === 'rejected' && !f.log.trim()) return { verdict: 'rejected', error: `kernel refused the program: ${kernelRefused.replace(/^prog '[^']*': /, '')} (${errnoName(f.errno)}, no verifier log)` };
  return c;
}

/** What the kernel said when BPF_PROG_LOAD failed: errno, verifier log (may be empty), program type. */
export interface LoadError {
  errno: number; // positive errno of BPF_PROG_LOAD
  log: string; // verifier log ('' when the kernel gave none)
  type: string; // libbpf program type name ("xdp", "tracing", ...)
}

/** Program types whose helpers come from the kernel's bpf_tracing_func_proto. */
const TRACING_FAMILY = new Set(['kprobe', 'tracepoint', 'raw_tracepoint', 'raw_tracepoint_writable', 'perf_event', 'tracing']);

/** Verifier messages that say the program needs something this kernel lacks (not a rejection of
 * the code): an unresolved CO-RE relocation (libbpf poisons the instruction), a kfunc whose BTF is
 * missing, an attach target that does not exist. */
const HOST_LACKS: readonly (readonly [RegExp, string])[] = [
  [/unknown#195896080|bad CO-RE relocation|failed to resolve CO-RE relocation/, 'CO-RE relocation does not match this kernel\'s types'],
  [/kernel btf_id \d+ is not a function|cannot find kernel function|kfunc .* not found|kernel function .* is not supported/, 'kernel function (kfunc) not available here'],
  [/attach_btf_id \d+ is not a|must provide btf_id|Failed to find (?:kernel|attach) BTF|The address of function .* cannot be found|attach target .* not found|Cannot find attach target|is not a tracepoint|Unsupported attach/, 'attach target missing in this kernel'],
];

/**
 * "rejected" (the verifier refused the code: its log ends in the reason) or "cannot load here"
 * (the program never got a verdict on its code on this host), from a failed BPF_PROG_LOAD:
 * - EPERM while bpf() itself works: the kernel does not permit this program here (fentry/fexit/
 *   lsm/iter trampolines, lockdown) — cannot load here;
 * - ENOTSUPP/EOPNOTSUPP: the kernel lacks the feature — cannot load here;
 * - ENOENT/ESRCH: attach target or kernel object missing — cannot load here;
 * - a log naming a CO-RE mismatch, a missing kfunc or attach target — cannot load here;
 * - trampoline types without a log — cannot load here;
 * - otherwise a verifier log → rejected with its complaint; no log → rejected (the kernel refused
 *   the program itself: E2BIG, EINVAL on its instructions).
 */
export function classifyLoadError(e: LoadError): { verdict: Exclude<Verdict, 'accepted'>; error: string } {
  const cannot = (why: string) => ({ verdict: 'cannot-load' as const, error: `cannot load here: ${why}` });
  const complaint = e.log.trim() ? verifierComplaint(e.log) : null;
  const detail = complaint ? ` (${complaint})` : '';
  // Only the end of the log speaks: earlier lines trace instructions and echo source lines.
  const tail = lastLines(e.log, 5).filter((l) => !l.startsWith(';')).join('\n');
  for (const [re, what] of HOST_LACKS) if (re.test(tail)) return cannot(`${what}${detail}`);
  // Tracing programs may always call these helpers unless kernel lockdown forbids them
  // (bpf_tracing_func_proto: security_locked_down(LOCKDOWN_BPF_WRITE_USER / _BPF_READ_KERNEL)).
  const lockedHelper = /cannot use helper (bpf_probe_write_user|bpf_probe_read_kernel(?:_str)?|bpf_probe_read(?:_str)?)#\d+/.exec(tail);
  if (lockedHelper && TRACING_FAMILY.has(e.type)) return cannot(`kernel lockdown forbids ${lockedHelper[1]} here${detail}`);
  if (e.errno === 1) {
    return cannot(`the kernel does not permit loading this ${e.type} program here although bpf() works (EPERM${TRAMPOLINE_TYPES.has(e.type) ? '; fentry/fexit/lsm/iter programs need BPF trampolines this kernel does not allow' : ''})${detail}`);
  }
  if (e.errno === 524 || e.errno === 95) return cannot(`the kernel does not support this ${e.type} program here (${errnoName(e.errno)})${detail}`);
  if (e.errno === 2 || e.errno === 3) return cannot(`attach target or kernel object missing (${errnoName(e.errno)})${detail}`);
  if (TRAMPOLINE_TYPES.has(e.type) && !complaint) return cannot(`${e.type} programs need BPF trampolines/attach targets this kernel lacks (${errnoName(e.errno)}, no verifier log)`);
  const truncated = e.errno === 28 ? ' (verifier log truncated)' : '';
  if (complaint) return { verdict: 'rejected', error: `verifier: ${complaint}${truncated}` };
  return { verdict: 'rejected', error: `kernel refused the program (${errnoName(e.errno)}, no verifier log)` };
}

/** Object-level open failure → verdict. `malformed` means bad input rather than "cannot load here". */
export function classifyOpenFailure(errno: number, messages: string[]): { malformed: boolean; error: string } {
  const msgs = messages.map(cleanMessage);
  if (msgs.some((m) => /legacy map definitions in 'maps' section|bad map relo against .* in section 'maps\//.test(m)))
    return { malformed: false, error: "cannot load here: legacy maps section (struct bpf_map_def in SEC(\"maps\")), which libbpf >= 1.0 refuses" };
  const staticProg = msgs.find((m) => /is static and not supported/.test(m));
  if (staticProg) return { malformed: false, error: `cannot load here: ${staticProg} (libbpf 1.1 needs global program functions)` };
  const elf = msgs.find((m) => /^elf: /.test(m) || /invalid `Elf'|offset out of range|corrupted|failed to get/.test(m));
  const last = elf ?? msgs.filter((m) => !/^elf: skipping/.test(m)).pop() ?? null;
  if (errno === 4000 || errno === 4001 || errno === 4003 || errno === 4002 || (elf && !/skipping/.test(elf)))
    return { malformed: true, error: `malformed BPF object: ${last ?? errnoName(errno)}` };
  return { malformed: false, error: `cannot load here: libbpf cannot open the object: ${last ?? errnoName(errno)} (${errnoName(errno)})` };
}

/**
 * libbpf 1.1's section names (as `libbpf: supported section(type) names are:` lists them) with the
 * program type each gives. `x+` matches "x" or "x/...", `x/` matches any "x/..." , else exact.
 * Used to name the type of programs that never reached the kernel, and by the bpftool backend.
 */
const SECTION_DEFS: readonly (readonly [string, string])[] = [
  ['socket', 'socket_filter'], ['sk_reuseport/migrate', 'sk_reuseport'], ['sk_reuseport', 'sk_reuseport'],
  ['kprobe+', 'kprobe'], ['uprobe+', 'kprobe'], ['uprobe.s+', 'kprobe'], ['kretprobe+', 'kprobe'], ['uretprobe+', 'kprobe'],
  ['uretprobe.s+', 'kprobe'], ['kprobe.multi+', 'kprobe'], ['kretprobe.multi+', 'kprobe'], ['ksyscall+', 'kprobe'],
  ['kretsyscall+', 'kprobe'], ['usdt+', 'kprobe'], ['tc', 'sched_cls'], ['classifier', 'sched_cls'], ['action', 'sched_act'],
  ['tracepoint+', 'tracepoint'], ['tp+', 'tracepoint'], ['raw_tracepoint+', 'raw_tracepoint'], ['raw_tp+', 'raw_tracepoint'],
  ['raw_tracepoint.w+', 'raw_tracepoint_writable'], ['raw_tp.w+', 'raw_tracepoint_writable'], ['tp_btf+', 'tracing'],
  ['fentry+', 'tracing'], ['fmod_ret+', 'tracing'], ['fexit+', 'tracing'], ['fentry.s+', 'tracing'], ['fmod_ret.s+', 'tracing'],
  ['fexit.s+', 'tracing'], ['freplace+', 'ext'], ['lsm+', 'lsm'], ['lsm.s+', 'lsm'], ['lsm_cgroup+', 'lsm'], ['iter+', 'tracing'],
  ['iter.s+', 'tracing'], ['syscall', 'syscall'], ['xdp.frags/devmap', 'xdp'], ['xdp/devmap', 'xdp'], ['xdp.frags/cpumap', 'xdp'],
  ['xdp/cpumap', 'xdp'], ['xdp.frags', 'xdp'], ['xdp', 'xdp'], ['perf_event', 'perf_event'], ['lwt_in', 'lwt_in'],
  ['lwt_out', 'lwt_out'], ['lwt_xmit', 'lwt_xmit'], ['lwt_seg6local', 'lwt_seg6local'], ['sockops', 'sock_ops'],
  ['sk_skb/stream_parser', 'sk_skb'], ['sk_skb/stream_verdict', 'sk_skb'], ['sk_skb', 'sk_skb'], ['sk_msg', 'sk_msg'],
  ['lirc_mode2', 'lirc_mode2'], ['flow_dissector', 'flow_dissector'], ['cgroup_skb/ingress', 'cgroup_skb'],
  ['cgroup_skb/egress', 'cgroup_skb'], ['cgroup/skb', 'cgroup_skb'], ['cgroup/sock_create', 'cgroup_sock'],
  ['cgroup/sock_release', 'cgroup_sock'], ['cgroup/sock', 'cgroup_sock'], ['cgroup/post_bind4', 'cgroup_sock'],
  ['cgroup/post_bind6', 'cgroup_sock'], ['cgroup/bind4', 'cgroup_sock_addr'], ['cgroup/bind6', 'cgroup_sock_addr'],
  ['cgroup/connect4', 'cgroup_sock_addr'], ['cgroup/connect6', 'cgroup_sock_addr'], ['cgroup/sendmsg4', 'cgroup_sock_addr'],
  ['cgroup/sendmsg6', 'cgroup_sock_addr'], ['cgroup/recvmsg4', 'cgroup_sock_addr'], ['cgroup/recvmsg6', 'cgroup_sock_addr'],
  ['cgroup/getpeername4', 'cgroup_sock_addr'], ['cgroup/getpeername6', 'cgroup_sock_addr'],
  ['cgroup/getsockname4', 'cgroup_sock_addr'], ['cgroup/getsockname6', 'cgroup_sock_addr'], ['cgroup/sysctl', 'cgroup_sysctl'],
  ['cgroup/getsockopt', 'cgroup_sockopt'], ['cgroup/setsockopt', 'cgroup_sockopt'], ['cgroup/dev', 'cgroup_device'],
  ['struct_ops+', 'struct_ops'], ['sk_lookup', 'sk_lookup'],
];

function sectionMatches(def: string, section: string): boolean {
  if (def.endsWith('+')) {
    const base = def.slice(0, -1);
    return section === base || section.startsWith(base + '/');
  }
  if (def.endsWith('/')) return section.startsWith(def);
  return section === def;
}

/** The program type libbpf 1.1 derives from a section name, or null when it derives none. */
export function sectionProgType(section: string): string | null {
  const s = section.startsWith('?') ? section.slice(1) : section;
  for (const [def, type] of SECTION_DEFS) if (sectionMatches(def, s)) return type;
  return null;
}

/** Program type for a section, with k2's legacy-prefix fixup applied; 'unknown' when none. */
export function sectionTypeOrLegacy(section: string): string {
  const direct = sectionProgType(section);
  if (direct) return direct;
  const legacy = legacySectionType(section);
  return legacy ? sectionProgType(legacy.canonical) ?? 'unknown' : 'unknown';
}

/** What a loader needs to know of a map to decide its fixups. */
export interface MapShape {
  type: string; // libbpf/bpftool map type name
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/**
 * The map k2 creates in place of `m` when the kernel would refuse it as declared, with one note per
 * change; `notes` is empty when nothing changes. Shared by both loaders so they agree.
 * (perf_event_array with max_entries 0 is left to the loader: libbpf sizes it to the CPU count.)
 */
export function mapFixes(label: string, m: MapShape): { shape: MapShape; notes: string[] } {
  const shape = { ...m };
  const notes: string[] = [];
  if ((m.type === 'ringbuf' || m.type === 'user_ringbuf') && (m.keySize !== 0 || m.valueSize !== 0)) {
    shape.keySize = 0;
    shape.valueSize = 0;
    notes.push(`${label}: key/value types of a ${m.type} ignored (the kernel wants sizes 0; newer libbpf does the same)`);
  }
  if (m.type === 'perf_event_array' && (m.keySize !== 4 || m.valueSize !== 4)) {
    shape.keySize = 4;
    shape.valueSize = 4;
    notes.push(`${label}: key/value sizes of a perf_event_array set to 4 (the kernel wants int fds; cilium/ebpf does the same)`);
  }
  if (m.maxEntries === 0) {
    const n = fixedMaxEntries(m.type);
    if (n !== null) {
      shape.maxEntries = n;
      notes.push(`${label}: max_entries 0 set to ${n} so that the ${m.type} map can be created`);
    }
  }
  return { shape, notes };
}

/** The name both loaders give an object (libbpf derives map names such as "<name>.bss" from it):
 * the file's basename up to its first dot, with characters the kernel refuses in names replaced. */
export function objectName(file: string): string {
  const base = file.split('/').pop() ?? '';
  return (base.split('.')[0] || 'obj').replace(/[^A-Za-z0-9_]/g, '_');
}
