// A search worker (worker_threads): holds one structured clone of the object, runs section jobs
// from the pool in src/synth/parallel.ts one at a time, and releases its own Z3 instance on 'stop'.
import { parentPort, workerData } from 'node:worker_threads';
import type { BpfObject } from '../ir/index.js';
import { objectMaps, shutdownZ3, warmUpSolver } from '../smt/index.js';
import { solveWindow, type SolveOptions, type WindowJob } from './window.js';
import { openRewriteCache } from './cache.js';
import { searchSection, type FromWorker, type SectionJob } from './parallel.js';

const obj = (workerData as { obj: BpfObject }).obj;
const port = parentPort!;

type Message =
  | { type: 'job'; id: number; job: SectionJob }
  | { type: 'window'; id: number; job: WindowJob; seed: number; opts: SolveOptions; cacheDir: string | null }
  | { type: 'stop' };

let maps: ReturnType<typeof objectMaps> | null = null;

port.on('message', async (m: Message) => {
  if (m.type === 'window') {
    maps ??= objectMaps(obj);
    const opts: SolveOptions = m.cacheDir !== null ? { ...m.opts, cache: openRewriteCache(m.cacheDir) } : m.opts;
    const outcome = await solveWindow(m.job, { object: obj, maps }, opts, m.seed);
    port.postMessage({ type: 'window-result', id: m.id, outcome } satisfies FromWorker);
    return;
  }
  if (m.type === 'job') {
    const result = await searchSection(obj, m.job, (step) => port.postMessage({ type: 'step', id: m.id, step } satisfies FromWorker));
    port.postMessage({ type: 'result', id: m.id, result } satisfies FromWorker);
    return;
  }
  // Z3's own threads would keep this worker alive: end the thread once they are released
  await shutdownZ3();
  port.postMessage({ type: 'stopped' } satisfies FromWorker);
  process.exit(0);
});
// Z3 starts before the first job, so no search budget pays for it
await warmUpSolver();
port.postMessage({ type: 'ready' } satisfies FromWorker);
