// The context of each program type: which loads and stores of it the kernel allows and what they
// give, whether packet data may be read or written directly, LD_ABS, and the values the program
// may return. For most program types these rules were probed from the running kernel
// (scripts/gen-kernel-tables.ts -> ctx-table.json: one load per offset and size, the verifier log
// says what the loaded register is). BTF-typed contexts (tracing, lsm) follow the attach target's
// prototype (tracing.ts). Without a table, the older hand-written rules (ctx-rules.ts) apply to
// the program types they cover; any other type is "not modelled" (unsafe).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RULES, ruleLdAbs, rulePktAccess, ruleReturnRange } from './ctx-rules.js';
import { progKind, type ProgKind } from './progtypes.js';
import { tracingAccess, tracingCtx, type TracingCtx } from './tracing.js';

export type CtxField = 'scalar' | 'pkt' | 'pkt_meta' | 'pkt_end' | 'btf' | 'sock';

/** What an access of `size` bytes at `off` yields, or why the kernel refuses it. */
export type CtxAccess =
  | { ok: true; field: Exclude<CtxField, 'btf' | 'sock'> }
  | { ok: true; field: 'btf'; btfId: number; flags: number; nullable: boolean }
  | { ok: true; field: 'sock'; sock: 'sock' | 'sock_common' | 'tcp_sock'; nullable: boolean }
  | { ok: false; why: string };

/** Everything the checker needs to know about one program's context and exit. */
export interface ProgCtx {
  kind: ProgKind;
  /** Why k2 cannot model this program type / attach type (null: it can). */
  unsupported: string | null;
  access(off: number, size: number, write: boolean): CtxAccess;
  pktRead: boolean;
  pktWrite: boolean;
  /** Helper ids that may be passed a packet pointer (probed; empty when unknown). */
  pktHelpers: ReadonlySet<number>;
  ldAbs: boolean;
  /** Range R0 must be in at program exit, or null when the kernel does not check it. */
  ret: [bigint, bigint] | null;
  /** May a pointer be returned (types without a return range, for privileged programs). */
  retPtr: boolean;
  /** The range applies to the 32-bit subregister (LSM hooks). */
  ret32?: boolean;
  /** The attach target returns void (LSM hooks, struct_ops members): R0 is not checked at all. */
  retVoid?: boolean;
}

const NO_HELPERS: ReadonlySet<number> = new Set();

interface CtxTable {
  struct: string;
  size: number;
  read: Record<string, number[]>;
  write: number[];
  pktRead: boolean;
  pktWrite: boolean;
  ldAbs: boolean;
  retOk: string[];
  retPtr: boolean;
  pktHelpers?: number[];
}
interface CtxTables {
  kernel: string;
  types: Record<string, Record<string, number>>;
  tables: CtxTable[];
  rawTpNullArgs?: Record<string, number>;
  sockTables?: Record<string, { size: number; read: Record<string, number[]> }>;
}

/** The probed table file, beside this module in src/ or, from dist/, in ../../src/safety. */
function loadTables(): CtxTables | null {
  for (const rel of ['./ctx-table.json', '../../src/safety/ctx-table.json']) {
    try {
      const t = JSON.parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as CtxTables;
      if (t && t.types && Array.isArray(t.tables)) return t;
    } catch { /* try the next place */ }
  }
  return null;
}
let tables: CtxTables | null | undefined;
export const ctxTables = (): CtxTables | null => (tables === undefined ? (tables = loadTables()) : tables);

const sizeCode = (size: number): number => (size === 1 ? 0 : size === 2 ? 1 : size === 4 ? 2 : size === 8 ? 3 : -1);
const refuse = (off: number, size: number, write: boolean): CtxAccess =>
  ({ ok: false, why: `invalid bpf_context access off=${off} size=${size}${write ? ' (write)' : ''}` });

/** The table that applies to a program: its attach type's, the type's only one, or none. */
function tableFor(k: ProgKind): CtxTable | null {
  const t = ctxTables();
  const byAttach = t?.types[k.type];
  if (!t || !byAttach) return null;
  const idx = byAttach[k.attach] ?? (k.attach === '' ? undefined : byAttach['']);
  if (idx !== undefined) return t.tables[idx] ?? null;
  // No expected attach type: usable only when every attach type of this program type behaves alike.
  const all = [...new Set(Object.values(byAttach))];
  return k.attach === '' && all.length === 1 ? t.tables[all[0]!] ?? null : null;
}

/** Return range from the probed values: [min, max] when some were refused, null when all were accepted. */
function retRange(tb: CtxTable): [bigint, bigint] | null | 'inconsistent' {
  const PROBED = 15; // scripts/gen-kernel-tables.ts RETURNS
  const ok = tb.retOk.map((v) => BigInt(v));
  if (ok.length === PROBED) return null;
  if (!ok.length) return 'inconsistent';
  const lo = ok.reduce((a, b) => (a < b ? a : b)), hi = ok.reduce((a, b) => (a > b ? a : b));
  return [lo, hi];
}

function tableCtx(k: ProgKind, tb: CtxTable): ProgCtx {
  const read = new Map<number, string>();
  for (const [type, codes] of Object.entries(tb.read)) for (const c of codes) read.set(c, type);
  const write = new Set(tb.write);
  const r = retRange(tb);
  return {
    kind: k,
    unsupported: r === 'inconsistent' ? `return values of ${k.type} were not probed consistently` : null,
    access(off, size, w) {
      const sc = sizeCode(size);
      if (off < 0 || sc < 0) return refuse(off, size, w);
      const code = off * 4 + sc;
      if (w) return write.has(code) ? { ok: true, field: 'scalar' } : refuse(off, size, w);
      const t = read.get(code);
      if (t === undefined) return refuse(off, size, w);
      if (t === 'scalar' || t === 'pkt' || t === 'pkt_end' || t === 'pkt_meta') return { ok: true, field: t };
      const sock = /^(sock|sock_common|tcp_sock)(_or_null)?$/.exec(t);
      if (sock) return { ok: true, field: 'sock', sock: sock[1] as 'sock' | 'sock_common' | 'tcp_sock', nullable: !!sock[2] };
      return { ok: false, why: `context field of type ${t} (${tb.struct} off=${off}) is not modelled` };
    },
    pktRead: tb.pktRead,
    pktWrite: tb.pktWrite,
    pktHelpers: new Set(tb.pktHelpers ?? []),
    ldAbs: tb.ldAbs,
    ret: r === 'inconsistent' ? [0n, 0n] : r,
    retPtr: tb.retPtr,
  };
}

/**
 * Return ranges of BTF-typed attach types that cannot be probed where trampolines are refused:
 * fentry/fexit must return 0 (check_return_code), fmod_ret anything; LSM hooks have ranges per hook
 * ([-MAX_ERRNO, 0] or [0, 1]): only 0 is valid for every hook.
 */
const UNPROBED_RET: Record<string, [bigint, bigint] | null> = {
  trace_fentry: [0n, 0n], trace_fexit: [0n, 0n], modify_return: null, lsm_mac: [0n, 0n], lsm_cgroup: [0n, 1n],
};

function btfCtx(k: ProgKind, tc: TracingCtx | string, tb: CtxTable | null): ProgCtx {
  let r = tb ? retRange(tb) : k.attach in UNPROBED_RET ? UNPROBED_RET[k.attach]! : 'inconsistent';
  let ret32 = false;
  // LSM hooks: bool hooks return [0, 1], int hooks 0 or a negative errno, on the 32-bit subregister.
  if (k.type === 'struct_ops' && typeof tc !== 'string') r = null;
  if (k.attach === 'lsm_mac' && typeof tc !== 'string') {
    r = tc.retKind === 'void' ? null : tc.retKind === 'bool' ? [0n, 1n] : tc.retKind === 'int' ? [-4095n, 0n] : [0n, 0n];
    ret32 = r !== null;
  }
  const why = typeof tc === 'string' ? tc : k.sleepable ? 'sleepable programs are not modelled' : r === 'inconsistent' ? `return values of ${k.type}/${k.attach} were not probed here` : null;
  return {
    kind: k,
    unsupported: why,
    access(off, size, write) {
      if (typeof tc === 'string') return { ok: false, why: tc };
      const a = tracingAccess(tc, off, size, write);
      if (a.kind === 'bad') return { ok: false, why: a.why };
      if (a.kind === 'scalar') return { ok: true, field: 'scalar' };
      return { ok: true, field: 'btf', btfId: a.btfId, flags: a.flags, nullable: a.nullable };
    },
    pktRead: false,
    pktWrite: false,
    pktHelpers: NO_HELPERS,
    ldAbs: false,
    ret: r === 'inconsistent' ? [0n, 0n] : r,
    retPtr: tb ? tb.retPtr : false,
    ret32,
    retVoid: typeof tc !== 'string' && tc.retKind === 'void' && (k.type === 'struct_ops' || k.attach === 'lsm_mac'),
  };
}

function ruleCtx(k: ProgKind, section: string): ProgCtx {
  const rule = k.type in RULES ? RULES[k.type] : undefined;
  const range = ruleReturnRange(k.type, section);
  return {
    kind: k,
    unsupported: rule ? null : `program type ${k.type} is not modelled`,
    access: (off, size, write) => (rule ? rule(off, size, write, section) : { ok: false, why: `program type ${k.type} is not modelled` }),
    pktRead: rulePktAccess(k.type, false),
    pktWrite: rulePktAccess(k.type, true),
    pktHelpers: NO_HELPERS,
    ldAbs: ruleLdAbs(k.type),
    ret: range,
    retPtr: range === null,
  };
}

const CACHE = new Map<string, ProgCtx>();

/** The context rules of a program of type `progType` in section `section`. */
export function progCtx(progType: string, section: string, structOps?: string): ProgCtx {
  const key = `${progType}\0${section}\0${structOps ?? ''}`;
  let c = CACHE.get(key);
  if (c) return c;
  const k = progKind(progType, section, structOps);
  const tb = tableFor(k);
  if (progType === 'tracing' || progType === 'lsm' || progType === 'struct_ops') c = btfCtx(k, tracingCtx(k), tb);
  else if (k.sleepable) c = { ...ruleCtx(k, section), unsupported: 'sleepable programs are not modelled' };
  else if (tb) c = tableCtx(k, tb);
  else c = ruleCtx(k, section);
  CACHE.set(key, c);
  return c;
}

/** Why k2 cannot model programs of this type in this section, or null. */
export const unsupportedReason = (progType: string, section: string, structOps?: string): string | null => progCtx(progType, section, structOps).unsupported;

const SOCK_READS = new Map<string, Set<number> | null>();
/** check_sock_access: may `size` bytes at `off` be read through a socket pointer of this kind (probed)? */
export function sockReadable(kind: 'sock' | 'sock_common' | 'tcp_sock', off: number, size: number): boolean {
  let s = SOCK_READS.get(kind);
  if (s === undefined) {
    const t = ctxTables()?.sockTables?.[kind];
    s = t ? new Set(Object.values(t.read).flat()) : null;
    SOCK_READS.set(kind, s);
  }
  const sc = sizeCode(size);
  return !!s && off >= 0 && sc >= 0 && s.has(off * 4 + sc);
}
