// The compile server (sccache-style): a background process that k2-clang and k2 build start on
// first use. It keeps the optimizer loaded and Z3 initialised in worker threads (src/server/
// worker.ts, started as objects arrive, up to one per core) and optimizes the objects clients
// send. Clients run clang themselves and write their outputs; the server only computes and
// answers, so a crash never leaves a half-written object (the client then optimizes in its own
// process). It holds an abstract-namespace lock (the kernel releases it when the process dies),
// so exactly one server owns a socket path and a crashed server's socket is replaced, never
// obeyed. It exits after `idleMs` without work, on `stop`, on SIGTERM/SIGINT, or when its socket
// or its cache directory disappears.
//
//   node dist/server/main.js --socket PATH --lock NAME --cache-root DIR --build-id ID [--idle-ms N] [--workers N]
import net from 'node:net';
import { chmodSync, mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { availableParallelism, freemem } from 'node:os';
import { Worker } from 'node:worker_threads';
import { encodeMessage, MessageReader, PROTOCOL, type OptimizeRequest, type Response, type ServerStatus } from './protocol.js';
import type { FromWorker, ToWorker } from './worker.js';
import { objectsDir } from '../cache/store.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const socketPath = arg('--socket');
const lockName = arg('--lock');
const cacheRoot = arg('--cache-root');
const buildId = arg('--build-id');
if (!socketPath || !lockName || !cacheRoot || !buildId) {
  process.stderr.write('usage: main.js --socket PATH --lock NAME --cache-root DIR --build-id ID [--idle-ms N] [--workers N] [--spawn-mark FILE]\n');
  process.exit(2);
}
const spawnMark = arg('--spawn-mark');
const idleMs = Math.max(1000, Number(arg('--idle-ms') ?? 600_000) || 600_000);
/** Workers: one per core, fewer when memory is short (a worker with Z3 and the kernel's BTF takes ~300 MB). */
const maxWorkers = Math.max(1, Number(arg('--workers')) || Math.min(availableParallelism(), 8, Math.floor(freemem() / (400 * 1024 * 1024))));
/** A queued object waits this long for a busy worker before another worker is started. */
const workerWaitMs = Math.max(0, Number(arg('--worker-wait-ms') ?? 3000));
/** A worker is replaced after this many objects (bounds what a long-lived Z3 instance accumulates). */
const JOBS_PER_WORKER = 200;
const ALIVE_MS = 2000;
/** An object may run this long (its client gives up then too: RUN_LIMIT_MS in client.ts). */
const JOB_LIMIT_MS = 15 * 60_000;
const WATCH_MS = 2000;
/** Test hooks: 'crash-on-request' kills the server (SIGKILL) when an object arrives; 'hang-on-request' never answers it. */
const testHook = process.env.K2_SERVER_TEST ?? '';

const log = (m: string): void => { process.stderr.write(`[${new Date().toISOString()}] k2 server ${process.pid}: ${m}\n`); };

interface Job {
  id: number;
  queuedAt: number;
  startedAt: number | null;
  req: OptimizeRequest;
  conn: net.Socket;
  alive: NodeJS.Timeout;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
  done: number;
}

const startedAt = new Date();
const slots: Slot[] = [];
const queue: Job[] = [];
let nextId = 1;
let served = 0;
let failed = 0;
let stopping = false;
let startFailures = 0; // workers in a row that ended before they were ready
let lastActivity = Date.now();

function send(conn: net.Socket, m: Response): void {
  if (conn.destroyed || !conn.writable) return;
  try {
    conn.write(encodeMessage(m));
  } catch { /* the client went away */ }
}

function finish(job: Job, m: Response, end = true): void {
  clearInterval(job.alive);
  send(job.conn, m);
  if (end) job.conn.end();
  lastActivity = Date.now();
}

/** No build result stored yet (a first build): every object will be optimized, none a cache hit. */
function cacheIsEmpty(): boolean {
  try {
    return readdirSync(objectsDir(cacheRoot!)).length === 0;
  } catch {
    return true; // no objects/ yet
  }
}

function startWorker(): Slot {
  const url = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);
  // under tsx (tests importing src/), a worker registers tsx before loading the TypeScript module
  const workerData = { warm: cacheIsEmpty() };
  const worker = url.pathname.endsWith('.ts')
    ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`, { eval: true, workerData })
    : new Worker(url, { workerData });
  const slot: Slot = { worker, ready: false, job: null, done: 0 };
  worker.on('message', (m: FromWorker) => onWorkerMessage(slot, m));
  const gone = (why: string): void => {
    const i = slots.indexOf(slot);
    if (i < 0) return dispatch(); // already replaced (recycled, or 'error' then 'exit')
    slots.splice(i, 1);
    // a worker that cannot even start will not start next time: hand every object back
    if (!slot.ready && !stopping && ++startFailures >= 3) {
      log(`workers fail to start (${why})`);
      return shutdown(`workers fail to start: ${why}`, 70);
    }
    if (slot.job) {
      failed++;
      log(`worker ended while optimizing ${slot.job.req.display}: ${why}`);
      finish(slot.job, { type: 'error', kind: 'failed', reason: `server worker ended: ${why}` });
      slot.job = null;
    }
    dispatch();
  };
  worker.on('error', (e) => gone(e.message));
  worker.on('exit', (code) => gone(`exit code ${code}`));
  slots.push(slot);
  return slot;
}

function onWorkerMessage(slot: Slot, m: FromWorker): void {
  if (m.type === 'ready') {
    slot.ready = true;
    startFailures = 0;
    dispatch();
    return;
  }
  const job = slot.job;
  if (!job || job.id !== m.id) return;
  switch (m.type) {
    case 'progress': send(job.conn, { type: 'progress', msg: m.msg }); return;
    case 'stderr': send(job.conn, { type: 'stderr', text: m.text }); return;
    case 'warning': send(job.conn, { type: 'warning', msg: m.msg }); return;
    case 'result':
      served++;
      finish(job, { type: 'result', result: m.result, object: Buffer.from(m.object).toString('base64') });
      break;
    case 'failed':
      if (m.k2Error) served++;
      else failed++;
      finish(job, { type: 'error', kind: m.k2Error ? 'refused' : 'failed', reason: m.reason });
      break;
  }
  slot.job = null;
  slot.done++;
  if (slot.done >= JOBS_PER_WORKER) {
    slots.splice(slots.indexOf(slot), 1);
    void slot.worker.terminate();
  }
  dispatch();
}

/**
 * Gives queued objects to ready workers. Another worker starts (up to one per core) only when an
 * object has waited `workerWaitMs`: warming a worker up costs about a second of CPU (modules, Z3,
 * the kernel's BTF), worth paying for a long queue (big builds, the thorough profile), not for a
 * few objects that one warm worker finishes sooner — on 2 cores busy with make -j2's clang
 * processes, a second worker for a 7-object build cost 1 s of CPU and saved no time.
 */
function dispatch(): void {
  if (stopping) return;
  for (const slot of slots) {
    if (!slot.ready || slot.job) continue;
    let job = queue.shift();
    while (job && job.conn.destroyed) job = queue.shift(); // its client went away before it started
    if (!job) break;
    slot.job = job;
    job.startedAt = Date.now();
    send(job.conn, { type: 'started' });
    slot.worker.postMessage({ type: 'job', id: job.id, req: job.req } satisfies ToWorker);
  }
  const starting = slots.filter((s) => !s.ready).length;
  const waited = queue.length ? Date.now() - queue[0]!.queuedAt : 0;
  if (queue.length > starting && slots.length < maxWorkers && (slots.length === 0 || (starting === 0 && waited >= workerWaitMs))) startWorker();
}

function status(): ServerStatus {
  const cpu = process.cpuUsage();
  return {
    pid: process.pid, k2: buildId!, protocol: PROTOCOL, socket: socketPath!, cacheRoot: cacheRoot!, startedAt: startedAt.toISOString(),
    uptimeSec: Math.round((Date.now() - startedAt.getTime()) / 1000), cpuSec: (cpu.user + cpu.system) / 1e6,
    workers: slots.length, ready: slots.filter((s) => s.ready).length, busy: slots.filter((s) => s.job).length, queued: queue.length, served, failed, idleShutdownSec: idleMs / 1000,
  };
}

function onRequest(conn: net.Socket, m: unknown): void {
  const req = m as { type?: unknown; protocol?: unknown };
  if (req.protocol !== PROTOCOL) {
    send(conn, { type: 'error', kind: 'version', reason: `server speaks protocol ${PROTOCOL}, client ${String(req.protocol)}` });
    conn.end();
    return;
  }
  if (req.type === 'status') {
    send(conn, { type: 'status', status: status() });
    conn.end();
    return;
  }
  if (req.type === 'stop') {
    send(conn, { type: 'stopping' });
    conn.end();
    shutdown('stop requested');
    return;
  }
  if (req.type !== 'optimize') {
    send(conn, { type: 'error', kind: 'bad-request', reason: `unknown request ${String(req.type)}` });
    conn.end();
    return;
  }
  const o = m as OptimizeRequest;
  if (o.k2 !== buildId) {
    send(conn, { type: 'error', kind: 'version', reason: `server is k2 build ${buildId}, client ${String(o.k2)}` });
    conn.end();
    return;
  }
  if (o.cacheRoot !== cacheRoot || typeof o.object !== 'string' || typeof o.config !== 'object' || o.config === null) {
    send(conn, { type: 'error', kind: 'bad-request', reason: 'malformed request or another cache root' });
    conn.end();
    return;
  }
  if (stopping) {
    send(conn, { type: 'error', kind: 'stopping', reason: 'the server is shutting down' });
    conn.end();
    return;
  }
  if (testHook === 'crash-on-request') process.kill(process.pid, 'SIGKILL');
  if (testHook === 'hang-on-request') return; // never answers, not even with "alive"
  lastActivity = Date.now(); // (status requests and idle connections do not keep the server alive)
  const job: Job = { id: nextId++, queuedAt: Date.now(), startedAt: null, req: o, conn, alive: setInterval(() => send(conn, { type: 'alive' }), ALIVE_MS) };
  queue.push(job);
  dispatch();
}

function onConnection(conn: net.Socket): void {
  const reader = new MessageReader();
  let got = false;
  conn.on('data', (chunk: Buffer) => {
    let msgs: unknown[];
    try {
      msgs = reader.push(chunk);
    } catch (e) {
      send(conn, { type: 'error', kind: 'bad-request', reason: (e as Error).message });
      conn.destroy();
      return;
    }
    for (const m of msgs) {
      if (got) continue; // one request per connection
      got = true;
      onRequest(conn, m);
    }
  });
  conn.on('error', () => conn.destroy());
}

let server: net.Server | null = null;
let lock: net.Server | null = null;

function shutdown(why: string, code = 0): void {
  if (stopping) return;
  stopping = true;
  log(`shutting down: ${why}`);
  for (const job of queue.splice(0)) finish(job, { type: 'error', kind: 'stopping', reason: 'the server is shutting down' });
  for (const s of slots) if (s.job) finish(s.job, { type: 'error', kind: 'stopping', reason: 'the server is shutting down' });
  server?.close();
  try {
    // ours: only the lock holder listens on this path
    unlinkSync(socketPath!);
  } catch { /* already gone */ }
  void Promise.allSettled(slots.map((s) => s.worker.terminate())).then(() => {
    lock?.close();
    process.exit(code);
  });
  setTimeout(() => process.exit(code), 3000).unref();
}

/** Inode of the socket file we listen on: a removed or replaced socket means nobody can reach us. */
let socketIno = 0;
function watch(): void {
  if (stopping) return;
  try {
    if (statSync(socketPath!).ino !== socketIno) return shutdown('socket replaced');
  } catch {
    return shutdown('socket removed');
  }
  try {
    statSync(cacheRoot!);
  } catch {
    return shutdown('cache directory removed');
  }
  // a worker stuck on one object (its client gave up after RUN_LIMIT_MS) is replaced
  for (const s of slots) {
    if (s.job?.startedAt && Date.now() - s.job.startedAt > JOB_LIMIT_MS) {
      log(`${s.job.req.display} ran for more than ${JOB_LIMIT_MS / 60_000} minutes: stopping its worker`);
      void s.worker.terminate(); // its 'exit' answers the client and removes the slot
    }
  }
  const busy = queue.length > 0 || slots.some((s) => s.job);
  if (!busy && Date.now() - lastActivity >= idleMs) shutdown(`idle for ${Math.round(idleMs / 1000)} s`);
}

const listen = (srv: net.Server, path: string): Promise<void> => new Promise((resolve, reject) => {
  srv.once('error', reject);
  srv.listen(path, () => {
    srv.off('error', reject);
    resolve();
  });
});

async function main(): Promise<void> {
  lock = net.createServer((c) => c.destroy());
  try {
    await listen(lock, `\0${lockName}`);
  } catch (e) {
    // another server owns this socket path: nothing to do
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') process.exit(0);
    throw e;
  }
  mkdirSync(cacheRoot!, { recursive: true });
  // a socket file left by a server that died: we hold the lock, so it is nobody's
  try { unlinkSync(socketPath!); } catch { /* none */ }
  const old = process.umask(0o077);
  server = net.createServer(onConnection);
  try {
    await listen(server, socketPath!);
  } finally {
    process.umask(old);
  }
  chmodSync(socketPath!, 0o600);
  socketIno = statSync(socketPath!).ino;
  if (spawnMark) try { unlinkSync(spawnMark); } catch { /* the client removed it */ }
  log(`listening on ${socketPath} (k2 ${buildId}, up to ${maxWorkers} worker(s), idle shutdown after ${idleMs / 1000} s)`);
  setInterval(watch, WATCH_MS).unref();
  setInterval(() => { if (queue.length) dispatch(); }, 250).unref();
  // one worker warms up right away: the first object usually follows within a second
  startWorker();
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {});
}

process.on('uncaughtException', (e) => {
  log(`internal error: ${e.stack ?? e.message}`);
  shutdown('internal error', 70);
});

await main();
