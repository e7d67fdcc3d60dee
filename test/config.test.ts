import test from 'ava';
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { DEFAULTS, SCHEMA, loadConfig, validateConfig, EFFORT_PROFILES, objectBudget, optimizerSettings, withEnv } from '../src/config/index.js';
import { K2Error } from '../src/util/errors.js';
import { k2, k2clang, repo } from './helpers/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2cfg-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

/** A project directory with a package.json (where the config search stops) and the given files. */
function project(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), files['package.json'] ?? '{"name":"p"}\n');
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}

test('an unknown key is refused, naming the file, the key and the known keys', (t) => {
  const e = t.throws(() => validateConfig({ budgetMs: 10, objects: ['x'] }, '/p/k2.config.json'), { instanceOf: K2Error })!;
  t.is(e.exitCode, 2);
  t.regex(e.message, /^\/p\/k2\.config\.json: unknown key "objects"/);
  t.regex(e.message, /replaced by "sources"/);
  t.regex(e.message, /known keys: optimize, effort/);
});

test('a wrong type names the file, the key and the expected type', (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ budgetMs: '100' }, /key "budgetMs": expected a number >= 0 \(or null\), got the string "100"/],
    [{ kernel: 1 }, /key "kernel": expected a boolean, got number 1/],
    [{ sources: 'src/*.bpf.c' }, /key "sources": expected an array of strings/],
    [{ cflags: ['-O2', 3] }, /key "cflags": expected an array of strings, got an array/],
    [{ effort: 'fast' }, /key "effort": expected one of "build", "thorough"/],
    [{ jobs: 0 }, /key "jobs": expected an integer >= 1 \(or null\), got number 0/],
    [{ outDir: '' }, /key "outDir": expected a string/],
  ];
  for (const [raw, re] of cases) {
    const e = t.throws(() => validateConfig(raw, 'cfg.json'), { instanceOf: K2Error }, JSON.stringify(raw))!;
    t.regex(e.message, /^cfg\.json: /);
    t.regex(e.message, re);
  }
  t.throws(() => validateConfig(['x'], 'cfg.json'), { message: /must be an object/ });
});

test('every schema key has a default and is documented in k2.config.example.json', (t) => {
  const example = JSON.parse(readFileSync(join(repo, 'k2.config.example.json'), 'utf8')) as Record<string, unknown>;
  const keys = Object.keys(example).filter((k) => k !== 'comment' && k !== '$schema');
  t.deepEqual(keys.sort(), Object.keys(SCHEMA).sort());
  t.deepEqual(Object.keys(DEFAULTS).sort(), Object.keys(SCHEMA).sort());
  t.notThrows(() => validateConfig(example, 'k2.config.example.json'));
});

test('the configuration is found from a subdirectory up to the package, package.json#k2 and .k2rc.yaml included', (t) => {
  const a = project('a', { 'k2.config.json': '{"effort":"thorough","outDir":"out"}', 'src/deep/x.txt': '' });
  const la = loadConfig(join(a, 'src/deep'));
  t.is(la.file, join(a, 'k2.config.json'));
  t.is(la.dir, a);
  t.is(la.config.effort, 'thorough');
  t.is(la.config.outDir, 'out');
  const b = project('b', { 'package.json': '{"name":"b","k2":{"quiet":true}}' });
  t.true(loadConfig(b).config.quiet);
  const c = project('c', { '.k2rc.yaml': 'cache: false\ncflags: [-DX=1]\n' });
  t.false(loadConfig(c).config.cache);
  t.deepEqual(loadConfig(c).config.cflags, ['-DX=1']);
  const d = project('d', {});
  t.is(loadConfig(d).file, null);
  t.deepEqual(loadConfig(d).config, DEFAULTS);
});

test('environment variables override the file', (t) => {
  const a = project('env', { 'k2.config.json': '{"cache":true,"quiet":false,"effort":"thorough"}' });
  const saved = { ...process.env };
  try {
    Object.assign(process.env, { K2_NO_CACHE: '1', K2_QUIET: '1', K2_EFFORT: 'build', K2_BUDGET_MS: '250', K2_OPT: '0' });
    const c = loadConfig(a).config;
    t.false(c.cache);
    t.true(c.quiet);
    t.is(c.effort, 'build');
    t.is(c.budgetMs, 250);
    t.false(c.optimize);
    process.env.K2_EFFORT = 'fastest';
    t.throws(() => loadConfig(a), { message: /K2_EFFORT=fastest: expected build or thorough/ });
  } finally {
    for (const k of ['K2_NO_CACHE', 'K2_QUIET', 'K2_EFFORT', 'K2_BUDGET_MS', 'K2_OPT']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});

test('effort profiles map to optimizer settings in one place; explicit keys override them', (t) => {
  t.is(EFFORT_PROFILES.build.objectBudgetMs, 1500);
  t.true((EFFORT_PROFILES.build.synth.search?.iterations ?? 0) < (EFFORT_PROFILES.thorough.synth.search?.iterations ?? 0));
  const s = optimizerSettings({ ...DEFAULTS, effort: 'thorough', timeoutMs: 123, iterations: 7, budgetMs: 900, tailMerge: false });
  t.is(s.effort, 'thorough');
  t.is(s.budgetMs, 900);
  t.is(s.synth.timeoutMs, 123);
  t.is(s.synth.search?.iterations, 7);
  t.false(s.synth.tailMerge);
  t.deepEqual(optimizerSettings(DEFAULTS).synth, { tailMerge: true });
});

test('the build profile gives the search as long as clang took (clamped); budgetMs and the thorough profile are fixed', (t) => {
  const b = EFFORT_PROFILES.build;
  t.is(objectBudget(DEFAULTS, 400), Math.max(b.minBudgetMs, Math.round(400 * b.clangTimes!)));
  t.is(objectBudget(DEFAULTS, 1), b.minBudgetMs, 'at least the minimum');
  t.is(objectBudget(DEFAULTS, 1e9), b.objectBudgetMs, 'at most the profile\'s object budget');
  t.is(objectBudget(DEFAULTS, null), b.objectBudgetMs, 'clang\'s time unknown: the profile\'s object budget');
  t.is(objectBudget({ ...DEFAULTS, budgetMs: 777 }, 400), 777, 'an explicit budget wins');
  t.is(objectBudget({ ...DEFAULTS, effort: 'thorough' }, 400), EFFORT_PROFILES.thorough.objectBudgetMs);
  t.is(b.finalDifftestInputs, 0, 'no kernel difftest on every build: every rewrite is proven');
  t.is(EFFORT_PROFILES.thorough.finalDifftestInputs, null);
});

test('a directory with no configuration file gives the defaults; one with a "k2"-less package.json too', (t) => {
  const dir = project('none', { 'x.bpf.c': '' });
  const saved = process.env.K2_CONFIG;
  delete process.env.K2_CONFIG;
  try {
    const l = loadConfig(dir);
    t.is(l.file, null);
    t.deepEqual(l.config, withEnv({ ...DEFAULTS }));
    const withK2 = project('pkgk2', { 'package.json': JSON.stringify({ name: 'p', k2: { quiet: true } }) });
    t.true(loadConfig(withK2).config.quiet);
  } finally {
    if (saved !== undefined) process.env.K2_CONFIG = saved;
  }
});

test('k2 build and k2-clang stop with exit 2 on a broken configuration, naming its file and key (clang never runs)', async (t) => {
  const dir = project('broken', { 'k2.config.json': '{"sources":["*.bpf.c"],"budgetMs":"fast"}', 'x.bpf.c': 'int x;\n' });
  const b = await execa('node', [k2, 'build'], { cwd: dir, reject: false });
  t.is(b.exitCode, 2, b.stderr);
  t.is(b.stderr.trim(), `k2: ${join(dir, 'k2.config.json')}: key "budgetMs": expected a number >= 0 (or null), got the string "fast"`);
  const c = await execa('node', [k2clang, '-O2', '-target', 'bpf', '-c', 'x.bpf.c', '-o', 'x.bpf.o'], { cwd: dir, reject: false });
  t.is(c.exitCode, 2, c.stderr);
  t.regex(c.stderr, /k2\.config\.json: key "budgetMs": expected a number/);
  t.throws(() => readFileSync(join(dir, 'x.bpf.o')), undefined, 'clang must not have run');
  const syntax = project('syntax', { 'k2.config.json': '{"sources": [' });
  const s = await execa('node', [k2, 'build'], { cwd: syntax, reject: false });
  t.is(s.exitCode, 2);
  t.regex(s.stderr, /k2\.config\.json: invalid configuration/);
  // non-BPF invocations pass through without reading the configuration
  const v = await execa('node', [k2clang, '--version'], { cwd: dir, reject: false });
  t.is(v.exitCode, 0);
});
