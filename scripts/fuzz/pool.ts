// Runs cases in one persistent worker process (scripts/fuzz/worker.ts) and judges them: the parent
// enforces the time limit and watches the worker's memory in /proc, restarting it after a crash, a
// hang, a memory blow-up, or every `restartEvery` cases (so one case's memory is not blamed on the
// caches of the thousand before it). Failures are then confirmed through the real CLI (`replayCli`).
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CaseResult } from './worker.js';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export type Verdict = 'ok' | 'internal' | 'stack' | 'uncaught' | 'signal' | 'timeout' | 'memory';

export interface Outcome {
  verdict: Verdict;
  exitCode: number | null;
  signal: string | null;
  stderr: string;
  ms: number;
  peakKiB: number; // peak RSS: the worker's VmHWM (an upper bound for the case) or the CLI's max RSS
}

export interface Limits {
  timeoutMs: number;
  memKiB: number; // peak RSS of the process
  hostMemKiB: number; // drop of the host's MemAvailable while a case runs (kernel memory: maps the loaders create)
}

export const DEFAULT_LIMITS: Limits = { timeoutMs: 30_000, memKiB: 1 << 20, hostMemKiB: 2 << 20 };

function memAvailableKiB(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Watches the host's available memory while a case runs: memory the kernel allocates for the process
 * (a map of 2^31 entries) is in no RSS. Other processes on a shared host move it too, so a failure
 * judged on it is only kept when the CLI replay shows it again.
 */
function hostMemoryWatch(): { poll: () => number; maxDropKiB: () => number } {
  const start = memAvailableKiB();
  let drop = 0;
  return {
    poll: () => (drop = Math.max(drop, start - memAvailableKiB())),
    maxDropKiB: () => drop,
  };
}

// A V8 stack frame ("    at fn (file:line:col)" or "    at file:line:col").
const STACK_FRAME = /^\s+at .*(:\d+:\d+\)?|\(native\)|<anonymous>)\s*$/m;

/** The verdict for a finished run from its exit code, stderr, time and memory. */
export function judge(exitCode: number | null, signal: string | null, stderr: string, ms: number, peakKiB: number, limits: Limits): Verdict {
  if (signal) return 'signal';
  if (ms > limits.timeoutMs) return 'timeout';
  if (peakKiB > limits.memKiB) return 'memory';
  if (exitCode === 70) return 'internal';
  if (STACK_FRAME.test(stderr)) return 'stack';
  if (exitCode === null || exitCode < 0 || exitCode > 7) return 'internal';
  return 'ok';
}

function procStatusKiB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export class WorkerPool {
  private child: ChildProcess | null = null;
  private ready: Promise<void> | null = null;
  private casesSinceStart = 0;
  private nextId = 1;
  restarts = 0;
  peakKiBMax = 0; // the highest worker VmHWM seen

  constructor(private readonly limits: Limits, private readonly restartEvery = 250, private readonly nice = 0) {}

  private start(): Promise<void> {
    const worker = join(repo, 'scripts/fuzz/worker.ts');
    // The worker runs k2's TypeScript sources through tsx, like the tests do.
    const child = fork(worker, [], { cwd: repo, execArgv: ['--import=tsx', '--max-old-space-size=1536'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, K2_DEBUG: '' } });
    if (this.nice && child.pid) spawn('renice', ['-n', String(this.nice), '-p', String(child.pid)], { stdio: 'ignore' });
    this.child = child;
    this.casesSinceStart = 0;
    this.ready = new Promise((res, rej) => {
      const onMsg = (m: { ready?: boolean }) => {
        if (m?.ready) {
          child.off('message', onMsg);
          res();
        }
      };
      child.on('message', onMsg);
      child.once('exit', (code, sig) => rej(new Error(`fuzz worker exited during start (${code ?? sig})`)));
    });
    return this.ready;
  }

  /** The tree may be mid-edit when a worker starts (it compiles src/ then): try again a few times. */
  private async startWithRetry(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.start();
      } catch (e) {
        this.child = null;
        this.ready = null;
        if (attempt >= 4) throw e;
        await new Promise((r) => setTimeout(r, 15_000 * attempt));
      }
    }
  }

  async stop(): Promise<void> {
    const c = this.child;
    this.child = null;
    this.ready = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((res) => {
      c.once('exit', () => res());
      c.kill('SIGKILL');
    });
  }

  /** Runs `k2 ARGV…` in the worker and judges it. */
  async run(argv: string[]): Promise<Outcome> {
    if (this.child && (this.casesSinceStart >= this.restartEvery || procStatusKiB(this.child.pid!, 'VmHWM') > this.limits.memKiB / 2)) await this.stop();
    if (!this.child) await this.startWithRetry();
    else await this.ready;
    this.casesSinceStart++;
    const child = this.child!;
    const pid = child.pid!;
    const id = this.nextId++;
    const t0 = Date.now();
    const result = await new Promise<{ r?: CaseResult; exit?: { code: number | null; signal: string | null }; timeout?: boolean; memory?: number; hostMemory?: number }>((res) => {
      let done = false;
      const finish = (v: Parameters<typeof res>[0]) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        child.off('message', onMsg);
        child.off('exit', onExit);
        res(v);
      };
      const onMsg = (m: CaseResult) => {
        if (m.id === id || m.id === -1) finish({ r: m });
      };
      const onExit = (code: number | null, signal: string | null) => finish({ exit: { code, signal } });
      const timer = setTimeout(() => finish({ timeout: true }), this.limits.timeoutMs);
      const host = hostMemoryWatch();
      const poll = setInterval(() => {
        const rss = procStatusKiB(pid, 'VmRSS');
        if (rss > this.limits.memKiB) finish({ memory: rss });
        else if (host.poll() > this.limits.hostMemKiB) finish({ hostMemory: host.maxDropKiB() });
      }, 50);
      child.on('message', onMsg);
      child.on('exit', onExit);
      child.send({ id, argv });
    });
    const ms = Date.now() - t0;
    const hwm = procStatusKiB(pid, 'VmHWM');
    this.peakKiBMax = Math.max(this.peakKiBMax, hwm, result.memory ?? 0);
    if (result.timeout || result.memory || result.hostMemory || result.exit || result.r?.uncaught) {
      // The worker is no longer trustworthy (or gone): replace it before the next case.
      if (result.r?.uncaught) await new Promise((r) => setTimeout(r, 100));
      await this.stop();
      this.restarts++;
    }
    if (result.timeout) return { verdict: 'timeout', exitCode: null, signal: null, stderr: '', ms, peakKiB: hwm };
    if (result.memory) return { verdict: 'memory', exitCode: null, signal: null, stderr: '', ms, peakKiB: result.memory };
    if (result.hostMemory) return { verdict: 'memory', exitCode: null, signal: null, stderr: `host MemAvailable dropped by ${Math.round(result.hostMemory / 1024)} MiB (kernel memory)`, ms, peakKiB: hwm };
    if (result.exit) return { verdict: result.exit.signal ? 'signal' : 'internal', exitCode: result.exit.code, signal: result.exit.signal, stderr: `worker exited (${result.exit.signal ?? result.exit.code})`, ms, peakKiB: hwm };
    const r = result.r!;
    if (r.uncaught) return { verdict: 'uncaught', exitCode: r.exitCode, signal: null, stderr: `${r.stderr}${r.uncaught}`, ms, peakKiB: hwm };
    return { verdict: judge(r.exitCode, null, r.stderr, ms, hwm, this.limits), exitCode: r.exitCode, signal: null, stderr: r.stderr, ms, peakKiB: hwm };
  }
}

/** Runs `node bin/k2.js ARGV…` under /usr/bin/time and judges it like a worker case. */
export function replayCli(argv: string[], limits: Limits): Promise<Outcome> {
  return new Promise((res) => {
    const t0 = Date.now();
    const child = spawn('/usr/bin/time', ['-f', '\n@@maxrss %M', process.execPath, join(repo, 'bin/k2.js'), ...argv], { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 65536) stderr += d.toString('utf8');
    });
    let timedOut = false;
    let hostDropKiB = 0;
    const host = hostMemoryWatch();
    const hostPoll = setInterval(() => {
      hostDropKiB = host.poll();
      if (hostDropKiB > limits.hostMemKiB) kill();
    }, 50);
    const kill = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, limits.timeoutMs + 5000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      clearInterval(hostPoll);
      const ms = Date.now() - t0;
      const m = /\n@@maxrss (\d+)\s*$/.exec(stderr);
      const peakKiB = m ? Number(m[1]) : 0;
      const text = m ? stderr.slice(0, m.index) : stderr;
      // /usr/bin/time reports a child killed by a signal as "Command terminated by signal N".
      const sig = /Command terminated by signal (\d+)/.exec(text);
      const clean = text.replace(/^Command (terminated by signal|exited with non-zero status).*\n?/m, '');
      if (timedOut) return res({ verdict: 'timeout', exitCode: null, signal: null, stderr: clean, ms, peakKiB });
      if (hostDropKiB > limits.hostMemKiB) return res({ verdict: 'memory', exitCode: null, signal: null, stderr: `host MemAvailable dropped by ${Math.round(hostDropKiB / 1024)} MiB (kernel memory)\n${clean}`, ms, peakKiB });
      const signal = sig ? `signal ${sig[1]}` : null;
      res({ verdict: judge(code, signal, clean, ms, peakKiB, limits), exitCode: code, signal, stderr: clean, ms, peakKiB });
    });
  });
}
