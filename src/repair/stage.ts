// Repair as a stage before the optimizer (`k2 opt --repair`, `"repair": true` for k2-clang and
// k2 build): programs the kernel rejects are repaired first (src/repair/search.ts, each repair
// proven equivalent to the input), then the optimizer starts from the repaired object, whose gate
// keeps every program it accepts accepted. Equivalence composes: input = repaired = optimized.
// Needs the kernel (the verifier's log is what repair reads): without bpf() the stage is skipped
// and says why; an internal failure keeps the input and says why (never a half-repaired object).
import type { BpfObject } from '../ir/index.js';
import { bpfAvailable } from '../kernel/index.js';
import { repairObject, type ProgramRepair, type RepairOptions } from './search.js';

export interface RepairSummary {
  /** 'done': every program was loaded and the rejected ones searched; 'skipped': see reason. */
  status: 'done' | 'skipped';
  reason: string | null;
  /** Programs the kernel rejected in the input / repaired / still rejected. */
  rejected: number;
  repaired: number;
  remaining: number;
  /** Per program (only those the kernel rejected in the input). */
  programs: ProgramRepair[];
  ms: number;
}

const skipped = (reason: string, ms = 0): RepairSummary => ({ status: 'skipped', reason, rejected: 0, repaired: 0, remaining: 0, programs: [], ms });

/** Repairs what the kernel rejects in `obj`; the object to optimize next and what happened. */
export async function repairStage(obj: BpfObject, opts: RepairOptions = {}): Promise<{ obj: BpfObject; repair: RepairSummary }> {
  const t0 = performance.now();
  const bpf = await bpfAvailable();
  if (!bpf.ok) return { obj, repair: skipped(`the kernel verifier is not available here (${bpf.reason ?? 'bpf() unavailable'}): nothing repaired`) };
  try {
    const r = await repairObject(obj, opts);
    const programs = r.programs.filter((p) => p.before.verdict === 'rejected');
    return { obj: r.obj, repair: { status: 'done', reason: null, rejected: r.rejected, repaired: r.repaired, remaining: r.remaining, programs, ms: Math.round(performance.now() - t0) } };
  } catch (e) {
    return { obj, repair: skipped(`repair failed, the input is kept: ${(e as Error).message}`, Math.round(performance.now() - t0)) };
  }
}

/** One line for a summary: "repaired 2 of 3 rejected programs" / the skip reason. */
export function repairLine(r: RepairSummary): string | null {
  if (r.status === 'skipped') return `repair skipped: ${r.reason}`;
  if (r.rejected === 0) return null;
  return `repaired ${r.repaired} of ${r.rejected} rejected program(s)${r.remaining ? `; still rejected: ${r.programs.filter((p) => !p.repaired).map((p) => `${p.section}/${p.name}`).join(', ')}` : ''}`;
}
