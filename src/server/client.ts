// The compile server's client side, used by k2-clang / k2 cc and k2 build: find or start the
// server for this k2 build and cache, send it clang's object, get the optimized object and its
// result back. Loads no optimizer, solver or kernel module. Every failure (the server cannot
// start, dies, says nothing for too long, is another version, refuses the request) is answered
// with `{ fallback: reason }`, and the caller optimizes in its own process instead: the output is
// the same, only slower.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { K2Config } from '../config/schema.js';
import type { ObjectResult } from '../cache/pipeline.js';
import { k2BuildId } from '../cache/key.js';
import { encodeMessage, MessageReader, PROTOCOL, type Request, type Response, type ServerStatus } from './protocol.js';
import { privateDir, serverPlace, type ServerPlace } from './paths.js';

/** How long a client waits for a server it started to listen (a loaded machine starts Node slowly). */
const START_WAIT_MS = 20_000;
/** A server that sends nothing (not even its every-2-s "alive") for this long is given up on (K2_SERVER_SILENCE_MS for tests). */
const SILENCE_MS = Number(process.env.K2_SERVER_SILENCE_MS) || 60_000;
/** An object that runs longer than this on the server is given up on (the server stops its worker too). */
export const RUN_LIMIT_MS = 15 * 60_000;
/** A start-up mark younger than this means another client is starting the server: wait for it. */
const SPAWN_MARK_MS = 20_000;

export type ServerAnswer =
  | { kind: 'done'; result: ObjectResult; object: Uint8Array }
  | { kind: 'refused'; reason: string } // the pipeline refused the object: keep clang's output, as in-process
  | { kind: 'fallback'; reason: string }; // optimize in this process

export interface ServerHooks {
  onProgress?: (msg: string) => void;
  onWarning?: (msg: string) => void;
  onStderr?: (text: string) => void;
}

/** Is the compile server wanted? `"server": false` / K2_SERVER=0 (applied by loadConfig) turn it off; so does relinking only. */
export const serverWanted = (config: Pick<K2Config, 'server' | 'optimize'>): boolean => config.server && config.optimize;

/** The place of the server for `cacheRoot` and this k2 build (plus the kernel-loader choice it inherits). */
export function placeFor(cacheRoot: string): ServerPlace {
  const loader = [process.env.K2_LIBBPF ?? '', process.env.K2_BPFTOOL ?? ''].join('\0');
  return serverPlace(cacheRoot, loader === '\0' ? k2BuildId() : `${k2BuildId()}\0${loader}`);
}

function connect(path: string): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', () => {
      s.destroy();
      resolve(null);
    });
  });
}

const MAIN = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './main.ts' : './main.js', import.meta.url));

/**
 * Starts a server for `place` unless another client is starting one right now (the start-up mark,
 * which holds the new server's pid). Never throws.
 */
export function startServer(place: ServerPlace, cacheRoot: string, opts: { idleMs?: number; workers?: number; buildId?: string } = {}): void {
  let mark: number;
  try {
    try {
      mark = openSync(place.spawnMark, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return;
      if (Date.now() - statSync(place.spawnMark).mtimeMs < SPAWN_MARK_MS) return; // someone is starting it
      unlinkSync(place.spawnMark);
      mark = openSync(place.spawnMark, 'wx', 0o600);
    }
  } catch {
    return; // another client won the race to start it
  }
  try {
    const logFd = openSync(place.socket.replace(/\.sock$/, '.log'), 'a', 0o600);
    const idle = opts.idleMs ?? (Number(process.env.K2_SERVER_IDLE_MS) || undefined);
    const workers = opts.workers ?? (Number(process.env.K2_SERVER_WORKERS) || undefined);
    const args = [
      ...(MAIN.endsWith('.ts') ? ['--import=tsx'] : []), MAIN, '--socket', place.socket, '--lock', place.lock,
      '--cache-root', cacheRoot, '--build-id', opts.buildId ?? k2BuildId(), '--spawn-mark', place.spawnMark,
      ...(idle ? ['--idle-ms', String(idle)] : []), ...(workers ? ['--workers', String(workers)] : []),
    ];
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'ignore', logFd], cwd: '/', env: process.env });
    child.on('error', () => {});
    child.unref();
    closeSync(logFd);
    writeSync(mark, String(child.pid ?? ''));
    closeSync(mark);
  } catch (e) {
    if (process.env.K2_DEBUG) process.stderr.write(`k2: cannot start the compile server: ${(e as Error).message}\n`);
    try { closeSync(mark); } catch { /* closed */ }
    try { unlinkSync(place.spawnMark); } catch { /* gone */ }
  }
}

/** Is the server being started (per its start-up mark) already dead? */
function starterDied(place: ServerPlace): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(place.spawnMark, 'utf8'));
  } catch {
    return false; // no mark: started and listening by now, or being written
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export type Connection = { sock: net.Socket } | { fallback: string };

/**
 * Connects to the running server, starting it when there is none and `start` is set. k2-clang
 * calls this before clang runs, so a server that has to start warms up while clang compiles.
 */
export async function connectServer(cacheRoot: string, start = true): Promise<Connection> {
  try {
    const place = placeFor(cacheRoot);
    const bad = privateDir(place.dir);
    if (bad) return { fallback: bad };
    let sock = await connect(place.socket);
    if (sock) return { sock };
    if (!start) return { fallback: 'no server is running' };
    startServer(place, cacheRoot);
    const t0 = Date.now();
    for (let wait = 20; Date.now() - t0 < START_WAIT_MS; wait = Math.min(wait * 1.5, 250)) {
      await new Promise((r) => setTimeout(r, wait));
      sock = await connect(place.socket);
      if (sock) return { sock };
      if (starterDied(place)) return { fallback: `the server exited while starting (see ${place.socket.replace(/\.sock$/, '.log')})` };
    }
    return { fallback: `the server did not start within ${START_WAIT_MS / 1000} s` };
  } catch (e) {
    return { fallback: (e as Error).message };
  }
}

/** Closes a connection that will not be used (clang failed). */
export function closeConnection(c: Connection): void {
  if ('sock' in c) c.sock.destroy();
}

/** Sends one request and collects the answer messages until the final one. */
function exchange(sock: net.Socket, req: Request, onMessage: (m: Response) => boolean): Promise<string | null> {
  return new Promise((resolve) => {
    const reader = new MessageReader();
    let settled = false;
    let timer: NodeJS.Timeout;
    let limit: NodeJS.Timeout | null = null;
    const end = (why: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (limit) clearTimeout(limit);
      sock.destroy();
      resolve(why);
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => end(`the server said nothing for ${SILENCE_MS / 1000} s`), SILENCE_MS);
    };
    arm();
    sock.on('data', (chunk: Buffer) => {
      arm();
      let msgs: unknown[];
      try {
        msgs = reader.push(chunk);
      } catch (e) {
        return end(`bad message from the server: ${(e as Error).message}`);
      }
      for (const m of msgs) {
        if ((m as Response).type === 'started' && !limit) limit = setTimeout(() => end(`the object ran for more than ${RUN_LIMIT_MS / 60_000} minutes on the server`), RUN_LIMIT_MS);
        if (onMessage(m as Response)) return end(null);
      }
    });
    sock.on('error', (e) => end(`connection failed: ${e.message}`));
    sock.on('close', () => end('the server closed the connection before answering'));
    sock.write(encodeMessage(req));
  });
}

export interface ServerJob {
  cacheRoot: string;
  config: K2Config;
  source: string | null;
  display: string;
  object: Uint8Array;
  clangMs: number | null;
}

/** Optimizes clang's object on the compile server through `conn` (from connectServer; used once). */
export async function optimizeOnServer(conn: Connection, job: ServerJob, hooks: ServerHooks = {}): Promise<ServerAnswer> {
  if ('fallback' in conn) return { kind: 'fallback', reason: conn.fallback };
  const reached = conn;
  let answer: ServerAnswer | null = null;
  const req: Request = {
    type: 'optimize', protocol: PROTOCOL, k2: k2BuildId(), cacheRoot: job.cacheRoot, config: job.config, source: job.source,
    display: job.display, object: Buffer.from(job.object).toString('base64'), clangMs: job.clangMs, progress: !!hooks.onProgress,
  };
  const why = await exchange(reached.sock, req, (m) => {
    switch (m.type) {
      case 'progress': hooks.onProgress?.(m.msg); return false;
      case 'warning': hooks.onWarning?.(m.msg); return false;
      case 'stderr': hooks.onStderr?.(m.text); return false;
      case 'alive': case 'started': return false;
      case 'result':
        answer = { kind: 'done', result: m.result, object: new Uint8Array(Buffer.from(m.object, 'base64')) };
        return true;
      case 'error':
        answer = m.kind === 'refused' ? { kind: 'refused', reason: m.reason } : { kind: 'fallback', reason: `server: ${m.reason}` };
        return true;
      default:
        answer = { kind: 'fallback', reason: `unexpected answer ${(m as { type: string }).type}` };
        return true;
    }
  });
  return answer ?? { kind: 'fallback', reason: why ?? 'no answer' };
}

/** The running server's status, or null when none runs for this cache and k2 build. */
export async function serverStatus(cacheRoot: string): Promise<ServerStatus | null> {
  const r = await connectServer(cacheRoot, false);
  if ('fallback' in r) return null;
  let status: ServerStatus | null = null;
  await exchange(r.sock, { type: 'status', protocol: PROTOCOL }, (m) => {
    if (m.type === 'status') status = m.status;
    return true;
  });
  return status;
}

/** Asks the running server to stop; false when none was running. */
export async function stopServer(cacheRoot: string): Promise<boolean> {
  const r = await connectServer(cacheRoot, false);
  if ('fallback' in r) return false;
  let ok = false;
  await exchange(r.sock, { type: 'stop', protocol: PROTOCOL }, (m) => {
    ok = m.type === 'stopping';
    return true;
  });
  return ok;
}
