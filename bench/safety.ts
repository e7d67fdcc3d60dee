// Benchmark of `k2 safety` (run: node --import=tsx bench/safety.ts [--mutants N] [--seed S] [--max-bytes B]).
// Prints: false-reject rate on fixture/corpus programs the kernel accepts, false accepts on
// originals, a mutant campaign (false accepts and false rejects against the kernel), and the CPU
// time of whole-program and per-window checks. Needs bpf() (root) for the agreement parts.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readObject } from '../src/ir/index.js';
import { campaign, judge, type Judged } from '../src/safety/agreement.js';
import { WindowChecker, checkLinked, linkProgram, windowsOf } from '../src/safety/index.js';
import type { SafetyProgram } from '../src/safety/index.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : dflt; };
const MUTANTS = opt('--mutants', 2000);
const SEED = opt('--seed', 1);
// Every corpus object by default, the big cilium ones (bpf_host.o is 2.1 MB) included.
const MAX_BYTES = opt('--max-bytes', 10_000_000);

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const corpusDir = resolve(root, '../shared/corpus/ebpf-samples');
const fixturesDir = join(root, 'fixtures/build');
if (!existsSync(corpusDir)) throw new Error(`corpus not found at ${corpusDir}`);

const files: string[] = readdirSync(fixturesDir).filter((f) => f.endsWith('.o')).sort().map((f) => join(fixturesDir, f));
for (const d of readdirSync(corpusDir).sort()) {
  const dir = join(corpusDir, d);
  if (!statSync(dir).isDirectory()) continue;
  for (const f of readdirSync(dir).sort()) if (f.endsWith('.o') && statSync(join(dir, f)).size <= MAX_BYTES) files.push(join(dir, f));
}
const short = (f: string) => f.replace(corpusDir, 'corpus').replace(root + '/', '');

// ---- 1. originals ----
console.log(`# originals (${files.length} objects up to ${MAX_BYTES} bytes)`);
const rows: (Judged & { file: string })[] = [];
for (const f of files) {
  try { for (const j of await judge(readFileSync(f), f)) rows.push({ file: f, ...j }); } catch { /* not a usable object */ }
}
const accepted = rows.filter((r) => r.kernel === 'accepted');
const fr = accepted.filter((r) => !r.k2);
const fa = rows.filter((r) => r.kernel === 'rejected' && r.k2);
console.log(`programs the kernel accepts: ${accepted.length}; k2 rejects ${fr.length} (false-reject rate ${(100 * fr.length / accepted.length).toFixed(1)}%)`);
console.log(`programs the kernel rejects: ${rows.length - accepted.length}; k2 accepts ${fa.length} (false accepts)`);
const why = new Map<string, number>();
for (const r of fr) { const k = (r.k2Why ?? '').replace(/-?\d+/g, 'N'); why.set(k, (why.get(k) ?? 0) + 1); }
for (const [k, n] of [...why].sort((a, b) => b[1] - a[1])) console.log(`  ${n}  ${k}`);
for (const r of fa) console.log(`  FALSE ACCEPT ${short(r.file)} ${r.section}/${r.name}: kernel: ${r.kernelWhy}`);

// ---- 2. mutants ----
const usable = [...new Set(rows.filter((r) => statSync(r.file).size < 300_000).map((r) => r.file))];
console.log(`\n# ${MUTANTS} mutants of ${usable.length} objects (seed ${SEED})`);
const t0 = performance.now();
const c = await campaign(usable, MUTANTS, SEED);
console.log(`judged ${c.mutants} (skipped ${c.skipped}) in ${((performance.now() - t0) / 1000).toFixed(0)} s; kernel rejected ${c.kernelRejected} program verdicts, accepted ${c.kernelAccepted}`);
console.log(`false accepts: ${c.falseAccepts.length}; false rejects: ${c.falseRejects}/${c.kernelAccepted} (${(100 * c.falseRejects / Math.max(1, c.kernelAccepted)).toFixed(1)}%)`);
for (const f of c.falseAccepts) console.log(`  FALSE ACCEPT ${short(f.file)} ${f.section}#${f.index} ${f.kind} -> ${f.program}: kernel: ${f.kernelWhy}`);

// ---- 3. speed ----
// CPU time per call: the best of several batches, so that other processes on a shared machine
// (cache and core contention) disturb the figure less.
const cpuUs = (f: () => void, minMs = 30, batches = 6): number => {
  let best = Infinity;
  for (let b = 0; b < batches; b++) {
    let n = 0;
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    while (performance.now() - w0 < minMs / batches || n < 2) { f(); n++; }
    const u = process.cpuUsage(c0);
    best = Math.min(best, (u.user + u.system) / n);
  }
  return best;
};
console.log('\n# speed (CPU time per check, after warm-up, best of 6 batches)');
const progs: { name: string; sp: SafetyProgram; wc: WindowChecker }[] = [];
for (const f of files) {
  let obj;
  try { obj = readObject(f); } catch { continue; }
  for (const p of obj.programs) {
    const wc = WindowChecker.forProgram(obj, p);
    const sp = wc.prog;
    if (sp.insns.length > 2000 || !checkLinked(sp, { maxSteps: 50_000 }).safe) continue;
    progs.push({ name: `${short(f)} ${p.section}/${p.name}`, sp, wc });
  }
}
for (const p of progs) for (let i = 0; i < 5; i++) checkLinked(p.sp); // warm-up
const whole = progs.map((p) => ({ ...p, us: cpuUs(() => checkLinked(p.sp)) }));
const bucket = (lo: number, hi: number) => whole.filter((w) => w.sp.insns.length >= lo && w.sp.insns.length < hi);
for (const [lo, hi] of [[0, 100], [100, 200], [150, 250], [200, 400], [400, 2001]] as const) {
  const b = bucket(lo, hi);
  if (!b.length) continue;
  const us = b.map((w) => w.us).sort((x, y) => x - y);
  console.log(`whole program, ${lo}-${hi - 1} insns: ${b.length} programs, median ${us[us.length >> 1]!.toFixed(0)} us, max ${us[us.length - 1]!.toFixed(0)} us`);
}
const per100 = whole.map((w) => (100 * w.us) / w.sp.insns.length).sort((x, y) => x - y);
console.log(`whole program: median ${per100[per100.length >> 1]!.toFixed(0)} us per 100 instructions`);

let winChecks = 0, winUs = 0, prepUs = 0;
for (const p of progs) {
  const wins = windowsOf(p.sp, 3);
  if (!wins.length) continue;
  const chosen = [wins[wins.length >> 1]!, wins[wins.length >> 2]!];
  const c0 = process.cpuUsage();
  const sites = p.wc.prepare(chosen);
  const u0 = process.cpuUsage(c0);
  prepUs += u0.user + u0.system;
  for (const site of sites) {
    const repl = p.sp.insns.slice(site.start, site.end).map((i) => ({ ...i, labels: undefined }));
    for (let i = 0; i < 3; i++) p.wc.check(site, repl);
    winUs += cpuUs(() => p.wc.check(site, repl), 5);
    winChecks++;
  }
}
console.log(`window check (3 instructions, identity replacement): ${winChecks} windows, mean ${(winUs / winChecks).toFixed(0)} us per check; prepare ${(prepUs / progs.length).toFixed(0)} us per program`);
