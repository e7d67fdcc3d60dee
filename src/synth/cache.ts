// Proven-rewrite cache (EPSO's rule cache): canonical window + precondition → the best rewrite
// proven for it, kept on disk across sections, objects and builds. The synthesizer computes the
// key (registers, offsets and immediates abstracted, the precondition included) and turns a
// cached canonical rewrite back into a concrete one; **every hit is re-proven on the concrete
// window before use**, so an entry — stale, corrupted or planted — can cost a query, never
// correctness. Here: the store. One JSON file per key under `<cache root>/rewrites/v1/`, written
// to a temporary file and renamed (atomic on POSIX), so concurrent writers (make -j, workers)
// never leave a torn entry; the last writer of a key wins, and a writer keeps an existing entry
// that is better (an equal one is replaced: the newer was just proven).
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { slotsOf, type Insn } from '../isa/index.js';
import { latencyCost } from './latency.js';
import { cacheRoot } from '../cache/store.js';

/** The store the synthesizer talks to (SynthOptions.cache). */
export interface RewriteCache {
  get(key: string): Insn[] | undefined;
  put(key: string, rewrite: Insn[]): void;
}

/** k2's cache directory ($K2_CACHE_DIR, else $XDG_CACHE_HOME/k2, else ~/.cache/k2): the build cache's rule. */
export const defaultCacheRoot = (env: NodeJS.ProcessEnv = process.env): string => cacheRoot(env);

export const REWRITES_VERSION = 'v1';
export const rewriteCacheDir = (root: string = defaultCacheRoot()): string => join(root, 'rewrites', REWRITES_VERSION);

export interface RewriteCacheStats {
  hits: number; // entries found (not yet re-proven: the synthesizer counts refusals)
  misses: number;
  puts: number; // entries written
  kept: number; // puts that found an entry at least as good already
  invalid: number; // unreadable, foreign-key or malformed entries ignored
  errors: number; // writes that failed (read-only disk...): the cache is best-effort
}

interface Entry {
  v: 1;
  key: string;
  rewrite: Insn[];
  slots: number;
  latencyNs: number;
}

const isInt = (x: unknown, lo: number, hi: number): x is number => typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;

/** A well-formed instruction, or null (a planted file must not crash the reader). */
function insnOf(x: unknown): Insn | null {
  if (!x || typeof x !== 'object') return null;
  const i = x as Record<string, unknown>;
  if (!isInt(i.code, 0, 255) || !isInt(i.dst, 0, 10) || !isInt(i.src, 0, 15) || !isInt(i.off, -32768, 32767) || !isInt(i.imm, -(2 ** 31), 2 ** 31 - 1)) return null;
  const out: Insn = { code: i.code, dst: i.dst, src: i.src, off: i.off, imm: i.imm };
  if (i.imm2 !== undefined) {
    if (!isInt(i.imm2, -(2 ** 31), 2 ** 31 - 1)) return null;
    out.imm2 = i.imm2;
  }
  return out;
}

const plain = (i: Insn): Insn => (i.imm2 === undefined ? { code: i.code, dst: i.dst, src: i.src, off: i.off, imm: i.imm } : { code: i.code, dst: i.dst, src: i.src, off: i.off, imm: i.imm, imm2: i.imm2 });
const slotsOfAll = (xs: readonly Insn[]): number => xs.reduce((n, i) => n + slotsOf(i), 0);

/** Is `a` a better rewrite than `b`? Fewer slots, then lower estimated latency. */
const better = (a: { slots: number; latencyNs: number }, b: { slots: number; latencyNs: number }): boolean =>
  a.slots < b.slots || (a.slots === b.slots && a.latencyNs < b.latencyNs - 1e-9);

export class DiskRewriteCache implements RewriteCache {
  readonly stats: RewriteCacheStats = { hits: 0, misses: 0, puts: 0, kept: 0, invalid: 0, errors: 0 };
  /** This process's view: entries read or written (undefined = looked up, none). */
  private readonly memo = new Map<string, Entry | undefined>();

  constructor(readonly dir: string = rewriteCacheDir()) {}

  /** The file of a key: sha256 of the key, fanned out over 256 directories. */
  fileOf(key: string): string {
    const h = createHash('sha256').update(key).digest('hex');
    return join(this.dir, h.slice(0, 2), `${h.slice(2)}.json`);
  }

  private read(key: string): Entry | undefined {
    if (this.memo.has(key)) return this.memo.get(key);
    let entry: Entry | undefined;
    let text: string | null = null;
    try {
      text = readFileSync(this.fileOf(key), 'utf8');
    } catch { /* no entry */ }
    if (text !== null) {
      try {
        const e = JSON.parse(text) as Partial<Entry>;
        const rewrite = Array.isArray(e.rewrite) ? e.rewrite.map(insnOf) : null;
        // the stored key must be this key: a hash collision or a file copied under another name is not a hit
        if (e.v === 1 && e.key === key && rewrite && rewrite.every((i): i is Insn => i !== null)) {
          entry = { v: 1, key, rewrite, slots: slotsOfAll(rewrite), latencyNs: latencyCost(rewrite) };
        } else this.stats.invalid++;
      } catch {
        this.stats.invalid++;
      }
    }
    this.memo.set(key, entry);
    return entry;
  }

  get(key: string): Insn[] | undefined {
    const e = this.read(key);
    if (e) this.stats.hits++;
    else this.stats.misses++;
    return e?.rewrite.map(plain);
  }

  put(key: string, rewrite: Insn[]): void {
    const next: Entry = { v: 1, key, rewrite: rewrite.map(plain), slots: slotsOfAll(rewrite), latencyNs: latencyCost(rewrite) };
    this.memo.delete(key); // another process may have written it meanwhile
    const old = this.read(key);
    if (old && better(old, next)) {
      this.stats.kept++;
      return;
    }
    const file = this.fileOf(key);
    const tmp = `${file}.${process.pid}.${threadId}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(tmp, JSON.stringify(next));
      renameSync(tmp, file);
      this.memo.set(key, next);
      this.stats.puts++;
    } catch {
      this.stats.errors++;
      try { unlinkSync(tmp); } catch { /* nothing written */ }
    }
  }
}

const opened = new Map<string, DiskRewriteCache>();
/** One cache object per directory and thread (its in-memory view is shared by every section). */
export function openRewriteCache(dir: string = rewriteCacheDir()): DiskRewriteCache {
  let c = opened.get(dir);
  if (!c) opened.set(dir, (c = new DiskRewriteCache(dir)));
  return c;
}
