import test from 'ava';
import { execa } from 'execa';
import { utimesSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { verifyObject } from '../src/kernel/index.js';
import { glob, planBuild } from '../src/cli/build.js';
import { DEFAULTS } from '../src/config/index.js';
import { k2, repo } from './helpers/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2build-'));
test.after.always(async () => {
  await execa('node', [k2, 'server', 'stop'], { reject: false, env: { K2_CACHE_DIR: join(tmp, 'cache') } });
  rmSync(tmp, { recursive: true, force: true });
});

const SOURCES = ['xdp_stats.bpf.c', 'tc_ratelimit.bpf.c', 'sock_dns.bpf.c'];

/** A project with three of fixtures/project's sources under src/ and a k2.config.json. */
function makeProject(name: string, config: Record<string, unknown>): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, scripts: { build: 'k2 build' } }));
  writeFileSync(join(dir, 'k2.config.json'), JSON.stringify(config));
  for (const f of [...SOURCES, 'common.h']) copyFileSync(join(repo, 'fixtures/project', f), join(dir, 'src', f));
  return dir;
}

interface Report { objects: { output: string; path: string; status: string; cache: string; slotsBefore: number; slotsAfter: number; via?: string }[]; totals: { objects: number; hits: number; failed: number } }

async function build(dir: string, args: string[], env: Record<string, string> = {}) {
  const r = await execa('node', [k2, 'build', ...args], { cwd: dir, reject: false, env: { K2_CACHE_DIR: join(tmp, 'cache'), ...env } });
  return r;
}
const report = (f: string): Report => JSON.parse(readFileSync(f, 'utf8')) as Report;
const cacheOf = (r: Report): Record<string, string> => Object.fromEntries(r.objects.map((o) => [o.path.split('/').pop()!, o.cache]));

test.serial('k2 build compiles every source into outDir/NAME.o, and is incremental: unchanged clang output is a cache hit', async (t) => {
  const dir = makeProject('p1', { sources: ['src/*.bpf.c'], outDir: 'out', budgetMs: 300 });
  const first = await build(dir, ['--report', 'r1.json', '--jobs', '2']);
  t.is(first.exitCode, 0, first.stderr);
  t.regex(first.stderr, /k2 build: 3 object\(s\) in out, \d+ → \d+ slots/);
  const r1 = report(join(dir, 'r1.json'));
  t.is(r1.totals.objects, 3);
  t.is(r1.totals.failed, 0);
  t.is(r1.totals.hits, 0);
  t.deepEqual(r1.objects.map((o) => o.via), ['server', 'server', 'server'], 'optimized on the compile server');
  const outs = SOURCES.map((s) => join(dir, 'out', s.replace(/\.c$/, '.o')));
  for (const o of outs) t.true(existsSync(o), o);
  const bytes = outs.map((o) => readFileSync(o));

  const second = await build(dir, ['--report', 'r2.json']);
  t.is(second.exitCode, 0, second.stderr);
  t.deepEqual(Object.values(cacheOf(report(join(dir, 'r2.json')))), ['hit', 'hit', 'hit']);
  outs.forEach((o, k) => t.true(readFileSync(o).equals(bytes[k]!), `${o} changed on a cache hit`));

  // a touched source (make would rebuild it) compiles to the same object: still a hit; a changed constant is not
  utimesSync(join(dir, 'src', 'xdp_stats.bpf.c'), new Date(), new Date());
  const src = join(dir, 'src', 'tc_ratelimit.bpf.c');
  writeFileSync(src, readFileSync(src, 'utf8').replace('= 1250000;', '= 2500000;'));
  const third = await build(dir, ['--report', 'r3.json']);
  t.is(third.exitCode, 0, third.stderr);
  const c3 = cacheOf(report(join(dir, 'r3.json')));
  t.is(c3['xdp_stats.bpf.o'], 'hit');
  t.is(c3['sock_dns.bpf.o'], 'hit');
  t.is(c3['tc_ratelimit.bpf.o'], 'miss');

  // without the compile server (K2_SERVER=0): each object in its own k2-clang process, as before
  const off = await build(dir, ['--no-cache', '--report', 'r4.json', '--quiet', '--jobs', '2'], { K2_SERVER: '0' });
  t.is(off.exitCode, 0);
  t.is(off.stderr, '', 'quiet');
  t.deepEqual(Object.values(cacheOf(report(join(dir, 'r4.json')))), ['off', 'off', 'off']);
  t.deepEqual(report(join(dir, 'r4.json')).objects.map((o) => o.via), ['process', 'process', 'process']);

  for (const o of outs) {
    const v = await verifyObject(o);
    t.true(v.programs.length > 0 && v.programs.every((p) => p.verdict === 'accepted'), `${o}: ${v.programs.map((p) => p.error).join('; ')}`);
  }
});

test.serial('k2 build: a source that does not compile fails the build (exit 1), the others are still built', async (t) => {
  const dir = makeProject('p2', { sources: ['src/*.bpf.c'], outDir: 'out', budgetMs: 200 });
  writeFileSync(join(dir, 'src', 'broken.bpf.c'), 'int f( { return 0; }\n');
  const r = await build(dir, ['--report', 'r.json']);
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /src\/broken\.bpf\.c: clang failed/);
  const rep = report(join(dir, 'r.json'));
  t.is(rep.totals.objects, 4);
  t.is(rep.totals.failed, 1);
  t.true(existsSync(join(dir, 'out', 'xdp_stats.bpf.o')));
});

test('k2 build: configuration errors name the file and the key (exit 2)', async (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ objects: ['build/*.o'] }, /k2\.config\.json: unknown key "objects"/],
    [{ sources: 'src/*.bpf.c' }, /k2\.config\.json: key "sources": expected an array of strings, got the string/],
    [{ sources: ['nothing/*.bpf.c'] }, /k2\.config\.json: key "sources": "nothing\/\*\.bpf\.c" matches no \.c file/],
    [{ outDir: 'out' }, /k2\.config\.json: key "sources" is missing or empty/],
  ];
  for (const [cfg, re] of cases) {
    const dir = makeProject(`bad-${Math.random().toString(36).slice(2)}`, cfg);
    const r = await build(dir, []);
    t.is(r.exitCode, 2, JSON.stringify(cfg));
    t.regex(r.stderr, re);
  }
  const none = join(tmp, 'none');
  mkdirSync(none);
  writeFileSync(join(none, 'package.json'), '{}');
  const r = await build(none, []);
  t.is(r.exitCode, 2);
  t.regex(r.stderr, /no k2 configuration found/);
});

test('globs and the build plan: NAME.o per source, ** and braces, two sources with one output refused', (t) => {
  const dir = join(tmp, 'globs');
  for (const f of ['a/x.bpf.c', 'a/b/y.bpf.c', 'c/x.bpf.c', 'a/z.c', 'a/notes.txt']) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), '');
  }
  t.deepEqual(glob('a/*.bpf.c', dir), [join(dir, 'a/x.bpf.c')]);
  t.deepEqual(glob('a/**/*.bpf.c', dir), [join(dir, 'a/b/y.bpf.c'), join(dir, 'a/x.bpf.c')]);
  t.deepEqual(glob('{a,c}/x.bpf.c', dir), [join(dir, 'a/x.bpf.c'), join(dir, 'c/x.bpf.c')]);
  const plan = planBuild({ config: { ...DEFAULTS, sources: ['a/**/*.c'], outDir: 'o' }, file: join(dir, 'k2.config.json'), dir });
  t.deepEqual(plan.map((p) => p.output), [join(dir, 'o/y.bpf.o'), join(dir, 'o/x.bpf.o'), join(dir, 'o/z.o')]);
  t.throws(() => planBuild({ config: { ...DEFAULTS, sources: ['**/x.bpf.c'] }, file: join(dir, 'k2.config.json'), dir }), { message: /would both be built into build\/x\.bpf\.o/ });
});
