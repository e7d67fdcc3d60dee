// Build benchmark: two multi-object projects built the way projects build — `make -jJ CLANG=…` —
// with plain clang and with k2-clang: cold (empty build cache; effort profiles build and thorough;
// with the compile server, and without it: K2_SERVER=0), cached (every object a hit; with the
// server already running, and with the server to be started), `k2 build` cold and cached, and the
// 3-object cached-rebuild target. Projects:
//   fixtures/project-vmlinux  7 libbpf-tools-style objects on vmlinux.h (clang ~0.3 s CPU each): the
//                             typical project the targets are about
//   fixtures/project          8 objects on the UAPI headers only (clang ~0.06 s CPU each)
// Times: wall, and CPU = user + system of every process involved: make, clang and k2-clang (children
// of this process) plus the compile server (a detached process: its own CPU counter, read through
// `k2 server status --json` before and after each build). vmlinux.h is generated once per build
// directory before timing; each timed build removes the objects and runs make.
//
// Run niced — the machine is shared: nice -n 10 npm run bench:build -- [--runs N] [--jobs J]
//   [--no-thorough] [--project vmlinux|uapi] [--no-snapshot] [--write]
//   (--write puts the tables into notes/readme-build.md between its markers)
// A benchmark, not a test: absolute times depend on the machine and its load.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '..');
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const runs = Number(opt('--runs') ?? 3);
const jobs = Number(opt('--jobs') ?? cpus().length);
const thorough = !argv.includes('--no-thorough');
const write = argv.includes('--write');
const only = opt('--project');

const tmp = mkdtempSync(join(tmpdir(), 'k2-bench-build-'));

/**
 * A copy of k2 as built now (bin/, dist/, the data files dist reads from src/, node_modules
 * linked): the checkout is shared, and a rebuild of dist/ during the benchmark would change k2's
 * build id — a new compile server, a cache of another k2 — in the middle of a measurement.
 */
function snapshot(): string {
  if (argv.includes('--no-snapshot')) return repo;
  const k = join(tmp, 'k2');
  for (const d of ['bin', 'dist']) cpSync(join(repo, d), join(k, d), { recursive: true });
  cpSync(join(repo, 'package.json'), join(k, 'package.json'));
  cpSync(join(repo, 'src'), join(k, 'src'), { recursive: true, filter: (f) => !/\.ts$/.test(f) });
  symlinkSync(join(repo, 'node_modules'), join(k, 'node_modules'));
  return k;
}
const k2home = snapshot();
const k2clang = join(k2home, 'bin/k2-clang.js');
const k2 = join(k2home, 'bin/k2.js');
const TICK = 100; // USER_HZ: /proc times are in 1/100 s on Linux

interface Project {
  name: string;
  dir: string;
  objects: string[];
  three: string[]; // the 3-object rebuild
  header: boolean; // generates $(BUILD)/vmlinux.h
}

const projectAt = (name: string, rel: string, three: string[], header: boolean): Project => {
  const dir = join(repo, rel);
  return { name, dir, objects: readdirSync(dir).filter((f) => f.endsWith('.bpf.c')).map((f) => f.replace(/\.c$/, '.o')).sort(), three, header };
};
const PROJECTS: Project[] = [
  projectAt('fixtures/project-vmlinux', 'fixtures/project-vmlinux', ['execsnoop.bpf.o', 'biolatency.bpf.o', 'xdp_firewall.bpf.o'], true),
  projectAt('fixtures/project', 'fixtures/project', ['xdp_lb.bpf.o', 'tc_ratelimit.bpf.o', 'bootstrap.bpf.o'], false),
].filter((p) => !only || (only === 'vmlinux') === p.header);

/** User + system time (s) of this process's waited-for children so far (/proc/self/stat cutime + cstime). */
function childCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / TICK;
}

async function run(cmd: string, args: string[], env: Record<string, string>, cwd = repo): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '', stderr = '';
  const code = await new Promise<number>((done, fail) => {
    const p = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('error', fail);
    p.on('close', (c) => done(c ?? 1));
  });
  return { code, stdout, stderr };
}

interface ServerInfo { running: boolean; cpuSec?: number; ready?: number; pid?: number }
/** The compile server of `cache` (not timed: called between builds). */
async function server(cache: string): Promise<ServerInfo> {
  const r = await run('node', [k2, 'server', 'status', '--json'], { K2_CACHE_DIR: cache });
  return JSON.parse(r.stdout) as ServerInfo;
}
const stopServer = (cache: string) => run('node', [k2, 'server', 'stop'], { K2_CACHE_DIR: cache });

interface Measure { wall: number; cpu: number; serverCpu: number; report?: string }

/** Runs a build and measures it; `cache` names the compile server whose CPU counts too. */
async function timed(cmd: string, args: string[], env: Record<string, string>, cache: string | null, cwd = repo): Promise<Measure> {
  const before = cache ? await server(cache) : null;
  const cpu0 = childCpu();
  const t0 = performance.now();
  const r = await run(cmd, args, env, cwd);
  const wall = (performance.now() - t0) / 1000;
  const cpu = childCpu() - cpu0;
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  const after = cache ? await server(cache) : null;
  // a server that was not running before started during this build: all its CPU counts
  const serverCpu = after?.running ? (after.cpuSec ?? 0) - (before?.running && before.pid === after.pid ? before.cpuSec ?? 0 : 0) : 0;
  return { wall, cpu, serverCpu };
}

/** Removes the objects of BUILD (keeping vmlinux.h) and runs make -jJ with CLANG. */
async function make(p: Project, clang: string, build: string, env: Record<string, string>, cache: string | null, targets: string[] = []): Promise<Measure> {
  mkdirSync(build, { recursive: true });
  if (p.header && !existsSync(join(build, 'vmlinux.h'))) {
    const r = await run('make', ['-s', '-C', p.dir, `BUILD=${build}`, join(build, 'vmlinux.h')], {});
    if (r.code !== 0) throw new Error(`cannot generate vmlinux.h: ${r.stderr}`);
  }
  for (const f of readdirSync(build)) if (f.endsWith('.o')) rmSync(join(build, f));
  return timed('make', ['-s', `-j${jobs}`, '-C', p.dir, `CLANG=${clang}`, `BUILD=${build}`, ...targets.map((t) => join(build, t))], env, cache);
}

interface Report { objects: { slotsBefore: number; slotsAfter: number; cache: string; status: string; via?: string }[] }
interface Row { name: string; wall: number[]; cpu: number[]; serverCpu: number[]; slotsBefore: number | null; slotsAfter: number | null; hits: string; via: string }

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const total = (r: Row): number[] => r.cpu.map((c, k) => c + r.serverCpu[k]!);

async function scenario(name: string, n: number, go: (k: number) => Promise<Measure>): Promise<Row> {
  const row: Row = { name, wall: [], cpu: [], serverCpu: [], slotsBefore: null, slotsAfter: null, hits: '', via: '' };
  for (let k = 0; k < n; k++) {
    const r = await go(k);
    row.wall.push(r.wall);
    row.cpu.push(r.cpu);
    row.serverCpu.push(r.serverCpu);
    if (r.report && existsSync(r.report)) {
      const rep = JSON.parse(readFileSync(r.report, 'utf8')) as Report;
      row.slotsBefore = rep.objects.reduce((s, o) => s + o.slotsBefore, 0);
      row.slotsAfter = rep.objects.reduce((s, o) => s + o.slotsAfter, 0);
      row.hits = `${rep.objects.filter((o) => o.cache === 'hit').length}/${rep.objects.length}`;
      const server = rep.objects.filter((o) => o.via === 'server').length;
      row.via = server === rep.objects.length ? 'server' : server === 0 ? 'in-process' : `${server}/${rep.objects.length} server`;
    }
    process.stderr.write(`  ${name} run ${k + 1}: ${r.wall.toFixed(2)} s wall, ${r.cpu.toFixed(2)} s CPU + ${r.serverCpu.toFixed(2)} s server\n`);
  }
  return row;
}

let serial = 0;
const freshCache = (): string => join(tmp, `cache-${serial++}`);
const reportFile = (): string => join(tmp, `report-${serial++}.json`);
const usedCaches: string[] = [];
const track = (c: string): string => { usedCaches.push(c); return c; };

interface ProjectResult { p: Project; rows: Row[]; three: Row[] }

async function benchProject(p: Project): Promise<ProjectResult> {
  process.stderr.write(`${p.name}: ${p.objects.length} objects, make -j${jobs}, ${runs} run(s) each\n`);
  const b = (tag: string): string => join(tmp, `${p.header ? 'v' : 'u'}-${tag}`);
  const rows: Row[] = [];
  const k2run = async (tag: string, env: Record<string, string>, cache: string, targets: string[] = []): Promise<Measure> => {
    const rep = reportFile();
    return { ...(await make(p, k2clang, b(tag), { K2_CACHE_DIR: cache, K2_REPORT: rep, ...env }, env.K2_SERVER === '0' ? null : cache, targets)), report: rep };
  };

  rows.push(await scenario('plain clang', runs, () => make(p, 'clang', b('plain'), {}, null)));
  for (const effort of thorough ? ['build', 'thorough'] : ['build']) {
    let cache = '';
    rows.push(await scenario(`k2-clang cold, effort ${effort}`, effort === 'build' ? runs : 1, async () => {
      if (cache) await stopServer(cache);
      cache = track(freshCache());
      return k2run(`cold-${effort}`, { K2_EFFORT: effort }, cache);
    }));
    rows.push(await scenario(`k2-clang cached, effort ${effort}, server running`, runs, () => k2run(`cold-${effort}`, { K2_EFFORT: effort }, cache)));
    if (effort === 'build') {
      rows.push(await scenario('k2-clang cached, effort build, server not running', runs, async () => {
        await stopServer(cache);
        return k2run('cold-build', {}, cache);
      }));
    }
    await stopServer(cache);
  }
  rows.push(await scenario('k2-clang cold, effort build, K2_SERVER=0', 1, () => k2run('noserver', { K2_SERVER: '0' }, track(freshCache()))));

  // k2 build: one process compiling J at a time, objects to the server (a copy of the project, its own cache)
  const copy = join(tmp, `${p.header ? 'v' : 'u'}-project-copy`);
  cpSync(p.dir, copy, { recursive: true, filter: (s) => !/\/build/.test(s.slice(p.dir.length)) });
  writeFileSync(join(copy, 'package.json'), JSON.stringify({ name: 'bench-project', scripts: { build: 'k2 build' } }));
  const cflags = p.header ? ['-I.', `-I${join(copy, 'build-k2')}`] : [];
  writeFileSync(join(copy, 'k2.config.json'), JSON.stringify({ sources: ['*.bpf.c'], outDir: 'build-k2', cflags }));
  if (p.header) {
    const r = await run('make', ['-s', '-C', copy, 'BUILD=build-k2', 'build-k2/vmlinux.h'], {});
    if (r.code !== 0) throw new Error(`cannot generate vmlinux.h: ${r.stderr}`);
  }
  let kb = '';
  const k2build = async (): Promise<Measure> => {
    const rep = reportFile();
    return { ...(await timed('node', [k2, 'build', '--jobs', String(jobs), '--report', rep], { K2_CACHE_DIR: kb }, kb, copy)), report: rep };
  };
  rows.push(await scenario('k2 build cold, effort build', runs, async () => {
    if (kb) await stopServer(kb);
    kb = track(freshCache());
    return k2build();
  }));
  rows.push(await scenario('k2 build cached, server running', runs, k2build));
  await stopServer(kb);

  // the target: a cached rebuild of a 3-object project
  const three: Row[] = [];
  three.push(await scenario('3 objects: plain clang', runs, () => make(p, 'clang', b('three-plain'), {}, null, p.three)));
  const c3 = track(freshCache());
  await k2run('three', {}, c3, p.three); // fills the cache
  three.push(await scenario('3 objects: k2-clang cached, server running', runs, () => k2run('three', {}, c3, p.three)));
  three.push(await scenario('3 objects: k2-clang cached, server not running', runs, async () => {
    await stopServer(c3);
    return k2run('three', {}, c3, p.three);
  }));
  await stopServer(c3);
  return { p, rows, three };
}

/** Fixed costs: a k2-clang client process, a server start, and what an in-process fallback loads. */
async function fixedCosts(obj: string): Promise<string[]> {
  const dist = (m: string): string => JSON.stringify(join(k2home, 'dist', m));
  const costs: [string, string][] = [
    ['node start-up (node -e 0)', ''],
    ['+ k2-clang client modules (config, cache key, server client)', `await import(${dist('cli/cc.js')});`],
    ['in-process fallback: + Z3 initialised', `await import(${dist('cli/cc.js')}); await (await import(${dist('smt/index.js')})).warmUpSolver();`],
    ['in-process fallback: + kernel loader, one object verified', `await import(${dist('cli/cc.js')}); const k = await import(${dist('kernel/index.js')}); await k.bpfAvailable(); await k.verifyObject(${JSON.stringify(obj)});`],
    ['in-process fallback: + safety model and optimizer modules', `await import(${dist('cli/cc.js')}); await import(${dist('driver/optimize.js')});`],
  ];
  const rows: string[] = [];
  for (const [what, code] of costs) {
    const w: number[] = [], c: number[] = [];
    for (let k = 0; k < runs; k++) {
      const r = await timed('node', ['--input-type=module', '-e', `${code} process.exit(0);`], {}, null);
      w.push(r.wall);
      c.push(r.cpu);
    }
    rows.push(`| ${what} | ${median(w).toFixed(2)} | ${median(c).toFixed(2)} |`);
  }
  // a server start: main thread listening, one worker warmed up (modules, Z3, kernel loader)
  const w: number[] = [], c: number[] = [];
  for (let k = 0; k < runs; k++) {
    const cache = track(freshCache());
    const t0 = performance.now();
    await run('node', [k2, 'server', 'start'], { K2_CACHE_DIR: cache });
    let s = await server(cache);
    while (s.running && (s.ready ?? 0) < 1) {
      await new Promise((r) => setTimeout(r, 100));
      s = await server(cache);
    }
    w.push((performance.now() - t0) / 1000);
    c.push(s.cpuSec ?? 0);
    await stopServer(cache);
  }
  rows.push(`| compile server start (listening, one worker warmed up; once per build or per 10 idle minutes) | ${median(w).toFixed(2)} | ${median(c).toFixed(2)} |`);
  return rows;
}

function table(res: ProjectResult): string[] {
  const base = res.rows[0]!, base3 = res.three[0]!;
  const clangWall = median(base.wall), clangCpu = median(total(base));
  const wall3 = median(base3.wall), cpu3 = median(total(base3));
  const target3Wall = 1.5 * wall3 + 0.3 * res.p.three.length, target3Cpu = 1.5 * cpu3 + 0.3 * res.p.three.length;
  const verdict = (ok: boolean): string => (ok ? 'met' : '**not met**');
  const fmt = (r: Row, bw: number, bc: number, target: string): string => {
    const saved = r.slotsBefore && r.slotsAfter !== null ? `${r.slotsBefore} → ${r.slotsAfter} (−${((100 * (r.slotsBefore - r.slotsAfter)) / r.slotsBefore).toFixed(1)}%)` : '–';
    const t = median(total(r));
    return `| ${r.name} | ${median(r.wall).toFixed(2)} | ${median(r.cpu).toFixed(2)} | ${median(r.serverCpu).toFixed(2)} | ${t.toFixed(2)} | ${(median(r.wall) / bw).toFixed(1)}× | ${(t / bc).toFixed(1)}× | ${target} | ${saved} | ${r.hits || '–'} | ${r.via || '–'} |`;
  };
  const head = '| build | wall s | CPU s: make, clang, k2-clang | CPU s: server | CPU s: total | wall × clang | CPU × clang | target | slots (k2) | cache hits | optimized |\n|---|---|---|---|---|---|---|---|---|---|---|';
  const cold = res.rows.find((r) => r.name === 'k2-clang cold, effort build')!;
  const coldTarget = (r: Row): string => `≤ 3×: wall ${verdict(median(r.wall) <= 3 * clangWall)}, CPU ${verdict(median(total(r)) <= 3 * clangCpu)}`;
  const threeTarget = (r: Row): string => `≤ ${target3Wall.toFixed(2)} s wall: ${verdict(median(r.wall) <= target3Wall)}; ≤ ${target3Cpu.toFixed(2)} s CPU: ${verdict(median(total(r)) <= target3Cpu)}`;
  return [
    `**${res.p.name}**, ${res.p.objects.length} objects, \`make -j${jobs}\`, median of ${runs} run(s) (cold thorough and K2_SERVER=0: 1 run).`,
    '',
    head,
    ...res.rows.map((r) => fmt(r, clangWall, clangCpu, r === cold || r.name === 'k2 build cold, effort build' ? coldTarget(r) : '')),
    '',
    `Cached rebuild of 3 objects (${res.p.three.join(', ')}): target ≤ 1.5 × plain clang + 0.3 s per object.`,
    '',
    head,
    ...res.three.map((r) => fmt(r, wall3, cpu3, r === base3 ? '' : threeTarget(r))),
    '',
  ];
}

async function main(): Promise<void> {
  const results: ProjectResult[] = [];
  for (const p of PROJECTS) results.push(await benchProject(p));
  const obj = join(tmp, `${PROJECTS[0]!.header ? 'v' : 'u'}-plain`, PROJECTS[0]!.objects[0]!);
  const costRows = await fixedCosts(obj);
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const clangVersion = execFileSync('clang', ['--version'], { encoding: 'utf8' }).split('\n')[0]!;
  const lines = [
    `${cpus().length} × ${cpu}, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the end (the machine is shared), Linux ${release()}, Node ${process.version}, ${clangVersion}. CPU = user + system of make, clang, k2-clang and the compile server.`,
    '',
    ...results.flatMap(table),
    'Fixed costs (median, a fresh `node` each; CPU includes every thread):',
    '',
    '| what | wall s | CPU s |',
    '|---|---|---|',
    ...costRows,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  if (write) {
    const file = join(repo, 'notes/readme-build.md');
    const text = readFileSync(file, 'utf8');
    const begin = '<!-- bench:build begin -->', end = '<!-- bench:build end -->';
    const a = text.indexOf(begin), b = text.indexOf(end);
    if (a < 0 || b < a) throw new Error(`${file}: markers ${begin} … ${end} not found`);
    writeFileSync(file, `${text.slice(0, a + begin.length)}\n${lines.join('\n')}\n${text.slice(b)}`);
    process.stderr.write(`wrote the tables into ${file}\n`);
  }
}

try {
  mkdirSync(tmp, { recursive: true });
  await main();
} finally {
  for (const c of usedCaches) await stopServer(c).catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
}
