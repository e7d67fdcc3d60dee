// Public types of the equivalence checker (the synthesizer's and the CLI's view).
import type { BpfObject } from '../ir/types.js';

/** What static analysis knows about a live-in register (or a spilled stack slot) at a window's entry. */
export type RegFact =
  /** A number: exactly `value`, or within the given bounds / known bits (tnum: bits not in mask equal value). */
  | { kind: 'scalar'; value?: bigint; umin?: bigint; umax?: bigint; smin?: bigint; smax?: bigint; tnum?: { value: bigint; mask: bigint } }
  /** Frame pointer + off (the window's own frame). */
  | { kind: 'stack'; off: number }
  /** Context pointer + off. */
  | { kind: 'ctx'; off?: number }
  /** Packet data + off (off omitted: unknown offset in [0, 0xffff]); the packet is ≥ minLen bytes. */
  | { kind: 'packet'; off?: number; minLen?: number }
  /** data_end. */
  | { kind: 'packet_end' }
  /** Pointer to a map (ld_imm64 of a map), by map name. */
  | { kind: 'map'; map: string }
  /** Pointer into some element's value of map `map` (+ off), non-null. */
  | { kind: 'map_value'; map: string; off?: number }
  /** Pointer to other memory the window may access (`size` bytes from it, when known). */
  | { kind: 'mem'; size?: number }
  /** Nothing known (also the default for registers without a fact). */
  | { kind: 'unknown' };

export interface WindowPre {
  /** Facts by register number (0..9); r10 is always the frame pointer. */
  regs?: Partial<Record<number, RegFact>>;
  /** Known stack contents at entry: `size` bytes at fp+off hold the value described by `fact`. */
  stack?: { off: number; size: 1 | 2 | 4 | 8; fact: RegFact }[];
  /** Packet length lower bound (verifier-checked range). */
  packetMinLen?: number;
}

export interface WindowPost {
  /** Registers live after the window (default: r0..r9). */
  regs?: number[];
  /** Stack bytes read after the window (default 'all': every byte either window wrote). */
  stack?: 'all' | { off: number; size: number }[];
}

export interface Speedups {
  /** Memory-type concretization: per-region memories instead of one flat memory (default true). */
  memTypes?: boolean;
  /** Map-type concretization: array maps resolved by index (default true). */
  mapTypes?: boolean;
  /** Offset concretization: constant offsets as plain bytes, no array terms (default true). */
  offsets?: boolean;
  /** Whole programs: check only the differing windows when the programs differ in straight-line code, or pair their control-flow graphs instruction by instruction (bisimulation) when the layout differs (default true). */
  modular?: boolean;
  /** Cache results by canonical form (default true). */
  cache?: boolean;
  /** Term normal form decides syntactically equal outputs, random inputs find quick counterexamples (default true). */
  fastPaths?: boolean;
}

export interface CheckOptions extends Speedups {
  /**
   * Solver timeout per query in ms (default 5000; windows 2000). 0: Z3 is not asked — only the
   * normal form proves (sides whose terms are identical), random inputs refute, the rest is unknown.
   */
  timeoutMs?: number;
  /** Z3 resource limit per query (deterministic: same answer under any load); default none. */
  rlimit?: number;
  /** Random inputs tried before the solver (default 32; 0 disables). */
  randomTests?: number;
  /** Whole programs: generated packets (Ethernet/IP/TCP/UDP/…) tried before the solver (default 64). */
  packetTests?: number;
  /** Object the code comes from (maps, relocations, program type). */
  object?: BpfObject;
  /** Program type (default: from the object's program, else 'xdp' for windows). */
  progType?: string;
  /** Bound on explored paths per program (default 4096) and per-path steps (default 100000). */
  maxPaths?: number;
  maxSteps?: number;
  /** Bits of r0 compared at exit (default 64). */
  retBits?: 32 | 64;
  seed?: number;
  /**
   * The context the programs meet: 'production' (default) — every context field the kernel does
   * not fix is free (within what the kernel guarantees: field widths, skb->len >= data_end - data,
   * up to 32 / 255 bytes of metadata before data), so proofs hold for real packets; 'test-run' —
   * as BPF_PROG_TEST_RUN fills it (queue_mapping 0, ifindex 1, len = packet length, ...), what
   * the interpreter runs: only for tools whose claims are about test runs.
   */
  ctx?: 'production' | 'test-run';
  /** Deepest bpf-to-bpf call chain followed, in frames (default 64; the verifier's limit is 8, the semantics have none). */
  maxFrames?: number;
}

/** A concrete input on which the two sides differ. Values are hex strings (little-endian bytes) or decimal. */
export interface Counterexample {
  /** Initial register values (windows) — pointers as `region+off`. */
  regs: Record<string, string>;
  /** Packet bytes (hex) of length `packetLen` (only bytes that matter are non-zero-filled by the solver). */
  packet: string | null;
  packetLen: number | null;
  /** Context bytes (hex) when the context matters. */
  ctx: string | null;
  /** Initial stack bytes that were read (window), offset → byte. */
  stack: Record<string, number>;
  /** Initial map contents that matter: name → key hex → value hex (absent key = no element). */
  maps: Record<string, Record<string, string | null>>;
  /** Results of helpers (source helpers `h<id>#n`, effect results `ret#k`) the difference depends on. */
  helpers: Record<string, string>;
  /** The first observable that differs, with both sides' values. */
  difference: { what: string; a: string; b: string };
  /** The difference only holds for particular region addresses (a program looking at pointer bits). */
  addressDependent?: boolean;
  /**
   * The difference needs a context BPF_PROG_TEST_RUN cannot produce (a queue_mapping other than 0,
   * skb->len above the packet's length, metadata before the packet, ...): a real difference, but
   * the interpreter (which runs programs as the test run does) cannot replay it.
   */
  ctxDependent?: boolean;
  /** Raw model: every variable's value (decimal) — for debugging and replay tools. */
  vars: Record<string, string>;
  arrays: Record<string, Record<string, number>>;
}

export interface EquivResult {
  equivalent: boolean | null;
  counterexample: Counterexample | null;
  ms: number;
  /** How it was decided: 'syntactic' (normal forms equal), 'random' (a random input differed), 'solver', 'cache', 'modular'. */
  via: 'syntactic' | 'random' | 'solver' | 'cache' | 'modular' | 'none';
  /** Why the answer is null (timeout, unsupported instruction, …). */
  reason?: string;
}
