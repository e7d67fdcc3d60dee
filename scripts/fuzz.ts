// `npm run fuzz -- [--cases N] [--seed S] [--cmd dis,relink,…]`: a mutation fuzzer for every k2
// command that reads an object. Seeds are fixtures/build/*.o and ../shared/corpus objects; each case
// is 1–4 mutations of one seed (scripts/fuzz/mutate.ts), run in a persistent worker through the CLI's
// own entry point. A failure is exit 70, a signal, a JS stack trace on stderr, more than 30 s, more
// than 1 GiB peak RSS, or the host's available memory dropping by more than 2 GiB (kernel memory: maps
// the loaders create); it is confirmed by replaying it through `node bin/k2.js` under /usr/bin/time,
// saved to .fuzz/failures/<cmd>-<hash>.o (+ .txt), and with --minimize shrunk while it still fails
// (crashes only: a timeout or memory failure is kept as found).
//
//   npm run fuzz -- --cases 10000 --seed 7 --cmd dis
//   npm run fuzz -- --replay .fuzz/failures/dis-0123abcd.o --cmd dis
//   npm run fuzz -- --minimize-file .fuzz/failures/dis-0123abcd.o --cmd dis
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ALL_COMMANDS, argvFor, availableCommands, type FuzzCommand } from './fuzz/commands.js';
import { minimize } from './fuzz/minimize.js';
import { mutate } from './fuzz/mutate.js';
import { DEFAULT_LIMITS, WorkerPool, replayCli, repo, type Limits, type Outcome, type Verdict } from './fuzz/pool.js';
import { Rng, caseSeed } from './fuzz/rng.js';

export interface CommandStats {
  cmd: FuzzCommand;
  cases: number;
  failures: number; // confirmed through the CLI
  unconfirmed: number; // failed in the worker, passed through the CLI (flaky or worker-state dependent)
  exitCodes: Record<string, number>;
  seconds: number;
  casesPerSecond: number;
  peakRssMiB: number; // the worker's highest VmHWM: an upper bound for every case of this command
  restarts: number;
  failureFiles: string[];
}

export interface FuzzOptions {
  cases: number | Partial<Record<FuzzCommand, number>>; // per command
  seed: number;
  commands: FuzzCommand[];
  seeds: string[];
  outDir: string;
  limits: Limits;
  minimize: boolean;
  confirm: boolean;
  firstCase: number;
  nice: number;
  log: (s: string) => void;
}

/** A 64-bit little-endian BPF ELF file (fixture sets also hold user-space objects). */
function isLittleEndianBpf(p: string): boolean {
  const h = readFileSync(p).subarray(0, 20);
  return h.length === 20 && h[0] === 0x7f && h[1] === 0x45 && h[4] === 2 && h[5] === 1 && h.readUInt16LE(18) === 247;
}

/** BPF objects under `paths` (files or directories, walked recursively) up to `maxBytes`, little-endian only. */
export function seedObjects(paths: string[], maxBytes: number): string[] {
  const out: string[] = [];
  const add = (p: string): void => {
    const st = statSync(p);
    if (st.isDirectory()) for (const f of readdirSync(p).sort()) add(join(p, f));
    else if (/\.(o|elf)$/.test(p) && st.size <= maxBytes && isLittleEndianBpf(p)) out.push(p);
  };
  for (const p of paths) if (existsSync(p)) add(p);
  return out;
}

/** Seed objects: fixtures/build/*.o and fixtures/<set>/build/*.o, then ../shared/corpus objects up to `maxBytes`. */
export function defaultSeeds(maxBytes: number): string[] {
  const fixtures = join(repo, 'fixtures');
  const sets = readdirSync(fixtures).sort().map((d) => join(fixtures, d, 'build')).filter((d) => existsSync(d));
  return seedObjects([join(fixtures, 'build'), ...sets, resolve(repo, '../shared/corpus')], maxBytes);
}

/** What a failure looks like without its numbers and paths, to group repeats of one bug. */
export function signature(o: Outcome): string {
  const line = o.stderr.split('\n').find((l) => /internal error|Error|at /.test(l)) ?? o.stderr.split('\n')[0] ?? '';
  return `${o.verdict}: ${line.replace(/^k2: /, '').replace(/^[^:]*\.(o|elf): /, '').replace(/\d+/g, 'N').slice(0, 160)}`;
}

const hashOf = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex').slice(0, 12);

export async function fuzz(o: FuzzOptions): Promise<CommandStats[]> {
  const work = join(o.outDir, `work-${process.pid}`);
  const failDir = join(o.outDir, 'failures');
  mkdirSync(work, { recursive: true });
  mkdirSync(failDir, { recursive: true });
  const seedBytes = o.seeds.map((p) => readFileSync(p));
  const stats: CommandStats[] = [];
  const pool = new WorkerPool(o.limits, 250, o.nice);
  try {
    for (const cmd of o.commands) {
      const st: CommandStats = { cmd, cases: 0, failures: 0, unconfirmed: 0, exitCodes: {}, seconds: 0, casesPerSecond: 0, peakRssMiB: 0, restarts: 0, failureFiles: [] };
      const seen = new Set<string>();
      pool.peakKiBMax = 0;
      const restarts0 = pool.restarts;
      const t0 = Date.now();
      const cases = typeof o.cases === 'number' ? o.cases : o.cases[cmd] ?? 0;
      for (let i = o.firstCase; i < o.firstCase + cases; i++) {
        const cs = caseSeed(o.seed ^ hashCmd(cmd), i);
        const si = new Rng(cs).below(seedBytes.length);
        const m = mutate(seedBytes[si]!, cs);
        const input = join(work, 'case.o');
        writeFileSync(input, m.bytes);
        const argv = argvFor(cmd, input, o.seeds[si]!, work);
        const out = await pool.run(argv);
        st.cases++;
        const code = out.verdict === 'ok' ? String(out.exitCode) : out.verdict;
        st.exitCodes[code] = (st.exitCodes[code] ?? 0) + 1;
        if (out.verdict !== 'ok') {
          const sig = signature(out);
          const saved = await recordFailure(o, pool, cmd, m.bytes, o.seeds[si]!, m.steps, cs, out, failDir, work, !seen.has(sig));
          seen.add(sig);
          if (saved.confirmed) {
            st.failures++;
            st.failureFiles.push(saved.path);
          } else st.unconfirmed++;
          o.log(`${cmd} case ${i}: ${saved.confirmed ? 'FAIL' : 'unconfirmed'} ${sig} -> ${relative(repo, saved.path)}`);
        }
        if ((i - o.firstCase + 1) % 500 === 0) o.log(`${cmd}: ${i - o.firstCase + 1}/${cases} cases, ${st.failures} failures, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      }
      st.seconds = (Date.now() - t0) / 1000;
      st.casesPerSecond = st.cases / Math.max(st.seconds, 1e-3);
      st.peakRssMiB = Math.round(pool.peakKiBMax / 1024);
      st.restarts = pool.restarts - restarts0;
      stats.push(st);
      o.log(`${cmd}: ${st.cases} cases, ${st.failures} failures (${st.unconfirmed} unconfirmed), ${st.casesPerSecond.toFixed(1)} cases/s, peak RSS ${st.peakRssMiB} MiB, exit codes ${JSON.stringify(st.exitCodes)}`);
    }
  } finally {
    await pool.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return stats;
}

const hashCmd = (cmd: string): number => [...cmd].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0, 0x811c9dc5);

async function recordFailure(
  o: FuzzOptions, pool: WorkerPool, cmd: FuzzCommand, bytes: Uint8Array, seed: string, steps: string[], cs: number,
  out: Outcome, failDir: string, work: string, firstOfKind: boolean,
): Promise<{ path: string; confirmed: boolean }> {
  const path = join(failDir, `${cmd}-${hashOf(bytes)}.o`);
  writeFileSync(path, bytes);
  let cli: Outcome | null = null;
  if (o.confirm) cli = await replayCli(argvFor(cmd, path, seed, work), o.limits);
  const confirmed = !o.confirm || cli!.verdict !== 'ok';
  let minimized: string | null = null;
  // A timeout or memory failure is not shrunk: each try could take the whole time limit (1,500 × 30 s).
  const slow = out.verdict === 'timeout' || out.verdict === 'memory';
  if (confirmed && o.minimize && firstOfKind && !slow) {
    const sig = signature(out);
    const input = join(work, 'min.o');
    const r = await minimize(bytes, async (b) => {
      writeFileSync(input, b);
      return signature(await pool.run(argvFor(cmd, input, seed, work))) === sig;
    });
    minimized = join(failDir, `${cmd}-${hashOf(bytes)}.min.o`);
    writeFileSync(minimized, r.bytes);
  }
  const text = [
    `command: k2 ${argvFor(cmd, path, seed, '<tmp>').join(' ')}`,
    `seed object: ${relative(repo, seed)}`,
    `case seed: ${cs}`,
    `mutations:\n${steps.map((s) => `  ${s}`).join('\n')}`,
    `worker: ${out.verdict}, exit ${out.exitCode ?? out.signal}, ${out.ms} ms, worker peak RSS ${Math.round(out.peakKiB / 1024)} MiB`,
    `worker stderr:\n${out.stderr.trimEnd()}`,
    cli ? `CLI replay: ${cli.verdict}, exit ${cli.exitCode ?? cli.signal}, ${cli.ms} ms, peak RSS ${Math.round(cli.peakKiB / 1024)} MiB\nCLI stderr:\n${cli.stderr.trimEnd()}` : 'CLI replay: not run',
    minimized ? `minimized: ${relative(repo, minimized)}` : confirmed && o.minimize && slow ? 'not minimized (a timeout or memory failure: each try could take the whole limit)' : '',
  ].join('\n');
  writeFileSync(path.replace(/\.o$/, '.txt'), text + '\n');
  return { path, confirmed };
}

function usage(code = 2): never {
  process.stderr.write(`usage: npm run fuzz -- [--cases N] [--seed S] [--cmd ${ALL_COMMANDS.join(',')}] [--seeds FILE|DIR,...]
       [--max-seed-kb 64] [--first-case K] [--timeout-ms 30000] [--mem-mib 1024] [--host-mem-mib 2048] [--minimize] [--no-confirm]
       [--nice N] [--out .fuzz] [--json]
       npm run fuzz -- --replay FILE --cmd C [--seed-object OBJ]      (run one saved case through the CLI)
       npm run fuzz -- --minimize-file FILE --cmd C [--seed-object OBJ] (shrink a failing case)
Exit: 0 no failures, 1 failures found, 2 bad usage.
`);
  process.exit(code);
}

async function cli(): Promise<number> {
  let a;
  try {
    a = parseArgs({
      options: {
        cases: { type: 'string', default: '300' },
        seed: { type: 'string', default: '1' },
        cmd: { type: 'string' },
        seeds: { type: 'string' },
        'max-seed-kb': { type: 'string', default: '64' },
        'first-case': { type: 'string', default: '0' },
        'timeout-ms': { type: 'string', default: String(DEFAULT_LIMITS.timeoutMs) },
        'mem-mib': { type: 'string', default: String(DEFAULT_LIMITS.memKiB / 1024) },
        'host-mem-mib': { type: 'string', default: String(DEFAULT_LIMITS.hostMemKiB / 1024) },
        minimize: { type: 'boolean', default: false },
        'no-confirm': { type: 'boolean', default: false },
        nice: { type: 'string', default: '0' },
        out: { type: 'string', default: join(repo, '.fuzz') },
        json: { type: 'boolean', default: false },
        replay: { type: 'string' },
        'minimize-file': { type: 'string' },
        'seed-object': { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`fuzz: ${(e as Error).message}\n`);
    usage();
  }
  if (a.help) usage(0);
  const num = (k: keyof typeof a): number => {
    const n = Number(a[k]);
    if (!Number.isInteger(n) || n < 0) {
      process.stderr.write(`fuzz: --${k} must be a non-negative integer\n`);
      usage();
    }
    return n;
  };
  const limits: Limits = { timeoutMs: num('timeout-ms'), memKiB: num('mem-mib') * 1024, hostMemKiB: num('host-mem-mib') * 1024 };
  const available = availableCommands();
  const commands = (a.cmd ? a.cmd.split(',') : available) as FuzzCommand[];
  for (const c of commands) {
    if (!ALL_COMMANDS.includes(c)) {
      process.stderr.write(`fuzz: unknown command ${c} (known: ${ALL_COMMANDS.join(', ')})\n`);
      usage();
    }
    if (!available.includes(c)) process.stderr.write(`fuzz: warning: \`k2 ${c} --help\` does not work in this build\n`);
  }
  const log = (s: string): void => {
    process.stderr.write(`${s}\n`);
  };
  warnStaleBuild(log);

  const one = a.replay ?? a['minimize-file'];
  if (one) {
    if (commands.length !== 1) usage();
    const cmd = commands[0]!;
    const work = join(a.out, `work-${process.pid}`);
    mkdirSync(work, { recursive: true });
    const seedObj = a['seed-object'] ?? join(repo, 'fixtures/build/xdp_parser.o');
    try {
      if (a.replay) {
        const r = await replayCli(argvFor(cmd, resolve(one), seedObj, work), limits);
        log(`${cmd} ${one}: ${r.verdict}, exit ${r.exitCode ?? r.signal}, ${r.ms} ms, peak RSS ${Math.round(r.peakKiB / 1024)} MiB\n${r.stderr.trimEnd()}`);
        return r.verdict === 'ok' ? 0 : 1;
      }
      const pool = new WorkerPool(limits);
      try {
        const bytes = readFileSync(one);
        const input = join(work, 'min.o');
        writeFileSync(input, bytes);
        const first = await pool.run(argvFor(cmd, input, seedObj, work));
        if (first.verdict === 'ok') {
          log(`${one} does not fail ${cmd} (exit ${first.exitCode})`);
          return 1;
        }
        const sig = signature(first);
        const r = await minimize(bytes, async (b) => {
          writeFileSync(input, b);
          return signature(await pool.run(argvFor(cmd, input, seedObj, work))) === sig;
        });
        const dest = one.replace(/(\.min)?\.o$/, '') + '.min.o';
        writeFileSync(dest, r.bytes);
        log(`${sig}\nminimized ${bytes.length} -> ${r.bytes.length} bytes (${r.bytes.filter((x) => x !== 0).length} non-zero) in ${r.tries} runs: ${dest}`);
        return 0;
      } finally {
        await pool.stop();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }

  const seeds = a.seeds ? seedObjects(a.seeds.split(','), num('max-seed-kb') * 1024) : defaultSeeds(num('max-seed-kb') * 1024);
  if (!seeds.length) {
    process.stderr.write('fuzz: no seed objects (run `make -C fixtures`; the corpus is expected at ../shared/corpus)\n');
    return 2;
  }
  log(`fuzz: ${seeds.length} seeds, ${num('cases')} cases per command (${commands.join(', ')}), seed ${num('seed')}`);
  const stats = await fuzz({
    cases: num('cases'), seed: num('seed'), commands, seeds, outDir: a.out, limits, minimize: a.minimize, confirm: !a['no-confirm'],
    firstCase: num('first-case'), nice: num('nice'), log,
  });
  if (a.json) process.stdout.write(JSON.stringify({ seed: num('seed'), firstCase: num('first-case'), seeds: seeds.length, stats }, null, 2) + '\n');
  else {
    process.stdout.write('command  cases  failures  unconfirmed  cases/s  peak RSS MiB  exit codes\n');
    for (const s of stats) process.stdout.write(`${s.cmd.padEnd(7)}  ${String(s.cases).padStart(5)}  ${String(s.failures).padStart(8)}  ${String(s.unconfirmed).padStart(11)}  ${s.casesPerSecond.toFixed(1).padStart(7)}  ${String(s.peakRssMiB).padStart(12)}  ${JSON.stringify(s.exitCodes)}\n`);
  }
  return stats.some((s) => s.failures > 0) ? 1 : 0;
}

/** Replays run bin/k2.js, i.e. dist/: say so when src/ has changed since the last build. */
function warnStaleBuild(log: (s: string) => void): void {
  const newest = (d: string): number => {
    let t = 0;
    if (!existsSync(d)) return 0;
    for (const f of readdirSync(d, { recursive: true }) as string[]) t = Math.max(t, statSync(join(d, f)).mtimeMs);
    return t;
  };
  if (newest(join(repo, 'src')) > newest(join(repo, 'dist'))) log('fuzz: warning: src/ is newer than dist/ (CLI replays use dist/; run `npm run build`)');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  cli().then((code) => process.exit(code), (e) => {
    process.stderr.write(`fuzz: ${(e as Error).stack}\n`);
    process.exit(70);
  });
}
