// Locations shared by tests: the repository, the shared corpus (found by its relative path), fixtures.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const corpusDir = resolve(repo, '../shared/corpus/ebpf-samples');
export const fixturesBuild = join(repo, 'fixtures/build');
export const k2 = join(repo, 'bin/k2.js');
export const k2clang = join(repo, 'bin/k2-clang.js');

export function corpusAvailable(): boolean {
  return existsSync(corpusDir);
}

function* walk(d: string): Generator<string> {
  for (const f of readdirSync(d).sort()) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) yield* walk(p);
    else yield p;
  }
}

/** Every corpus object except the deliberately malformed ones under invalid/. */
export function corpusObjects(): string[] {
  if (!corpusAvailable()) throw new Error(`shared corpus not found at ${corpusDir} (expected ../shared/corpus beside the repository)`);
  return [...walk(corpusDir)].filter((p) => !p.includes('/invalid/'));
}

export function corpusInvalid(): string[] {
  return [...walk(join(corpusDir, 'invalid'))];
}

export function fixtureObjects(): string[] {
  if (!existsSync(fixturesBuild)) throw new Error('fixtures/build missing: run `make -C fixtures` (npm test does)');
  return readdirSync(fixturesBuild).filter((f) => f.endsWith('.o')).sort().map((f) => join(fixturesBuild, f));
}
