// Benchmark of `k2 safety` (run as root: node --import=tsx bench/safety.ts [--mutants N] [--seed S] [--max-bytes B]).
// Prints, against the kernel of this machine:
//   1. programs of fixtures (fixtures/, fixtures/progtypes/) and the whole corpus the kernel accepts
//      or rejects, and the model's verdicts on them, per program type (false rejects, false accepts),
//      with the reasons of the false rejects; and the largest ratio of instructions the kernel
//      processed to the instructions k2 processed (k2's step budget must stay below the kernel's
//      limit divided by it);
//   2. a mutant campaign spread over program types (false accepts, false rejects per type);
//   3. the CPU time of whole-program and per-window checks.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readObject } from '../src/ir/index.js';
import { campaign, judge, type Judged } from '../src/safety/agreement.js';
import { WindowChecker, checkLinked, windowsOf } from '../src/safety/index.js';
import type { SafetyProgram } from '../src/safety/index.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : dflt; };
const MUTANTS = opt('--mutants', 2000);
const SEED = opt('--seed', 1);
// Every corpus object by default, the big cilium ones (bpf_host.o is 2.1 MB) included.
const MAX_BYTES = opt('--max-bytes', 10_000_000);

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const corpusDir = resolve(root, '../shared/corpus');
const fixtureDirs = [join(root, 'fixtures/build'), join(root, 'fixtures/progtypes/build')];
if (!existsSync(corpusDir)) throw new Error(`corpus not found at ${corpusDir}`);

const files: string[] = [];
for (const d of fixtureDirs) if (existsSync(d)) files.push(...readdirSync(d).filter((f) => f.endsWith('.o')).sort().map((f) => join(d, f)));
const walk = (dir: string): void => {
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) { if (f !== 'invalid') walk(p); continue; }
    if (/\.(o|elf)$/.test(f) && !f.endsWith('-eb.elf') && statSync(p).size <= MAX_BYTES) files.push(p);
  }
};
walk(corpusDir);
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
console.log(`programs the kernel accepts: ${accepted.length}; the model accepts ${accepted.length - fr.length} (${(100 * (accepted.length - fr.length) / accepted.length).toFixed(1)}%)`);
console.log(`programs the kernel rejects: ${rows.length - accepted.length}; the model accepts ${fa.length} (false accepts)`);
console.log('\n| program type | kernel accepts | model accepts | kernel rejects | model accepts (false accepts) |');
console.log('|---|---|---|---|---|');
const types = [...new Set(rows.map((r) => r.type))].sort();
for (const t of types) {
  const rs = rows.filter((r) => r.type === t);
  const a = rs.filter((r) => r.kernel === 'accepted');
  const j = rs.filter((r) => r.kernel === 'rejected');
  const ok = a.filter((r) => r.k2).length;
  console.log(`| ${t} | ${a.length} | ${ok} (${a.length ? (100 * ok / a.length).toFixed(1) : '-'}%) | ${j.length} | ${j.filter((r) => r.k2).length} |`);
}
const why = new Map<string, number>();
for (const r of fr) { const k = (r.k2Why ?? '').replace(/-?\d+/g, 'N'); why.set(k, (why.get(k) ?? 0) + 1); }
for (const [k, n] of [...why].sort((a, b) => b[1] - a[1])) console.log(`  false reject x${n}: ${k}`);
for (const r of fr) console.log(`  FALSE REJECT ${short(r.file)} ${r.section}/${r.name} (${r.type}): ${r.k2Why}`);
for (const r of fa) console.log(`  FALSE ACCEPT ${short(r.file)} ${r.section}/${r.name} (${r.type}): kernel: ${r.kernelWhy}`);
// The kernel processes more instructions than k2 on some programs (it prunes differently): k2's
// budget (250,000) must stay below 1,000,000 / the largest ratio.
const ratios = accepted.filter((r) => r.k2 && r.kernelInsns && r.k2Steps > 100).map((r) => ({ r, q: r.kernelInsns! / r.k2Steps })).sort((a, b) => b.q - a.q);
if (ratios.length) {
  const top = ratios[0]!;
  console.log(`kernel/k2 processed-instruction ratio over ${ratios.length} programs: max ${top.q.toFixed(2)} (${short(top.r.file)} ${top.r.section}/${top.r.name}: kernel ${top.r.kernelInsns}, k2 ${top.r.k2Steps}), median ${ratios[ratios.length >> 1]!.q.toFixed(2)}`);
}

// ---- 2. mutants ----
const usable = [...new Set(rows.filter((r) => statSync(r.file).size < 300_000).map((r) => r.file))];
console.log(`\n# ${MUTANTS} mutants of ${usable.length} objects, spread over program types (seed ${SEED})`);
const t0 = performance.now();
const c = await campaign(usable, MUTANTS, SEED);
console.log(`judged ${c.mutants} (skipped ${c.skipped}: none of their programs reached the verifier) in ${((performance.now() - t0) / 1000).toFixed(0)} s; kernel rejected ${c.kernelRejected} program verdicts, accepted ${c.kernelAccepted}`);
console.log(`false accepts: ${c.falseAccepts.length}; false rejects: ${c.falseRejects}/${c.kernelAccepted} (${(100 * c.falseRejects / Math.max(1, c.kernelAccepted)).toFixed(1)}%)`);
console.log('\n| program type | mutants judged | kernel rejects | kernel accepts | false accepts | false rejects |');
console.log('|---|---|---|---|---|---|');
for (const [t, v] of Object.entries(c.byType).sort()) console.log(`| ${t} | ${v.mutants} | ${v.kernelRejected} | ${v.kernelAccepted} | ${v.falseAccepts} | ${v.falseRejects} |`);
for (const f of c.falseAccepts) console.log(`  FALSE ACCEPT ${short(f.file)} ${f.section}#${f.index} ${f.kind} -> ${f.program}: kernel: ${f.kernelWhy}`);
for (const [k, n] of Object.entries(c.falseRejectReasons).sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  mutant false reject x${n}: ${k}`);

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
const progs: { name: string; type: string; sp: SafetyProgram; wc: WindowChecker }[] = [];
for (const f of files) {
  let obj;
  try { obj = readObject(f); } catch { continue; }
  for (const p of obj.programs) {
    const wc = WindowChecker.forProgram(obj, p);
    const sp = wc.prog;
    if (sp.insns.length > 2000 || !checkLinked(sp, { maxSteps: 50_000 }).safe) continue;
    progs.push({ name: `${short(f)} ${p.section}/${p.name}`, type: p.progType, sp, wc });
  }
}
for (const p of progs) for (let i = 0; i < 5; i++) checkLinked(p.sp); // warm-up
const whole = progs.map((p) => ({ ...p, us: cpuUs(() => checkLinked(p.sp)) }));
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]!; };
for (const [lo, hi] of [[0, 100], [100, 200], [200, 400], [400, 2001]] as const) {
  const b = whole.filter((w) => w.sp.insns.length >= lo && w.sp.insns.length < hi);
  if (!b.length) continue;
  console.log(`whole program, ${lo}-${hi - 1} insns: ${b.length} programs, median ${median(b.map((w) => w.us)).toFixed(0)} us, max ${Math.max(...b.map((w) => w.us)).toFixed(0)} us`);
}
console.log('by program type (median us, programs):');
for (const t of [...new Set(whole.map((w) => w.type))].sort()) {
  const b = whole.filter((w) => w.type === t);
  console.log(`  ${t}: ${median(b.map((w) => w.us)).toFixed(0)} us (${b.length}, median ${median(b.map((w) => w.sp.insns.length))} insns)`);
}
const per100 = whole.map((w) => (100 * w.us) / w.sp.insns.length);
console.log(`whole program: median ${median(per100).toFixed(0)} us per 100 instructions`);

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
