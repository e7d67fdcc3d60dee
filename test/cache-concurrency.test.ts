import test from 'ava';
import { execa } from 'execa';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { verifyObject } from '../src/kernel/index.js';
import { readEntry } from '../src/cache/index.js';
import { k2clang, repo } from './helpers/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2cachej-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const project = join(repo, 'fixtures/project');
const cacheDir = join(tmp, 'cache');

function make(build: string, report: string | null, extra: string[] = [], clang = k2clang) {
  return execa('make', ['-s', '-j4', '-C', project, `CLANG=${clang}`, `BUILD=${build}`, ...extra], {
    reject: false,
    env: { K2_CACHE_DIR: cacheDir, K2_BUDGET_MS: '200', ...(report ? { K2_REPORT: report } : {}) },
  });
}

interface Report { objects: { path: string; status: string; cache: string; slotsBefore: number; slotsAfter: number; dwarfDropped: boolean }[]; totals: { hits: number } }
const readReport = (f: string): Report => JSON.parse(readFileSync(f, 'utf8')) as Report;
const objects = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.bpf.o')).sort();

test('make -j4 with CLANG=k2-clang on 8 objects, twice: whole entries, every object loads, the second run is all cache hits', async (t) => {
  const plain = join(tmp, 'plain'), b1 = join(tmp, 'b1'), b2 = join(tmp, 'b2');
  const p = await make(plain, null, [], 'clang');
  t.is(p.exitCode, 0, p.stderr);
  const names = objects(plain);
  t.is(names.length, 8, names.join(' '));

  // run 1: two builds of the same sources at once, so each key has two concurrent writers
  const [r1a, r1b] = await Promise.all([make(b1, join(tmp, 'r1a.json')), make(b2, join(tmp, 'r1b.json'))]);
  t.is(r1a.exitCode, 0, r1a.stderr);
  t.is(r1b.exitCode, 0, r1b.stderr);
  for (const [r, run] of [[readReport(join(tmp, 'r1a.json')), r1a], [readReport(join(tmp, 'r1b.json')), r1b]] as const) {
    t.is(r.objects.length, 8);
    for (const o of r.objects) t.not(o.status, 'failed', o.path);
    // the DWARF note: once per make, not once per object
    const notes = run.stderr.split('\n').filter((l) => l.includes('DWARF debug info')).length;
    t.is(notes, r.objects.some((o) => o.dwarfDropped) ? 1 : 0, run.stderr);
  }
  // every entry on disk is whole (header checksum) and no temporary file is left
  const entries: string[] = [];
  for (const d of readdirSync(join(cacheDir, 'objects'))) {
    for (const f of readdirSync(join(cacheDir, 'objects', d))) {
      t.false(f.startsWith('.tmp'), `temporary file left: ${f}`);
      entries.push(f);
      t.is(readEntry(f, cacheDir).kind, 'entry', f);
    }
  }
  t.true(entries.length >= 1, 'results were stored');

  const first = new Map(names.map((n) => [n, [readFileSync(join(b1, n)), readFileSync(join(b2, n))]]));

  // run 2: rebuild everything; clang writes the same objects, so every one is a hit
  const r2 = await make(b1, join(tmp, 'r2.json'), ['-B']);
  t.is(r2.exitCode, 0, r2.stderr);
  const second = readReport(join(tmp, 'r2.json'));
  t.is(second.objects.length, 8);
  t.is(second.totals.hits, 8, JSON.stringify(second.objects.map((o) => [o.path, o.cache])));
  t.is(readEntry('0'.repeat(64), cacheDir).kind, 'absent');

  // a hit writes exactly what one of the first builds wrote; every object loads as clang's does
  for (const n of names) {
    const now = readFileSync(join(b1, n));
    t.true(first.get(n)!.some((b) => b.equals(now)), `${n}: the cached rebuild differs from both first builds`);
    const [before, after] = [await verifyObject(join(plain, n)), await verifyObject(join(b1, n))];
    t.deepEqual(after.programs.map((q) => [q.name, q.verdict]), before.programs.map((q) => [q.name, q.verdict]), n);
    t.true(before.programs.every((q) => q.verdict === 'accepted'), `${n}: clang's object loads`);
  }
});
