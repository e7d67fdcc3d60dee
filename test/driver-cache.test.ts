// The proven-rewrite cache: an on-disk store safe under concurrent writers, whose hits the
// synthesizer proves again on the concrete window (a planted wrong rewrite is refused).
import test from 'ava';
import { execa } from 'execa';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { handMade } from './helpers/objects.js';
import { repo } from './helpers/paths.js';
import type { BpfObject, IrInsn } from '../src/ir/index.js';
import { optimizeObject } from '../src/driver/optimize.js';
import { DiskRewriteCache, defaultCacheRoot, openRewriteCache, rewriteCacheDir } from '../src/synth/cache.js';
import { checkPrograms, shutdownZ3 } from '../src/smt/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2-driver-cache-'));
test.after.always(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await shutdownZ3();
});

const ins = (code: number, dst: number, src: number, off: number, imm: number): IrInsn => ({ code, dst, src, off, imm });

function* entries(dir: string): Generator<string> {
  for (const d of readdirSync(dir)) for (const f of readdirSync(join(dir, d))) yield join(dir, d, f);
}

test('cache root: K2_CACHE_DIR, else XDG_CACHE_HOME/k2, else ~/.cache/k2; rewrites under rewrites/v1', (t) => {
  t.is(defaultCacheRoot({ K2_CACHE_DIR: '/x/k2c', XDG_CACHE_HOME: '/y' }), '/x/k2c');
  t.is(defaultCacheRoot({ XDG_CACHE_HOME: '/y' }), '/y/k2');
  t.regex(defaultCacheRoot({}), /\/\.cache\/k2$/);
  t.is(rewriteCacheDir('/r'), '/r/rewrites/v1');
});

test('store: round trip, the better rewrite stays, malformed or foreign entries are ignored', (t) => {
  const dir = join(tmp, 'store');
  const c = new DiskRewriteCache(dir);
  const two = [ins(0xb7, 0, 0, 0, 1), ins(0x07, 0, 0, 0, 2)];
  const one = [ins(0xb7, 0, 0, 0, 3)];
  t.is(c.get('k'), undefined);
  c.put('k', two);
  t.deepEqual(new DiskRewriteCache(dir).get('k'), two, 'read back by another instance (from disk)');
  c.put('k', one);
  c.put('k', two); // worse: kept out
  t.deepEqual(new DiskRewriteCache(dir).get('k'), one);
  t.is(c.stats.kept, 1);
  // a file with garbage, and one holding another key's entry
  for (const k of ['bad', 'moved']) mkdirSync(join(c.fileOf(k), '..'), { recursive: true });
  writeFileSync(c.fileOf('bad'), '{"v":1,"key":"bad","rewrite":[{"code":999}]');
  writeFileSync(c.fileOf('moved'), readFileSync(c.fileOf('k')));
  const fresh = new DiskRewriteCache(dir);
  t.is(fresh.get('bad'), undefined);
  t.is(fresh.get('moved'), undefined, 'the key inside the file must match');
  t.is(fresh.stats.invalid, 2);
  t.false([...entries(dir)].some((f) => f.endsWith('.tmp')));
});

test('store: concurrent writers of the same keys leave only whole entries', async (t) => {
  const dir = join(tmp, 'concurrent');
  const script = `
    import { DiskRewriteCache } from ${JSON.stringify(join(repo, 'src/synth/cache.ts'))};
    const c = new DiskRewriteCache(process.argv[2]);
    const me = Number(process.argv[3]);
    for (let k = 0; k < 300; k++) {
      const n = 1 + ((k * 7 + me) % 5);
      c.put('key' + (k % 40), Array.from({ length: n }, (_, j) => ({ code: 0xb7, dst: j % 10, src: 0, off: 0, imm: me * 1000 + k })));
    }
    console.log(JSON.stringify(c.stats));`;
  const file = join(tmp, 'writer.mts');
  writeFileSync(file, script);
  const runs = await Promise.all([0, 1, 2, 3].map((me) => execa('node', ['--import=tsx', file, dir, String(me)], { cwd: repo, reject: false })));
  for (const r of runs) t.is(r.exitCode, 0, r.stderr);
  const files = [...entries(dir)];
  t.is(files.length, 40);
  t.false(files.some((f) => f.endsWith('.tmp')));
  const c = new DiskRewriteCache(dir);
  for (let k = 0; k < 40; k++) t.truthy(c.get(`key${k}`), `key${k}`);
  t.is(c.stats.invalid, 0);
});


test('a cache hit is proven again before use: a planted wrong rewrite is refused', async (t) => {
  // r1 = 5; r1 += 3; r0 = r1; exit  →  w0 = 8; exit
  const obj = handMade([ins(0xb7, 1, 0, 0, 5), ins(0x07, 1, 0, 0, 3), ins(0xbf, 0, 1, 0, 0), ins(0x95, 0, 0, 0, 0)]);
  const opts = { kernel: false, jobs: 1, timeSec: 60, difftestInputs: 0 };
  const good = join(tmp, 'good');
  const first = await optimizeObject(obj, { ...opts, cache: good });
  const code = (o: BpfObject) => o.code[0]!.insns.map((i) => [i.code, i.dst, i.imm]);
  t.true(first.obj.code[0]!.insns.length < 4, JSON.stringify(code(first.obj)));
  t.true(openRewriteCache(good).stats.puts > 0, 'proven rewrites were stored');
  // the same cache again: a hit, proven, same result
  const again = await optimizeObject(obj, { ...opts, cache: good });
  t.true(openRewriteCache(good).stats.hits > 0);
  t.deepEqual(code(again.obj), code(first.obj));
  // plant: every cached rewrite's immediates off by one (r0 would be 9, not 8)
  const planted = join(tmp, 'planted');
  cpSync(good, planted, { recursive: true });
  let n = 0;
  for (const f of entries(planted)) {
    const e = JSON.parse(readFileSync(f, 'utf8'));
    e.rewrite = e.rewrite.map((i: IrInsn) => ({ ...i, imm: i.imm + 1 }));
    writeFileSync(f, JSON.stringify(e));
    n++;
  }
  t.true(n > 0);
  const third = await optimizeObject(obj, { ...opts, cache: planted });
  t.true(openRewriteCache(planted).stats.hits > 0, 'the planted entry was found');
  t.deepEqual(code(third.obj), code(first.obj), 'and refused: the search found the right rewrite');
  t.false(third.obj.code[0]!.insns.some((i) => i.imm === 9));
  const eq = await checkPrograms(obj, obj.programs[0]!, third.obj, third.obj.programs[0]!, { timeoutMs: 5000 });
  t.is(eq.equivalent, true);
  // the proven rewrite replaced the planted one
  const after = [...entries(planted)].map((f) => JSON.parse(readFileSync(f, 'utf8')));
  t.true(after.some((e) => e.rewrite.some((i: IrInsn) => i.imm === 8)), JSON.stringify(after.map((e) => e.rewrite)));
});
