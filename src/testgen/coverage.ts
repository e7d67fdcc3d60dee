// check-semantics coverage over a set of objects: which packet programs get inputs compared, and
// why the others do not. Used by test/check-semantics-coverage.test.ts and the figures in
// notes/readme-difftest.md.
import { readObject, TEST_RUN_PACKET_TYPES } from '../ir/index.js';
import { K2Error } from '../util/errors.js';
import { checkSemantics } from './diff.js';

export interface CoverageRow {
  file: string;
  /** Packet programs of the object (program types BPF_PROG_TEST_RUN runs with a packet). */
  packetPrograms: number;
  /** Packet programs with at least one input compared against the kernel. */
  tested: number;
  /** Mismatches over the tested programs. */
  mismatches: number;
  /** "program: why" for each packet program without inputs; "*: why" when the object failed. */
  untested: string[];
}

/** The packet programs of `file` (by k2's reading of the section names); 0 when it cannot be read. */
export function packetProgramCount(file: string): number {
  try {
    return readObject(file).programs.filter((p) => TEST_RUN_PACKET_TYPES.has(p.progType)).length;
  } catch (e) {
    if (e instanceof K2Error) return 0;
    throw e;
  }
}

/** check-semantics on one object, summarised; objects that cannot be loaded are rows, not throws. */
export async function coverageOf(file: string, inputs: number, seed = 1): Promise<CoverageRow> {
  const row: CoverageRow = { file, packetPrograms: packetProgramCount(file), tested: 0, mismatches: 0, untested: [] };
  try {
    const r = await checkSemantics(file, { inputs, seed });
    for (const p of r.programs) {
      if (p.inputs > 0) row.tested++;
      else row.untested.push(`${p.name}: no input comparable (${p.undefinedInputs ?? 0} undefined)`);
      row.mismatches += p.mismatches;
    }
    for (const u of r.untestable) if (TEST_RUN_PACKET_TYPES.has(u.type)) row.untested.push(`${u.name}: ${u.why}`);
  } catch (e) {
    if (!(e instanceof K2Error) || !['input', 'unsupported'].includes(e.kind)) throw e;
    row.untested.push(`*: ${e.cause_}`);
  }
  return row;
}

export interface CoverageSummary {
  objects: number; // packet objects
  objectsTested: number; // with at least one tested program
  programs: number; // packet programs
  programsTested: number;
  mismatches: number;
  /** Reason (normalised: numbers and names removed) → how many programs. */
  reasons: Map<string, number>;
}

/** Reasons with object-specific details (names, numbers, quotes) removed, for counting. */
export function reasonClass(why: string): string {
  return why
    .replace(/^[^:]*: /, '')
    .replace(/'[^']*'/g, "'…'")
    .replace(/\(program [^)]*\)/g, '')
    .replace(/\b\d+\b/g, 'N')
    .replace(/\s+/g, ' ')
    .slice(0, 140)
    .trim();
}

export function summarise(rows: CoverageRow[]): CoverageSummary {
  const s: CoverageSummary = { objects: 0, objectsTested: 0, programs: 0, programsTested: 0, mismatches: 0, reasons: new Map() };
  for (const r of rows) {
    if (r.packetPrograms === 0) continue;
    s.objects++;
    if (r.tested > 0) s.objectsTested++;
    s.programs += r.packetPrograms;
    s.programsTested += r.tested;
    s.mismatches += r.mismatches;
    for (const u of r.untested) {
      const k = reasonClass(u);
      s.reasons.set(k, (s.reasons.get(k) ?? 0) + 1);
    }
  }
  return s;
}
