// Loads through kernel pointers typed by BTF (PTR_TO_BTF_ID): the kernel's btf_struct_walk and
// btf_struct_access (kernel/bpf/btf.c). Walking a struct at a byte offset finds the member the
// load reads: a scalar (any bytes inside an integer, enum or array of them), a pointer to a struct
// (the loaded register is a new PTR_TO_BTF_ID), or a pointer to anything else (read-only untrusted
// memory, which k2 does not let the program dereference). A load outside the struct, across the
// end of a member or partially over a pointer is refused.
import { KIND, isStruct, pointeeTag, resolveSize, skipMods, type KBtf, type KType } from './kbtf.js';

/** Pointer type flags k2 tracks on BTF pointers (subset of enum bpf_type_flag). */
export const BTF_FLAG = { TRUSTED: 1, UNTRUSTED: 2, RCU: 4, USER: 8, PERCPU: 16 } as const;

export type WalkResult =
  | { kind: 'scalar' }
  | { kind: 'ptr'; btfId: number; flags: number; field: string } // PTR_TO_BTF_ID of the pointee struct
  | { kind: 'mem' } // PTR_TO_MEM | MEM_RDONLY | PTR_UNTRUSTED (pointer to a non-struct)
  | { kind: 'error'; why: string };

type Walk = { kind: 'scalar' } | { kind: 'ptr'; btfId: number; flags: number; field: string } | { kind: 'mem' } | { kind: 'struct'; id: number } | { kind: 'error'; why: string };

function walk(btf: KBtf, start: KType, off0: number, size: number, flag: { untrusted: boolean }): Walk {
  let t = start;
  let off = off0;
  for (let guard = 0; guard < 64; guard++) {
    if (t.kind !== KIND.STRUCT && t.kind !== KIND.UNION) {
      const s = skipMods(btf, t.id);
      if (!s || !isStruct(s.t)) return { kind: 'error', why: `Type '${t.name}' is not a struct` };
      t = s.t;
    }
    // Walking unions with more than one member yields untrusted pointers.
    if (t.kind === KIND.UNION && t.vlen !== 1) flag.untrusted = true;
    if (off + size > t.sizeOrType) {
      // A flexible array at the end may be indexed beyond the struct's size.
      const last = t.members[t.members.length - 1];
      const lt = last ? skipMods(btf, last.type) : null;
      const moff = last ? Math.floor(last.bitOffset / 8) : 0;
      if (!last || !lt || lt.t.kind !== KIND.ARRAY || lt.t.nelems !== 0 || off < moff) {
        return { kind: 'error', why: `access beyond struct ${t.name} at off ${off} size ${size}` };
      }
      const e = skipMods(btf, lt.t.elem);
      if (e && e.t.kind === KIND.INT) return { kind: 'scalar' };
      if (!e || !isStruct(e.t) || e.t.sizeOrType === 0) return { kind: 'error', why: `access beyond struct ${t.name} at off ${off} size ${size}` };
      off = (off - moff) % e.t.sizeOrType;
      t = e.t;
      continue;
    }
    let next: KType | null = null;
    for (const m of t.members) {
      let moff = Math.floor(m.bitOffset / 8);
      if (off + size <= moff) break;
      if (m.bitSize) {
        const endBit = m.bitOffset + m.bitSize;
        if (off <= moff && Math.ceil(endBit / 8) <= off + size) return { kind: 'scalar' };
        continue;
      }
      if (off < moff) break;
      const rs = resolveSize(btf, m.type);
      if (!rs) return { kind: 'error', why: `field ${m.name} doesn't have size` };
      let mtype = skipMods(btf, m.type);
      if (!mtype) return { kind: 'error', why: `field ${m.name} doesn't have size` };
      let msize = rs.size;
      const trueEnd = moff + msize;
      if (off >= trueEnd) continue;
      if (mtype.t.kind === KIND.ARRAY) {
        if (moff === trueEnd) continue; // empty array
        msize = msize / rs.nelems;
        const idx = Math.floor((off - moff) / msize);
        moff += idx * msize;
        mtype = rs.elem;
        if (!mtype) return { kind: 'error', why: `field ${m.name} doesn't have size` };
      }
      if (isStruct(mtype.t)) {
        if (off === moff) return { kind: 'struct', id: mtype.id };
        off -= moff;
        next = mtype.t;
        break;
      }
      if (mtype.t.kind === KIND.PTR) {
        if (msize !== size || off !== moff) {
          return { kind: 'error', why: `cannot access ptr member ${m.name} with moff ${moff} in struct ${t.name} with off ${off} size ${size}` };
        }
        const tag = pointeeTag(btf, mtype.t.sizeOrType);
        const tagFlag = tag === 'user' ? BTF_FLAG.USER : tag === 'percpu' ? BTF_FLAG.PERCPU : tag === 'rcu' ? BTF_FLAG.RCU : 0;
        const st = skipMods(btf, mtype.t.sizeOrType);
        if (st && isStruct(st.t)) return { kind: 'ptr', btfId: st.id, flags: tagFlag, field: m.name };
        return { kind: 'mem' };
      }
      // Scalars may be read anywhere inside the member (an int array serves as scratch space).
      if (off + size > trueEnd && !flag.untrusted) {
        return { kind: 'error', why: `access beyond the end of member ${m.name} (mend:${trueEnd}) in struct ${t.name} with off ${off} size ${size}` };
      }
      return { kind: 'scalar' };
    }
    if (next) { t = next; continue; }
    return { kind: 'error', why: `struct ${t.name} doesn't have field at offset ${off}` };
  }
  return { kind: 'error', why: 'struct nesting too deep' };
}

/** btf_struct_access: what a read of `size` bytes at `off` of kernel struct `btfId` yields. */
export function structAccess(btf: KBtf, btfId: number, off: number, size: number): WalkResult {
  let t = btf.types[btfId];
  if (!t) return { kind: 'error', why: `unknown BTF type ${btfId}` };
  const flag = { untrusted: false };
  for (let guard = 0; guard < 64; guard++) {
    const r = walk(btf, t, off, size, flag);
    switch (r.kind) {
      case 'struct': t = btf.types[r.id]!; off = 0; continue;
      case 'ptr': return { ...r, flags: r.flags | (flag.untrusted ? BTF_FLAG.UNTRUSTED : 0) };
      default: return r;
    }
  }
  return { kind: 'error', why: 'struct nesting too deep' };
}

// ---- trust of pointers loaded from kernel structs (check_ptr_to_btf_access) ----

const key = (btf: KBtf, structId: number, field: string): string => `${btf.types[structId]?.name ?? ''}.${field}`;

/** Fields whose pointer stays trusted when loaded from a trusted struct (BTF_TYPE_SAFE_TRUSTED; a subset is enough). */
const SAFE_TRUSTED = new Set(['bpf_iter_meta.seq', 'linux_binprm.file', 'file.f_inode']);
/** Fields trusted under RCU and never NULL (BTF_TYPE_SAFE_RCU). */
const SAFE_RCU = new Set(['task_struct.cpus_ptr', 'task_struct.cgroups', 'task_struct.real_parent', 'task_struct.group_leader',
  'cgroup.kn', 'css_set.dfl_cgrp', 'cgroup_subsys_state.cgroup']);
/**
 * Fields the kernel may mark PTR_MAYBE_NULL when loaded (BTF_TYPE_SAFE_RCU_OR_NULL and
 * BTF_TYPE_SAFE_TRUSTED_OR_NULL across recent kernels). k2 makes them nullable whatever the base
 * pointer's trust: a NULL check the kernel does not need costs nothing, a missing one is a false accept.
 */
const MAYBE_NULL = new Set(['mm_struct.exe_file', 'mm_struct.owner', 'sk_buff.sk', 'request_sock.sk', 'socket.sk', 'dentry.d_inode',
  'vm_area_struct.vm_mm', 'vm_area_struct.vm_file', 'oom_control.memcg', 'path.dentry']);

/** Flags and nullability of a pointer loaded through `baseFlags`-pointer to struct `structId` (walk result `w`). */
export function loadedPtr(btf: KBtf, baseFlags: number, structId: number, w: { flags: number; field: string }): { flags: number; nullable: boolean } {
  const k = key(btf, structId, w.field);
  const tags = w.flags & (BTF_FLAG.USER | BTF_FLAG.PERCPU);
  const rcuTag = (w.flags & BTF_FLAG.RCU) !== 0;
  const listedNull = MAYBE_NULL.has(k);
  if ((baseFlags | w.flags) & BTF_FLAG.UNTRUSTED) return { flags: BTF_FLAG.UNTRUSTED, nullable: false };
  if (baseFlags & (BTF_FLAG.TRUSTED | BTF_FLAG.RCU)) {
    if (SAFE_TRUSTED.has(k)) return { flags: BTF_FLAG.TRUSTED, nullable: listedNull };
    if (SAFE_RCU.has(k)) return { flags: BTF_FLAG.RCU, nullable: listedNull };
    if (rcuTag || listedNull) return { flags: BTF_FLAG.RCU, nullable: true };
    return { flags: tags, nullable: false };
  }
  // A plain (old-style) pointer: what it points to is plain too.
  return { flags: tags, nullable: listedNull || rcuTag };
}

// ---- writes into kernel structs (struct_ops) ----

/** Byte offset and size of a member path ("icsk_ack.pending") of struct `name`, through anonymous members. */
function memberRange(btf: KBtf, name: string, path: string): [number, number] | null {
  let t = btf.byName.get(name)?.find((x) => x.kind === KIND.STRUCT);
  let off = 0;
  let size = 0;
  for (const step of path.split('.')) {
    if (!t) return null;
    const find = (s: KType, depth: number): { bits: number; type: number } | null => {
      for (const m of s.members) {
        if (m.name === step) return { bits: m.bitOffset, type: m.type };
        if (!m.name && depth < 4) {
          const inner = skipMods(btf, m.type);
          const r = inner && isStruct(inner.t) ? find(inner.t, depth + 1) : null;
          if (r) return { bits: r.bits + m.bitOffset, type: r.type };
        }
      }
      return null;
    };
    const m = find(t, 0);
    if (!m || m.bits % 8) return null;
    off += m.bits / 8;
    const rs = resolveSize(btf, m.type);
    if (!rs) return null;
    size = rs.size;
    const next = skipMods(btf, m.type);
    t = next && isStruct(next.t) ? next.t : undefined;
  }
  return [off, size];
}

const TCP_CA_WRITABLE: [string, string, boolean][] = [
  ['sock', 'sk_pacing_rate', false], ['sock', 'sk_pacing_status', false], ['inet_connection_sock', 'icsk_ca_priv', true],
  ['inet_connection_sock', 'icsk_ack.pending', false], ['tcp_sock', 'snd_cwnd', false], ['tcp_sock', 'snd_cwnd_cnt', false],
  ['tcp_sock', 'snd_cwnd_stamp', false], ['tcp_sock', 'snd_ssthresh', false], ['tcp_sock', 'ecn_flags', false], ['tcp_sock', 'app_limited', false],
];
let tcpCaRanges: { start: number; end: number; anywhere: boolean }[] | null = null;

/**
 * bpf_tcp_ca_btf_struct_access: TCP congestion control programs may write a few fields of
 * struct tcp_sock (each one from its start; the private area anywhere inside). Null: allowed.
 */
export function tcpCaWrite(btf: KBtf, btfId: number, off: number, size: number): string | null {
  if (btf.types[btfId]?.name !== 'tcp_sock') return 'only read is supported';
  tcpCaRanges ??= TCP_CA_WRITABLE.flatMap(([s, p, anywhere]) => {
    const r = memberRange(btf, s, p);
    return r ? [{ start: r[0], end: r[0] + r[1], anywhere }] : [];
  });
  const r = tcpCaRanges.find((x) => (x.anywhere ? off >= x.start && off < x.end : off === x.start));
  if (!r) return `no write support to tcp_sock at off ${off}`;
  if (off + size > r.end) return `write access at off ${off} with size ${size} beyond the member of tcp_sock ended at ${r.end}`;
  return null;
}
