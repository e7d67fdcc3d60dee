// The observable outcome of one program run, shared by the interpreter, the kernel differential
// tester and the SMT equivalence checker. Two runs are equivalent when their outcomes are equal
// under `compareOutcomes` (which compares only what the kernel also reports, unless asked for more).
//
// Byte strings are lower-case hex so outcomes serialise to JSON unchanged and compare as strings.

/** A side effect a helper call had, in program order. */
export type Effect =
  /** bpf_redirect(ifindex, flags). */
  | { kind: 'redirect'; ifindex: number; flags: string }
  /** bpf_redirect_map(map, key, flags); `map` is the map's name. */
  | { kind: 'redirect_map'; map: string; key: number; flags: string }
  /** bpf_tail_call(ctx, map, index); `taken` when the slot held a program and control went there. */
  | { kind: 'tail_call'; map: string; index: number; taken: boolean }
  /** bpf_perf_event_output / bpf_ringbuf_output: the bytes written. */
  | { kind: 'output'; helper: 'perf_event_output' | 'ringbuf_output'; map: string; flags: string; data: string }
  /** bpf_trace_printk(fmt, size, args...): the format bytes (up to NUL) and the raw 64-bit args. */
  | { kind: 'trace_printk'; fmt: string; args: string[] };

/** Contents of one map after a run; entries sorted by key. Per-CPU maps list one value per CPU, joined. */
export interface MapSnapshot {
  name: string;
  type: number; // enum bpf_map_type
  entries: [key: string, value: string][];
}

/** Why a run stopped without reaching `exit` of the entry function. */
export interface Fault {
  reason: string; // e.g. "out-of-bounds load of 4 bytes at stack-512-8"
  section: string; // code section of the faulting instruction
  insn: number; // index of the instruction in that section's IrInsn[]
}

export interface Outcome {
  status: 'exit' | 'fault';
  /** Low 32 bits of r0, unsigned: what BPF_PROG_TEST_RUN reports as retval. 0 on fault. */
  ret: number;
  /** Full 64-bit r0 at exit, as an unsigned decimal string. */
  r0: string;
  /** Final packet as the kernel's test run returns it (data_out), hex; null for programs without one. */
  packet: string | null;
  /** Final context struct as the kernel's test run returns it (ctx_out), hex; null when not modelled. */
  ctx: string | null;
  maps: MapSnapshot[];
  effects: Effect[];
  fault: Fault | null;
  /** Instructions executed. */
  steps: number;
  /**
   * Values (unsigned decimal) returned by helpers whose result the kernel does not determine
   * (ktime_get_ns, get_prandom_u32, ...), in call order. A comparison with the kernel may ignore
   * bytes that hold exactly one of these values.
   */
  nondet?: string[];
}

export interface CompareOptions {
  /** Compare helper effects too (the kernel cannot report them; on by default between interpreter runs). */
  effects?: boolean;
  /** Compare the context struct out (default true when both sides have one). */
  ctx?: boolean;
}

/** The first observable difference between two outcomes, or null when equal. */
export function compareOutcomes(a: Outcome, b: Outcome, opts: CompareOptions = {}): { field: string; a: unknown; b: unknown } | null {
  if (a.status !== b.status) return { field: 'status', a: a.status, b: b.status };
  if (a.status === 'fault') return null;
  if (a.ret !== b.ret) return { field: 'ret', a: a.ret, b: b.ret };
  if (a.packet !== b.packet) return { field: 'packet', a: a.packet, b: b.packet };
  if ((opts.ctx ?? true) && a.ctx !== null && b.ctx !== null && a.ctx !== b.ctx) return { field: 'ctx', a: a.ctx, b: b.ctx };
  const mb = new Map(b.maps.map((m) => [m.name, m]));
  for (const ma of a.maps) {
    const other = mb.get(ma.name);
    if (!other) continue;
    const d = diffEntries(ma, other);
    if (d) return { field: `map ${ma.name}`, ...d };
  }
  if (opts.effects) {
    const ea = JSON.stringify(a.effects);
    const eb = JSON.stringify(b.effects);
    if (ea !== eb) return { field: 'effects', a: a.effects, b: b.effects };
  }
  return null;
}

function diffEntries(a: MapSnapshot, b: MapSnapshot): { a: unknown; b: unknown } | null {
  const kb = new Map(b.entries);
  const ka = new Map(a.entries);
  for (const [k, v] of a.entries) {
    const w = kb.get(k);
    if (w !== v) return { a: { key: k, value: v }, b: { key: k, value: w ?? null } };
  }
  for (const [k, w] of b.entries) if (!ka.has(k)) return { a: { key: k, value: null }, b: { key: k, value: w } };
  return null;
}

export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
export const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
