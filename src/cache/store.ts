// The cache on disk. One file per entry, objects/KK/KEY (KK = the key's first two hex digits),
// written to a temporary file in the same directory and renamed into place, so a reader sees a
// whole entry or none and concurrent writers of one key (make -j) each rename a whole file. An
// entry starts with a header line `k2-cache <format> <sha256 of the rest>` (a torn or flipped
// entry fails it), then JSON: the key, clang's object hash, the result summary and the code of the
// sections k2 changed. Counters (hits, misses, …) are one byte per event appended to stats.log.
import { appendFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { IrInsn } from '../ir/index.js';
import { ENTRY_FORMAT, sha256 } from './key.js';

/**
 * Where k2 keeps its caches: $K2_CACHE_DIR, else $XDG_CACHE_HOME/k2, else ~/.cache/k2.
 * Build results live in objects/, proven rewrites (the synthesizer's cache) in rewrites/.
 */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.K2_CACHE_DIR) return env.K2_CACHE_DIR;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'k2');
  return join(homedir(), '.cache', 'k2');
}

export const objectsDir = (root = cacheRoot()): string => join(root, 'objects');

export interface SectionSummary {
  name: string;
  slotsBefore: number;
  slotsAfter: number;
  status: 'optimized' | 'unchanged' | 'fallback'; // fallback: the final gate refused some rewrites (reason)
  reason: string | null;
}

export interface CacheEntry {
  format: number;
  key: string;
  input: string; // SHA-256 of clang's object
  k2: string; // k2BuildId() of the k2 that wrote it
  created: string;
  result: {
    ms: number; // time the optimization took
    kernelChecked: boolean;
    sections: SectionSummary[];
  };
  /**
   * Sections whose code k2 changed; `steps`: the rewrites from clang's code to `insns` in the order
   * they were proven (a hit re-proves them one by one; replaying them must give `insns`).
   */
  code: { name: string; insns: IrInsn[]; steps?: { start: number; remove: number; insert: IrInsn[] }[] }[];
}

const HEADER = 'k2-cache';

export function entryPath(key: string, root = cacheRoot()): string {
  return join(objectsDir(root), key.slice(0, 2), key);
}

export function encodeEntry(e: CacheEntry): string {
  const body = JSON.stringify(e);
  return `${HEADER} ${ENTRY_FORMAT} ${sha256(body)}\n${body}`;
}

export type ReadResult = { kind: 'absent' } | { kind: 'corrupt'; reason: string } | { kind: 'entry'; entry: unknown };

/** Reads the entry for `key`: absent, corrupt (header, checksum or JSON wrong), or its parsed JSON (unchecked). */
export function readEntry(key: string, root = cacheRoot()): ReadResult {
  let text: string;
  try {
    text = readFileSync(entryPath(key, root), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    return { kind: 'corrupt', reason: `cannot read it: ${(e as Error).message}` };
  }
  const nl = text.indexOf('\n');
  const head = nl < 0 ? text : text.slice(0, nl);
  const m = /^k2-cache (\d+) ([0-9a-f]{64})$/.exec(head);
  if (!m) return { kind: 'corrupt', reason: 'no k2-cache header' };
  if (Number(m[1]) !== ENTRY_FORMAT) return { kind: 'corrupt', reason: `entry format ${m[1]}, expected ${ENTRY_FORMAT}` };
  const body = text.slice(nl + 1);
  if (sha256(body) !== m[2]) return { kind: 'corrupt', reason: 'checksum mismatch (torn or altered entry)' };
  try {
    return { kind: 'entry', entry: JSON.parse(body) };
  } catch {
    return { kind: 'corrupt', reason: 'not JSON' };
  }
}

/** Writes an entry atomically (temporary file + rename); returns false (never throws) when it cannot. */
export function writeEntry(e: CacheEntry, root = cacheRoot()): boolean {
  const path = entryPath(e.key, root);
  const dir = join(objectsDir(root), e.key.slice(0, 2));
  const tmp = join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(tmp, encodeEntry(e));
    renameSync(tmp, path);
    return true;
  } catch {
    try { unlinkSync(tmp); } catch { /* nothing to clean */ }
    return false;
  }
}

export function removeEntry(key: string, root = cacheRoot()): void {
  try { unlinkSync(entryPath(key, root)); } catch { /* already gone */ }
}

export type CacheEvent = 'hit' | 'miss' | 'store' | 'reject';
const EVENT_CHAR: Record<CacheEvent, string> = { hit: 'h', miss: 'm', store: 's', reject: 'r' };

/** Appends one event to stats.log (O_APPEND: concurrent writers never tear a one-byte record). */
export function recordEvent(ev: CacheEvent, root = cacheRoot()): void {
  try {
    mkdirSync(root, { recursive: true });
    appendFileSync(join(root, 'stats.log'), EVENT_CHAR[ev]);
  } catch { /* statistics are best effort */ }
}

export interface CacheStats {
  root: string;
  entries: number;
  bytes: number;
  rewrites: { files: number; bytes: number }; // the proven-rewrite cache (rewrites/)
  hits: number;
  misses: number;
  stores: number;
  rejected: number; // entries that failed their check on a hit (removed)
}

function du(dir: string): { files: number; bytes: number } {
  let files = 0, bytes = 0;
  let list;
  try { list = readdirSync(dir, { withFileTypes: true }); } catch { return { files, bytes }; }
  for (const e of list) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const s = du(p);
      files += s.files;
      bytes += s.bytes;
    } else if (!e.name.startsWith('.tmp-')) {
      files++;
      try { bytes += statSync(p).size; } catch { /* removed meanwhile */ }
    }
  }
  return { files, bytes };
}

export function cacheStats(root = cacheRoot()): CacheStats {
  const objs = du(objectsDir(root));
  let log = '';
  try { log = readFileSync(join(root, 'stats.log'), 'latin1'); } catch { /* no events yet */ }
  const count = (c: string): number => { let n = 0; for (let i = 0; i < log.length; i++) if (log[i] === c) n++; return n; };
  return { root, entries: objs.files, bytes: objs.bytes, rewrites: du(join(root, 'rewrites')), hits: count('h'), misses: count('m'), stores: count('s'), rejected: count('r') };
}

/** Removes every cached object entry, the proven rewrites and the counters. */
export function cleanCache(root = cacheRoot()): CacheStats {
  const before = cacheStats(root);
  for (const p of [objectsDir(root), join(root, 'rewrites'), join(root, 'stats.log')]) rmSync(p, { recursive: true, force: true });
  return before;
}
