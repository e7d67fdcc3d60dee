// The Z3 back end: one WASM instance per process (initialised once, lazily), queries as SMT-LIB
// text evaluated in one low-level context that is reset before each query (so nothing a query
// creates outlives it: the WASM heap is capped at 2 GB), a timeout per query, and queries
// serialised (one check at a time).
import { init } from 'z3-solver';
import { mask, type Term } from './term.js';

interface Z3Handle {
  api: Awaited<ReturnType<typeof init>>;
}

let handle: Promise<Z3Handle> | null = null;

/** The process-wide Z3 instance (initialised on first use, ~0.2–1 s). */
export function z3(): Promise<Z3Handle> {
  if (!handle) {
    handle = (async () => {
      const api = await init();
      return { api };
    })();
  }
  return handle;
}

/** Stops Z3's worker threads so the process can exit (call once, at the very end). */
export async function shutdownZ3(): Promise<void> {
  if (!handle) return;
  const h = await handle;
  handle = null;
  if (lowCtx) {
    h.api.Z3.del_context(lowCtx as Parameters<typeof h.api.Z3.del_context>[0]);
    lowCtx = null;
  }
  try {
    await (await import('z3-solver')).killThreads(h.api.em);
  } catch {
    /* threads already gone */
  }
}

let queue: Promise<unknown> = Promise.resolve();
function serialise<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}

export type SatResult =
  | { result: 'unsat' }
  | { result: 'unknown'; reason: string }
  | { result: 'sat'; model: Model };

/** A model read back from Z3: values of the BV/Bool variables and array entries that matter. */
export interface Model {
  vars: Map<string, bigint>;
  /** Per array variable: the entries Z3 chose (index → value) and its default value. */
  arrays: Map<string, { entries: Map<bigint, bigint>; dflt: bigint }>;
}

/** Largest formula (DAG nodes) sent to Z3; beyond it the answer is unknown (the WASM heap is 2 GB). */
export const MAX_FORMULA_NODES = 400000;

const sortOf = (t: Term): string => (t.s === 0 ? 'Bool' : t.s === 1 ? `(_ BitVec ${t.w})` : `(Array (_ BitVec ${t.iw}) (_ BitVec ${t.w}))`);
const bvLit = (v: bigint, w: number): string => (w % 4 === 0 ? `#x${v.toString(16).padStart(w / 4, '0')}` : `#b${v.toString(2).padStart(w, '0')}`);
const quote = (name: string): string => `|${name.replace(/[|\\]/g, '_')}|`;

const OPS: Partial<Record<Term['op'], string>> = {
  add: 'bvadd', mul: 'bvmul', udiv: 'bvudiv', urem: 'bvurem', sdiv: 'bvsdiv', srem: 'bvsrem', shl: 'bvshl', lshr: 'bvlshr',
  ashr: 'bvashr', and: 'bvand', or: 'bvor', xor: 'bvxor', concat: 'concat', ite: 'ite', select: 'select', store: 'store',
  eq: '=', ult: 'bvult', ule: 'bvule', slt: 'bvslt', sle: 'bvsle', band: 'and', bor: 'or', bnot: 'not',
};

/** The formula as an SMT-LIB script: declarations, one define-fun per inner node, one assertion. */
export function toSmtLib(formula: Term): { script: string; name: (t: Term) => string; leaves: Term[]; size: number } {
  const order: Term[] = [];
  const seen = new Set<number>();
  const stack: [Term, boolean][] = [[formula, false]];
  while (stack.length) {
    const [t, done] = stack.pop()!;
    if (done) {
      order.push(t);
      continue;
    }
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    stack.push([t, true]);
    for (const x of t.a) if (!seen.has(x.id)) stack.push([x, false]);
  }
  const leaves: Term[] = [];
  const name = (t: Term): string => {
    if (t.op === 'const') return t.s === 0 ? (t.v ? 'true' : 'false') : bvLit(t.v, t.w);
    if (t.op === 'var' || t.op === 'avar') return quote(t.name);
    return `t${t.id}`;
  };
  const out: string[] = [];
  for (const t of order) {
    if (t.op === 'const') continue;
    if (t.op === 'var' || t.op === 'avar') {
      leaves.push(t);
      out.push(`(declare-const ${quote(t.name)} ${sortOf(t)})`);
      continue;
    }
    const args = t.a.map(name);
    let body: string;
    if (t.op === 'extract') body = `((_ extract ${t.p} ${t.q}) ${args[0]})`;
    else if (t.op === 'sext') body = `((_ sign_extend ${t.p}) ${args[0]})`;
    else body = `(${OPS[t.op]} ${args.join(' ')})`;
    out.push(`(define-fun ${name(t)} () ${sortOf(t)} ${body})`);
  }
  out.push(`(assert ${name(formula)})`);
  return { script: out.join('\n'), name, leaves, size: order.length };
}

type Sexp = string | Sexp[];

/** A minimal S-expression reader (atoms, |quoted| symbols, lists). */
function readSexp(text: string): Sexp[] {
  const toks = text.match(/\|[^|]*\||\(|\)|[^\s()|]+/g) ?? [];
  let i = 0;
  const one = (): Sexp => {
    const t = toks[i++]!;
    if (t !== '(') return t;
    const list: Sexp[] = [];
    while (i < toks.length && toks[i] !== ')') list.push(one());
    i++;
    return list;
  };
  const out: Sexp[] = [];
  while (i < toks.length) out.push(one());
  return out;
}

/** Value atoms of a get-value answer `((e v) (e v) ...)`, in order (null when unreadable). */
function parseValues(text: string): (bigint | null)[] {
  const top = readSexp(text)[0];
  if (!Array.isArray(top)) return [];
  return top.map((pair) => (Array.isArray(pair) && pair.length === 2 ? valueOf(pair[1]!) : null));
}
function valueOf(v: Sexp): bigint | null {
  if (Array.isArray(v)) {
    // (_ bvN w)
    if (v.length === 3 && v[0] === '_' && typeof v[1] === 'string' && v[1].startsWith('bv')) return BigInt(v[1].slice(2));
    return null;
  }
  if (v === 'true') return 1n;
  if (v === 'false') return 0n;
  if (v.startsWith('#x')) return BigInt('0x' + v.slice(2));
  if (v.startsWith('#b')) return BigInt('0b' + v.slice(2));
  return null;
}

let lowCtx: unknown = null;

/**
 * eval_smtlib2_string on a worker thread. The package's wrapper passes the script through
 * ccall's temporary stack copy, which the worker may read after it was freed (corrupted scripts
 * under load); here the script lives in a malloc'ed buffer until the call has finished.
 */
async function evalScript(api: Z3Handle['api'], ctx: unknown, script: string): Promise<string> {
  const em = api.em as {
    _malloc(n: number): number;
    _free(p: number): void;
    HEAPU8: Uint8Array;
    async_call(f: (...a: unknown[]) => void, ...args: unknown[]): Promise<string>;
    _async_Z3_eval_smtlib2_string(c: unknown, p: number): void;
  };
  const bytes = Buffer.from(script, 'utf8');
  const ptr = em._malloc(bytes.length + 1);
  if (!ptr) throw new Error('out of WASM memory');
  try {
    em.HEAPU8.set(bytes, ptr);
    em.HEAPU8[ptr + bytes.length] = 0;
    return await em.async_call(() => em._async_Z3_eval_smtlib2_string(ctx, ptr));
  } finally {
    em._free(ptr);
  }
}

/**
 * Is `formula` (a Bool term) satisfiable? `unknown` on timeout or when Z3 gives up. A model gives
 * every variable, and for each array variable the entries at the indices the formula reads.
 * Queries go through SMT-LIB text into one low-level context that is reset before each query, so
 * no Z3 objects outlive a query.
 */
export async function solve(formula: Term, timeoutMs: number): Promise<SatResult> {
  const { api } = await z3();
  const Z = api.Z3;
  return serialise(async () => {
    if (!lowCtx) {
      const cfg = Z.mk_config();
      lowCtx = Z.mk_context_rc(cfg);
      Z.del_config(cfg);
    }
    const ctx = lowCtx as Parameters<typeof Z.eval_smtlib2_string>[0];
    const { script, name, leaves, size } = toSmtLib(formula);
    if (size > MAX_FORMULA_NODES) return { result: 'unknown', reason: `formula of ${size} nodes is too large` };
    const scalars = leaves.filter((t) => t.s !== 2);
    const reads = arrayReads(formula);
    let out: string;
    try {
      out = await evalScript(api, ctx, `(reset)(set-option :timeout ${Math.max(1, Math.round(timeoutMs))})\n${script}\n(check-sat)`);
    } catch (e) {
      return { result: 'unknown', reason: `solver error: ${(e as Error).message}` };
    }
    const verdict = out.trim().split('\n')[0]!.trim();
    if (verdict === 'unsat') return { result: 'unsat' };
    if (verdict !== 'sat') return { result: 'unknown', reason: verdict === 'unknown' ? 'timeout or incomplete' : verdict };
    const vars = new Map<string, bigint>();
    const arrays = new Map<string, { entries: Map<bigint, bigint>; dflt: bigint }>();
    const exprs: string[] = [...scalars.map(name)];
    for (const [arr, idx] of reads) exprs.push(name(idx), `(select ${name(arr)} ${name(idx)})`);
    if (exprs.length) {
      const ans = await evalScript(api, ctx, `(get-value (${exprs.join(' ')}))`);
      const vals = parseValues(ans);
      if (vals.length !== exprs.length || vals.some((v) => v === null)) {
        if (process.env.K2_SMT_DEBUG) console.error('MODEL', exprs.join(' '), '=>', ans);
        return { result: 'unknown', reason: 'could not read the model' };
      }
      scalars.forEach((t, i) => vars.set(t.name, vals[i]! & mask(t.w === 0 ? 1 : t.w)));
      let k = scalars.length;
      for (const [arr] of reads) {
        const i = vals[k++]!, v = vals[k++]!;
        let a = arrays.get(arr.name);
        if (!a) arrays.set(arr.name, (a = { entries: new Map(), dflt: 0n }));
        if (!a.entries.has(i)) a.entries.set(i, v);
      }
    }
    for (const t of leaves) if (t.s === 2 && !arrays.has(t.name)) arrays.set(t.name, { entries: new Map(), dflt: 0n });
    return { result: 'sat', model: { vars, arrays } };
  });
}

/** (array variable, index) for every read in the formula, through stores and ite of arrays. */
export function arrayReads(formula: Term): [Term, Term][] {
  const out: [Term, Term][] = [];
  const seen = new Set<number>();
  const stack = [formula];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    if (t.op === 'select') for (const r of arrayRoots(t.a[0]!)) out.push([r, t.a[1]!]);
    for (const x of t.a) stack.push(x);
  }
  return out;
}

function arrayRoots(arr: Term): Term[] {
  const out: Term[] = [];
  const seen = new Set<number>();
  const stack = [arr];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    if (t.op === 'avar') out.push(t);
    else if (t.op === 'store') stack.push(t.a[0]!);
    else if (t.op === 'ite') stack.push(t.a[1]!, t.a[2]!);
  }
  return out;
}
