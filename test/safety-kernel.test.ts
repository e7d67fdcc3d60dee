// Agreement of `k2 safety` with the kernel verifier of this machine (needs bpf(): root).
import test from 'ava';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bpfAvailable } from '../src/kernel/index.js';
import { campaign, judge, type Judged } from '../src/safety/agreement.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const corpusDir = resolve(root, '../shared/corpus/ebpf-samples');
const fixturesDir = join(root, 'fixtures/build');
const progtypesDir = join(root, 'fixtures/progtypes/build');
// Objects above this size take seconds each to load; the benchmark covers them.
const MAX_BYTES = 300_000;

function objects(): string[] {
  const out = readdirSync(fixturesDir).filter((f) => f.endsWith('.o')).sort().map((f) => join(fixturesDir, f));
  if (existsSync(progtypesDir)) out.push(...readdirSync(progtypesDir).filter((f) => f.endsWith('.o')).sort().map((f) => join(progtypesDir, f)));
  for (const d of readdirSync(corpusDir).sort()) {
    const dir = join(corpusDir, d);
    if (!statSync(dir).isDirectory()) continue;
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.o') && statSync(join(dir, f)).size < MAX_BYTES) out.push(join(dir, f));
  }
  return out;
}

interface Row extends Judged { file: string }
let originals: Row[] | null = null;
async function judgeOriginals(): Promise<Row[]> {
  if (originals) return originals;
  const rows: Row[] = [];
  for (const f of objects()) {
    let j: Judged[];
    try { j = await judge(readFileSync(f), f); } catch { continue; } // not a usable BPF object
    for (const p of j) rows.push({ file: f, ...p });
  }
  originals = rows;
  return rows;
}

test.before(async (t) => {
  if (!existsSync(corpusDir)) t.fail(`corpus not found at ${corpusDir} (expected ../shared/corpus/ebpf-samples beside the repo)`);
  if (!existsSync(fixturesDir)) t.fail('fixtures are not built: run make -C fixtures');
  const avail = await bpfAvailable();
  if (!avail.ok) t.fail(`bpf() is not available here: ${avail.reason}`);
});

test.serial('k2 accepts no fixture or corpus program that the kernel rejects', async (t) => {
  const rows = await judgeOriginals();
  const bad = rows.filter((r) => r.kernel === 'rejected' && r.k2);
  t.true(rows.length > 50, `only ${rows.length} programs reached the verifier`);
  t.deepEqual(bad.map((r) => `${r.file} ${r.section}/${r.name}: kernel says ${r.kernelWhy}`), []);
});

test.serial('programs the kernel accepts are judged safe (false-reject rate at most 5%)', async (t) => {
  const rows = await judgeOriginals();
  const accepted = rows.filter((r) => r.kernel === 'accepted');
  const rejected = accepted.filter((r) => !r.k2);
  const rate = rejected.length / accepted.length;
  t.log(`false rejects: ${rejected.length}/${accepted.length} = ${(100 * rate).toFixed(1)}%`);
  for (const r of rejected) t.log(`  ${r.file.replace(corpusDir, 'corpus')} ${r.section}/${r.name}: ${r.k2Why}`);
  // Every fixture the kernel accepts must be accepted (bpf_loop callbacks and CO-RE included).
  const fixtureMisses = rejected.filter((r) => r.file.startsWith(fixturesDir));
  t.deepEqual(fixtureMisses.map((r) => `${r.file} ${r.section}/${r.name}: ${r.k2Why}`), []);
  t.true(rate <= 0.05, `false-reject rate ${(100 * rate).toFixed(1)}%`);
});

test.serial('no false accepts over 200 random mutants spread over program types', async (t) => {
  const rows = await judgeOriginals();
  const files = [...new Set(rows.map((r) => r.file))];
  const r = await campaign(files, 200, 20251125);
  t.log(`mutants judged: ${r.mutants} (skipped ${r.skipped}); kernel rejected ${r.kernelRejected}, accepted ${r.kernelAccepted}; ` +
    `false rejects ${r.falseRejects}, false accepts ${r.falseAccepts.length}`);
  t.log(`program types mutated: ${Object.entries(r.byType).map(([k, v]) => `${k} ${v.mutants}`).join(', ')}`);
  t.true(r.mutants >= 120, `only ${r.mutants} mutants could be judged`);
  t.true(r.kernelRejected >= 40, 'the mutants should exercise rejections');
  t.true(Object.keys(r.byType).length >= 10, 'mutants should cover many program types');
  t.deepEqual(r.falseAccepts, []);
});
