// Optimizer benchmark: slots before/after, time to optimize, SMT query ms, kernel test-run ns/packet
// before/after, for the fixtures and for corpus objects that load on this machine.
// Run: npm run bench [-- --budget-ms N --corpus N --per-dir N --max-slots N] (prints a Markdown
// table; the README shows the latest).
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { readObject, objectBytes, TEST_RUN_PACKET_TYPES } from '../src/ir/index.js';
import { optimizeObject } from '../src/driver/optimize.js';
import { bpfAvailable, openLoaded, verifyObject } from '../src/kernel/index.js';
import { shutdownZ3 } from '../src/smt/index.js';

const repo = resolve(import.meta.dirname, '..');
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const budgetMs = arg('--budget-ms', 10000);
const corpusCount = arg('--corpus', 6);
const perDir = arg('--per-dir', 2); // a spread over the corpus's projects, not just its first folder
const maxSlots = arg('--max-slots', 1500);

function* walk(d: string): Generator<string> {
  for (const f of readdirSync(d).sort()) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (p.endsWith('.o')) yield p;
  }
}

// An IPv4/UDP packet: the path most parsers take.
const packet = Buffer.from('000102030405060708090a0b08004500002e0000400040110000c0a80001c0a8000230390035001a0000' + '00'.repeat(20), 'hex');

async function nsPerPacket(bytes: Uint8Array, progs: { name: string; progType: string }[]): Promise<number | null> {
  const runnable = progs.filter((p) => TEST_RUN_PACKET_TYPES.has(p.progType));
  if (!runnable.length) return null;
  const obj = await openLoaded(bytes).catch(() => null);
  if (!obj) return null;
  try {
    let total = 0;
    for (const p of runnable) total += (await obj.testRun(p.name, { dataIn: packet, repeat: 20000 })).durationNs;
    return total / runnable.length;
  } catch {
    return null;
  } finally {
    await obj.close();
  }
}

async function main(): Promise<void> {
  const kernel = (await bpfAvailable()).ok;
  const files = [...walk(join(repo, 'fixtures/build'))];
  const corpus = resolve(repo, '../shared/corpus/ebpf-samples');
  if (kernel) {
    let picked = 0;
    const inDir = new Map<string, number>();
    for (const f of walk(corpus)) {
      const dir = relative(corpus, f).split('/')[0]!;
      if (picked >= corpusCount || f.includes('/invalid/') || (inDir.get(dir) ?? 0) >= perDir) continue;
      try {
        const o = readObject(f);
        const slots = o.code.reduce((n, s) => n + s.insns.length, 0);
        if (slots > maxSlots || slots < 20 || !o.programs.some((p) => TEST_RUN_PACKET_TYPES.has(p.progType))) continue;
        const v = await verifyObject(f);
        if (v.programs.length && v.programs.every((p) => p.accepted)) { files.push(f); picked++; inDir.set(dir, (inDir.get(dir) ?? 0) + 1); }
      } catch { /* not usable here */ }
    }
  }
  const rows: string[] = [];
  let before = 0, after = 0;
  for (const f of files) {
    let obj;
    try { obj = readObject(f); } catch { continue; }
    const { obj: out, report } = await optimizeObject(obj, { synth: { budgetMs } });
    const smt = report.sections.map((s) => s.smtMsMedian).filter((x): x is number => x !== null);
    const nsA = kernel ? await nsPerPacket(objectBytes(obj), obj.programs) : null;
    const nsB = kernel && report.slotsAfter < report.slotsBefore ? await nsPerPacket(objectBytes(out), out.programs) : nsA;
    before += report.slotsBefore;
    after += report.slotsAfter;
    const pct = ((100 * (report.slotsBefore - report.slotsAfter)) / report.slotsBefore).toFixed(1);
    rows.push(`| ${relative(resolve(repo, '..'), f).replace(/^main\//, '')} | ${report.slotsBefore} | ${report.slotsAfter} | ${pct}% | ${(report.ms / 1000).toFixed(1)} | ${smt.length ? Math.max(...smt).toFixed(1) : '–'} | ${nsA?.toFixed(0) ?? '–'} | ${nsB?.toFixed(0) ?? '–'} |`);
    process.stderr.write(`${rows.at(-1)}\n`);
  }
  console.log(`budget ${budgetMs} ms per section; kernel ${kernel ? 'checked' : 'unavailable'}\n`);
  console.log('| object | slots | after | saved | opt s | SMT ms (max section median) | ns/pkt before | ns/pkt after |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log(`| **total** | ${before} | ${after} | ${((100 * (before - after)) / before).toFixed(1)}% | | | | |`);
  await shutdownZ3();
}

await main();
