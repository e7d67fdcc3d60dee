// Agreement of the checker with the kernel: the kernel's verdicts on an object's programs next to
// k2's, and a mutant campaign spread over program types. Used by the tests and the benchmark
// (needs bpf(): run as root).
import { objectBytes, readObject, readObjectBytes } from '../ir/index.js';
import type { BpfObject } from '../ir/types.js';
import { verifyObject } from '../kernel/index.js';
import { checkLinked, linkProgram } from './index.js';
import { Unsafe } from './env.js';
import { mutant, rng } from './mutate.js';

export interface Judged {
  section: string;
  name: string;
  /** The program type k2 reads from the section name. */
  type: string;
  kernel: 'accepted' | 'rejected';
  kernelWhy: string | null;
  k2: boolean;
  k2Why: string | null;
  /** Instructions the kernel processed (accepted programs) and k2 processed. */
  kernelInsns: number | null;
  k2Steps: number;
}

/** Kernel and k2 verdicts for every program the kernel could try (cannot-load ones are left out). */
export async function judge(bytes: Uint8Array, name = '<memory>'): Promise<Judged[]> {
  const obj = readObjectBytes(bytes, name);
  const report = await verifyObject(bytes);
  const out: Judged[] = [];
  for (const p of report.programs) {
    if (p.verdict === 'cannot-load') continue;
    const ref = obj.programs.find((x) => x.section === p.section && x.name === p.name);
    if (!ref) continue;
    let safe: boolean, why: string | null, steps = 0;
    try {
      const v = checkLinked(linkProgram(obj, ref));
      safe = v.safe;
      why = v.reason && v.section && v.section !== ref.section ? `${v.reason} (in ${v.section})` : v.reason;
      steps = v.stats.steps;
    } catch (e) {
      if (!(e instanceof Unsafe)) throw e;
      safe = false;
      why = e.reason;
    }
    out.push({ section: p.section, name: p.name, type: ref.progType, kernel: p.verdict, kernelWhy: p.error, k2: safe, k2Why: why, kernelInsns: p.verifiedInsns, k2Steps: steps });
  }
  return out;
}

export interface TypeCounts { mutants: number; kernelRejected: number; kernelAccepted: number; falseAccepts: number; falseRejects: number }

export interface CampaignResult {
  mutants: number; // mutants judged by both
  skipped: number; // could not be built or none of their programs reached the verifier
  kernelRejected: number;
  kernelAccepted: number;
  falseAccepts: { file: string; section: string; index: number; kind: string; program: string; type: string; kernelWhy: string | null }[];
  falseRejects: number; // k2 unsafe, kernel accepted
  falseRejectReasons: Record<string, number>; // k2's reasons, numbers elided
  /** The first false rejects in full (to investigate). */
  falseRejectSamples: { file: string; section: string; index: number; kind: string; program: string; type: string; k2Why: string | null }[];
  /** Per program type of the mutated program. */
  byType: Record<string, TypeCounts>;
}

/**
 * `count` random mutants of `files`, each judged by k2 and the kernel. Mutated sections are picked
 * program type first (uniformly over the types the files contain), then object, then section, so
 * that rare program types get their share.
 */
export async function campaign(files: string[], count: number, seed: number, onProgress?: (done: number) => void): Promise<CampaignResult> {
  const r = rng(seed);
  const objs: { file: string; obj: BpfObject }[] = [];
  for (const f of files) {
    try { objs.push({ file: f, obj: readObject(f) }); } catch { /* unreadable: not part of the campaign */ }
  }
  // Program type -> [object index, section] candidates.
  const byType = new Map<string, [number, string][]>();
  objs.forEach(({ obj }, i) => {
    for (const p of obj.programs) {
      const l = byType.get(p.progType) ?? [];
      if (!l.some(([j, s]) => j === i && s === p.section)) l.push([i, p.section]);
      byType.set(p.progType, l);
    }
  });
  const types = [...byType.keys()].sort();
  const res: CampaignResult = { mutants: 0, skipped: 0, kernelRejected: 0, kernelAccepted: 0, falseAccepts: [], falseRejects: 0, falseRejectReasons: {}, falseRejectSamples: [], byType: {} };
  for (let n = 0; n < count; n++) {
    const type = types[Math.floor(r() * types.length)]!;
    const cands = byType.get(type)!;
    const [oi, section] = cands[Math.floor(r() * cands.length)]!;
    const { file, obj } = objs[oi]!;
    const m = mutant(obj, r, [section]);
    if (!m) { res.skipped++; continue; }
    let bytes: Uint8Array;
    try { bytes = objectBytes(m.obj); } catch { res.skipped++; continue; }
    let judged: Judged[];
    try { judged = await judge(bytes, file); } catch { res.skipped++; continue; }
    // Only the programs of the mutated section count (the others are unchanged).
    judged = judged.filter((j) => j.section === m.section);
    if (!judged.length) { res.skipped++; continue; }
    res.mutants++;
    const tc = (res.byType[type] ??= { mutants: 0, kernelRejected: 0, kernelAccepted: 0, falseAccepts: 0, falseRejects: 0 });
    tc.mutants++;
    for (const j of judged) {
      if (j.kernel === 'rejected') { res.kernelRejected++; tc.kernelRejected++; }
      else { res.kernelAccepted++; tc.kernelAccepted++; }
      if (j.k2 && j.kernel === 'rejected') {
        tc.falseAccepts++;
        res.falseAccepts.push({ file, section: m.section, index: m.index, kind: m.kind, program: `${j.section}/${j.name}`, type: j.type, kernelWhy: j.kernelWhy });
      }
      if (!j.k2 && j.kernel === 'accepted') {
        res.falseRejects++;
        tc.falseRejects++;
        const k = (j.k2Why ?? '').replace(/-?\d+/g, 'N');
        res.falseRejectReasons[k] = (res.falseRejectReasons[k] ?? 0) + 1;
        if (res.falseRejectSamples.length < 100) res.falseRejectSamples.push({ file, section: m.section, index: m.index, kind: m.kind, program: `${j.section}/${j.name}`, type: j.type, k2Why: j.k2Why });
      }
    }
    onProgress?.(n + 1);
  }
  return res;
}
