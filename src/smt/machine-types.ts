// Types and small helpers shared by the symbolic machine's modules (machine.ts): errors, options,
// maps and code as the machine sees them, regions, per-path states and path ends.
import type { IrInsn } from '../ir/types.js';
import type { Term } from './term.js';
import type { Facts } from './ranges.js';

export class Unsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Unsupported';
  }
}

export class NotAMap extends Error {}

/** An access through a pointer of unknown region: retry the query with the flat memory model. */
export class NeedFlat extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NeedFlat';
  }
}

export interface MachineOptions {
  /** Memory-type concretization: one array per region instead of one flat memory. */
  memTypes: boolean;
  /** Map-type concretization: array maps' lookups resolved by index (no presence variable). */
  mapTypes: boolean;
  /** Offset concretization: constant-offset accesses as plain bytes (no array terms). */
  offsets: boolean;
  maxPaths: number;
  /** Per path (bounds loop unrolling). */
  maxSteps: number;
  /** Merge states at join points (default true). */
  merge?: boolean;
  /** performance.now() after which symbolic execution gives up (answer null): bounds the encoding's time. */
  deadline?: number;
  /**
   * The context the program runs with: 'production' (default) — every field the kernel does not
   * fix is free, within what the kernel guarantees (ctxmodel.ts); 'test-run' — as BPF_PROG_TEST_RUN
   * fills it (what the interpreter runs), for tools that only care about test runs.
   */
  ctx?: 'production' | 'test-run';
  /** Deepest bpf-to-bpf call chain followed (frames including the entry's); default 64. */
  maxFrames?: number;
}

export interface WorkItem {
  st: State;
  sec: string;
  idx: number;
}

/** Scheduling order: callee before the rest of its caller, lower instruction first. */
export function before(a: WorkItem, b: WorkItem): boolean {
  const pa = [a.st.back, ...a.st.frames.map((f) => f.ret - 1), a.idx];
  const pb = [b.st.back, ...b.st.frames.map((f) => f.ret - 1), b.idx];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) if (pa[i] !== pb[i]) return pa[i]! < pb[i]!;
  return pa.length > pb.length;
}

export const placeKey = (w: WorkItem): string => `${w.st.back}#${w.st.frames.map((f) => `${f.section}:${f.ret}`).join('/')}|${w.sec}:${w.idx}`;

export function mergeable(a: State, b: State): boolean {
  if (a.effects.length !== b.effects.length) return false;
  for (let k = 0; k < a.effects.length; k++) if (a.effects[k]!.length !== b.effects[k]!.length) return false;
  if (a.sources.size !== b.sources.size) return false;
  for (const [h, n] of a.sources) if (b.sources.get(h) !== n) return false;
  return true;
}

export const MAP_TYPE = { HASH: 1, ARRAY: 2, PERCPU_HASH: 5, PERCPU_ARRAY: 6, LRU_HASH: 9, LRU_PERCPU_HASH: 10, LPM_TRIE: 11 } as const;

/** A map (or a global data section seen as a one-element array map, like the interpreter does). */
export interface MapInfo {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  readonly: boolean;
  /** Global data section (accessed through ld_imm64 pointers). */
  data: boolean;
}

export type RelocTarget = { kind: 'map'; map: number } | { kind: 'value'; map: number; offset: number } | { kind: 'error'; message: string };

/** Code the machine runs: sections by name (a window is one section), maps, the program type. */
export interface CodeEnv {
  sections: Map<string, IrInsn[]>;
  maps: MapInfo[];
  resolveReloc: (insn: IrInsn, section: string) => RelocTarget;
  progType: string;
  /** Whole program: uninitialised registers read 0, stack starts uninitialised, `exit` ends the run. */
  whole: boolean;
}

export type RegionKind = 'stack' | 'ctx' | 'pkt' | 'mapval' | 'hashval' | 'opaque';

export interface Region {
  kind: RegionKind;
  mem: string; // memory id (per region kind/map)
  base: Term;
  /** Valid offsets [lo, hi) for fault checks; hi null = unknown (no check); 'len' = packet length. */
  lo: bigint;
  /** Symbolic lower bound (≤ lo) when there is one: the packet's metadata below data. */
  loTerm?: Term;
  hi: bigint | 'len' | null;
  writable: boolean;
  map?: MapInfo;
  key?: Term; // hash value: the key
  depth?: number; // stack frame depth
}

/** Per-path state of one memory. */
export interface Mem {
  arr: Term; // array (index → byte) with all writes not in `bytes`
  bytes: Map<bigint, Term> | null; // constant-index writes on top of `arr` (null: array mode)
  init: Map<bigint, Term> | null; // stack: offset → condition under which it was written (reads of unwritten bytes fault)
  iw: number;
}

export interface Frame {
  section: string;
  ret: number; // instruction to resume at
  saved: Term[]; // r6..r10
}

export class State {
  regs: Term[];
  mems: Map<string, Mem>;
  present: Map<string, Term>; // hash maps: key → BV1 presence arrays
  pc: Term;
  effects: Term[][];
  sources: Map<number, number>;
  frames: Frame[];
  lenMin: bigint;
  steps: number;
  /** Backward jumps taken (loop iterations): states of different iterations are kept apart. */
  back: number;
  /** Instruction at which this state was split from a merged one (not to be merged again there). */
  splitAt = -1;
  /** Bounds on terms from the branches this path took (ranges.ts). */
  facts: Facts = new Map();
  constructor(regs: Term[], pc: Term) {
    this.back = 0;
    this.regs = regs;
    this.mems = new Map();
    this.present = new Map();
    this.pc = pc;
    this.effects = [];
    this.sources = new Map();
    this.frames = [];
    this.lenMin = 0n;
    this.steps = 0;
  }
  clone(): State {
    const s = new State([...this.regs], this.pc);
    for (const [k, m] of this.mems) s.mems.set(k, { arr: m.arr, bytes: m.bytes ? new Map(m.bytes) : null, init: m.init ? new Map(m.init) : null, iw: m.iw });
    s.present = new Map(this.present);
    s.effects = [...this.effects];
    s.sources = new Map(this.sources);
    s.frames = [...this.frames];
    s.lenMin = this.lenMin;
    s.steps = this.steps;
    s.back = this.back;
    s.facts = this.facts;
    return s;
  }
}

export type EndKind = 'exit' | 'fault' | 'tail' | 'leave';

export interface PathEnd {
  pc: Term;
  kind: EndKind;
  label?: string; // leave: the label jumped to ('$next' when falling off the window's end)
  state: State;
  reason?: string;
}

export const FALLTHROUGH = '$next';

// Kernel addresses: bases live in [BASE_LO, BASE_HI); offsets stay far below 2^39.
export const BASE_LO = (1n << 64n) - (1n << 48n);
export const BASE_HI = (1n << 64n) - (1n << 40n);
/**
 * data_end - data: the linear part of the packet, below 4 GiB (skb_headlen() and an XDP buffer are
 * sizes of one allocation). Not 0xffff: that is the verifier's bound on packet offsets
 * (MAX_PACKET_OFF), not on packets — a GRO'd skb or a pulled one can have a longer head.
 */
export const MAX_PKT = 0xffffffffn;
/** The test run's packets fit in a page (bpf_test_init: size <= PAGE_SIZE - headroom - tailroom). */
export const TEST_RUN_MAX_PKT = 3520n;

export const ERR = (e: number): bigint => BigInt.asUintN(64, BigInt(-e));
