// One clang object through k2 with the build cache: look the object up (content-addressed), use a
// hit only after it passed its checks (src/cache/verify.ts), otherwise optimize and store the
// result. Shared by `k2 cc` / `k2-clang` and `k2 build`. The optimizer, solver and kernel loader
// are imported on demand, so a hit on an unchanged object costs a read, a hash and a write.
import { readFileSync } from 'node:fs';
import { objectBytes, readObjectBytes, type BpfObject } from '../ir/index.js';
import { EFFORT_PROFILES, objectBudget, optimizerSettings, type K2Config } from '../config/index.js';
import { writeFileAtomic } from '../util/fs.js';
import { cacheKey, k2BuildId, sha256 } from './key.js';
import { cacheRoot, readEntry, recordEvent, removeEntry, writeEntry, type SectionSummary } from './store.js';
import { BadEntry, entryFor, objectFromEntry } from './entry.js';
import { checkCandidate, rememberProof, type Verification } from './verify.js';
import type { Step } from '../synth/parallel-steps.js';
import type { RepairSummary } from '../repair/stage.js';

export type CacheOutcome =
  | 'hit' // a stored result passed its checks and was used
  | 'miss' // nothing stored: optimized (and stored)
  | 'rejected' // a stored result failed its checks: removed, optimized again
  | 'off'; // cache disabled (or relink only)

export interface ObjectResult {
  output: string; // the file written ('-': standard output)
  source: string | null; // the C source, when known
  status: 'optimized' | 'unchanged' | 'fallback' | 'relinked' | 'failed';
  slotsBefore: number;
  slotsAfter: number;
  ms: number; // this run
  searchMs: number; // the optimization's time (for a hit: when it was computed)
  cache: CacheOutcome;
  cacheNote: string | null; // why an entry was rejected or a result not stored
  verification: Verification; // how the code that changed was shown safe
  sections: SectionSummary[];
  dwarfDropped: boolean; // clang's object had DWARF (.debug_*) and the output has none
  error: string | null; // status 'failed': why clang's object was kept
  via?: 'server' | 'process'; // k2-clang / k2 build: optimized on the compile server or in its own process
  budgetMs?: number | null; // the search time the object was given (cache misses)
  repair?: RepairSummary; // "repair": true (cache misses): what the repair stage did
}

export interface PipelineOptions {
  config: K2Config;
  source?: string | null;
  /** Where the output goes: a path (written atomically) or a function receiving the bytes. */
  write: string | ((bytes: Uint8Array) => void);
  display?: string; // name in messages (default: the output path)
  onProgress?: (msg: string) => void;
  onWarning?: (msg: string) => void;
  jobs?: number; // optimizer worker threads (default 1: builds run objects in parallel themselves)
  /** clang's CPU time for this object (ms): the build profile's search time follows it (not its wall time, which grows with load). */
  clangMs?: number | null;
}

const slotsOf = (obj: BpfObject): number => obj.code.reduce((n, s) => n + s.insns.reduce((m, i) => m + (i.imm2 === undefined ? 1 : 2), 0), 0);

/**
 * Does the ELF64 in `bytes` have a .debug_* section? Reads only the section headers and their name
 * table (parsing the whole object again costs tens of ms on every build); false on anything odd.
 */
export function hasDwarf(bytes: Uint8Array): boolean {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 64 || v.getUint32(0) !== 0x7f454c46 || bytes[4] !== 2) return false; // ELF64 only (BPF objects)
  const le = bytes[5] === 1;
  const shoff = Number(v.getBigUint64(0x28, le)), shentsize = v.getUint16(0x3a, le), shnum = v.getUint16(0x3c, le), shstrndx = v.getUint16(0x3e, le);
  if (shentsize < 64 || shstrndx >= shnum || shoff + shnum * shentsize > bytes.length) return false;
  const hdr = (i: number): number => shoff + i * shentsize;
  const strOff = Number(v.getBigUint64(hdr(shstrndx) + 0x18, le)), strSize = Number(v.getBigUint64(hdr(shstrndx) + 0x20, le));
  if (strOff + strSize > bytes.length) return false;
  const prefix = [...'.debug_'].map((c) => c.charCodeAt(0));
  for (let i = 0; i < shnum; i++) {
    const name = v.getUint32(hdr(i), le);
    if (name + prefix.length > strSize) continue;
    if (prefix.every((c, k) => bytes[strOff + name + k] === c)) return true;
  }
  return false;
}

/** Solver timeout per window of a cached result's re-proof. */
const PROOF_TIMEOUT_MS = 2000;

/**
 * Solver timeout of the re-proof before a result is stored: none when the search itself ran
 * without the solver (the build profile: normal forms prove, so they re-prove its results) — a
 * cold build then never starts Z3 — else PROOF_TIMEOUT_MS. A hit is checked with
 * PROOF_TIMEOUT_MS: whatever the re-proof proved without the solver it proves with it.
 */
const storeProofMs = (settings: ReturnType<typeof optimizerSettings>): number =>
  (settings.synth.timeoutMs ?? EFFORT_PROFILES[settings.effort].synth.timeoutMs) === 0 ? 0 : PROOF_TIMEOUT_MS;

/**
 * Optimizes clang's object at `input` (read before anything is written, so `write` may be the same
 * path). Throws on unreadable or malformed input and on optimizer failures; the caller decides
 * whether clang's object is kept.
 */
export async function processObject(input: string, opts: PipelineOptions): Promise<ObjectResult> {
  return processObjectBytes(new Uint8Array(readFileSync(input)), { ...opts, display: opts.display ?? (typeof opts.write === 'string' ? opts.write : input) });
}

/** processObject on clang's object as bytes (the compile server receives them from k2-clang). */
export async function processObjectBytes(bytes: Uint8Array, opts: PipelineOptions): Promise<ObjectResult> {
  const t0 = Date.now();
  const { config } = opts;
  const name = opts.display ?? (typeof opts.write === 'string' ? opts.write : '-');
  const warn = opts.onWarning ?? ((m: string) => process.stderr.write(`k2: warning: ${m}\n`));
  const obj = readObjectBytes(bytes, name);
  const emit = (out: Uint8Array): void => {
    if (typeof opts.write === 'string') writeFileAtomic(opts.write, out);
    else opts.write(out);
  };
  const result = (r: Partial<ObjectResult> & Pick<ObjectResult, 'status' | 'slotsAfter' | 'cache' | 'verification' | 'sections'>, out: Uint8Array): ObjectResult => ({
    output: typeof opts.write === 'string' ? opts.write : '-', source: opts.source ?? null, slotsBefore: slotsOf(obj), ms: Date.now() - t0,
    searchMs: 0, cacheNote: null, dwarfDropped: hasDwarf(bytes) && !hasDwarf(out), error: null, ...r,
  });

  if (!config.optimize) {
    const out = objectBytes(obj);
    emit(out);
    return result({ status: 'relinked', slotsAfter: slotsOf(obj), cache: 'off', verification: 'none', sections: [] }, out);
  }

  const settings = optimizerSettings(config);
  const inputSha = sha256(bytes);
  // repair changes what is written: part of the key (a repaired result is re-proven against clang's object like any other)
  const key = cacheKey(inputSha, config.repair ? Object.assign({}, settings, { repair: true }) : settings);
  const root = cacheRoot();
  let cache: CacheOutcome = config.cache ? 'miss' : 'off';
  let cacheNote: string | null = null;
  if (config.cache) {
    const found = readEntry(key, root);
    let why: string | null = null;
    if (found.kind === 'corrupt') why = found.reason;
    else if (found.kind === 'entry') {
      try {
        const { obj: cand, entry, changed, steps } = objectFromEntry(found.entry, obj, key, inputSha);
        opts.onProgress?.('checking the cached result');
        const check = await checkCandidate(obj, bytes, cand, changed, { kernel: settings.kernel, timeoutMs: PROOF_TIMEOUT_MS, steps });
        if (check.ok) {
          const out = objectBytes(cand);
          emit(out);
          recordEvent('hit', root);
          const slotsAfter = slotsOf(cand);
          const status = entry.result.sections.some((s) => s.status === 'fallback') ? 'fallback' : slotsAfter < slotsOf(obj) || changed.length ? 'optimized' : 'unchanged';
          return result({ status, slotsAfter, cache: 'hit', verification: changed.length ? check.verification : 'none', sections: entry.result.sections, searchMs: entry.result.ms }, out);
        }
        why = check.reason;
      } catch (e) {
        if (!(e instanceof BadEntry)) throw e;
        why = `malformed entry: ${e.message}`;
      }
    }
    if (why !== null) {
      warn(`${name}: cache entry ${key.slice(0, 12)}… failed its check (${why}); removed it, optimizing again`);
      removeEntry(key, root);
      recordEvent('reject', root);
      cache = 'rejected';
      cacheNote = why;
    } else recordEvent('miss', root);
  }

  let start = obj;
  let repair: RepairSummary | undefined;
  if (config.repair) {
    opts.onProgress?.('repairing programs the verifier rejects');
    const { repairStage, repairLine } = await import('../repair/index.js');
    ({ obj: start, repair } = await repairStage(obj, {}));
    const line = repairLine(repair);
    if (line && repair.status === 'skipped') warn(`${name}: ${line}`);
  }
  const { optimizeObject } = await import('../driver/optimize.js');
  const budgetMs = objectBudget(config, opts.clangMs ?? null);
  const { obj: outObj, report, steps } = await optimizeObject(start, {
    effort: settings.effort,
    kernel: settings.kernel,
    ...(EFFORT_PROFILES[settings.effort].finalDifftestInputs !== null ? { difftestInputs: EFFORT_PROFILES[settings.effort].finalDifftestInputs! } : {}),
    jobs: opts.jobs ?? 1,
    cache: config.cache,
    synth: { ...settings.synth, ...(budgetMs !== null ? { budgetMs } : {}) },
    onProgress: opts.onProgress,
  });
  let final = outObj;
  let sections: SectionSummary[] = report.sections.map((s) => ({ name: s.name, slotsBefore: s.slotsBefore, slotsAfter: s.slotsAfter, status: s.status, reason: s.reason }));
  const codeChanged = (o: BpfObject): boolean => JSON.stringify(o.code.map((s) => s.insns)) !== JSON.stringify(obj.code.map((s) => s.insns));
  let storable = false;
  let stepsStored: ReadonlyMap<string, Step[]> | undefined;
  if (config.cache) {
    // store only what a later hit can re-prove (the same check a hit runs); a search that failed or
    // a k2 bug the gate caught is not a result to replay
    const broken = report.sections.find((s) => (s as { bugs?: string[] }).bugs?.length || /search failed|optimizer failed/.test(s.reason ?? ''));
    if (broken) cacheNote = `not cached: section ${broken.name}: ${broken.reason ?? 'k2 bug'}`;
    else if (!codeChanged(outObj)) storable = true;
    else if (!repair && changedSections(obj, outObj).every((n) => steps.has(n))) {
      // the optimizer's rewrites re-proven one by one, as a hit will (every step must be, or the
      // section keeps clang's code: a cold build writes what every later hit writes)
      const { proveStepwise, proveSameBehaviour, stepCount, MANY_STEPS } = await import('./proof.js');
      // (many steps: one proof first, as a hit does — it is cheaper — then step by step)
      const oneShot = stepCount(steps) > MANY_STEPS && (await proveSameBehaviour(obj, outObj, { timeoutMs: storeProofMs(settings) })).proven;
      const proof = oneShot ? null : await proveStepwise(obj, steps, { timeoutMs: storeProofMs(settings) });
      if (!proof || proof.proven) {
        storable = true;
        stepsStored = steps;
      } else if (stepCount(steps) <= MANY_STEPS && (await proveSameBehaviour(obj, outObj, { timeoutMs: storeProofMs(settings) })).proven) storable = true; // in one proof (a hit does the same)
      else if (settings.effort !== 'build') cacheNote = `not cached: the result could not be re-proven (${proof.reason})`;
      else {
        const failed = new Set(proof.failed);
        const kept = [...steps.keys()].filter((n) => !failed.has(n));
        // proof.obj was just proven (its kept sections step by step): only its safety is checked
        if (kept.length) rememberProof(inputSha, objectBytes(proof.obj));
        const check = kept.length ? await checkCandidate(obj, bytes, proof.obj, kept, { kernel: settings.kernel, timeoutMs: storeProofMs(settings), steps }) : null;
        final = check?.ok ? proof.obj : obj;
        const dropped = check?.ok ? failed : new Set(steps.keys());
        storable = true;
        stepsStored = new Map([...steps].filter(([n]) => !dropped.has(n)));
        sections = sections.map((x) => (dropped.has(x.name) ? { ...x, slotsAfter: x.slotsBefore, status: 'unchanged', reason: `k2's result (${x.slotsBefore} → ${x.slotsAfter} slots) could not be re-proven for the build cache; clang's code kept` } : x));
        cacheNote = `sections ${[...dropped].join(', ')}: the result could not be re-proven for the cache (${proof.reason ?? check?.reason}); clang's code kept there`;
      }
    } else {
      const { proveSameBehaviour } = await import('./proof.js');
      const proof = await proveSameBehaviour(obj, outObj, { timeoutMs: storeProofMs(settings) });
      if (proof.proven) storable = true;
      else if (settings.effort === 'build' && !repair) {
        // The build profile keeps a build reproducible from the cache: what a cold build writes is
        // what a later hit writes. Sections whose result the re-proof cannot follow keep clang's
        // code; the rest is checked as a hit would be (proof, then the kernel or the model).
        const sub = await reprovableSubset(obj, outObj, bytes, settings.kernel);
        final = sub.obj;
        storable = true;
        const dropped = new Set(sub.dropped);
        sections = sections.map((x) => (dropped.has(x.name) ? { ...x, slotsAfter: x.slotsBefore, status: 'unchanged', reason: `k2's result (${x.slotsBefore} → ${x.slotsAfter} slots) could not be re-proven for the build cache; clang's code kept` } : x));
        cacheNote = `sections ${sub.dropped.join(', ')}: the result could not be re-proven for the cache (${proof.reason}); clang's code kept there`;
      } else cacheNote = `not cached: the result could not be re-proven in one pass (${proof.reason})`;
    }
  }
  const out = objectBytes(final);
  emit(out);
  const changed = codeChanged(final);
  const status = sections.some((s) => s.status === 'fallback') ? 'fallback' : changed ? 'optimized' : 'unchanged';
  if (storable) {
    if (changed) rememberProof(inputSha, out); // a hit on it in this process (the compile server) need not prove it again
    const entry = entryFor(obj, final, { ...report, sections: sections.map((x) => ({ ...report.sections.find((r) => r.name === x.name)!, ...x })) }, key, inputSha, k2BuildId(), stepsStored);
    if (writeEntry(entry, root)) recordEvent('store', root);
  }
  return result({ status, slotsAfter: slotsOf(final), cache, cacheNote, verification: changed ? (report.kernelChecked ? 'kernel' : 'model') : 'none', sections, searchMs: report.ms, budgetMs, ...(repair ? { repair } : {}) }, out);
}

/** Names of the sections whose code differs between `a` and `b`. */
const changedSections = (a: BpfObject, b: BpfObject): string[] =>
  b.code.filter((s) => JSON.stringify(s.insns) !== JSON.stringify(a.code.find((x) => x.name === s.name)?.insns)).map((s) => s.name);

/**
 * The optimized object restricted to the sections whose new code the cache's re-proof can follow,
 * each proven alone against clang's object, then together and checked for safety as a hit is.
 * Whatever fails keeps clang's code (in the end, possibly every section). Called after the proof of
 * the whole result failed.
 */
export async function reprovableSubset(input: BpfObject, optimized: BpfObject, inputBytes: Uint8Array, kernel: boolean): Promise<{ obj: BpfObject; dropped: string[] }> {
  const { proveSameBehaviour } = await import('./proof.js');
  const changedNames = optimized.code.filter((s) => {
    const o = input.code.find((x) => x.name === s.name);
    return !o || JSON.stringify(o.insns) !== JSON.stringify(s.insns);
  }).map((s) => s.name);
  const withSections = (names: Set<string>): BpfObject => ({ ...input, code: input.code.map((s) => (names.has(s.name) ? optimized.code.find((x) => x.name === s.name) ?? s : s)) });
  const kept = new Set<string>();
  // one changed section: its proof alone is the whole-object proof that just failed
  if (changedNames.length === 1) return { obj: input, dropped: changedNames };
  for (const name of changedNames) {
    if ((await proveSameBehaviour(input, withSections(new Set([name])), { timeoutMs: PROOF_TIMEOUT_MS })).proven) kept.add(name);
  }
  if (kept.size) {
    const cand = withSections(kept);
    const check = await checkCandidate(input, inputBytes, cand, [...kept], { kernel, timeoutMs: PROOF_TIMEOUT_MS });
    if (check.ok) return { obj: cand, dropped: changedNames.filter((n) => !kept.has(n)) };
  }
  return { obj: input, dropped: changedNames };
}
