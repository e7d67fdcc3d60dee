// The Z3 back end: one WASM instance per process (initialised once, lazily), a fresh low-level
// context per query built through the C API and deleted afterwards (nothing a query creates
// outlives it: the WASM heap is capped at 2 GB), a deadline per query, and queries serialised (one
// check at a time). `toSmtLib` prints a query for debugging (K2_SMT_DUMP=file).
import { init } from 'z3-solver';
import { Terms, mask, type Term } from './term.js';

interface Z3Handle {
  api: Awaited<ReturnType<typeof init>>;
}

let handle: Promise<Z3Handle> | null = null;

/** The process-wide Z3 instance (initialised on first use, ~0.2–1 s). */
export function z3(): Promise<Z3Handle> {
  if (!handle) {
    handle = (async () => {
      const api = await init();
      // Start Z3's worker thread now, outside any query's deadline: a first query's deadline used
      // to expire during the thread's start-up and interrupt it mid-answer.
      const Z = api.Z3 as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      const cfg = Z.mk_config();
      const c = Z.mk_context(cfg);
      Z.del_config(cfg);
      try {
        const solver = Z.mk_solver(c);
        Z.solver_inc_ref(c, solver);
        await Z.solver_check(c, solver);
      } finally {
        Z.del_context(c);
      }
      return { api };
    })();
  }
  return handle;
}

let warmed: Promise<void> | null = null;

/**
 * Starts Z3 (and its worker thread) now, so no time budget pays for it later — and answers one
 * small bit-vector and array query: Z3 sets up its bit-vector and array solvers on the first such
 * check (~0.25 s here), and a check interrupted before that has finished pays it again, so without
 * this the first queries of a short budget all ran out their time.
 */
export function warmUpSolver(): Promise<void> {
  warmed ??= (async () => {
    await z3();
    const T = new Terms();
    const x = T.var('x', 64), y = T.var('y', 64), m = T.avar('m', 64, 8);
    const f = T.band(T.ule(x, T.bv(100n, 64)), T.bnot(T.eq(T.add(T.mul(y, x), T.zext(T.select(m, x), 56)), T.bv(7n, 64))));
    await solve(f, 10_000);
  })();
  return warmed;
}

/** Stops Z3's worker threads so the process can exit (call once, at the very end). */
export async function shutdownZ3(): Promise<void> {
  if (!handle) return;
  const h = await handle;
  handle = null;
  warmed = null;
  await queue.catch(() => undefined); // let an interrupted query unwind before its thread is killed
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

/* eslint-disable @typescript-eslint/no-explicit-any */
type Ast = any;

/** Builds the formula with the C API in context `c` (iterative, memoised by term id). */
function build(Z: any, c: unknown, formula: Term): { ast: (t: Term) => Ast; leaves: Term[]; size: number } {
  const memo = new Map<number, Ast>();
  const sorts = new Map<string, Ast>();
  const sort = (t: Term): Ast => {
    const k = `${t.s}:${t.w}:${t.iw}`;
    let srt = sorts.get(k);
    if (!srt) {
      srt = t.s === 0 ? Z.mk_bool_sort(c) : t.s === 1 ? Z.mk_bv_sort(c, t.w) : Z.mk_array_sort(c, Z.mk_bv_sort(c, t.iw), Z.mk_bv_sort(c, t.w));
      sorts.set(k, srt);
    }
    return srt;
  };
  const leaves: Term[] = [];
  const fold = (xs: Ast[], f: (a: Ast, b: Ast) => Ast): Ast => xs.reduce((acc, x) => f(acc, x));
  const node = (t: Term, a: Ast[]): Ast => {
    switch (t.op) {
      case 'const':
        return t.s === 0 ? (t.v ? Z.mk_true(c) : Z.mk_false(c)) : Z.mk_numeral(c, t.v.toString(), sort(t));
      case 'var':
      case 'avar':
        leaves.push(t);
        return Z.mk_const(c, Z.mk_string_symbol(c, t.name), sort(t));
      case 'add': return fold(a, (x, y) => Z.mk_bvadd(c, x, y));
      case 'mul': return fold(a, (x, y) => Z.mk_bvmul(c, x, y));
      case 'and': return fold(a, (x, y) => Z.mk_bvand(c, x, y));
      case 'or': return fold(a, (x, y) => Z.mk_bvor(c, x, y));
      case 'xor': return fold(a, (x, y) => Z.mk_bvxor(c, x, y));
      case 'concat': return fold(a, (x, y) => Z.mk_concat(c, x, y));
      case 'udiv': return Z.mk_bvudiv(c, a[0], a[1]);
      case 'urem': return Z.mk_bvurem(c, a[0], a[1]);
      case 'sdiv': return Z.mk_bvsdiv(c, a[0], a[1]);
      case 'srem': return Z.mk_bvsrem(c, a[0], a[1]);
      case 'shl': return Z.mk_bvshl(c, a[0], a[1]);
      case 'lshr': return Z.mk_bvlshr(c, a[0], a[1]);
      case 'ashr': return Z.mk_bvashr(c, a[0], a[1]);
      case 'extract': return Z.mk_extract(c, t.p, t.q, a[0]);
      case 'sext': return Z.mk_sign_ext(c, t.p, a[0]);
      case 'ite': return Z.mk_ite(c, a[0], a[1], a[2]);
      case 'select': return Z.mk_select(c, a[0], a[1]);
      case 'store': return Z.mk_store(c, a[0], a[1], a[2]);
      case 'eq': return Z.mk_eq(c, a[0], a[1]);
      case 'ult': return Z.mk_bvult(c, a[0], a[1]);
      case 'ule': return Z.mk_bvule(c, a[0], a[1]);
      case 'slt': return Z.mk_bvslt(c, a[0], a[1]);
      case 'sle': return Z.mk_bvsle(c, a[0], a[1]);
      case 'band': return Z.mk_and(c, a);
      case 'bor': return Z.mk_or(c, a);
      case 'bnot': return Z.mk_not(c, a[0]);
    }
  };
  const ast = (root: Term): Ast => {
    const stack: [Term, boolean][] = [[root, false]];
    while (stack.length) {
      const [t, done] = stack.pop()!;
      if (memo.has(t.id)) continue;
      if (!done) {
        stack.push([t, true]);
        for (const x of t.a) if (!memo.has(x.id)) stack.push([x, false]);
        continue;
      }
      memo.set(t.id, node(t, t.a.map((x) => memo.get(x.id))));
    }
    return memo.get(root.id);
  };
  ast(formula);
  return { ast, leaves, size: memo.size };
}

/**
 * Is `formula` (a Bool term) satisfiable? `unknown` on timeout or when Z3 gives up. A model gives
 * every variable, and for each array variable the entries at the indices the formula reads.
 * Each query gets its own context (built through the C API, deleted afterwards, so nothing it
 * creates outlives it: the WASM heap is capped at 2 GB); the deadline is enforced by interrupting
 * the context from the main thread, since Z3's own timeout is not checked during preprocessing.
 */
export async function solve(formula: Term, timeoutMs: number, rlimit?: number): Promise<SatResult> {
  const { api } = await z3();
  const Z = api.Z3 as any;
  if (process.env.K2_SMT_DUMP) (await import('node:fs')).writeFileSync(process.env.K2_SMT_DUMP, toSmtLib(formula).script);
  return serialise(async () => {
    const cfg = Z.mk_config();
    const c = Z.mk_context(cfg);
    Z.del_config(cfg);
    let timer: NodeJS.Timeout | null = null;
    try {
      const tb0 = performance.now();
      const { ast, leaves, size } = build(Z, c, formula);
      if (size > MAX_FORMULA_NODES) return { result: 'unknown', reason: `formula of ${size} nodes is too large` };
      const solver = Z.mk_solver(c);
      Z.solver_inc_ref(c, solver);
      const params = Z.mk_params(c);
      Z.params_inc_ref(c, params);
      Z.params_set_uint(c, params, Z.mk_string_symbol(c, 'timeout'), Math.max(1, Math.round(timeoutMs)));
      // a resource limit answers "unknown" at the same point of the search whatever the machine's load
      if (rlimit !== undefined) Z.params_set_uint(c, params, Z.mk_string_symbol(c, 'rlimit'), Math.max(1, Math.min(0xffffffff, Math.round(rlimit))));
      Z.solver_set_params(c, solver, params);
      Z.solver_assert(c, solver, ast(formula));
      let interrupted = false;
      timer = setTimeout(() => {
        interrupted = true;
        Z.interrupt(c);
      }, Math.max(1, Math.round(timeoutMs)) + Math.min(100, Math.max(10, Math.round(timeoutMs / 4))));
      const tb = performance.now();
      const r = await Z.solver_check(c, solver);
      clearTimeout(timer);
      timer = null;
      // an interrupted check's answer (and model) cannot be trusted
      if (interrupted) return { result: 'unknown', reason: 'timeout' };
      if (r === -1) return { result: 'unsat' };
      if (r !== 1) return { result: 'unknown', reason: interrupted ? 'timeout' : String(Z.solver_get_reason_unknown(c, solver) || 'unknown') };
      const model = Z.solver_get_model(c, solver);
      Z.model_inc_ref(c, model);
      const value = (t: Term, e: Ast): bigint => {
        const v = Z.model_eval(c, model, e, true);
        if (t.s === 0) return Z.get_bool_value(c, v) === 1 ? 1n : 0n;
        return BigInt(Z.get_numeral_string(c, v));
      };
      const vars = new Map<string, bigint>();
      const arrays = new Map<string, { entries: Map<bigint, bigint>; dflt: bigint }>();
      for (const t of leaves) {
        if (t.s === 2) arrays.set(t.name, { entries: new Map(), dflt: 0n });
        else vars.set(t.name, value(t, ast(t)) & mask(t.w === 0 ? 1 : t.w));
      }
      for (const [arr, idx] of arrayReads(formula)) {
        const i = value(idx, ast(idx));
        const a = arrays.get(arr.name)!;
        if (!a.entries.has(i)) a.entries.set(i, value({ ...arr, s: 1 } as Term, Z.mk_select(c, ast(arr), ast(idx))));
      }
      return { result: 'sat', model: { vars, arrays } };
    } catch (e) {
      return { result: 'unknown', reason: `solver error: ${(e as Error).message}` };
    } finally {
      if (timer) clearTimeout(timer);
      const td = performance.now();
      Z.del_context(c);
    }
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
