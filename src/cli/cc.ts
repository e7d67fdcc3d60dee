// `k2 cc ARGS…` / `k2-clang ARGS…`: a drop-in for `clang -target bpf`.
import type { Command } from 'commander';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifyClangArgs, runClang } from '../toolchain/index.js';
import { loadConfig, type K2Config } from '../config/index.js';
import type { ObjectResult } from '../cache/pipeline.js';
import { cacheRoot } from '../cache/store.js';
import { K2Error } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { writeReport, type ReportObject } from '../cache/report.js';
import { closeConnection, connectServer, optimizeOnServer, serverWanted, type Connection } from '../server/client.js';

/** Says what k2 did to one object, or null when there is nothing to say (nothing changed or reverted). */
export function describeResult(r: ObjectResult, name = r.output): string | null {
  if (r.status === 'failed') return null; // the warning said it
  const fallbacks = r.sections.filter((s) => s.status === 'fallback');
  if (r.slotsAfter === r.slotsBefore && fallbacks.length === 0 && r.status !== 'optimized') return null;
  const pct = r.slotsBefore ? (100 * (r.slotsAfter - r.slotsBefore)) / r.slotsBefore : 0;
  const sign = pct < 0 ? '−' : pct > 0 ? '+' : '';
  const verif = r.verification === 'kernel' ? 'kernel-verified' : r.verification === 'model' ? 'model-checked (the kernel did not check it here)' : 'nothing to verify';
  const parts = [`${name} ${r.slotsBefore} → ${r.slotsAfter} slots (${sign}${Math.abs(pct).toFixed(1)}%)`, `${(r.ms / 1000).toFixed(1)} s`, verif];
  for (const s of fallbacks) parts.push(`section ${s.name}: ${s.reason ?? 'some rewrites were refused'}`);
  if (r.repair?.rejected) parts.push(`repaired ${r.repair.repaired} of ${r.repair.rejected} program(s) the verifier rejected`);
  return `k2: ${parts.join(', ')}${r.cache === 'hit' ? ' [cache hit]' : ''}`;
}

/** Progress on a TTY for work that takes more than 2 s (one line, rewritten in place). */
export class Progress {
  private shown = false;
  private last = '';
  private readonly timer: NodeJS.Timeout | null;
  constructor(private readonly name: string, readonly enabled = process.stderr.isTTY === true) {
    this.timer = enabled ? setTimeout(() => this.show(), 2000) : null;
    this.timer?.unref();
  }
  update(msg: string): void {
    this.last = msg;
    if (this.shown) this.show();
  }
  private show(): void {
    this.shown = true;
    process.stderr.write(`\r\x1b[Kk2: ${this.name}: ${this.last || 'working'}…`);
  }
  done(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
  }
}

/**
 * The outermost make/ninja process this one runs under ("pid-starttime"), or null: a notice that
 * should appear once per build is printed once per such process.
 */
function buildSession(): string | null {
  let pid = process.ppid;
  let session: string | null = null;
  for (let depth = 0; depth < 64 && pid > 1; depth++) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      break;
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' '); // state ppid … (starttime is the 20th)
    if (['make', 'gmake', 'ninja', 'samu', 'remake'].includes(comm)) session = `${pid}-${fields[19]}`;
    pid = Number(fields[1]);
  }
  return session;
}

export const DWARF_NOTICE = 'k2: note: DWARF debug info (.debug_*) was dropped from objects whose code k2 changed (its code addresses would be stale); BTF and its line info, which libbpf and the verifier use, are kept';

/** Prints the DWARF notice unless another k2 process of this build already did. */
function dwarfNoticeOncePerBuild(): void {
  const session = buildSession();
  if (session) {
    try {
      closeSync(openSync(join(tmpdir(), `k2-dwarf-note-${process.getuid?.() ?? 0}-${session}`), 'wx'));
    } catch {
      return; // exists: already said in this build
    }
  }
  process.stderr.write(`${DWARF_NOTICE}\n`);
}

/** Splits k2's own options (`--k2-report=FILE`) from clang's arguments. */
export function k2Options(args: string[]): { clangArgs: string[]; report: string | null } {
  let report = process.env.K2_REPORT || null;
  const clangArgs: string[] = [];
  for (const a of args) {
    if (a.startsWith('--k2-report=')) report = a.slice('--k2-report='.length) || null;
    else clangArgs.push(a);
  }
  return { clangArgs, report };
}

export const toReportObject = (r: ObjectResult): ReportObject => ({ ...r });

/** User + system time (ms) of this process's children that ended and were waited for (/proc/self/stat: cutime + cstime, in USER_HZ = 100 ticks a second); null without /proc. */
export function childrenCpuMs(): number | null {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[13]) + Number(f[14]);
    return Number.isFinite(ticks) ? ticks * 10 : null;
  } catch {
    return null;
  }
}

/**
 * How long clang took to compile, as its CPU time: the build profile's search time follows it
 * (src/config/effort.ts), and CPU time does not grow with the machine's load as wall time does —
 * on a busy machine a wall-time budget would buy a search that costs more than clang itself.
 * Start it right before clang, stop it when clang has exited; it measures every child reaped in
 * between (k2-clang runs only clang), never more than the wall time, and at least one tick.
 */
export class ClangTimer {
  private readonly t0 = performance.now();
  private readonly cpu0 = childrenCpuMs();
  stop(): number {
    const wall = performance.now() - this.t0;
    const cpu1 = childrenCpuMs();
    if (this.cpu0 === null || cpu1 === null) return wall;
    return Math.min(wall, Math.max(10, cpu1 - this.cpu0));
  }
}

/** Why the server was not used, for K2_DEBUG=1 (otherwise a fallback looks exactly like K2_SERVER=0). */
function debugFallback(out: string, reason: string): void {
  if (process.env.K2_DEBUG) process.stderr.write(`k2: ${out}: optimized in this process (${reason})\n`);
}

export interface ObjectJob {
  file: string; // clang's object
  output: string; // what the user asked for ('-': standard output)
  source: string | null;
  display: string;
  write: string | ((bytes: Uint8Array) => void);
  progress: Progress;
  clangMs: number | null; // clang's CPU time for this object (ClangTimer), ms
}

/**
 * One clang object through k2: on the compile server when `conn` reaches one, else (or when the
 * server fails in any way) in this process, which gives the same output. Throws like processObject.
 */
export async function optimizeObjectFile(job: ObjectJob, config: K2Config, conn: Connection | null): Promise<ObjectResult> {
  const onProgress = (m: string): void => job.progress.update(m);
  if (conn) {
    const object = new Uint8Array(readFileSync(job.file));
    const a = await optimizeOnServer(conn, { cacheRoot: cacheRoot(), config, source: job.source, display: job.display, object, clangMs: job.clangMs }, {
      onProgress: job.progress.enabled ? onProgress : undefined, onWarning: (m) => process.stderr.write(`k2: warning: ${m}\n`), onStderr: (t) => process.stderr.write(t),
    });
    if (a.kind === 'refused') throw new K2Error('input', a.reason);
    if (a.kind === 'done') {
      if (typeof job.write === 'string') writeFileAtomic(job.write, a.object);
      else job.write(a.object);
      return { ...a.result, output: typeof job.write === 'string' ? job.write : '-', via: 'server' };
    }
    debugFallback(job.display, a.reason);
  }
  const { processObject } = await import('../cache/pipeline.js');
  const r = await processObject(job.file, { config, source: job.source, display: job.display, write: job.write, onProgress, clangMs: job.clangMs });
  return { ...r, via: 'process' };
}

/**
 * Runs clang with `args`; when they produce BPF object files, each goes through k2 (with the build
 * cache, on the compile server unless it is turned off). A failure there keeps clang's object
 * untouched and prints a warning: a build is never broken by k2. `-o -` compiles to a temporary
 * file, optimizes it and writes it to stdout. Returns the exit code.
 */
export async function cc(argv: string[]): Promise<number> {
  const { clangArgs, report } = k2Options(argv);
  const inv = classifyClangArgs(clangArgs);
  // the configuration is checked before clang runs: a broken one stops the build with its file and key
  const config: K2Config | null = inv.bpfObject ? loadConfig().config : null;
  if (!inv.bpfObject || !config) return runClang(clangArgs);
  const toStdout = inv.outputs[0] === '-';
  let args = clangArgs;
  let tmp: string | null = null;
  if (toStdout) {
    tmp = mkdtempSync(join(tmpdir(), 'k2-cc-'));
    const obj = join(tmp, 'out.o');
    args = clangArgs.flatMap((a, k) => (a === '-o-' ? ['-o', obj] : clangArgs[k - 1] === '-o' && a === '-' ? [obj] : [a]));
  }
  const clangTime = new ClangTimer();
  const clang = runClang(args); // (spawned before anything else: it is what the build waits for)
  // while clang runs: reach the compile server (starting it if needed, so it warms up meanwhile),
  // one connection per object; without a server, nothing is loaded before it is needed
  const conns: Promise<Connection>[] | null = serverWanted(config) ? inv.outputs.map(() => connectServer(cacheRoot())) : null;
  try {
    const code = await clang;
    // (one clang run for all its outputs: each object is counted an equal share)
    const clangMs = clangTime.stop() / Math.max(1, inv.outputs.length);
    if (code !== 0) {
      for (const c of conns ?? []) closeConnection(await c);
      return code;
    }
    const results: ObjectResult[] = [];
    for (let k = 0; k < inv.outputs.length; k++) {
      const out = inv.outputs[k]!;
      const file = toStdout ? join(tmp!, 'out.o') : out;
      const progress = new Progress(out, !config.quiet && process.stderr.isTTY === true);
      try {
        const r = await optimizeObjectFile({
          file, output: out, source: inv.inputs[k] ?? null, display: out, progress, clangMs,
          write: toStdout ? (bytes) => writeAll(1, bytes) : out,
        }, config, conns ? await conns[k]! : null);
        progress.done();
        results.push(r);
        const line = describeResult(r);
        if (line && !config.quiet) process.stderr.write(`${line}\n`);
        if (r.cacheNote && r.cache !== 'rejected' && process.env.K2_DEBUG) process.stderr.write(`k2: ${out}: ${r.cacheNote}\n`);
      } catch (e) {
        progress.done();
        const msg = e instanceof K2Error ? e.message : `internal error: ${(e as Error).message}`;
        process.stderr.write(`k2: warning: ${msg}; kept clang's output\n`);
        if (toStdout) writeAll(1, new Uint8Array(readFileSync(file)));
        results.push(failedResult(out, inv.inputs[k] ?? null, msg));
      }
    }
    // (k2 build runs k2-clang with K2_DWARF_NOTE=0 and says it once itself)
    if (results.some((r) => r.dwarfDropped) && !config.quiet && process.env.K2_DWARF_NOTE !== '0') dwarfNoticeOncePerBuild();
    if (report) {
      try {
        writeReport(report, results.map(toReportObject), { merge: true });
      } catch (e) {
        process.stderr.write(`k2: warning: cannot write the report ${report}: ${(e as Error).message}\n`);
      }
    }
    return 0;
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

export function failedResult(output: string, source: string | null, error: string): ObjectResult {
  return {
    output, source, status: 'failed', slotsBefore: 0, slotsAfter: 0, ms: 0, searchMs: 0, cache: 'off', cacheNote: null,
    verification: 'none', sections: [], dwarfDropped: false, error,
  };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length; ) {
    try {
      off += writeSync(fd, bytes, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

export const CC_HELP = `
Every argument goes to clang unchanged (set K2_CLANG to choose the clang binary). When they compile
to BPF object files (-target bpf / --target=bpf*, -c), each object is optimized by k2 after clang
succeeds; on any k2 failure clang's object is kept and a warning printed. Other invocations (-E, -S,
-emit-llvm, other targets, --version) are passed through with clang's exit code.

  -o -               optimized like any other output (compiled to a temporary file, then written to stdout)
  --k2-report=FILE   append a JSON report of each object to FILE (taken out before clang runs; also K2_REPORT=FILE)

One line per object on stderr when k2 changed or reverted something, e.g.
  k2: usdt.bpf.o 253 → 244 slots (−3.6%), 2.6 s, kernel-verified [cache hit]
Settings: k2.config.json / .k2rc* / package.json "k2" (see k2.config.example.json), and
  K2_EFFORT=build|thorough   search effort (default build: a cold build stays within a few times clang)
  K2_BUDGET_MS=N             search time per object
  K2_NO_CACHE=1              do not use the build cache (K2_CACHE_DIR, else $XDG_CACHE_HOME/k2, else ~/.cache/k2)
  K2_QUIET=1                 no per-object lines (warnings still print)
  K2_OPT=0                   relink only
  K2_SERVER=0                optimize in this process, not on the compile server ("server": false)
  K2_REPAIR=1                first repair programs the verifier rejects, then optimize ("repair": true)
The compile server (k2 server status|stop) starts on first use and keeps k2 loaded between
objects; it stops after 10 idle minutes. If it fails in any way, k2-clang optimizes in its own
process: the output is the same.
Exit codes: clang's own; 2 if the k2 configuration is invalid (checked before clang runs); 5 if clang is missing.`;

export function register(program: Command): void {
  program
    .command('cc')
    .description('drop-in for `clang -target bpf`: runs clang, then optimizes the BPF objects it writes')
    .argument('[clang-args...]', 'arguments passed to clang unchanged')
    .allowUnknownOption()
    .helpOption(false)
    .passThroughOptions()
    .addHelpText('after', CC_HELP)
    .action(async (clangArgs: string[]) => {
      try {
        process.exitCode = await cc(clangArgs);
      } catch (e) {
        process.stderr.write(`k2: ${(e as Error).message}\n`);
        process.exitCode = e instanceof K2Error ? e.exitCode : 70;
      }
    });
}
