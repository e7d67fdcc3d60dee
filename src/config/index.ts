// User configuration (cosmiconfig): `k2.config.json`, `.k2rc*`, or a "k2" key in package.json, searched
// from the working directory upwards. Used by `k2 cc` / `k2-clang` and the build hook.
import { cosmiconfigSync } from 'cosmiconfig';
import { K2Error } from '../util/errors.js';

export interface K2Config {
  optimize: boolean; // run the optimizer on objects k2 cc produces (false: relink only)
  budgetMs: number; // search time per section
  timeoutMs: number; // SMT timeout per query
  iterations: number; // MCMC iterations per window and round
  kernel: boolean; // gate the result with the real verifier when bpf() works
  tailMerge: boolean; // share identical block tails (smaller code; a merged path runs one more goto)
  objects: string[]; // `k2 build`: objects (globs relative to the config file) to optimize in place
}

export const DEFAULTS: K2Config = { optimize: true, budgetMs: 20000, timeoutMs: 2000, iterations: 300, kernel: true, tailMerge: true, objects: [] };

const TYPES: Record<keyof K2Config, string> = { optimize: 'boolean', budgetMs: 'number', timeoutMs: 'number', iterations: 'number', kernel: 'boolean', tailMerge: 'boolean', objects: 'object' };

/** Environment overrides, handy in Makefiles and CI: K2_OPT=0 (relink only), K2_BUDGET_MS=N. */
function withEnv(config: K2Config): K2Config {
  if (process.env.K2_OPT === '0') config.optimize = false;
  const budget = Number(process.env.K2_BUDGET_MS);
  if (process.env.K2_BUDGET_MS && Number.isFinite(budget) && budget >= 0) config.budgetMs = budget;
  return config;
}

export function loadConfig(cwd = process.cwd()): { config: K2Config; file: string | null } {
  let found;
  try {
    found = cosmiconfigSync('k2', { searchPlaces: ['package.json', 'k2.config.json', '.k2rc', '.k2rc.json'] }).search(cwd);
  } catch (e) {
    throw new K2Error('input', `invalid configuration: ${(e as Error).message}`);
  }
  if (!found || found.isEmpty) return { config: withEnv({ ...DEFAULTS }), file: null };
  const raw = found.config as Record<string, unknown>;
  for (const [k, v] of Object.entries(raw)) {
    if (k === '$schema' || k === 'comment') continue;
    const want = TYPES[k as keyof K2Config];
    if (!want) throw new K2Error('input', `unknown option "${k}"`, { file: found.filepath });
    if (typeof v !== want || (k === 'objects' && !Array.isArray(v))) throw new K2Error('input', `option "${k}" must be a ${k === 'objects' ? 'list of globs' : want}`, { file: found.filepath });
  }
  return { config: withEnv({ ...DEFAULTS, ...(raw as Partial<K2Config>) }), file: found.filepath };
}
