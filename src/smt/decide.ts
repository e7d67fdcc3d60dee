// Deciding "do the two sides differ?": the normal form first (a difference formula that simplified
// to false is a proof), then random inputs (a concrete input where the formula evaluates to true
// is a counterexample, checked exactly), then Z3 with a timeout. Unknown/timeout ⇒ null.
import { Env, Evaluator } from './eval.js';
import { mask, type Term, type Terms } from './term.js';
import { solve } from './z3.js';

export interface Query {
  T: Terms;
  fixed?: FixedArr;
  /** Realistic packets to try as inputs (whole programs): bytes and length of the packet, context bytes. */
  packets?: { data: Uint8Array; ctx?: Uint8Array }[];
  /** Memory holding the packet: 'mem:pkt' (offset-indexed) or 'mem:flat' (address-indexed, from base:pkt). */
  flat?: boolean;
  /** Known initial memory contents to use with the packets (global data): array name → index → byte; flat: base var + offset. */
  initial?: { mem: string; base: string | null; bytes: Uint8Array }[];
  /** Facts every input satisfies. */
  assume: Term[];
  diff: Term;
  /** Inputs on which a side reaches code the model cannot follow: if any is possible, never "equal". */
  havoc?: Term;
  /** Facts of inputs the interpreter can replay (the test-run context): counterexamples are sought there first. */
  prefer?: Term;
}

export type Verdict =
  | { equivalent: true; via: 'syntactic' | 'solver' }
  /** `preferred`: the input satisfies Query.prefer (replayable in the interpreter). */
  | { equivalent: false; via: 'random' | 'solver'; env: Env; preferred: boolean }
  | { equivalent: null; reason: string };

export interface DecideOptions {
  timeoutMs: number;
  /** Z3 resource limit (deterministic, unlike the timeout); undefined: none. */
  rlimit?: number;
  randomTests: number;
  fastPaths: boolean;
  seed: number;
}

/** Deterministic 32-bit PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASE_LO = (1n << 64n) - (1n << 48n);

/** Constants of a formula (and their neighbours): good guesses for inputs. */
export function formulaConstants(roots: readonly Term[], limit = 64): bigint[] {
  const out = new Set<bigint>();
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length && out.size < limit) {
    const t = stack.pop()!;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    if (t.op === 'const' && t.s === 1 && t.w >= 8) {
      for (const d of [0n, 1n, -1n]) out.add((t.v + d) & mask(t.w));
    }
    for (const x of t.a) stack.push(x);
  }
  return [...out];
}

/** Input bytes whose values are fixed by the model (context fields): name, index → value or undefined. */
export type FixedArr = (name: string, idx: bigint, env: Env) => bigint | undefined;

/** Random inputs biased to values where BPF code tends to behave differently. */
export function randomEnv(seed: number, hints: bigint[] = [], fixed?: FixedArr, weakHints: bigint[] = []): Env {
  const r = rng(seed);
  const int = (n: number): number => Math.floor(r() * n);
  const big = (w: number): bigint => {
    let v = 0n;
    for (let i = 0; i < w; i += 32) v = (v << 32n) | BigInt(Math.floor(r() * 4294967296));
    return v & mask(w);
  };
  const interesting = (w: number): bigint => {
    if (hints.length && int(2) === 0) return hints[int(hints.length)]! & mask(w);
    if (weakHints.length && int(8) === 0) return weakHints[int(weakHints.length)]! & mask(w);
    switch (int(12)) {
      case 0: return 0n;
      case 1: return 1n;
      case 2: return mask(w);
      case 3: return BigInt(int(256));
      case 4: return 1n << BigInt(int(w));
      case 5: return (1n << BigInt(w - 1)) - BigInt(int(2));
      case 6: return mask(w) - BigInt(int(256));
      case 7: return big(Math.min(w, 32));
      case 8: return BigInt(int(65536));
      default: return big(w);
    }
  };
  const regionIds = new Map<string, number>();
  const arrIds = new Map<string, number>();
  const sample = (name: string, w: number): bigint => {
    if (name.startsWith('base:')) {
      if (!regionIds.has(name)) regionIds.set(name, regionIds.size + 1);
      // page-aligned, with non-zero low 32 bits (a base with zero low bits makes `(u32)data_end`
      // look like the packet length, and random tests miss differences that hinge on it)
      return BASE_LO + (BigInt(regionIds.get(name)!) << 33n) + (BigInt(1 + int(0xfffff)) << 12n);
    }
    if (name === 'pkt_len') return BigInt([0, 1, 14, 20, 34, 42, 54, 64, 100, int(128), int(1600)][int(11)]!);
    if (name === 'meta_len') return int(8) === 0 ? BigInt(4 * int(9)) : 0n;
    if (name.startsWith('off:') || name.startsWith('idx:')) return BigInt(int(64));
    if (name.startsWith('tail#')) return BigInt(int(2));
    if (w === 1) return BigInt(int(2));
    return interesting(w);
  };
  const sampleArr = (name: string, idx: bigint, w: number): bigint => {
    const f = fixed?.(name, idx, env);
    if (f !== undefined) return f;
    if (name.startsWith('vb:')) {
      const k = `${name}:${idx}`;
      if (!arrIds.has(k)) arrIds.set(k, arrIds.size + 4096);
      return BASE_LO + (BigInt(arrIds.get(k)!) << 33n);
    }
    if (w === 1) return BigInt(int(2));
    if (w === 8) return int(3) === 0 ? 0n : BigInt(int(256));
    return interesting(w);
  };
  const env: Env = new Env(sample, sampleArr);
  return env;
}

/** Evaluates the query on `env`: true when the assumptions hold and the sides differ (on an input the model follows). */
export function differsOn(q: Query, env: Env): boolean {
  const ev = new Evaluator(env);
  for (const a of q.assume) if (!ev.bool(a)) return false;
  if (q.havoc && ev.bool(q.havoc)) return false;
  return ev.bool(q.diff);
}

/** `env` with the context bytes and metadata length the test run fixes (per-region memories only), or null. */
function testRunPatched(q: Query, env: Env): Env | null {
  if (q.flat || !q.fixed) return null;
  const e = new Env(() => 0n, () => 0n);
  for (const [k, v] of env.vars) e.vars.set(k, k === 'meta_len' ? 0n : v);
  for (const [k, m] of env.arrays) e.arrays.set(k, new Map(m));
  const ctx = e.arrays.get('mem:ctx') ?? new Map<bigint, bigint>();
  e.arrays.set('mem:ctx', ctx);
  for (let i = 0n; i < 256n; i++) {
    const f = q.fixed('mem:ctx', i, e);
    if (f !== undefined) ctx.set(i, f);
  }
  return e;
}

const holds = (t: Term | undefined, env: Env): boolean => t === undefined || new Evaluator(env).bool(t);

function envOf(model: { vars: Map<string, bigint>; arrays: Map<string, { entries: Map<bigint, bigint> }> }): Env {
  const env = new Env(() => 0n, () => 0n);
  for (const [k, v] of model.vars) env.vars.set(k, v);
  for (const [k, a] of model.arrays) env.arrays.set(k, new Map(a.entries));
  return env;
}

export async function decide(q: Query, o: DecideOptions): Promise<Verdict> {
  const T = q.T;
  if (q.diff === T.F) return { equivalent: true, via: 'syntactic' };
  if (o.fastPaths && o.randomTests > 0) {
    const hints = formulaConstants([q.diff], 48);
    const weak = formulaConstants(q.assume, 32);
    const packets = q.packets ?? [];
    for (let i = 0; i < o.randomTests + packets.length; i++) {
      const env = randomEnv(o.seed + i * 7919, hints, q.fixed, weak);
      const pk = packets[i - o.randomTests];
      if (pk) {
        const p = pk.data;
        env.vars.set('pkt_len', BigInt(p.length));
        const base = q.flat ? env.get('base:pkt', 64) : 0n;
        const m = new Map<bigint, bigint>();
        p.forEach((b, k) => m.set(BigInt.asUintN(64, base + BigInt(k)), BigInt(b)));
        env.arrays.set(q.flat ? 'mem:flat' : 'mem:pkt', m);
        const inits = [...(q.initial ?? [])];
        if (pk.ctx) inits.push({ mem: 'mem:ctx', base: 'base:ctx', bytes: pk.ctx });
        for (const init of inits) {
          const name = q.flat ? 'mem:flat' : init.mem;
          const b0 = q.flat && init.base ? env.get(init.base, 64) : 0n;
          let a = env.arrays.get(name);
          if (!a) env.arrays.set(name, (a = new Map()));
          init.bytes.forEach((b, k) => a!.set(BigInt.asUintN(64, b0 + BigInt(k)), BigInt(b)));
        }
      }
      try {
        // random inputs follow the test run (fixed context fields): only replayable ones are taken
        if (differsOn(q, env) && holds(q.prefer, env)) return { equivalent: false, via: 'random', env, preferred: true };
      } catch (e) {
        if (process.env.K2_SMT_DEBUG) console.error('random test failed:', e);
        break; // formula not evaluable concretely (should not happen); leave it to the solver
      }
    }
  }
  // "equal" needs: no input where the sides differ, and no input reaching code the model cannot follow
  const havoc = q.havoc ?? T.F;
  const formula = T.band(...q.assume, T.bor(q.diff, havoc));
  if (formula === T.F) return { equivalent: true, via: 'syntactic' };
  // timeout 0: the normal form and random inputs only (no solver, not even started)
  if (o.timeoutMs <= 0) return { equivalent: null, reason: 'solver: not asked (timeout 0)' };
  const t0 = performance.now();
  const left = (): number => Math.max(1, o.timeoutMs - (performance.now() - t0));
  const r = await solve(formula, o.timeoutMs, o.rlimit);
  if (r.result === 'unsat') return { equivalent: true, via: 'solver' };
  if (r.result === 'unknown') return { equivalent: null, reason: `solver: ${r.reason || 'unknown'}` };
  let env = envOf(r.model);
  if (holds(havoc, env)) {
    // some input reaches code the model cannot follow: look for a difference elsewhere
    const r2 = await solve(T.band(...q.assume, q.diff, T.bnot(havoc)), left(), o.rlimit);
    if (r2.result !== 'sat') return { equivalent: null, reason: 'unsupported: some inputs reach code the model does not follow (ld_abs/ld_ind at a negative offset)' };
    env = envOf(r2.model);
  }
  // Confirm the model concretely (guards against a translation bug ever turning into a wrong answer).
  if (!differsOn(q, env)) return { equivalent: null, reason: 'solver model did not reproduce the difference' };
  if (holds(q.prefer, env)) return { equivalent: false, via: 'solver', env, preferred: true };
  // a difference for a production context: prefer one the interpreter can replay, if there is one —
  // first the same input with the test run's fixed context bytes, then the solver
  const patched = testRunPatched(q, env);
  if (patched && differsOn(q, patched) && holds(q.prefer, patched)) return { equivalent: false, via: 'solver', env: patched, preferred: true };
  const r3 = await solve(T.band(...q.assume, q.diff, T.bnot(havoc), q.prefer!), Math.min(o.timeoutMs, 5000), o.rlimit);
  if (r3.result === 'sat') {
    const e3 = envOf(r3.model);
    if (differsOn(q, e3) && holds(q.prefer, e3)) return { equivalent: false, via: 'solver', env: e3, preferred: true };
  }
  return { equivalent: false, via: 'solver', env, preferred: false };
}
