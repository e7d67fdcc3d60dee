// The build report (JSON): what k2 did to each object of a build. `k2 build --report FILE` writes it
// once; `k2-clang` (K2_REPORT=FILE / --k2-report=FILE) runs once per object, often many at a time
// under make -j, so each process merges its objects into the file under a lock file (O_EXCL),
// replacing earlier records of the same output, and renames the new version into place.
import { closeSync, openSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import type { ObjectResult } from './pipeline.js';

export type ReportObject = ObjectResult & { path?: string };

export interface BuildReport {
  kind: 'k2-build-report';
  version: 1;
  updated: string;
  objects: ReportObject[];
  totals: { objects: number; slotsBefore: number; slotsAfter: number; hits: number; misses: number; rejected: number; failed: number; ms: number };
}

export function totals(objects: readonly ReportObject[]): BuildReport['totals'] {
  const ok = objects.filter((o) => o.status !== 'failed');
  return {
    objects: objects.length,
    slotsBefore: ok.reduce((n, o) => n + o.slotsBefore, 0),
    slotsAfter: ok.reduce((n, o) => n + o.slotsAfter, 0),
    hits: objects.filter((o) => o.cache === 'hit').length,
    misses: objects.filter((o) => o.cache === 'miss').length,
    rejected: objects.filter((o) => o.cache === 'rejected').length,
    failed: objects.length - ok.length,
    ms: objects.reduce((n, o) => n + o.ms, 0),
  };
}

const sleep = (ms: number): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); };

/** Runs `fn` holding `lock` (created with O_EXCL; a lock older than 60 s is taken as abandoned). */
function withLock<T>(lock: string, fn: () => T): T {
  const t0 = Date.now();
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 60000) unlinkSync(lock);
      } catch { /* released meanwhile */ }
      if (Date.now() - t0 > 120000) throw new Error(`timed out waiting for ${lock}`);
      sleep(5 + Math.random() * 20);
    }
  }
  try {
    return fn();
  } finally {
    try { unlinkSync(lock); } catch { /* gone */ }
  }
}

/**
 * Writes `objects` to the report `file`; with `merge`, into the report already there (records of
 * the same output are replaced). A file that exists but is not a k2 report is left alone (throws).
 */
export function writeReport(file: string, objects: readonly ReportObject[], opts: { merge: boolean }): BuildReport {
  const withPath = objects.map((o) => ({ ...o, path: o.output === '-' ? '-' : resolve(o.output) }));
  const build = (): BuildReport => {
    let prior: ReportObject[] = [];
    if (opts.merge) {
      let text: string | null = null;
      try { text = readFileSync(file, 'utf8'); } catch { /* no report yet */ }
      if (text !== null && text.trim() !== '') {
        let old: Partial<BuildReport>;
        try { old = JSON.parse(text) as Partial<BuildReport>; } catch { throw new Error('it exists and is not a k2 build report'); }
        if (old.kind !== 'k2-build-report' || !Array.isArray(old.objects)) throw new Error('it exists and is not a k2 build report');
        const replaced = new Set(withPath.filter((o) => o.path !== '-').map((o) => o.path));
        prior = old.objects.filter((o) => !replaced.has(o.path ?? ''));
      }
    }
    const all = [...prior, ...withPath];
    const report: BuildReport = { kind: 'k2-build-report', version: 1, updated: new Date().toISOString(), objects: all, totals: totals(all) };
    writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(report, null, 2) + '\n'));
    return report;
  };
  return opts.merge ? withLock(`${file}.lock`, build) : build();
}
