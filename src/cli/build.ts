// `k2 build`: compile and optimize every BPF source the configuration lists (for npm scripts and CI).
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, copyFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EFFORTS, loadConfig, loadConfigFile, type Effort, type K2Config, type LoadedConfig } from '../config/index.js';
import { defaultBpfFlags, runClang } from '../toolchain/index.js';
import type { ObjectResult } from '../cache/pipeline.js';
import { writeReport } from '../cache/report.js';
import { cacheRoot } from '../cache/store.js';
import { closeConnection, connectServer, serverWanted, type Connection } from '../server/client.js';
import { K2Error } from '../util/errors.js';
import { action, printJson } from './common.js';
import { DWARF_NOTICE, Progress, childrenCpuMs, describeResult, failedResult, optimizeObjectFile } from './cc.js';

/** A glob segment (`*`, `?`, `[…]`, `{a,b}`) as a regular expression. */
function segmentRegExp(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = seg.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${seg.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '{') {
      const end = seg.indexOf('}', i + 1);
      if (end < 0) re += '\\{';
      else {
        re += `(?:${seg.slice(i + 1, end).split(',').map((a) => a.replace(/[.+^$()|\\]/g, '\\$&').replace(/\*/g, '[^/]*')).join('|')})`;
        i = end;
      }
    } else re += c.replace(/[.+^$()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Files matching `pattern` (relative to `dir`): `*`, `?`, `[…]`, `{a,b}` within a path segment,
 * `**` for any number of directories (not entering node_modules or dot-directories). Sorted.
 */
export function glob(pattern: string, dir: string): string[] {
  const segs = pattern.split('/').filter((s, k) => s !== '' || k === 0);
  const out = new Set<string>();
  const list = (d: string) => { try { return readdirSync(d, { withFileTypes: true }); } catch { return []; } };
  const walk = (d: string, k: number): void => {
    if (k === segs.length) {
      try { if (statSync(d).isFile()) out.add(d); } catch { /* vanished */ }
      return;
    }
    const seg = segs[k]!;
    if (seg === '') return walk('/', k + 1); // absolute pattern
    if (seg === '**') {
      walk(d, k + 1);
      for (const e of list(d)) if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules') walk(join(d, e.name), k);
      return;
    }
    if (!/[*?[{]/.test(seg)) return walk(join(d, seg), k + 1);
    const re = segmentRegExp(seg);
    for (const e of list(d)) if (re.test(e.name) && (!e.name.startsWith('.') || seg.startsWith('.'))) walk(join(d, e.name), k + 1);
  };
  walk(isAbsolute(pattern) ? '/' : dir, isAbsolute(pattern) ? 1 : 0);
  return [...out].sort();
}

export interface BuildPlan {
  source: string;
  output: string; // outDir/NAME.o, NAME = the source's name without .c
}

/** Sources and outputs of a configuration; throws (exit 2) on none, or two sources with one output. */
export function planBuild(loaded: LoadedConfig): BuildPlan[] {
  const { config, file, dir } = loaded;
  const where = { file: file ?? join(dir, 'k2.config.json') };
  if (!file) throw new K2Error('input', 'no k2 configuration found (k2.config.json, .k2rc, .k2rc.json/.yaml, or a "k2" key in package.json) from here up to the nearest package.json', { file: dir });
  if (config.sources.length === 0) throw new K2Error('input', 'key "sources" is missing or empty: list globs of .bpf.c files to build, e.g. ["src/*.bpf.c"]', where);
  const outDir = resolve(dir, config.outDir);
  const plan: BuildPlan[] = [];
  const byOutput = new Map<string, string>();
  for (const pattern of config.sources) {
    const found = glob(pattern, dir).filter((f) => f.endsWith('.c'));
    if (found.length === 0) throw new K2Error('input', `key "sources": "${pattern}" matches no .c file (relative to ${dir})`, where);
    for (const source of found) {
      if (plan.some((p) => p.source === source)) continue;
      const output = join(outDir, `${basename(source).replace(/\.c$/, '')}.o`);
      const other = byOutput.get(output);
      if (other) throw new K2Error('input', `${relative(dir, other)} and ${relative(dir, source)} would both be built into ${relative(dir, output)}`, where);
      byOutput.set(output, source);
      plan.push({ source, output });
    }
  }
  return plan;
}

/** Runs `fn` over `items` with at most `n` at a time, results in order. */
async function pool<T, R>(items: readonly T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const k = next++;
      out[k] = await fn(items[k]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  return out;
}

interface BuildOptions {
  config?: string;
  jobs?: string;
  cache: boolean;
  effort?: string;
  report?: string;
  quiet?: boolean;
  json?: boolean;
}

/**
 * clang's CPU time per object for the build profile's search time (see ClangTimer): clangs run in
 * parallel here and their CPU times cannot be told apart, so an object gets the mean over the
 * clangs that ended so far, never more than its own clang's wall time.
 */
class ClangCpu {
  private readonly cpu0 = childrenCpuMs();
  private ended = 0;
  ms(wallMs: number): number {
    this.ended++;
    const cpu = childrenCpuMs();
    if (this.cpu0 === null || cpu === null) return wallMs;
    return Math.min(wallMs, Math.max(10, (cpu - this.cpu0) / this.ended));
  }
}

/** Compiles one source with clang into a temporary object; returns its path (and clang's CPU time) or clang's failure. */
async function compile(p: BuildPlan, config: K2Config, cwd: string, clangCpu: ClangCpu): Promise<{ obj: string; ms: number } | { error: string }> {
  const tmp = join(resolve(p.output, '..'), `.${basename(p.output)}.k2-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  const args = [...defaultBpfFlags(), ...config.cflags, '-c', p.source, '-o', tmp];
  const t0 = performance.now();
  const code = await runClang(args, { cwd });
  const ms = clangCpu.ms(performance.now() - t0);
  if (code !== 0) {
    rmSync(tmp, { force: true });
    return { error: `clang failed (exit ${code})` };
  }
  return { obj: tmp, ms };
}

const K2_CLANG_BIN = join(dirname(fileURLToPath(import.meta.url)), '../../bin/k2-clang.js');

/**
 * One source through k2-clang in a child process (k2 build --jobs N > 1: objects optimize in
 * parallel, one process each, like make -j with CLANG=k2-clang). Its line goes to our stderr; its
 * result comes back through a report file.
 */
async function buildInChild(p: BuildPlan, loaded: LoadedConfig, config: K2Config, tmp: string, k: number): Promise<ObjectResult> {
  const report = join(tmp, `${k}.json`);
  const env: NodeJS.ProcessEnv = {
    ...process.env, K2_REPORT: report, K2_CONFIG: loaded.file!, K2_DWARF_NOTE: '0', K2_EFFORT: config.effort, K2_SERVER: '0',
    ...(config.cache ? {} : { K2_NO_CACHE: '1' }), ...(config.quiet ? { K2_QUIET: '1' } : {}),
  };
  const args = [K2_CLANG_BIN, ...defaultBpfFlags(), ...config.cflags, '-c', p.source, '-o', relative(loaded.dir, p.output) || p.output];
  const code = await new Promise<number>((done, fail) => {
    const child = spawn(process.execPath, args, { cwd: loaded.dir, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', fail);
    child.on('close', (c) => done(c ?? 1));
  });
  if (code !== 0) {
    const error = code === 5 ? 'clang not found (install it, or set K2_CLANG)' : `clang failed (exit ${code})`;
    process.stderr.write(`k2: ${relative(process.cwd(), p.source)}: ${error}\n`);
    return failedResult(p.output, p.source, error);
  }
  try {
    const r = (JSON.parse(readFileSync(report, 'utf8')) as { objects: ObjectResult[] }).objects[0]!;
    return { ...r, output: p.output, source: p.source };
  } catch {
    return failedResult(p.output, p.source, 'no report from k2-clang');
  }
}

export async function build(o: BuildOptions): Promise<number> {
  const loaded = o.config ? loadConfigFile(o.config) : loadConfig();
  const config: K2Config = { ...loaded.config };
  if (!o.cache) config.cache = false;
  if (o.quiet) config.quiet = true;
  if (o.effort !== undefined) {
    if (!(EFFORTS as readonly string[]).includes(o.effort)) throw new K2Error('usage', `--effort ${o.effort}: expected ${EFFORTS.join(' or ')}`);
    config.effort = o.effort as Effort;
  }
  let jobs = config.jobs ?? availableParallelism();
  if (o.jobs !== undefined) {
    jobs = Number(o.jobs);
    if (!Number.isInteger(jobs) || jobs < 1) throw new K2Error('usage', `--jobs ${o.jobs}: expected a positive integer`);
  }
  const plan = planBuild(loaded);
  const t0 = Date.now();
  const outDirs = new Set(plan.map((p) => resolve(p.output, '..')));
  for (const d of outDirs) {
    try {
      mkdirSync(d, { recursive: true });
    } catch (e) {
      throw new K2Error('io', `cannot create the output directory: ${(e as Error).message}`, { file: d });
    }
  }
  const show = (p: BuildPlan): string => relative(process.cwd(), p.output) || p.output;
  const tmp = mkdtempSync(join(tmpdir(), 'k2-build-'));
  // the compile server optimizes objects while clang compiles the next ones; when it cannot be
  // reached, objects are built as before: in k2-clang children (--jobs > 1) or in this process
  let server = serverWanted(config);
  if (server) {
    const first = await connectServer(cacheRoot());
    closeConnection(first);
    if ('fallback' in first) {
      server = false;
      if (process.env.K2_DEBUG) process.stderr.write(`k2 build: no compile server (${first.fallback})\n`);
    }
  }
  let index = 0;
  const clangCpu = new ClangCpu();
  // With the server, a compile slot is free again as soon as clang is done: the object waits in
  // the server's queue while clang compiles the next sources (as the server's worker is busy, clang
  // keeps the other cores busy). Without it, objects optimize in the slot that compiled them.
  const lanes = await pool(plan, jobs, async (p): Promise<{ result: Promise<ObjectResult> }> => {
    if (!server && jobs > 1 && plan.length > 1) return { result: Promise.resolve(await buildInChild(p, loaded, config, tmp, index++)) };
    const conn: Promise<Connection> | null = server ? connectServer(cacheRoot()) : null;
    const c = await compile(p, config, loaded.dir, clangCpu);
    if ('error' in c) {
      if (conn) closeConnection(await conn);
      process.stderr.write(`k2: ${relative(process.cwd(), p.source)}: ${c.error}\n`);
      return { result: Promise.resolve(failedResult(p.output, p.source, c.error)) };
    }
    const result = optimizeCompiled(p, c, conn);
    result.catch(() => undefined); // (its failure is reported by Promise.all below, not as an unhandled rejection meanwhile)
    return { result: server ? result : Promise.resolve(await result) };
  });
  const results = await Promise.all(lanes.map((l) => l.result));
  async function optimizeCompiled(p: BuildPlan, c: { obj: string; ms: number }, conn: Promise<Connection> | null): Promise<ObjectResult> {
    const progress = new Progress(show(p), !config.quiet && !o.json && process.stderr.isTTY === true);
    try {
      const r = await optimizeObjectFile({ file: c.obj, output: p.output, source: p.source, write: p.output, display: show(p), progress, clangMs: c.ms }, config, conn ? await conn : null);
      progress.done();
      const line = describeResult(r, show(p));
      if (line && !config.quiet) process.stderr.write(`${line}\n`);
      return r;
    } catch (e) {
      progress.done();
      const msg = e instanceof K2Error ? e.message : `internal error: ${(e as Error).message}`;
      process.stderr.write(`k2: warning: ${msg}; kept clang's output\n`);
      try {
        copyFileSync(c.obj, p.output);
      } catch (err) {
        throw new K2Error('io', `cannot write output: ${(err as Error).message}`, { file: p.output });
      }
      return { ...failedResult(p.output, p.source, msg), status: 'failed' };
    } finally {
      rmSync(c.obj, { force: true });
    }
  }
  rmSync(tmp, { recursive: true, force: true });
  const compiled = results.filter((r) => !(r.status === 'failed' && /^clang (failed|not found)/.test(r.error ?? '')));
  if (results.some((r) => r.dwarfDropped) && !config.quiet) process.stderr.write(`${DWARF_NOTICE}\n`);
  if (o.report) {
    try {
      writeReport(o.report, results, { merge: false });
    } catch (e) {
      throw new K2Error('io', `cannot write the report: ${(e as Error).message}`, { file: o.report });
    }
  }
  const ok = results.filter((r) => r.status !== 'failed');
  const before = ok.reduce((n, r) => n + r.slotsBefore, 0), after = ok.reduce((n, r) => n + r.slotsAfter, 0);
  const hits = results.filter((r) => r.cache === 'hit').length;
  const pct = before ? ((100 * (before - after)) / before).toFixed(1) : '0.0';
  if (o.json) printJson({ objects: results, seconds: (Date.now() - t0) / 1000 });
  else if (!config.quiet) {
    process.stderr.write(`k2 build: ${results.length} object(s) in ${relative(process.cwd(), [...outDirs][0]!) || '.'}, ${before} → ${after} slots (−${pct}%), ${hits} cache hit(s), ${((Date.now() - t0) / 1000).toFixed(1)} s${compiled.length < results.length ? `, ${results.length - compiled.length} failed to compile` : ''}\n`);
  }
  return compiled.length < results.length ? 1 : 0;
}

export function register(program: Command): void {
  program
    .command('build')
    .description('compile and optimize the BPF sources listed in k2.config.json (or .k2rc*, package.json "k2")')
    .option('--config <file>', 'configuration file (default: searched from here up to the nearest package.json)')
    .option('-j, --jobs <n>', 'objects built in parallel (default: "jobs" in the config, else the number of CPUs)')
    .option('--no-cache', 'do not use the build cache (also K2_NO_CACHE=1 or "cache": false)')
    .option('--effort <profile>', 'build (default: fast paths, small budgets, no SMT solver) or thorough (the full search of k2 opt, with Z3)')
    .option('--report <file.json>', 'write a JSON report of every object')
    .option('-q, --quiet', 'no per-object lines (warnings and errors still print)')
    .option('--json', 'print the report as JSON on stdout')
    .addHelpText('after', `
Configuration keys (paths relative to the configuration file; see k2.config.example.json):
  sources   globs of .bpf.c files, e.g. ["src/*.bpf.c"]          outDir   output directory (default "build")
  cflags    extra clang flags, after -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -D__TARGET_ARCH_<arch>
  effort, budgetMs, timeoutMs, iterations, kernel, repair, tailMerge, cache, server, quiet, jobs, optimize
Each source x.bpf.c is compiled with clang (K2_CLANG chooses the binary) and optimized into
OUTDIR/x.bpf.o. Every source is compiled each time; an object whose clang output did not change
(even through a header) is a cache hit. A k2 failure keeps clang's object and prints a warning.
Objects are optimized on the compile server (k2 server status|stop; "server": false or K2_SERVER=0
turns it off), N compiling at a time; without it, with --jobs N > 1 each object runs in its own
k2-clang process (N at a time), like make -jN.
Exit codes: 0 ok, 1 a source failed to compile, 2 bad configuration or usage (the message names the
file and the key), 5 clang missing, 6 cannot write an output.`)
    .action(action((o: BuildOptions) => build(o)));
}
