// `k2 opt`: optimize every code section, then gate the result. A section's new code is kept only if
// every window rewrite was proven equivalent (SMT), the safety model still accepts every program it
// accepted before, and — where bpf() works — the kernel verifier accepts every program it accepted
// before. Anything else keeps that section's original code. Never throws for a section's failure.
import { objectBytes, programCode, readObject, writeObject, type BpfObject, type ProgramRef } from '../ir/index.js';
import { checkLinked, checkObject, linkProgram } from '../safety/index.js';
import { optimizeSection, sectionSlots, DEFAULT_SYNTH, type SynthOptions, type SectionStats } from '../synth/index.js';
import { bpfAvailable, verifyObject } from '../kernel/index.js';

export interface OptimizeOptions {
  synth?: Partial<SynthOptions>;
  kernel?: boolean; // check with the real verifier when bpf() works (default true)
  onProgress?: (msg: string) => void;
}

export interface SectionReport {
  name: string;
  slotsBefore: number;
  slotsAfter: number;
  status: 'optimized' | 'unchanged' | 'reverted';
  reason: string | null;
  ms: number;
  windows: number;
  rewrites: number;
  proposals: number;
  refuted: number;
  unknown: number;
  smtMsMedian: number | null;
}

export interface OptimizeReport {
  file: string;
  output: string | null;
  kernelChecked: boolean;
  sections: SectionReport[];
  slotsBefore: number;
  slotsAfter: number;
  ms: number;
}

const median = (xs: number[]): number | null => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const key = (p: { section: string; name: string }): string => `${p.section}/${p.name}`;

function modelVerdicts(obj: BpfObject): Map<string, boolean> {
  try {
    return new Map(checkObject(obj).map((v) => [key(v), v.safe]));
  } catch {
    return new Map(obj.programs.map((p) => [key(p), false]));
  }
}

/** The safety model's verdict on one program of `obj` (a program it cannot link is unsafe). */
function modelSafe(obj: BpfObject, p: ProgramRef): boolean {
  try {
    return checkLinked(linkProgram(obj, p)).safe;
  } catch {
    return false;
  }
}

async function kernelVerdicts(obj: BpfObject): Promise<Map<string, 'accepted' | 'rejected' | 'cannot-load'>> {
  const r = await verifyObject(objectBytes(obj));
  return new Map(r.programs.map((p) => [key(p), p.verdict]));
}

export async function optimizeObject(obj: BpfObject, opts: OptimizeOptions = {}): Promise<{ obj: BpfObject; report: OptimizeReport }> {
  const t0 = Date.now();
  const synth: SynthOptions = { ...DEFAULT_SYNTH, ...opts.synth };
  const modelBefore = modelVerdicts(obj);
  const useKernel = (opts.kernel ?? true) && (await bpfAvailable()).ok;
  const kernelBefore = useKernel ? await kernelVerdicts(obj) : null;
  const programsUsing = (o: BpfObject, section: string) => o.programs.filter((p) => programCode(o, p).some((s) => s.name === section));

  let cur = obj;
  const reports: SectionReport[] = [];
  for (let i = 0; i < obj.code.length; i++) {
    const name = obj.code[i]!.name;
    const t1 = Date.now();
    opts.onProgress?.(`optimizing ${name} (${i + 1}/${obj.code.length})`);
    const users = programsUsing(cur, name);
    const modelSafeUsers = users.filter((p) => modelBefore.get(key(p)));
    // The model gates every rewrite for the programs it accepted; the kernel has the last word.
    // Only the programs that run this section can change verdict: check just those.
    const gate = (cand: BpfObject): boolean => modelSafeUsers.every((p) => modelSafe(cand, p));
    let stats: SectionStats | null = null;
    let next = cur;
    let reason: string | null = null;
    try {
      const r = await optimizeSection(cur, i, gate, synth);
      next = r.obj;
      stats = r.stats;
    } catch (e) {
      reason = `optimizer failed: ${(e as Error).message}`;
    }
    const before = sectionSlots(cur.code[i]!);
    let after = sectionSlots(next.code[i]!);
    if (!reason && after < before) {
      reason = await sectionVerdict(next, users, modelBefore, kernelBefore).catch((e: Error) => `cannot write the optimized section: ${e.message}`);
      if (reason) next = cur;
    } else next = cur;
    if (reason) after = before;
    cur = next;
    reports.push({
      name, slotsBefore: before, slotsAfter: after,
      status: reason ? 'reverted' : after < before ? 'optimized' : 'unchanged',
      reason, ms: Date.now() - t1,
      windows: stats?.windows ?? 0, rewrites: reason ? 0 : stats?.rewrites ?? 0, proposals: stats?.proposals ?? 0,
      refuted: stats?.refuted ?? 0, unknown: stats?.unknown ?? 0, smtMsMedian: median(stats?.smtMs ?? []),
    });
  }
  const slotsBefore = reports.reduce((n, r) => n + r.slotsBefore, 0);
  const slotsAfter = reports.reduce((n, r) => n + r.slotsAfter, 0);
  return { obj: cur, report: { file: obj.file, output: null, kernelChecked: useKernel, sections: reports, slotsBefore, slotsAfter, ms: Date.now() - t0 } };
}

/** Why the optimized section must not be kept (null: keep it). */
async function sectionVerdict(
  cand: BpfObject,
  users: ProgramRef[],
  modelBefore: Map<string, boolean>,
  kernelBefore: Map<string, string> | null,
): Promise<string | null> {
  objectBytes(cand); // the section must lower (labels, offsets, relocations) before anything else
  const model = new Map(users.map((p) => [key(p), modelSafe(cand, p)]));
  let kernel: Map<string, string> | null = null;
  if (kernelBefore) {
    // Where bpf() works the kernel has the last word: a failed check is a rejection, never a pass.
    try {
      kernel = await kernelVerdicts(cand);
    } catch (e) {
      return `kernel check failed: ${(e as Error).message}`;
    }
  }
  for (const p of users) {
    const k = key(p);
    if (modelBefore.get(k) && !model.get(k)) return `safety model rejects ${k}`;
    if (kernelBefore && kernel) {
      const was = kernelBefore.get(k);
      const now = kernel.get(k);
      if (was === 'accepted' && now !== 'accepted') return `kernel verifier rejects ${k}`;
      if (was !== 'accepted' && !model.get(k)) return `${k} is neither kernel-verified nor model-safe`;
    } else if (!model.get(k)) return `${k} cannot be shown safe here (no bpf(), safety model unsure)`;
  }
  return null;
}

export async function optimizeFile(input: string, output: string, opts: OptimizeOptions = {}): Promise<OptimizeReport> {
  const obj = readObject(input);
  const { obj: out, report } = await optimizeObject(obj, opts);
  writeObject(out, output);
  return { ...report, output };
}
