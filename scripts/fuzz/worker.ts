// The persistent fuzz worker: a child process that runs many cases in-process through the CLI's own
// entry point (`main` from src/cli/main.ts, the function bin/k2.js calls), capturing stdout/stderr and
// the exit code. The parent times every case and watches this process's memory; a crash, hang or
// blow-up costs one restart, not one process per case.
import { main } from '../../src/cli/main.js';

export interface CaseRequest {
  id: number;
  argv: string[]; // arguments after `k2`
}

export interface CaseResult {
  id: number;
  exitCode: number;
  stderr: string;
  stdoutBytes: number;
  ms: number;
  maxRssKiB: number; // this worker's peak RSS so far (monotonic)
  uncaught?: string; // an exception or rejection that escaped the command
}

const send = (m: unknown): void => {
  process.send!(m);
};

let current: { id: number; stderr: string[]; t0: number } | null = null;
let stdoutBytes = 0;

const realStdout = process.stdout.write.bind(process.stdout);
const realStderr = process.stderr.write.bind(process.stderr);
void realStdout;
// Everything the command prints is captured (stdout only counted); the parent only sees results.
process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  stdoutBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
  const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
  if (cb) queueMicrotask(cb);
  return true;
}) as typeof process.stdout.write;
process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  const s = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
  if (current) {
    if (current.stderr.join('').length < 16384) current.stderr.push(s);
  } else realStderr(s);
  const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
  if (cb) queueMicrotask(cb);
  return true;
}) as typeof process.stderr.write;

// Anything escaping a command is a failure of the case running now; the worker cannot be trusted
// afterwards, so it reports and exits (the parent restarts it).
const escape = (kind: string) => (e: unknown): void => {
  const err = e as Error;
  const text = `${kind}: ${err?.stack ?? String(e)}`;
  send({ id: current?.id ?? -1, exitCode: -1, stderr: current?.stderr.join('') ?? '', stdoutBytes, ms: current ? Date.now() - current.t0 : 0, maxRssKiB: process.resourceUsage().maxRSS, uncaught: text } satisfies CaseResult);
  setTimeout(() => process.exit(99), 50);
};
process.on('uncaughtException', escape('uncaught exception'));
process.on('unhandledRejection', escape('unhandled rejection'));

process.on('message', async (m: CaseRequest) => {
  current = { id: m.id, stderr: [], t0: Date.now() };
  stdoutBytes = 0;
  process.exitCode = undefined;
  try {
    await main(['node', 'k2', ...m.argv]);
  } catch (e) {
    escape('thrown from main')(e);
    return;
  }
  const r: CaseResult = {
    id: m.id,
    exitCode: typeof process.exitCode === 'number' ? process.exitCode : Number(process.exitCode ?? 0),
    stderr: current.stderr.join(''),
    stdoutBytes,
    ms: Date.now() - current.t0,
    maxRssKiB: process.resourceUsage().maxRSS,
  };
  current = null;
  process.exitCode = undefined;
  send(r);
});

send({ ready: true });
