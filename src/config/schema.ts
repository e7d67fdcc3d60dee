// The configuration schema: every key k2 reads from k2.config.json / .k2rc* / package.json#k2, its
// type, its default and what it does. Validation names the file, the key and the expected type.
import { K2Error } from '../util/errors.js';

export type Effort = 'build' | 'thorough';
export const EFFORTS: readonly Effort[] = ['build', 'thorough'];

export interface K2Config {
  optimize: boolean; // false: relink only (no search)
  effort: Effort; // search profile (src/config/effort.ts)
  budgetMs: number | null; // search time per object (ms); null: the effort profile's
  timeoutMs: number | null; // SMT timeout per query; null: the effort profile's
  iterations: number | null; // MCMC proposals per window and round; null: the effort profile's
  kernel: boolean; // gate results with the real verifier where bpf() works
  repair: boolean; // first repair programs the verifier rejects (src/repair), then optimize
  tailMerge: boolean; // merge identical block tails
  cache: boolean; // use the build cache
  server: boolean; // optimize on the compile server (src/server), started on first use
  quiet: boolean; // no per-object lines on stderr
  sources: string[]; // k2 build: globs of .bpf.c files, relative to the config file
  outDir: string; // k2 build: where NAME.o go, relative to the config file
  cflags: string[]; // k2 build: extra clang flags
  jobs: number | null; // k2 build: parallel compilations (null: number of CPUs)
}

export const DEFAULTS: K2Config = {
  optimize: true, effort: 'build', budgetMs: null, timeoutMs: null, iterations: null, kernel: true, repair: false, tailMerge: true,
  cache: true, server: true, quiet: false, sources: [], outDir: 'build', cflags: [], jobs: null,
};

type KeyType = 'boolean' | 'number' | 'integer' | 'string' | 'string[]' | 'effort';

interface KeySpec {
  type: KeyType;
  doc: string;
  min?: number;
  nullable?: boolean; // null = "the default" (the effort profile's, the number of CPUs)
}

/** Every key, in the order the example config documents them. */
export const SCHEMA: Record<keyof K2Config, KeySpec> = {
  optimize: { type: 'boolean', doc: 'false: only relink (no search); K2_OPT=0 does the same' },
  effort: { type: 'effort', doc: '"build" (default of k2-clang / k2 build: fast paths, small budgets) or "thorough" (the full search, default of k2 opt); K2_EFFORT overrides' },
  budgetMs: { nullable: true, type: 'number', min: 0, doc: 'search time per object in ms (default: the effort profile\'s: for build, a third of the CPU time clang took for the object, 100 to 1500; 60000 for thorough); K2_BUDGET_MS overrides' },
  timeoutMs: { nullable: true, type: 'number', min: 0, doc: 'SMT solver timeout per query in ms; 0: no solver, only identical normal forms prove (default: the effort profile\'s: 0 for build, 2000 for thorough)' },
  iterations: { nullable: true, type: 'integer', min: 0, doc: 'stochastic-search proposals per window and round (default: the effort profile\'s)' },
  kernel: { type: 'boolean', doc: 'load results into the kernel verifier where bpf() works; a section it rejects keeps clang\'s code' },
  repair: { type: 'boolean', doc: 'first repair programs the kernel verifier rejects (as k2 repair: each repair proven equivalent, then accepted by the kernel), then optimize; needs bpf(), skipped with a warning without it; K2_REPAIR=1 does the same' },
  tailMerge: { type: 'boolean', doc: 'merge identical block tails (smaller code; a merged path runs one more goto)' },
  cache: { type: 'boolean', doc: 'reuse results from the build cache ($K2_CACHE_DIR, else $XDG_CACHE_HOME/k2, else ~/.cache/k2); K2_NO_CACHE=1 or --no-cache turns it off' },
  server: { type: 'boolean', doc: 'optimize on a background compile server that keeps k2 loaded (started on first use, stops after 10 idle minutes); false or K2_SERVER=0: in each k2-clang process' },
  quiet: { type: 'boolean', doc: 'no per-object lines on stderr (warnings still print); K2_QUIET=1 does the same' },
  sources: { type: 'string[]', doc: 'k2 build: globs of .bpf.c sources, relative to this file' },
  outDir: { type: 'string', doc: 'k2 build: output directory for NAME.o (x.bpf.c -> x.bpf.o), relative to this file' },
  cflags: { type: 'string[]', doc: 'k2 build: extra clang flags, after the defaults (-O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -D__TARGET_ARCH_<arch>)' },
  jobs: { nullable: true, type: 'integer', min: 1, doc: 'k2 build: parallel compilations (default: the number of CPUs); --jobs overrides' },
};

/** Keys a config may carry that k2 ignores. */
const IGNORED = new Set(['$schema', 'comment', '//']);

const expected = (s: KeySpec): string => {
  switch (s.type) {
    case 'string[]': return 'an array of strings';
    case 'effort': return `one of ${EFFORTS.map((e) => `"${e}"`).join(', ')}`;
    case 'integer': return `an integer${s.min !== undefined ? ` >= ${s.min}` : ''}${s.nullable ? ' (or null)' : ''}`;
    case 'number': return `a number${s.min !== undefined ? ` >= ${s.min}` : ''}${s.nullable ? ' (or null)' : ''}`;
    default: return `a ${s.type}`;
  }
};

const describe = (v: unknown): string => {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
};

function valid(s: KeySpec, v: unknown): boolean {
  switch (s.type) {
    case 'boolean': return typeof v === 'boolean';
    case 'string': return typeof v === 'string' && v.length > 0;
    case 'string[]': return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'effort': return typeof v === 'string' && (EFFORTS as readonly string[]).includes(v);
    case 'number': return typeof v === 'number' && Number.isFinite(v) && (s.min === undefined || v >= s.min);
    case 'integer': return typeof v === 'number' && Number.isInteger(v) && (s.min === undefined || v >= s.min);
  }
}

/**
 * Checks a raw configuration object against the schema. Throws K2Error('input') naming `file`,
 * the key and the expected type; returns the keys it sets.
 */
export function validateConfig(raw: unknown, file: string): Partial<K2Config> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new K2Error('input', `the k2 configuration must be an object of settings, got ${describe(raw)}`, { file });
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (IGNORED.has(k)) continue;
    const spec = (SCHEMA as Record<string, KeySpec | undefined>)[k];
    if (!spec || !Object.hasOwn(SCHEMA, k)) {
      const hint = k === 'objects' ? ' ("objects" was replaced by "sources": globs of .bpf.c files that k2 build compiles)' : '';
      throw new K2Error('input', `unknown key "${k}"${hint}; known keys: ${Object.keys(SCHEMA).join(', ')}`, { file });
    }
    if (!(v === null && spec.nullable) && !valid(spec, v)) throw new K2Error('input', `key "${k}": expected ${expected(spec)}, got ${describe(v)}`, { file });
    out[k] = v;
  }
  return out as Partial<K2Config>;
}
