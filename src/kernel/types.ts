// Plain data exchanged with the kernel layer. Nothing here holds a native resource.

/** Which loader talks to the kernel: libbpf in-process (koffi), the bpftool command, or k2's own
 * loader for legacy `maps` objects (libbpf.so's low-level bpf() wrappers; used automatically when
 * libbpf refuses an object for its legacy map definitions, or forced with 'legacy'). */
export type LoaderKind = 'libbpf' | 'bpftool' | 'legacy';

/**
 * What the kernel said about one program:
 * - `accepted`: the verifier accepted it (it is loaded, or was while we looked at it);
 * - `rejected`: the kernel refused it (verifier or BPF_PROG_LOAD error) — `log` says why;
 * - `cannot-load`: it was never judged on its code on this machine (unknown program type, attach
 *   target, kfunc or kernel feature missing, trampolines not permitted, map creation failed...) —
 *   `error` says why (fixups.ts `classifyLoadError` tells it from `rejected`).
 */
export type Verdict = 'accepted' | 'rejected' | 'cannot-load';

export interface ProgramVerdict {
  section: string; // ELF section, e.g. "xdp", "kprobe/sys_write"
  name: string; // function (program) name
  type: string; // libbpf program type name ("xdp", "sched_cls", ...) or "unknown"
  verdict: Verdict;
  accepted: boolean; // verdict === 'accepted'
  verifiedInsns: number | null; // bpf_prog_info.verified_insns, or "processed N insns" of the log
  xlatedInsns: number | null; // bpf_prog_info.xlated_prog_len / 8 (after kernel rewrites)
  jitedBytes: number | null; // bpf_prog_info.jited_prog_len
  error: string | null; // one line: why it was not accepted (null when accepted)
  log: string; // verifier log (tail) when rejected; empty when accepted
  fixups: string[]; // loader fixups applied to this program (e.g. program type guessed)
  /** Wall time of loading this program on its own (BPF_PROG_LOAD with its maps), in ms; absent when
   * it was loaded together with others (see VerifyOptions.timing) or never reached the kernel. */
  loadMs?: number;
}

export interface VerifyReport {
  file: string;
  loader: LoaderKind;
  /** `malformed`: not a usable BPF ELF object (bad input); the CLI exits 2 for it. */
  malformed: boolean;
  /** Object-level reason when no program could be tried ("cannot load here: legacy maps section"). */
  objectError: string | null;
  fixups: string[]; // object-level loader fixups (map max_entries set, pinning disabled...)
  programs: ProgramVerdict[];
}

export interface MapInfo {
  name: string;
  type: string; // libbpf map type name ("hash", "array", "percpu_array", ...)
  typeId: number; // enum bpf_map_type
  keySize: number;
  valueSize: number; // for per-CPU maps: the size of one CPU's value
  maxEntries: number;
  flags: number;
  perCpu: boolean; // values are per possible CPU (MapEntry.perCpu is filled)
}

/** One map element. For per-CPU maps `value` is CPU 0's value and `perCpu` holds every CPU's. */
export interface MapEntry {
  key: Uint8Array;
  value: Uint8Array;
  perCpu?: Uint8Array[];
}

export interface RunInput {
  /** Packet (or other data) passed as data_in. */
  dataIn?: Uint8Array;
  /** Context passed as ctx_in (e.g. struct __sk_buff / xdp_md fields); ctx_out has the same size. */
  ctxIn?: Uint8Array;
  /** Run the program this many times (duration is the average); default: once (the kernel's
   * repeat 0 — raw_tracepoint and syscall programs accept nothing else). */
  repeat?: number;
  /** Size of the data_out buffer; default dataIn.length + 4096 (room for XDP/TC growth), or 0
   * (no data_out) without dataIn. */
  dataSizeOut?: number;
  /** Size of the ctx_out buffer; default ctxIn.length (0 when no ctxIn). Pass 0 for program types
   * whose test run takes no ctx_out (raw_tracepoint, syscall). */
  ctxSizeOut?: number;
}

export interface RunResult {
  retval: number; // the program's return value (u32)
  durationNs: number; // average time of one run, as measured by the kernel
  dataOut: Uint8Array; // packet after the run
  ctxOut: Uint8Array | null; // context after the run (when ctxIn was given)
}

export interface VerifyOptions {
  loader?: LoaderKind;
  /** Program type (libbpf section name such as "xdp", "socket", "kprobe") to use for programs
   * whose section name libbpf does not know. */
  progType?: string;
  /** Bytes of verifier log kept per rejected program (the kernel keeps the tail); default 1 MiB. */
  logSize?: number;
  /** Name to report for in-memory objects. */
  name?: string;
  /** Load every program on its own and report its load time (`loadMs`): slower, for `k2 check`. */
  timing?: boolean;
  /**
   * Load only these programs (ELF section and function name); the report lists only them. The
   * libbpf loader honours it (the others are not loaded); the other loaders load everything. A
   * program may then fail to load where the whole object loads: a prog array the object
   * initializes with programs that were not loaded cannot be set up (callers fall back to a full
   * load when a program they expect to load does not).
   */
  only?: readonly { section: string; name: string }[];
}

export interface BpfAvailability {
  ok: boolean;
  reason: string; // why not, or what works ("bpf() works (libbpf.so.1)")
  libbpf: boolean; // libbpf.so could be loaded through koffi
  bpftool: string | null; // path of bpftool, when found
}
