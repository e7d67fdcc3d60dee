// Agreement of the checker with the kernel: the kernel's verdicts on an object's programs next to
// k2's, and a mutant campaign. Used by the tests and the benchmark (needs bpf(): run as root).
import { objectBytes, readObject, readObjectBytes } from '../ir/index.js';
import type { BpfObject } from '../ir/types.js';
import { verifyObject } from '../kernel/index.js';
import { checkObject } from './index.js';
import { mutant, rng } from './mutate.js';

export interface Judged {
  section: string;
  name: string;
  kernel: 'accepted' | 'rejected';
  kernelWhy: string | null;
  k2: boolean;
  k2Why: string | null;
}

/** Kernel and k2 verdicts for every program the kernel could try (cannot-load ones are left out). */
export async function judge(bytes: Uint8Array, name = '<memory>'): Promise<Judged[]> {
  const obj = readObjectBytes(bytes, name);
  const mine = checkObject(obj);
  const report = await verifyObject(bytes);
  const out: Judged[] = [];
  for (const p of report.programs) {
    if (p.verdict === 'cannot-load') continue;
    const k = mine.find((m) => m.section === p.section && m.name === p.name);
    if (!k) continue;
    out.push({ section: p.section, name: p.name, kernel: p.verdict, kernelWhy: p.error, k2: k.safe, k2Why: k.reason });
  }
  return out;
}

export interface CampaignResult {
  mutants: number; // mutants judged by both
  skipped: number; // could not be built or none of their programs reached the verifier
  kernelRejected: number;
  kernelAccepted: number;
  falseAccepts: { file: string; section: string; index: number; kind: string; program: string; kernelWhy: string | null }[];
  falseRejects: number; // k2 unsafe, kernel accepted
  falseRejectReasons: Record<string, number>; // k2's reasons, numbers elided
}

/** `count` random mutants spread over `files`, each judged by k2 and the kernel. */
export async function campaign(files: string[], count: number, seed: number, onProgress?: (done: number) => void): Promise<CampaignResult> {
  const r = rng(seed);
  const objs: { file: string; obj: BpfObject }[] = [];
  for (const f of files) {
    try { objs.push({ file: f, obj: readObject(f) }); } catch { /* unreadable: not part of the campaign */ }
  }
  const res: CampaignResult = { mutants: 0, skipped: 0, kernelRejected: 0, kernelAccepted: 0, falseAccepts: [], falseRejects: 0, falseRejectReasons: {} };
  for (let n = 0; n < count; n++) {
    const { file, obj } = objs[Math.floor(r() * objs.length)]!;
    const m = mutant(obj, r);
    if (!m) { res.skipped++; continue; }
    let bytes: Uint8Array;
    try { bytes = objectBytes(m.obj); } catch { res.skipped++; continue; }
    let judged: Judged[];
    try { judged = await judge(bytes, file); } catch { res.skipped++; continue; }
    if (!judged.length) { res.skipped++; continue; }
    res.mutants++;
    for (const j of judged) {
      if (j.kernel === 'rejected') res.kernelRejected++;
      else res.kernelAccepted++;
      if (j.k2 && j.kernel === 'rejected') {
        res.falseAccepts.push({ file, section: m.section, index: m.index, kind: m.kind, program: `${j.section}/${j.name}`, kernelWhy: j.kernelWhy });
      }
      if (!j.k2 && j.kernel === 'accepted') {
        res.falseRejects++;
        const k = (j.k2Why ?? '').replace(/-?\d+/g, 'N');
        res.falseRejectReasons[k] = (res.falseRejectReasons[k] ?? 0) + 1;
      }
    }
    onProgress?.(n + 1);
  }
  return res;
}
