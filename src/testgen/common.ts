// What check-semantics (interpreter vs kernel) and difftest (kernel vs kernel) share: the report
// shapes, loading an object for test runs, matching k2's map specs to the kernel's maps, the input
// sessions of a program, and telling testable programs from untestable ones with the reason.
import koffi from 'koffi';
import { TEST_RUN_PACKET_TYPES } from '../ir/index.js';
import type { BpfObject, ProgramRef } from '../ir/types.js';
import { openLoaded, type LoadedObject, type MapInfo, type ProgramVerdict, type RunResult } from '../kernel/index.js';
import { ctxKindOf, type MapSpec } from '../interp/index.js';
import { K2Error } from '../util/errors.js';
import { generate, type Session, type TestInput } from './index.js';
import type { NondetField } from './nondet.js';

export interface Mismatch {
  input: number; // index of the input among the program's inputs
  packet: string; // the input packet, hex
  ctx: string | null;
  field: string; // what differed: ret, packet, ctx, map NAME, status, load
  a: unknown; // reference side (kernel / original)
  b: unknown; // other side (interpreter / optimized)
  /** Byte ranges of the field that differ ("0-7"), when the field has the same length on both sides. */
  bytes?: string;
  /**
   * Map contents are compared after a run of inputs: the difference appeared after inputs
   * [first, last] (the packet shown is the last one's).
   */
  after?: [number, number];
}

export interface ProgramResult {
  section: string;
  name: string;
  type: string;
  inputs: number; // inputs compared
  /** Inputs with at least one difference that is not explained by nondeterminism. */
  mismatches: number;
  /** Inputs on which the interpreter faulted (uninitialised stack, out of bounds): not comparable. */
  undefinedInputs?: number;
  /**
   * Inputs whose outcomes differed only in outputs shown nondeterministic (check-semantics: bytes
   * holding a ktime/prandom result; difftest: outputs that differ between two runs of the original).
   */
  nondetInputs?: number;
  /** Inputs the kernel refused to run (the original's test run failed on them): not compared. */
  refusedInputs?: number;
  /** difftest: outputs of the original that differ between two runs on the same input and maps. */
  nondeterministic?: NondetField[];
  firstMismatch: Mismatch | null;
  /** The first few mismatches (difftest), each with its input. */
  mismatchList?: Mismatch[];
}

export interface Untestable {
  section: string;
  name: string;
  type: string;
  why: string;
}

export interface DiffReport {
  file: string;
  programs: ProgramResult[];
  untestable: Untestable[];
}

export interface DiffOptions {
  inputs?: number;
  seed?: number;
  /** Only these programs (by name). */
  programs?: string[];
}

let pinned: boolean | null = null;
/** Pins this thread to CPU 0, so per-CPU map values and get_smp_processor_id are the same in both runs. */
export function pinToCpu0(): boolean {
  if (pinned !== null) return pinned;
  try {
    const libc = koffi.load('libc.so.6');
    const setaff = libc.func('int sched_setaffinity(int pid, size_t size, const uint8_t *mask)');
    const mask = new Uint8Array(128);
    mask[0] = 1;
    pinned = setaff(0, mask.length, mask) === 0;
  } catch {
    pinned = false;
  }
  return pinned;
}

const LIBBPF_SECTION: Record<string, string> = { socket_filter: 'socket', sched_cls: 'tc', sched_act: 'action', xdp: 'xdp', cgroup_skb: 'cgroup_skb/ingress' };

/**
 * Loads `file`; when libbpf does not know the section of some packet programs (old names like
 * "filter", "tc_mark") and k2 derived one type for all of them, loads again with that type and
 * keeps the load that accepts more programs.
 */
export async function openForTest(file: string, obj: BpfObject): Promise<LoadedObject> {
  const k = await openLoaded(file);
  const unknown = k.programs.filter((p) => !p.accepted && /does not know the program type/.test(p.error ?? ''));
  const types = new Set(unknown.map((u) => obj.programs.find((p) => p.name === u.name)?.progType ?? 'unspec'));
  if (unknown.length === 0 || types.size !== 1) return k;
  const sec = LIBBPF_SECTION[[...types][0]!];
  if (!sec) return k;
  const again = await openLoaded(file, { progType: sec });
  // The type applies to every program: keep whichever load has more programs accepted.
  const accepted = (x: LoadedObject): number => x.programs.filter((p) => p.accepted).length;
  if (accepted(again) > accepted(k)) {
    await k.close();
    return again;
  }
  await again.close();
  return k;
}

/**
 * The kernel map standing for k2's map `spec`. Global data maps are named "<object prefix>.<section>",
 * cut to 15 characters: the one whose section part is the longest prefix of the section wins
 * (".data.test" must not take ".data"'s map).
 */
export function kernelMapName(spec: MapSpec, infos: MapInfo[]): string | null {
  const exact = infos.find((i) => i.name === spec.name);
  if (exact) return exact.name;
  if (!spec.name.startsWith('.')) return null;
  let best: { name: string; len: number } | null = null;
  for (const i of infos) {
    const dot = i.name.indexOf('.');
    if (dot < 0) continue;
    const sec = i.name.slice(dot);
    if (sec.length < Math.min(spec.name.length, 2) || !spec.name.startsWith(sec)) continue;
    // A section part shorter than the whole name must have been cut at 15 characters.
    if (sec !== spec.name && i.name.length < 15) continue;
    if (!best || sec.length > best.len) best = { name: i.name, len: sec.length };
  }
  return best?.name ?? null;
}

/** Input sessions of one program (the same for both sides and for repeated calls with one seed). */
export function sessionsFor(p: ProgramRef, maps: MapSpec[], opts: DiffOptions, ncpu: number): Session[] {
  let h = opts.seed ?? 1;
  for (const ch of p.name) h = (Math.imul(h, 31) + ch.charCodeAt(0)) | 0;
  return generate({ progType: p.progType, maps, ncpu, inputs: opts.inputs ?? 2000, seed: h });
}

/** A well-formed input every packet program type accepts: Ethernet + IPv4 + UDP, 64 bytes. */
export function probeInput(): TestInput {
  const p = new Uint8Array(64);
  p.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00], 0);
  p.set([0x45, 0, 0, 50, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2], 14);
  p.set([0x30, 0x39, 0, 53, 0, 30, 0, 0], 34);
  return { packet: p };
}

/** Program types whose BPF_PROG_TEST_RUN takes something other than a packet (k2 does not generate those inputs). */
const OTHER_TEST_RUN: Record<string, string> = {
  raw_tracepoint: 'tracepoint arguments (u64 array)',
  tracing: 'no packet (fentry/fexit: it calls the kernel functions they attach to; tp_btf: tracepoint arguments)',
  syscall: 'a context struct',
  struct_ops: 'the struct_ops member arguments',
  sk_lookup: 'a bpf_sk_lookup context',
  netfilter: 'a netfilter hook state',
};

/** Why the kernel (or k2) cannot test-run `p` with a packet, or null when it might. */
export function untestableType(p: ProgramRef): string | null {
  if (TEST_RUN_PACKET_TYPES.has(p.progType)) return null;
  const other = OTHER_TEST_RUN[p.progType];
  if (other) return `k2 generates packets; BPF_PROG_TEST_RUN of ${p.progType} programs takes ${other}`;
  return `the kernel has no BPF_PROG_TEST_RUN for ${p.progType} programs`;
}

/** The loader's verdict standing for program `p`, by name. */
export function verdictOf(k: LoadedObject, p: ProgramRef): ProgramVerdict | undefined {
  return k.programs.find((x) => x.name === p.name);
}

/** `p` with the program type the kernel loaded it as, when k2 could not tell it from the section name. */
export function withKernelType(p: ProgramRef, v: ProgramVerdict | undefined): ProgramRef {
  if (p.progType !== 'unspec' || !v?.accepted || !v.type || v.type === 'unknown') return p;
  return { ...p, progType: v.type };
}

/** Why a test run that failed on the probe input did: the kernel's errno, explained. */
export function refusalReason(p: ProgramRef, msg: string): string {
  const errno = /\((E[A-Z0-9]+)\)\s*$/.exec(msg)?.[1] ?? null;
  const attach = /^xdp(\.frags)?\/(cpumap|devmap)/.exec(p.section);
  if (attach && errno === 'EINVAL') {
    return `BPF_PROG_TEST_RUN refuses XDP programs attached to a ${attach[2] === 'cpumap' ? 'CPU map' : 'device map'} (SEC("${p.section}"): expected attach type BPF_XDP_${attach[2]!.toUpperCase()}) (EINVAL)`;
  }
  return `BPF_PROG_TEST_RUN failed on a well-formed packet: ${msg.replace(/^test run of '[^']*' failed: /, '')}`;
}

/** One kernel run: its result, or the error the test run gave. */
export type KernelRun = { ok: true; r: RunResult } | { ok: false; error: string };

export async function tryRun(k: LoadedObject, prog: string, input: TestInput): Promise<KernelRun> {
  try {
    // Room for any output: skb helpers may grow a packet to 16 KiB (SKB_MAX_ALLOC); a smaller
    // data_out buffer makes the test run fail with ENOSPC.
    const dataSizeOut = Math.max(input.packet.length + 4096, 20480);
    const r = await k.testRun(prog, { dataIn: input.packet, dataSizeOut, ...(input.ctx ? { ctxIn: input.ctx } : {}) });
    return { ok: true, r };
  } catch (e) {
    if (e instanceof K2Error && e.kind === 'input') return { ok: false, error: e.cause_ };
    throw e;
  }
}

/** Packet programs k2 generates inputs for (the interpreter models their context). */
export const interpretable = (p: ProgramRef): boolean => ctxKindOf(p.progType) !== 'none';
