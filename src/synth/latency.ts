// Latency cost model: nanoseconds per instruction, by opcode, measured on this machine with
// BPF_PROG_TEST_RUN (scripts/latency-table.ts writes src/synth/latency-table.json; the method is
// documented there). Opcodes the table lacks fall back to their class's median, then to 1 ns.
// The figure is a static estimate — a sum over instructions, not over an executed path.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CLASS, opClass, type Insn } from '../isa/index.js';

export interface LatencyTable {
  /** How and where it was measured. */
  machine: string;
  kernel: string;
  date: string;
  method: string;
  /** Run-time of the empty program (ns), subtracted from every measurement. */
  baselineNs: number;
  /** Opcode (decimal key of the 8-bit code, plus ":call" for helper calls) → ns per instruction. */
  ns: Record<string, number>;
}

/** Used when no measured table can be read (e.g. a packaged build without src/). Rough x86-64 JIT costs. */
const FALLBACK: Record<number, number> = {
  [CLASS.LD]: 0.5, [CLASS.LDX]: 0.6, [CLASS.ST]: 0.5, [CLASS.STX]: 0.6, [CLASS.ALU]: 0.35, [CLASS.JMP]: 0.5, [CLASS.JMP32]: 0.5, [CLASS.ALU64]: 0.35,
};

/** The table file, beside this module in src/ or, from dist/, in ../../src/synth. */
function tableCandidates(): string[] {
  return ['./latency-table.json', '../../src/synth/latency-table.json'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
}

export function loadLatencyTable(paths: string[] = tableCandidates()): LatencyTable | null {
  for (const p of paths) {
    try {
      const t = JSON.parse(readFileSync(p, 'utf8')) as LatencyTable;
      if (t && typeof t.ns === 'object') return t;
    } catch { /* try the next place */ }
  }
  return null;
}

interface Model {
  byCode: Float64Array; // ns per opcode, NaN when unmeasured
  byClass: Float64Array; // class median
  call: number;
}

function buildModel(t: LatencyTable | null): Model {
  const byCode = new Float64Array(256).fill(NaN);
  const perClass: number[][] = Array.from({ length: 8 }, () => []);
  let call = 20;
  for (const [k, v] of Object.entries(t?.ns ?? {})) {
    if (!Number.isFinite(v)) continue;
    if (k === 'call') { call = Math.max(0, v); continue; }
    const code = Number(k);
    if (!Number.isInteger(code) || code < 0 || code > 255) continue;
    byCode[code] = Math.max(0, v);
    perClass[opClass(code)]!.push(Math.max(0, v));
  }
  const byClass = new Float64Array(8);
  for (let c = 0; c < 8; c++) {
    const xs = perClass[c]!.sort((a, b) => a - b);
    byClass[c] = xs.length ? xs[Math.floor(xs.length / 2)]! : FALLBACK[c]!;
  }
  return { byCode, byClass, call };
}

let model: Model | null = null;
const current = (): Model => (model ??= buildModel(loadLatencyTable()));

/** Replaces the table (tests, or a table measured elsewhere); null restores the checked-in one. */
export function setLatencyTable(t: LatencyTable | null): void {
  model = t ? buildModel(t) : null;
}

const CALL = CLASS.JMP | 0x80;

/** Estimated ns of one instruction (helper and bpf-to-bpf calls: the measured call cost). */
export function latencyOf(insn: Insn): number {
  const m = current();
  if (insn.code === CALL) return m.call;
  const v = m.byCode[insn.code & 0xff]!;
  return Number.isNaN(v) ? m.byClass[opClass(insn.code)]! : v;
}

/** Estimated ns of a straight-line run of instructions. */
export function latencyCost(insns: readonly Insn[]): number {
  let n = 0;
  for (const i of insns) n += latencyOf(i);
  return n;
}
