// Regenerates the safety model's tables of the running kernel's verifier (run as root):
//   node --import=tsx scripts/gen-kernel-tables.ts [--out-dir DIR]
// writes DIR/helper-table.json and DIR/ctx-table.json (default DIR: src/safety).
//
// Everything is probed with tiny programs loaded through libbpf's bpf_prog_load (koffi), one
// question per load, and the verifier's answer read from its log:
//
// helper-table.json — which helpers each program type / expected attach type may call (the
//   kernel's *_func_proto tables): "r1..r5 = 0; call ID; exit". The kernel looks the helper up
//   before it checks any argument, so "program of this type cannot use helper" (or "unknown func",
//   "not allowed") means unavailable and any other outcome means available. (`bpftool feature
//   probe` cannot be used on 6.18: libbpf 1.1 looks for the pre-6.x message and reports every
//   helper as available.) Names and numbers come from the kernel's BTF (enum bpf_func_id,
//   bpf_prog_type, bpf_attach_type).
// ctx-table.json — the context rules of every non-BTF program type (the *_is_valid_access
//   callbacks): for each byte offset of the user-visible context struct (from the kernel's
//   struct bpf_ctx_convert) and each size, "r2 = *(SIZE *)(r1 + OFF)" (what type R2 gets, as the
//   log prints it: scalar, pkt, pkt_end, sock_or_null...) and "*(SIZE *)(r1 + OFF) = r2" (allowed
//   or not); plus direct packet reads/writes through the context's data pointer, LD_ABS, and the
//   return values the program may exit with (check_return_code).
//
// Types that cannot be loaded here (trampolines: EPERM) are listed under "unprobed".
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseKBtf, KIND, skipMods, type KBtf } from '../src/safety/kbtf.js';

const require = createRequire(import.meta.url);

// ---- the kernel's BTF: names and numbers ----
export function kernelEnums(btf: KBtf): { funcIds: Map<string, number>; progTypes: Map<string, number>; attachTypes: Map<string, number> } {
  const enumOf = (name: string, prefix: string): Map<string, number> => {
    const t = btf.byName.get(name)?.find((x) => x.kind === KIND.ENUM);
    if (!t) throw new Error(`enum ${name} not in the kernel's BTF`);
    return new Map(t.values.filter((e) => e.name.startsWith(prefix)).map((e) => [e.name.slice(prefix.length).toLowerCase(), Number(e.value)]));
  };
  return { funcIds: enumOf('bpf_func_id', 'BPF_FUNC_'), progTypes: enumOf('bpf_prog_type', 'BPF_PROG_TYPE_'), attachTypes: enumOf('bpf_attach_type', 'BPF_') };
}

/** The user-visible context struct of each program type (members BPF_PROG_TYPE_X_prog of struct bpf_ctx_convert). */
export function ctxStructs(btf: KBtf): Map<string, { name: string; size: number }> {
  const conv = btf.byName.get('bpf_ctx_convert')?.find((t) => t.kind === KIND.STRUCT);
  const out = new Map<string, { name: string; size: number }>();
  for (const m of conv?.members ?? []) {
    const mm = /^BPF_PROG_TYPE_(.*)_prog$/.exec(m.name);
    if (!mm) continue;
    const s = skipMods(btf, m.type);
    if (s) out.set(mm[1]!.toLowerCase(), { name: s.t.name, size: s.t.kind === KIND.PTR ? 8 : s.t.sizeOrType });
  }
  return out;
}

// ---- raw loads through libbpf ----
interface Koffi {
  load(path: string): { func(decl: string): (...args: unknown[]) => unknown };
  address(p: unknown): bigint;
}

export interface RawLoad { ok: boolean; errno: number; log: string }
export interface RawLoader {
  load(type: number, insns: Buffer[], opts?: { attach?: number; btfId?: number; flags?: number; logLevel?: number; license?: string }): RawLoad;
}

/** A loader of raw instruction sequences (GPL license, log captured); fds are closed at once. */
export function rawLoader(logSize = 1 << 20): RawLoader {
  const koffi = require('koffi') as Koffi;
  const libbpf = koffi.load('libbpf.so.1');
  const libc = koffi.load('libc.so.6');
  const progLoad = libbpf.func('int bpf_prog_load(int type, const char *name, const char *license, const void *insns, size_t cnt, const void *opts)') as
    (t: number, n: string | null, l: string, i: Buffer, c: number, o: Buffer) => number;
  const close = libc.func('int close(int fd)') as (fd: number) => number;
  const malloc = libc.func('void *malloc(size_t n)') as (n: number) => unknown;
  const memset = libc.func('void *memset(void *p, int c, size_t n)') as (p: unknown, c: number, n: number) => unknown;
  const memcpyOut = libc.func('void *memcpy(_Out_ uint8_t *dst, const void *src, size_t n)') as (d: Buffer, s: unknown, n: number) => unknown;
  const logPtr = malloc(logSize); // lives as long as the process (one buffer per loader)
  const logAddr = koffi.address(logPtr);
  const logBuf = Buffer.alloc(logSize);
  return {
    load(type, insns, o = {}) {
      memset(logPtr, 0, 64);
      // struct bpf_prog_load_opts, libbpf 1.1 layout (104 bytes, ends at log_buf)
      const opts = Buffer.alloc(104);
      opts.writeBigUInt64LE(104n, 0);
      opts.writeInt32LE(1, 8); // attempts
      opts.writeUInt32LE(o.attach ?? 0, 12);
      opts.writeUInt32LE(o.flags ?? 0, 20);
      opts.writeUInt32LE(o.btfId ?? 0, 32);
      opts.writeUInt32LE(o.logLevel ?? 1, 88);
      opts.writeUInt32LE(logSize, 92);
      opts.writeBigUInt64LE(logAddr, 96);
      const fd = progLoad(type, null, o.license ?? 'GPL', Buffer.concat(insns), insns.length, opts);
      if (fd >= 0) close(fd);
      memcpyOut(logBuf, logPtr, logSize);
      const end = logBuf.indexOf(0);
      return { ok: fd >= 0, errno: fd < 0 ? -fd : 0, log: logBuf.subarray(0, end < 0 ? logSize : end).toString('latin1') };
    },
  };
}

export function insn(code: number, dst: number, src: number, off: number, imm: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = code;
  b[1] = (src << 4) | dst;
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm, 4);
  return b;
}
const MOV64_IMM = 0xb7, MOV64_REG = 0xbf, ADD64_IMM = 0x07, CALL = 0x85, EXIT = 0x95, JGT_REG = 0x2d, LDX = 0x61, STX = 0x63;
const SIZE_CODE: Record<number, number> = { 1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18 };
const ldx = (size: number, dst: number, src: number, off: number) => insn(LDX | SIZE_CODE[size]!, dst, src, off, 0); // BPF_LDX | MEM | size
const stx = (size: number, dst: number, src: number, off: number) => insn(STX | SIZE_CODE[size]!, dst, src, off, 0);
const ret = (v: number) => [insn(MOV64_IMM, 0, 0, 0, v), insn(EXIT, 0, 0, 0, 0)];

/** What to probe: program type, expected attach types (null: none), and what else the load needs. */
interface Probe { type: string; attach: (string | null)[]; btf?: [kind: number, name: string]; flags?: number; ctx?: boolean }
const SLEEPABLE = 1 << 4; // BPF_F_SLEEPABLE
const PROBES: Probe[] = [
  { type: 'socket_filter', attach: [null] },
  { type: 'kprobe', attach: [null, 'trace_kprobe_multi', 'trace_uprobe_multi'] },
  { type: 'sched_cls', attach: [null] },
  { type: 'sched_act', attach: [null] },
  { type: 'tracepoint', attach: [null] },
  { type: 'xdp', attach: [null, 'xdp_devmap', 'xdp_cpumap'] },
  { type: 'perf_event', attach: [null] },
  { type: 'cgroup_skb', attach: ['cgroup_inet_ingress', 'cgroup_inet_egress'] },
  { type: 'cgroup_sock', attach: ['cgroup_inet_sock_create', 'cgroup_inet_sock_release', 'cgroup_inet4_post_bind', 'cgroup_inet6_post_bind'] },
  { type: 'lwt_in', attach: [null] },
  { type: 'lwt_out', attach: [null] },
  { type: 'lwt_xmit', attach: [null] },
  { type: 'lwt_seg6local', attach: [null] },
  { type: 'sock_ops', attach: [null] },
  { type: 'sk_skb', attach: ['sk_skb_stream_parser', 'sk_skb_stream_verdict', 'sk_skb_verdict'] },
  { type: 'cgroup_device', attach: [null] },
  { type: 'sk_msg', attach: ['sk_msg_verdict'] },
  { type: 'raw_tracepoint', attach: [null] },
  { type: 'cgroup_sock_addr', attach: ['cgroup_inet4_bind', 'cgroup_inet6_bind', 'cgroup_inet4_connect', 'cgroup_inet6_connect',
    'cgroup_udp4_sendmsg', 'cgroup_udp6_sendmsg', 'cgroup_udp4_recvmsg', 'cgroup_udp6_recvmsg', 'cgroup_inet4_getpeername',
    'cgroup_inet6_getpeername', 'cgroup_inet4_getsockname', 'cgroup_inet6_getsockname', 'cgroup_unix_connect', 'cgroup_unix_sendmsg',
    'cgroup_unix_recvmsg', 'cgroup_unix_getpeername', 'cgroup_unix_getsockname'] },
  { type: 'sk_reuseport', attach: ['sk_reuseport_select', 'sk_reuseport_select_or_migrate'] },
  { type: 'flow_dissector', attach: [null] },
  { type: 'cgroup_sysctl', attach: [null] },
  { type: 'raw_tracepoint_writable', attach: [null] },
  { type: 'cgroup_sockopt', attach: ['cgroup_getsockopt', 'cgroup_setsockopt'] },
  { type: 'tracing', attach: ['trace_raw_tp'], btf: [KIND.TYPEDEF, 'btf_trace_sched_switch'], ctx: false },
  { type: 'tracing', attach: ['trace_fentry', 'trace_fexit', 'modify_return'], btf: [KIND.FUNC, 'do_unlinkat'], ctx: false },
  { type: 'tracing', attach: ['trace_iter'], btf: [KIND.FUNC, 'bpf_iter_task'], ctx: false },
  { type: 'lsm', attach: ['lsm_mac'], btf: [KIND.FUNC, 'bpf_lsm_file_open'], ctx: false },
  { type: 'sk_lookup', attach: ['sk_lookup'] },
  { type: 'syscall', attach: [null], flags: SLEEPABLE, ctx: false },
  { type: 'netfilter', attach: ['netfilter'] },
];

/** Return values tried (64-bit), to find the range check_return_code enforces. */
const RETURNS: bigint[] = [-(1n << 32n), -4096n, -4095n, -2n, -1n, 0n, 1n, 2n, 3n, 4n, 5n, 0x7fffffffn, 0xffffffffn, 1n << 32n, -0x80000000n];
const LD_IMM64 = 0x18;
const retBig = (v: bigint): Buffer[] => {
  const u = BigInt.asUintN(64, v);
  return [insn(LD_IMM64, 0, 0, 0, Number(BigInt.asIntN(32, u & 0xffffffffn))), insn(0, 0, 0, 0, Number(BigInt.asIntN(32, u >> 32n))), insn(EXIT, 0, 0, 0, 0)];
};

export interface CtxTable {
  /** Context struct and its size. */
  struct: string;
  size: number;
  /** Read results: type name (as the verifier log prints it) -> codes off * 4 + log2(size). */
  read: Record<string, number[]>;
  /** Allowed scalar writes (codes as above). */
  write: number[];
  /** Direct packet access through the context's packet pointer (may_access_direct_pkt_data). */
  pktRead: boolean;
  pktWrite: boolean;
  /** Legacy LD_ABS/LD_IND allowed (may_access_skb). */
  ldAbs: boolean;
  /** The probed return values the kernel accepted (decimal strings; the model takes their [min, max]), and whether a pointer may be returned. */
  retOk: string[];
  retPtr: boolean;
  /** Helpers (of those available) that may be passed a packet pointer: the kernel refuses packet
   * pointers to helpers without `pkt_access` in most packet program types (may_access_direct_pkt_data). */
  pktHelpers?: number[];
}

const sizeCode = (size: number): number => ({ 1: 0, 2: 1, 4: 2, 8: 3 })[size]!;
const regType = (log: string, line: number, reg: number): string | null => {
  const l = log.split('\n').find((x) => x.startsWith(`${line}: (`));
  const m = l && new RegExp(`R${reg}(?:_w)?=([a-z_0-9]+)`).exec(l.slice(l.indexOf(';')));
  return m ? m[1]! : null;
};

function probeCtx(L: RawLoader, typeNo: number, o: { attach: number; btfId: number; flags: number }, size: number, returnsOnly = false, helperIds: number[] = []): Omit<CtxTable, 'struct' | 'size'> {
  // A return value the type accepts, for the other probes.
  const okRets = RETURNS.filter((v) => L.load(typeNo, retBig(v), { ...o, logLevel: 0 }).ok);
  const rv = okRets.includes(0n) ? 0 : okRets.includes(1n) ? 1 : Number(okRets[0] ?? 0n);
  const table: Omit<CtxTable, 'struct' | 'size'> = {
    read: {}, write: [], pktRead: false, pktWrite: false, ldAbs: false,
    retOk: okRets.map(String), retPtr: L.load(typeNo, [insn(MOV64_REG, 0, 1, 0, 0), insn(EXIT, 0, 0, 0, 0)], { ...o, logLevel: 0 }).ok,
  };
  if (returnsOnly) return table;
  for (let off = 0; off < size + 8; off++) {
    for (const sz of [1, 2, 4, 8]) {
      const code = off * 4 + sizeCode(sz);
      const r = L.load(typeNo, [ldx(sz, 2, 1, off), ...ret(rv)], { ...o, logLevel: 2 });
      if (r.ok) {
        const t = regType(r.log, 0, 2) ?? 'unknown';
        (table.read[t] ??= []).push(code);
      }
      const w = L.load(typeNo, [insn(MOV64_IMM, 2, 0, 0, 0), stx(sz, 1, 2, off), ...ret(rv)], { ...o, logLevel: 0 });
      if (w.ok) table.write.push(code);
    }
  }
  // The packet pointers: the first offset and size whose read gives pkt / pkt_end.
  const pkt = table.read.pkt?.[0], pktEnd = table.read.pkt_end?.[0];
  if (pkt !== undefined && pktEnd !== undefined) {
    // r2 = data; r3 = data_end; r4 = r2 + 1; if r4 > r3 goto exit; then read or write one byte.
    const body = (access: Buffer) => [ldx(1 << (pkt & 3), 2, 1, pkt >> 2), ldx(1 << (pktEnd & 3), 3, 1, pktEnd >> 2),
      insn(MOV64_REG, 4, 2, 0, 0), insn(ADD64_IMM, 4, 0, 0, 1), insn(JGT_REG, 4, 3, 1, 0), access, ...ret(rv)];
    table.pktRead = L.load(typeNo, body(ldx(1, 5, 2, 0)), { ...o, logLevel: 0 }).ok;
    table.pktWrite = L.load(typeNo, body(stx(1, 2, 2, 0)), { ...o, logLevel: 0 }).ok;
    // Every argument register holds the packet pointer: check_func_arg refuses it at the first
    // non-ARG_ANYTHING argument unless the helper has pkt_access (or the type allows any helper).
    table.pktHelpers = helperIds.filter((id) => {
      const r = L.load(typeNo, [ldx(1 << (pkt & 3), 2, 1, pkt >> 2), ...[1, 3, 4, 5].map((reg) => insn(MOV64_REG, reg, 2, 0, 0)), insn(CALL, 0, 0, 0, id), ...ret(rv)], { ...o, logLevel: 1 });
      return !/helper access to the packet is not allowed/.test(r.log);
    });
  }
  // LD_ABS needs the context in R6.
  table.ldAbs = L.load(typeNo, [insn(MOV64_REG, 6, 1, 0, 0), insn(0x30, 0, 0, 0, 0), ...ret(rv)], { ...o, logLevel: 0 }).ok;
  return table;
}

/**
 * The fields of socket pointers, one load per offset and size: struct bpf_sock through sk_msg's
 * ctx->sk, the sock_common subset through tc's skb->sk (NULL-checked), struct bpf_tcp_sock through
 * bpf_tcp_sock(skb->sk).
 */
function probeSockets(L: RawLoader, btf: KBtf, progTypes: Map<string, number>, attachTypes: Map<string, number>): Record<string, { size: number; read: Record<string, number[]> }> {
  const sizeOf = (name: string) => btf.byName.get(name)?.find((t) => t.kind === KIND.STRUCT)?.sizeOrType ?? 0;
  const JEQ_IMM = 0x15, CALL_ = 0x85;
  const cases: [string, number, number, number, (load: Buffer) => Buffer[]][] = [
    ['sock', progTypes.get('sk_msg')!, attachTypes.get('sk_msg_verdict')!, sizeOf('bpf_sock'), (ld) => [ldx(8, 2, 1, 72), ld, ...ret(1)]],
    ['sock_common', progTypes.get('sched_cls')!, 0, sizeOf('bpf_sock'), (ld) => [ldx(8, 2, 1, 168), insn(JEQ_IMM, 2, 0, 1, 0), ld, ...ret(0)]],
    ['tcp_sock', progTypes.get('sched_cls')!, 0, sizeOf('bpf_tcp_sock'),
      (ld) => [ldx(8, 1, 1, 168), insn(JEQ_IMM, 1, 0, 4, 0), insn(CALL_, 0, 0, 0, 96), insn(JEQ_IMM, 0, 0, 2, 0), insn(MOV64_REG, 2, 0, 0, 0), ld, ...ret(0)]],
  ];
  const out: Record<string, { size: number; read: Record<string, number[]> }> = {};
  for (const [name, type, attach, size, prog] of cases) {
    const read: Record<string, number[]> = {};
    for (let off = 0; off < size + 8; off++) {
      for (const sz of [1, 2, 4, 8]) {
        const r = L.load(type, prog(ldx(sz, 3, 2, off)), { attach, logLevel: 0 });
        if (r.ok) (read.scalar ??= []).push(off * 4 + sizeCode(sz));
      }
    }
    out[name] = { size, read };
  }
  return out;
}

/**
 * For every BTF tracepoint (typedef btf_trace_NAME), the pointer-to-struct arguments the verifier
 * types as NULL-able or as scalars: "r2 = *(u64 *)(r1 + 8 * i)" and the register type the log shows.
 */
function probeRawTpArgs(L: RawLoader, btf: KBtf, tracing: number, rawTp: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const td of btf.types) {
    if (td.kind !== KIND.TYPEDEF || !td.name.startsWith('btf_trace_')) continue;
    const ptr = btf.types[td.sizeOrType];
    const proto = ptr && ptr.kind === KIND.PTR ? btf.types[ptr.sizeOrType] : undefined;
    if (!proto || proto.kind !== KIND.FUNC_PROTO) continue;
    let mask = 0, off = 0;
    proto.params.slice(1).forEach((p, i) => {
      const t = skipMods(btf, p.type);
      const size = t && t.t.kind !== KIND.PTR ? t.t.sizeOrType : 8;
      const at = off;
      off += Math.ceil(size / 8) * 8;
      if (!t || t.t.kind !== KIND.PTR) return;
      const pt = skipMods(btf, t.t.sizeOrType);
      if (!pt || (pt.t.kind !== KIND.STRUCT && pt.t.kind !== KIND.UNION)) return;
      const r = L.load(tracing, [ldx(8, 2, 1, at), ...ret(0)], { attach: rawTp, btfId: td.id, logLevel: 2 });
      // The loaded register's type is printed with the state after the load ("1: R1=ctx() R2=...").
      const type = /R2(?:_w)?=([a-z_0-9]+)/.exec(r.log)?.[1] ?? '';
      if (/_or_null/.test(type)) mask |= 1 << (4 * i);
      else if (type === 'scalar') mask |= 2 << (4 * i);
    });
    if (mask) out[td.name.slice('btf_trace_'.length)] = mask;
  }
  return out;
}

interface HelperTable {
  kernel: string;
  generated: string;
  generator: string;
  method: string;
  helpers: Record<string, string>;
  /** Helpers a program without a GPL-compatible license may not call (gpl_only), wherever they are available. */
  gplOnly: number[];
  /** kfuncs (vmlinux FUNCs tagged bpf_kfunc) -> index into kfuncSets: the "type:attach" pairs that may call them. */
  kfuncs?: Record<string, number>;
  kfuncSets?: string[][];
  available: Record<string, Record<string, number[]>>;
  unprobed: Record<string, string>;
}

interface CtxTables {
  kernel: string;
  /** Loads through socket pointers (check_sock_access): struct bpf_sock, its sock_common subset, struct bpf_tcp_sock. */
  sockTables?: Record<string, { size: number; read: Record<string, number[]> }>;
  /** tp_btf tracepoints whose pointer arguments the kernel types unlike their BTF (raw_tp_null_args):
   * 4 bits per argument, 1 = may be NULL, 2 = scalar (may encode an error). */
  rawTpNullArgs?: Record<string, number>;
  generated: string;
  generator: string;
  method: string;
  /** Program type -> expected attach type ('' when none) -> index into `tables`. */
  types: Record<string, Record<string, number>>;
  tables: CtxTable[];
  unprobed: Record<string, string>;
}

/** JSON with arrays of numbers and strings on one line (short files, readable diffs). */
function pretty(v: unknown, indent = ''): string {
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x !== 'object' || x === null)) return JSON.stringify(v);
    return `[\n${v.map((x) => `${indent}  ${pretty(x, indent + '  ')}`).join(',\n')}\n${indent}]`;
  }
  if (v && typeof v === 'object') {
    const e = Object.entries(v);
    if (!e.length) return '{}';
    return `{\n${e.map(([k, x]) => `${indent}  ${JSON.stringify(k)}: ${pretty(x, indent + '  ')}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(v);
}

function writeJson(path: string, value: unknown): void {
  const text = pretty(value);
  JSON.parse(text);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text + '\n');
  renameSync(tmp, path);
}

function main(): void {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const dirArg = process.argv.indexOf('--out-dir');
  const outDir = dirArg >= 0 ? resolve(process.argv[dirArg + 1]!) : join(root, 'src/safety');
  const btf = parseKBtf(readFileSync('/sys/kernel/btf/vmlinux'));
  if (!btf) throw new Error('cannot read /sys/kernel/btf/vmlinux');
  const { funcIds, progTypes, attachTypes } = kernelEnums(btf);
  const structs = ctxStructs(btf);
  const maxId = Math.max(...[...funcIds.values()].filter((v) => v < 10_000));
  const L = rawLoader();
  const date = new Date().toISOString().slice(0, 10);
  const helpers: HelperTable = {
    kernel: release(), generated: date, generator: 'scripts/gen-kernel-tables.ts',
    method: 'BPF_PROG_LOAD of "call ID" per program type, expected attach type and helper id; unavailable when the verifier says the type cannot use the helper',
    helpers: Object.fromEntries([...funcIds].filter(([, v]) => v > 0 && v <= maxId).map(([k, v]) => [String(v), k])),
    gplOnly: [], available: {}, unprobed: {},
  };
  const gplOnly = new Set<number>();
  const tagged = new Set(btf.types.filter((t) => t.kind === KIND.DECL_TAG && t.name === 'bpf_kfunc').map((t) => t.sizeOrType));
  const kfuncs = [...tagged].map((id) => btf.types[id]!).filter((t) => t.kind === KIND.FUNC).map((t) => ({ id: t.id, name: t.name }));
  const kfuncAvail = new Map<string, string[]>();
  const ctx: CtxTables = {
    kernel: release(), generated: date, generator: 'scripts/gen-kernel-tables.ts',
    method: 'BPF_PROG_LOAD of one context load or store per byte offset and size (register type from the level-2 verifier log), a bounds-checked packet read and write, LD_ABS, and r0 = constant exits',
    types: {}, tables: [], unprobed: {},
  };
  const tableKeys = new Map<string, number>();
  for (const p of PROBES) {
    const typeNo = progTypes.get(p.type);
    if (typeNo === undefined) { helpers.unprobed[p.type] = 'program type not in this kernel'; continue; }
    for (const a of p.attach) {
      const key = a ?? '';
      const attachNo = a === null ? 0 : attachTypes.get(a);
      if (attachNo === undefined) { helpers.unprobed[`${p.type}:${key}`] = 'attach type not in this kernel'; continue; }
      const btfId = p.btf ? btf.byName.get(p.btf[1])?.find((t) => t.kind === p.btf![0])?.id ?? 0 : 0;
      const o = { attach: attachNo, btfId, flags: p.flags ?? 0 };
      const ids: number[] = [];
      let errors = 0, lastError = '';
      for (let id = 1; id <= maxId; id++) {
        const r = L.load(typeNo, [...[1, 2, 3, 4, 5].map((reg) => insn(MOV64_IMM, reg, 0, 0, 0)), insn(CALL, 0, 0, 0, id), ...ret(0)], { ...o, logLevel: 1 });
        if (r.ok || !/cannot use helper|unknown func|invalid func|is not allowed in probe|helper call is not allowed/.test(r.log)) {
          if (r.ok || /R\d+ |type=|expected|arg#|invalid|unbounded|min value|zero-sized|processed|return/.test(r.log)) ids.push(id);
          else { errors++; lastError = `errno ${r.errno}${r.log ? `: ${r.log.trim().split('\n').slice(-1)[0]}` : ''}`; }
        }
      }
      if (errors > maxId / 2) { helpers.unprobed[`${p.type}:${key}`] = lastError; ctx.unprobed[`${p.type}:${key}`] = lastError; continue; }
      (helpers.available[p.type] ??= {})[key] = ids;
      // kfuncs: "calling kernel function X is not allowed" when the type's kfunc id sets lack it.
      for (const kf of kfuncs) {
        const r = L.load(typeNo, [...[1, 2, 3, 4, 5].map((reg) => insn(MOV64_IMM, reg, 0, 0, 0)), insn(CALL, 0, 2, 0, kf.id), ...ret(0)], { ...o, logLevel: 1 });
        if (r.ok || !/is not allowed|not supported|invalid kernel function/.test(r.log)) (kfuncAvail.get(kf.name) ?? kfuncAvail.set(kf.name, []).get(kf.name)!).push(`${p.type}:${key}`);
      }
      for (const id of ids) {
        if (gplOnly.has(id)) continue;
        const r = L.load(typeNo, [...[1, 2, 3, 4, 5].map((reg) => insn(MOV64_IMM, reg, 0, 0, 0)), insn(CALL, 0, 0, 0, id), ...ret(0)], { ...o, logLevel: 1, license: 'Proprietary' });
        if (/GPL/.test(r.log)) gplOnly.add(id);
      }
      let note = '';
      {
        const st = structs.get(p.type);
        if (!st && p.ctx !== false) { ctx.unprobed[`${p.type}:${key}`] = 'no context struct in struct bpf_ctx_convert'; continue; }
        // Contexts the struct does not bound: tracepoint records (up to PERF_MAX_TRACE_SIZE) and raw
        // tracepoint arguments (up to 12 u64s). BTF-typed contexts (tracing, lsm): return values only.
        const size = p.ctx === false ? 0 : p.type === 'tracepoint' ? 2048 : p.type.startsWith('raw_tracepoint') ? 96 : st!.size;
        const t: CtxTable = { struct: p.ctx === false ? '(BTF-typed)' : st!.name, size, ...probeCtx(L, typeNo, o, size, p.ctx === false, ids) };
        const tk = JSON.stringify(t);
        let idx = tableKeys.get(tk);
        if (idx === undefined) { idx = ctx.tables.length; ctx.tables.push(t); tableKeys.set(tk, idx); }
        (ctx.types[p.type] ??= {})[key] = idx;
        note = `; context ${t.struct} (${t.size} bytes): ${Object.entries(t.read).map(([k, v]) => `${k} ${v.length}`).join(', ')}, ${t.write.length} writes, pkt ${t.pktRead ? 'r' : '-'}${t.pktWrite ? 'w' : '-'}${t.pktHelpers ? ` (${t.pktHelpers.length} helpers)` : ''}, ret ${t.retOk.length === RETURNS.length ? 'any' : `${t.retOk[0]}..${t.retOk[t.retOk.length - 1]}`}${t.retPtr ? ' +ptr' : ''}`;
      }
      process.stderr.write(`${p.type}${a ? `/${a}` : ''}: ${ids.length} helpers${errors ? ` (${errors} probes failed: ${lastError})` : ''}${note}\n`);
    }
  }
  helpers.gplOnly = [...gplOnly].sort((a, b) => a - b);
  const sets: string[][] = [];
  const setIdx = new Map<string, number>();
  helpers.kfuncs = {};
  for (const kf of [...kfuncs].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const list = kfuncAvail.get(kf.name) ?? [];
    const k = JSON.stringify(list);
    let i = setIdx.get(k);
    if (i === undefined) { i = sets.length; sets.push(list); setIdx.set(k, i); }
    helpers.kfuncs[kf.name] = i;
  }
  helpers.kfuncSets = sets;
  process.stderr.write(`kfuncs: ${kfuncs.length}, ${sets.length} distinct availability sets\n`);
  ctx.sockTables = probeSockets(L, btf, progTypes, attachTypes);
  process.stderr.write(`socket loads: ${Object.entries(ctx.sockTables).map(([k, v]) => `${k} ${Object.values(v.read).flat().length}`).join(', ')}\n`);
  ctx.rawTpNullArgs = probeRawTpArgs(L, btf, progTypes.get('tracing')!, attachTypes.get('trace_raw_tp')!);
  process.stderr.write(`raw tracepoints with NULL-able or error arguments: ${Object.keys(ctx.rawTpNullArgs).length}\n`);
  writeJson(join(outDir, 'helper-table.json'), helpers);
  writeJson(join(outDir, 'ctx-table.json'), ctx);
  process.stderr.write(`wrote ${join(outDir, 'helper-table.json')} and ctx-table.json (kernel ${release()})\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
