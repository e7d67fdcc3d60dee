// Kernel function calls (kfuncs): `extern ... __ksym` functions that libbpf turns into
// BPF_PSEUDO_KFUNC_CALL calls by the kernel's BTF id. Which program types may call which kfunc is
// probed from the running kernel (helper-table.json); the arguments follow the kfunc's BTF prototype
// (check_kfunc_args): scalars, `__k` constants, the program's context, memory with a following
// `__sz` size, and pointers to kernel structs (trusted, or referenced for a release). The flags the
// kernel keeps outside BTF (KF_ACQUIRE, KF_RELEASE, KF_RET_NULL) are written here for the kfuncs k2
// models; any other kfunc is "not modelled" (unsafe).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KIND, isIntOrEnum, isStruct, resolveSize, skipMods, vmlinux, type KBtf, type KType } from './kbtf.js';
import type { ProgKind } from './progtypes.js';

export const KF = { ACQUIRE: 1, RELEASE: 2, RET_NULL: 4 } as const;

/** kfuncs k2 models and their flags (the kernel's BTF_ID_FLAGS in kernel/bpf/helpers.c, cpumask.c, nf_conntrack_bpf.c). */
const MODELLED: Record<string, number> = {
  bpf_task_acquire: KF.ACQUIRE | KF.RET_NULL,
  bpf_task_release: KF.RELEASE,
  bpf_task_from_pid: KF.ACQUIRE | KF.RET_NULL,
  bpf_task_from_vpid: KF.ACQUIRE | KF.RET_NULL,
  bpf_cgroup_acquire: KF.ACQUIRE | KF.RET_NULL,
  bpf_cgroup_release: KF.RELEASE,
  bpf_cgroup_from_id: KF.ACQUIRE | KF.RET_NULL,
  bpf_cpumask_create: KF.ACQUIRE | KF.RET_NULL,
  bpf_cpumask_release: KF.RELEASE,
  bpf_skb_ct_lookup: KF.ACQUIRE | KF.RET_NULL,
  bpf_xdp_ct_lookup: KF.ACQUIRE | KF.RET_NULL,
  bpf_skb_ct_alloc: KF.ACQUIRE | KF.RET_NULL,
  bpf_xdp_ct_alloc: KF.ACQUIRE | KF.RET_NULL,
  bpf_ct_release: KF.RELEASE,
};

export type KfuncArg =
  | { kind: 'scalar'; constant: boolean }
  | { kind: 'ctx' }
  | { kind: 'mem'; sizeArg: number; nullable: boolean } // memory whose size is argument `sizeArg`
  | { kind: 'size' } // the size of the previous memory argument
  | { kind: 'btf'; btfId: number; name: string };

export interface Kfunc {
  name: string;
  flags: number;
  args: KfuncArg[];
  /** Return: nothing, a scalar, or a pointer to a kernel struct. */
  ret: { kind: 'void' } | { kind: 'scalar' } | { kind: 'btf'; btfId: number };
}

interface KfuncTable { kfuncs?: Record<string, number>; kfuncSets?: string[][] }
let table: KfuncTable | null | undefined;
function kfuncTable(): KfuncTable | null {
  if (table !== undefined) return table;
  table = null;
  for (const rel of ['./helper-table.json', '../../src/safety/helper-table.json']) {
    try {
      table = JSON.parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as KfuncTable;
      break;
    } catch { /* next */ }
  }
  return table;
}

/** Whether the kernel has kfunc `name` (a FUNC in its BTF). */
export const kernelHasFunc = (name: string): boolean => !!vmlinux()?.byName.get(name)?.some((t) => t.kind === KIND.FUNC);

/** Whether a program of this kind may call kfunc `name` (probed). */
function kfuncAllowed(name: string, k: ProgKind): boolean {
  const t = kfuncTable();
  const idx = t?.kfuncs?.[name];
  if (idx === undefined) return false;
  const set = t!.kfuncSets?.[idx] ?? [];
  if (set.includes(`${k.type}:${k.attach}`)) return true;
  // An attach type that was not probed (trampolines): the raw tracepoint's set, as for helpers.
  return (k.type === 'tracing' || k.type === 'lsm') && !set.some((x) => x.startsWith(`${k.type}:${k.attach}`)) && set.includes('tracing:trace_raw_tp');
}

const CACHE = new Map<string, Kfunc | string>();

/** The model of kfunc `name` for a program of this kind, or why it is not modelled / not allowed. */
export function kfuncFor(name: string, k: ProgKind, ctxNames: string[]): Kfunc | string {
  const key = `${name}\0${k.type}\0${k.attach}`;
  const hit = CACHE.get(key);
  if (hit) return hit;
  const r = build(name, k, ctxNames);
  CACHE.set(key, r);
  return r;
}

function build(name: string, k: ProgKind, ctxNames: string[]): Kfunc | string {
  const btf = vmlinux();
  if (!btf) return 'no kernel BTF to check kernel function calls against';
  const fn = btf.byName.get(name)?.find((t) => t.kind === KIND.FUNC);
  if (!fn) return `kernel function ${name} not found in the kernel's BTF`;
  if (!kfuncAllowed(name, k)) return `calling kernel function ${name} is not allowed (${k.type}${k.attach ? `/${k.attach}` : ''})`;
  const flags = MODELLED[name];
  if (flags === undefined) return `kernel function ${name} is not modelled`;
  const proto = btf.types[fn.sizeOrType];
  if (!proto || proto.kind !== KIND.FUNC_PROTO) return `kernel function ${name} has no prototype`;
  const args: KfuncArg[] = [];
  const ps = proto.params;
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i]!;
    const t = skipMods(btf, p.type);
    if (!t) return `kernel function ${name}: argument ${i} type not found`;
    if (isIntOrEnum(t.t)) {
      if (/__szk?$/.test(p.name) && args[i - 1]?.kind === 'mem') { args.push({ kind: 'size' }); continue; }
      args.push({ kind: 'scalar', constant: p.name.endsWith('__k') || p.name.endsWith('__szk') });
      continue;
    }
    if (t.t.kind !== KIND.PTR) return `kernel function ${name}: argument ${i} kind is not modelled`;
    const pt = skipMods(btf, t.t.sizeOrType);
    const next = ps[i + 1];
    if (next && /__szk?$/.test(next.name)) { args.push({ kind: 'mem', sizeArg: i + 1, nullable: p.name.endsWith('__opt') }); continue; }
    if (pt && isStruct(pt.t) && ctxNames.includes(pt.t.name)) { args.push({ kind: 'ctx' }); continue; }
    if (pt && isStruct(pt.t)) { args.push({ kind: 'btf', btfId: pt.id, name: pt.t.name }); continue; }
    return `kernel function ${name}: argument ${i} (${p.name}) is not modelled`;
  }
  const rt = skipMods(btf, proto.sizeOrType);
  let ret: Kfunc['ret'];
  if (proto.sizeOrType === 0) ret = { kind: 'void' };
  else if (rt && isIntOrEnum(rt.t)) ret = { kind: 'scalar' };
  else if (rt && rt.t.kind === KIND.PTR) {
    const pt = skipMods(btf, rt.t.sizeOrType);
    if (!pt || !isStruct(pt.t)) return `kernel function ${name}: return type is not modelled`;
    ret = { kind: 'btf', btfId: pt.id };
  } else return `kernel function ${name}: return type is not modelled`;
  if (flags & KF.RELEASE && !args.some((a) => a.kind === 'btf')) return `kernel function ${name}: release without a pointer argument`;
  return { name, flags, args, ret };
}

/** The kernel struct a pointer to struct `btfId` may be passed for `want` (btf_struct_ids_match: nested first members). */
export function structMatches(btf: KBtf, have: number, want: number): boolean {
  let t: KType | undefined = btf.types[have];
  for (let n = 0; t && n < 16; n++) {
    if (t.id === want) return true;
    const first = t.members[0];
    if (!first || first.bitOffset !== 0) return false;
    const s = skipMods(btf, first.type);
    if (!s || !isStruct(s.t)) return false;
    t = s.t;
  }
  return false;
}

export { resolveSize };
