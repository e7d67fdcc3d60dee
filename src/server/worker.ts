// A compile-server worker thread: keeps the optimizer, the safety model, the kernel loader and Z3
// loaded and initialised once they were needed, and runs one object at a time through the build pipeline
// (src/cache/pipeline.ts), exactly as k2-clang would in its own process. What the optimizer writes
// to stderr while an object runs goes back to that object's client.
import { parentPort, workerData } from 'node:worker_threads';
import { processObjectBytes } from '../cache/pipeline.js';
import type { ObjectResult } from '../cache/pipeline.js';
import { K2Error } from '../util/errors.js';
import type { OptimizeRequest } from './protocol.js';

export type ToWorker = { type: 'job'; id: number; req: OptimizeRequest };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'progress'; id: number; msg: string }
  | { type: 'stderr'; id: number; text: string }
  | { type: 'warning'; id: number; msg: string }
  | { type: 'result'; id: number; result: ObjectResult; object: Uint8Array }
  /** k2Error: the pipeline refused the object (k2-clang keeps clang's output with this warning); else an internal failure. */
  | { type: 'failed'; id: number; reason: string; k2Error: boolean };

const port = parentPort!;
let current: number | null = null;

// stderr of the optimizer (k2: BUG: lines, debug output) belongs to the object being built
const write = process.stderr.write.bind(process.stderr);
process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
  if (current === null) return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  port.postMessage({ type: 'stderr', id: current, text: typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8') } satisfies FromWorker);
  const cb = rest.find((x) => typeof x === 'function') as (() => void) | undefined;
  cb?.();
  return true;
}) as typeof process.stderr.write;

async function run(id: number, req: OptimizeRequest): Promise<void> {
  current = id;
  // the client's cache (the proven-rewrite cache reads it from the environment; thread-local here)
  process.env.K2_CACHE_DIR = req.cacheRoot;
  let out: Uint8Array | null = null;
  try {
    const result = await processObjectBytes(new Uint8Array(Buffer.from(req.object, 'base64')), {
      config: req.config, source: req.source, display: req.display, clangMs: req.clangMs,
      write: (bytes) => { out = bytes; },
      onProgress: req.progress ? (msg) => port.postMessage({ type: 'progress', id, msg } satisfies FromWorker) : undefined,
      onWarning: (msg) => port.postMessage({ type: 'warning', id, msg } satisfies FromWorker),
    });
    if (!out) throw new Error('the pipeline wrote no object');
    port.postMessage({ type: 'result', id, result, object: out } satisfies FromWorker);
  } catch (e) {
    port.postMessage({ type: 'failed', id, reason: (e as Error).message, k2Error: e instanceof K2Error } satisfies FromWorker);
  } finally {
    current = null;
  }
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'job') void run(m.id, m.req);
});

// Load what every object needs (the pipeline, the kernel loader) before the first job arrives.
// The optimizer and Z3 load on the first object that needs them, once per worker: a build whose
// objects are all cache hits whose differences normal forms decide never pays for them. A server
// whose cache holds no result yet (`warm`, from main.ts) will optimize every object it gets, so
// there the worker loads them right away — while the client's clang still runs, not after it.
const kernel = await import('../kernel/index.js');
await kernel.bpfAvailable().catch(() => null);
if ((workerData as { warm?: boolean } | null)?.warm) {
  try {
    // (not Z3: the build profile never asks the solver; a thorough object starts it before its clock)
    await Promise.all([import('../smt/index.js'), import('../driver/optimize.js')]);
    (await import('../safety/kbtf.js')).vmlinux();
  } catch { /* the first object loads them again and reports what fails */ }
}
port.postMessage({ type: 'ready' } satisfies FromWorker);
