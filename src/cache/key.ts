// Cache keys: what decides k2's output for an object. A key is the SHA-256 of clang's object bytes,
// k2's build (version + its code files), the optimizer settings and, when the kernel gates the
// result, the kernel release (its verifier's verdicts can revert sections).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OptimizerSettings } from '../config/index.js';

/** Version of the entry format (bump when entries change shape). */
export const ENTRY_FORMAT = 2; // 2: code sections carry the steps that lead to them

export const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

/** JSON with object keys sorted, so equal settings always hash alike. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return typeof v === 'bigint' ? JSON.stringify(v.toString()) : JSON.stringify(v ?? null);
}

let buildId: string | null = null;

/**
 * Identifies the k2 that runs: package version plus path, size and mtime of every code and data
 * file of k2 (dist/ or src/), so a rebuilt or edited k2 never reuses an older k2's results.
 */
export function k2BuildId(): string {
  if (buildId) return buildId;
  const codeRoot = dirname(dirname(fileURLToPath(import.meta.url))); // dist/ or src/
  const h = createHash('sha256');
  try {
    h.update(readFileSync(join(dirname(codeRoot), 'package.json')));
  } catch { /* installed without package.json next to the code: the files decide */ }
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(js|ts|json)$/.test(e.name)) {
        const st = statSync(p);
        h.update(`${relative(codeRoot, p)}\0${st.size}\0${st.mtimeMs}\n`);
      }
    }
  };
  walk(codeRoot);
  buildId = h.digest('hex').slice(0, 24);
  return buildId;
}

/** The key of clang's object `input` optimized with `settings`. */
export function cacheKey(inputSha: string, settings: OptimizerSettings): string {
  return sha256(stableJson({ format: ENTRY_FORMAT, k2: k2BuildId(), input: inputSha, settings, kernel: settings.kernel ? release() : null }));
}
