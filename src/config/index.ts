// User configuration (cosmiconfig): `k2.config.json`, `.k2rc` / `.k2rc.json` / `.k2rc.yaml` /
// `.k2rc.yml`, or a "k2" key in package.json, searched from the working directory upwards to the
// nearest package.json. Read by `k2 cc` / `k2-clang` and `k2 build`; environment variables override it.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { K2Error } from '../util/errors.js';
import { DEFAULTS, EFFORTS, SCHEMA, validateConfig, type Effort, type K2Config } from './schema.js';

export { DEFAULTS, SCHEMA, EFFORTS, validateConfig, type Effort, type K2Config } from './schema.js';
export { EFFORT_PROFILES, objectBudget, optimizerSettings, type EffortProfile, type OptimizerSettings } from './effort.js';

export const SEARCH_PLACES = ['package.json', 'k2.config.json', '.k2rc', '.k2rc.json', '.k2rc.yaml', '.k2rc.yml'];

// cosmiconfig (and the YAML and JSON parsers it brings) is loaded only when there is a file to
// read: k2-clang runs once per object, and most projects have no k2 configuration.
type Cosmiconfig = typeof import('cosmiconfig');
let cosmiconfigModule: Cosmiconfig | null = null;
const cosmiconfigSync: Cosmiconfig['cosmiconfigSync'] = (...args) => {
  cosmiconfigModule ??= createRequire(import.meta.url)('cosmiconfig') as Cosmiconfig;
  return cosmiconfigModule.cosmiconfigSync(...args);
};

/**
 * Might a configuration be found from `cwd` (cosmiconfig's "project" search: upwards to the
 * directory holding package.json)? False only when no searched file exists and no package.json on
 * the way has a "k2" key; anything unclear is left to cosmiconfig.
 */
function configMayExist(cwd: string): boolean {
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    for (const f of SEARCH_PLACES) if (f !== 'package.json' && existsSync(join(dir, f))) return true;
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        const json = JSON.parse(readFileSync(pkg, 'utf8')) as unknown;
        return typeof json !== 'object' || json === null || Object.hasOwn(json, 'k2');
      } catch {
        return true; // cosmiconfig says what is wrong with it
      }
    }
    if (dirname(dir) === dir) return false;
  }
}

export interface LoadedConfig {
  config: K2Config;
  file: string | null; // the file it came from (null: defaults)
  dir: string; // paths in the config are relative to this directory
}

const envFlag = (name: string): boolean | null => {
  const v = process.env[name];
  if (v === undefined || v === '') return null;
  return !['0', 'false', 'no', 'off'].includes(v.toLowerCase());
};

function envNumber(name: string, min: number): number | null {
  const v = process.env[name];
  if (v === undefined || v === '') return null;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new K2Error('usage', `${name}=${v}: expected a number >= ${min}`);
  return n;
}

/**
 * Environment overrides, handy in Makefiles and CI: K2_OPT=0 (relink only), K2_EFFORT=build|thorough,
 * K2_BUDGET_MS=N, K2_NO_CACHE=1, K2_QUIET=1, K2_SERVER=0 (no compile server), K2_REPAIR=1.
 */
export function withEnv(config: K2Config): K2Config {
  const c = { ...config };
  if (process.env.K2_OPT === '0') c.optimize = false;
  const effort = process.env.K2_EFFORT;
  if (effort) {
    if (!(EFFORTS as readonly string[]).includes(effort)) throw new K2Error('usage', `K2_EFFORT=${effort}: expected ${EFFORTS.join(' or ')}`);
    c.effort = effort as Effort;
  }
  const budget = envNumber('K2_BUDGET_MS', 0);
  if (budget !== null) c.budgetMs = budget;
  if (envFlag('K2_NO_CACHE')) c.cache = false;
  const server = envFlag('K2_SERVER');
  if (server !== null) c.server = server;
  const quiet = envFlag('K2_QUIET');
  if (quiet !== null) c.quiet = quiet;
  const repair = envFlag('K2_REPAIR');
  if (repair !== null) c.repair = repair;
  return c;
}

/** Reads one configuration file (for `k2 build --config FILE`). */
export function loadConfigFile(file: string): LoadedConfig {
  const path = resolve(file);
  let found;
  try {
    found = cosmiconfigSync('k2', { searchPlaces: SEARCH_PLACES }).load(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new K2Error('input', 'cannot read: no such file', { file: path });
    throw new K2Error('input', `invalid configuration: ${firstLine(err.message)}`, { file: path });
  }
  return fromFound(found, dirname(path));
}

/**
 * Finds and validates the configuration for `cwd` (defaults when there is none), with env
 * overrides; K2_CONFIG=FILE names the file instead (k2 build passes its own to the compilers it runs).
 */
export function loadConfig(cwd = process.cwd()): LoadedConfig {
  if (process.env.K2_CONFIG) return loadConfigFile(process.env.K2_CONFIG);
  if (!configMayExist(cwd)) return fromFound(null, cwd);
  let found;
  try {
    found = cosmiconfigSync('k2', { searchPlaces: SEARCH_PLACES, searchStrategy: 'project' }).search(cwd);
  } catch (e) {
    const err = e as Error & { filepath?: string };
    throw new K2Error('input', `invalid configuration: ${firstLine(err.message)}`, err.filepath ? { file: err.filepath } : {});
  }
  return fromFound(found, cwd);
}

function fromFound(found: { config: unknown; filepath: string; isEmpty?: boolean } | null, dir: string): LoadedConfig {
  if (!found || found.isEmpty) return { config: withEnv({ ...DEFAULTS }), file: found?.filepath ?? null, dir: found ? dirname(found.filepath) : dir };
  const set = validateConfig(found.config, found.filepath);
  return { config: withEnv({ ...DEFAULTS, ...set }), file: found.filepath, dir: dirname(found.filepath) };
}

const firstLine = (s: string): string => s.split('\n')[0]!.trim();

/** The documented keys with their defaults, as k2.config.example.json shows them. */
export const documentedKeys = (): { key: string; default: unknown; doc: string }[] =>
  Object.entries(SCHEMA).map(([key, spec]) => ({ key, default: DEFAULTS[key as keyof K2Config], doc: spec.doc }));
