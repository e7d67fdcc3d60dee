// CO-RE relocations, resolved the way libbpf resolves them (tools/lib/bpf/relo_core.c) against the
// running kernel's BTF (/sys/kernel/btf/vmlinux): every relocation kind — field byte offset and
// size, existence, signedness, left/right shifts of bitfields, local and target type ids, type
// existence, size and match, enumerator existence and value.
//
// 1. The access string ("0:1:2") is read against the object's own BTF into a spec: the root
//    type's array index, then named members and array indexes (anonymous members are walked
//    through), with the bit offset they add up to (bpf_core_parse_spec).
// 2. Candidates are the kernel's types of the same kind whose name without a "___flavour" suffix
//    is the same; each is matched against the spec (members by name, through anonymous members;
//    compatible field kinds; arrays in bounds unless flexible) and gives a value.
// 3. All matching candidates must agree (else libbpf refuses the object: `fatal`). Without a
//    match, the *_EXISTS kinds give 0 and the others poison the instruction (libbpf turns it into
//    a call of an invalid helper: unsafe only if the verifier reaches it: `resolves: false`).
// Loads and stores get the target's offset patched in, and their size when the field's size
// changed (only between unsigned integers or pointers; other size changes poison the instruction).
import type { Btf } from '../elf/btf.js';
import type { CoreRelo } from '../ir/types.js';
import { KIND, skipMods, vmlinux, type KBtf, type KType } from './kbtf.js';

export const CORE_KIND = {
  FIELD_BYTE_OFFSET: 0, FIELD_BYTE_SIZE: 1, FIELD_EXISTS: 2, FIELD_SIGNED: 3, FIELD_LSHIFT_U64: 4, FIELD_RSHIFT_U64: 5,
  TYPE_ID_LOCAL: 6, TYPE_ID_TARGET: 7, TYPE_EXISTS: 8, TYPE_SIZE: 9, ENUMVAL_EXISTS: 10, ENUMVAL_VALUE: 11, TYPE_MATCHES: 12,
} as const;

/** What k2 knows about a relocated instruction's new immediate or offset. */
export interface CoreValue {
  resolves: boolean; // false: libbpf poisons the instruction (unsafe if reached)
  lo: bigint; // range of the patched value (exact when lo === hi)
  hi: bigint;
  why: string;
  /** libbpf refuses the whole object (ambiguous candidates, malformed relocation): why. */
  fatal?: string;
  /** Loads and stores: the kernel's field offset, patched into the instruction. */
  memOff?: number;
  /** ... the field's offset in the object's own type (libbpf refuses a load or store whose offset differs). */
  localOff?: number;
  /** ... and the access size libbpf gives the instruction when the field's size differs (bytes). */
  memSize?: number;
  localSize?: number;
  /** ALU and ld_imm64: the value clang put in (libbpf refuses an instruction that does not carry it). */
  orig?: bigint;
}

/** The instruction's patched offset, or null if libbpf would refuse it or change its size (see patchedMem). */
export function patchedMemOffset(insnOff: number, cv: CoreValue): number | null {
  if (cv.memOff === undefined || cv.localOff !== insnOff || (cv.memSize !== undefined && cv.memSize !== cv.localSize)) return null;
  return cv.memOff;
}

/** A load or store as libbpf patches it: its new offset and access size (bytes), or null if it would refuse it. */
export function patchedMem(insnOff: number, insnSize: number, cv: CoreValue): { off: number; size: number } | null {
  if (cv.memOff === undefined || cv.localOff !== insnOff) return null;
  if (cv.memSize === undefined || cv.memSize === cv.localSize) return { off: cv.memOff, size: insnSize };
  // libbpf resizes the access only when the instruction has the field's original size.
  return insnSize === cv.localSize ? { off: cv.memOff, size: cv.memSize } : null;
}

// ---- BTF views: the object's own BTF may come as a full KBtf or from the shared parser ----

const ADAPTED = new WeakMap<Btf, KBtf>();
/** A KBtf view of the shared parser's Btf (integer encodings unknown). */
function adapt(btf: Btf): KBtf {
  let k = ADAPTED.get(btf);
  if (k) return k;
  const types: KType[] = btf.types.map((t) => ({
    id: t.id, kind: t.kind, name: t.name, sizeOrType: t.sizeOrType, vlen: t.vlen, kflag: t.kindFlag,
    members: t.kind === KIND.STRUCT || t.kind === KIND.UNION
      ? t.members.map((m) => ({ name: m.name, type: m.type, bitOffset: t.kindFlag ? m.offset & 0xffffff : m.offset, bitSize: t.kindFlag ? m.offset >>> 24 : 0 }))
      : [],
    params: [], values: t.enumerators ?? [], vars: [], intBits: t.kind === KIND.INT ? 8 * t.sizeOrType : 0, intSigned: false, intOffset: 0,
    intUnknown: t.kind === KIND.INT, elem: t.elemType ?? 0, nelems: t.nelems ?? 0, linkage: 0, component: -1,
  }));
  const byName = new Map<string, KType[]>();
  for (const t of types) if (t.name) (byName.get(t.name) ?? byName.set(t.name, []).get(t.name)!).push(t);
  const str = (off: number): string => {
    let end = off;
    while (end < btf.strings.length && btf.strings[end] !== 0) end++;
    return Buffer.from(btf.strings.buffer, btf.strings.byteOffset + off, end - off).toString('latin1');
  };
  k = { types, byName, str };
  ADAPTED.set(btf, k);
  return k;
}
const isKBtf = (b: Btf | KBtf): b is KBtf => typeof (b as KBtf).str === 'function';

// ---- specs (bpf_core_parse_spec / bpf_core_spec_match) ----

interface Accessor { typeId: number; idx: number; name: string | null }
interface Spec { btf: KBtf; rootId: number; acc: Accessor[]; bitOffset: number }

const isComposite = (t: KType | undefined): boolean => !!t && (t.kind === KIND.STRUCT || t.kind === KIND.UNION);
const isAnyEnum = (t: KType | undefined): boolean => !!t && (t.kind === KIND.ENUM || t.kind === KIND.ENUM64);
/** Name without a "___flavour" suffix (bpf_core_essential_name_len). */
export function essentialName(name: string): string {
  for (let i = name.length - 5; i >= 0; i--) {
    if (name[i] !== '_' && name[i + 1] === '_' && name[i + 2] === '_' && name[i + 3] === '_' && name[i + 4] !== '_') return name.slice(0, i + 1);
  }
  return name;
}

/** skip_mods_and_typedefs */
const skip = skipMods;

/** btf__resolve_size */
function resolveSize(btf: KBtf, id: number, depth = 0): number | null {
  if (depth > 32) return null;
  const s = skip(btf, id);
  if (!s) return null;
  const t = s.t;
  switch (t.kind) {
    case KIND.INT: case KIND.STRUCT: case KIND.UNION: case KIND.ENUM: case KIND.ENUM64: case KIND.FLOAT: case KIND.DATASEC: return t.sizeOrType;
    case KIND.PTR: return 8;
    case KIND.ARRAY: { const e = resolveSize(btf, t.elem, depth + 1); return e === null ? null : e * t.nelems; }
    default: return null;
  }
}

const isFlexArr = (btf: KBtf, prev: Accessor | undefined, nelems: number): boolean => {
  if (!prev || !prev.name || nelems > 0) return false;
  const t = btf.types[prev.typeId];
  return !!t && prev.idx === t.members.length - 1;
};

const TYPE_BASED: ReadonlySet<number> = new Set([CORE_KIND.TYPE_ID_LOCAL, CORE_KIND.TYPE_ID_TARGET, CORE_KIND.TYPE_EXISTS, CORE_KIND.TYPE_SIZE, CORE_KIND.TYPE_MATCHES]);
const ENUM_BASED: ReadonlySet<number> = new Set([CORE_KIND.ENUMVAL_EXISTS, CORE_KIND.ENUMVAL_VALUE]);

function parseSpec(btf: KBtf, rootId: number, accessStr: string, kind: number): Spec | string {
  if (!accessStr || accessStr.startsWith(':')) return 'empty access string';
  const spec: Spec = { btf, rootId, acc: [], bitOffset: 0 };
  if (TYPE_BASED.has(kind)) return accessStr === '0' ? spec : `bad access string ${accessStr} for a type relocation`;
  const raw = accessStr.split(':').map((x) => (/^\d+$/.test(x) ? Number(x) : -1));
  if (raw.some((x) => x < 0)) return `bad access string ${accessStr}`;
  let cur = skip(btf, rootId);
  if (!cur) return 'relocation root type not found';
  spec.acc.push({ typeId: cur.id, idx: raw[0]!, name: null });
  if (ENUM_BASED.has(kind)) {
    if (!isAnyEnum(cur.t) || raw.length > 1 || raw[0]! >= cur.t.values.length) return 'bad enum relocation';
    spec.acc[0]!.name = cur.t.values[raw[0]!]!.name;
    return spec;
  }
  const rootSize = resolveSize(btf, cur.id);
  if (rootSize === null) return 'relocation root type has no size';
  spec.bitOffset = raw[0]! * rootSize * 8;
  let id = cur.id;
  for (let i = 1; i < raw.length; i++) {
    cur = skip(btf, id);
    if (!cur) return 'bad access string';
    id = cur.id;
    const idx = raw[i]!;
    if (isComposite(cur.t)) {
      const m = cur.t.members[idx];
      if (!m) return 'member index out of range';
      spec.bitOffset += m.bitOffset;
      if (m.name) spec.acc.push({ typeId: id, idx, name: m.name });
      id = m.type;
    } else if (cur.t.kind === KIND.ARRAY) {
      const nelems = cur.t.nelems;
      const e = skip(btf, cur.t.elem);
      if (!e) return 'bad array element type';
      if (!isFlexArr(btf, spec.acc[spec.acc.length - 1], nelems) && idx >= nelems) return 'array index out of range';
      spec.acc.push({ typeId: e.id, idx, name: null });
      const sz = resolveSize(btf, e.id);
      if (sz === null) return 'array element without size';
      spec.bitOffset += idx * sz * 8;
      id = e.id;
    } else return 'access string walks into a non-composite type';
  }
  return spec;
}

/** btf_kind_core_compat: same kind, or both enums. */
const kindCompat = (a: KType, b: KType): boolean => a.kind === b.kind || (isAnyEnum(a) && isAnyEnum(b));

/** bpf_core_fields_are_compat */
function fieldsCompat(lb: KBtf, lid: number, tb: KBtf, tid: number, depth = 0): boolean {
  if (depth > 16) return false;
  const l = skip(lb, lid), t = skip(tb, tid);
  if (!l || !t) return false;
  if (isComposite(l.t) && isComposite(t.t)) return true;
  if (!kindCompat(l.t, t.t)) return false;
  switch (l.t.kind) {
    case KIND.PTR: case KIND.FLOAT: return true;
    case KIND.FWD: case KIND.ENUM: case KIND.ENUM64: {
      const ln = essentialName(l.t.name), tn = essentialName(t.t.name);
      return !ln || !tn || ln === tn;
    }
    case KIND.INT: return l.t.intOffset === 0 && t.t.intOffset === 0;
    case KIND.ARRAY: return fieldsCompat(lb, l.t.elem, tb, t.t.elem, depth + 1);
    default: return false;
  }
}

/** bpf_core_types_are_compat (type-based relocations). */
function typesCompat(lb: KBtf, lid: number, tb: KBtf, tid: number, level = 2): boolean {
  const l0 = lb.types[lid], t0 = tb.types[tid];
  if (!l0 || !t0 || !kindCompat(l0, t0)) return false;
  let depth = 32;
  for (;;) {
    if (--depth < 0) return false;
    const l = skip(lb, lid), t = skip(tb, tid);
    if (!l || !t || !kindCompat(l.t, t.t)) return false;
    switch (l.t.kind) {
      case KIND.VOID: case KIND.STRUCT: case KIND.UNION: case KIND.ENUM: case KIND.FWD: case KIND.ENUM64: return true;
      case KIND.INT: return l.t.intOffset === 0 && t.t.intOffset === 0;
      case KIND.PTR: lid = l.t.sizeOrType; tid = t.t.sizeOrType; continue;
      case KIND.ARRAY: lid = l.t.elem; tid = t.t.elem; continue;
      case KIND.FUNC_PROTO: {
        if (l.t.params.length !== t.t.params.length || level <= 0) return false;
        for (let i = 0; i < l.t.params.length; i++) if (!typesCompat(lb, l.t.params[i]!.type, tb, t.t.params[i]!.type, level - 1)) return false;
        lid = l.t.sizeOrType; tid = t.t.sizeOrType;
        continue;
      }
      default: return false;
    }
  }
}

/** bpf_core_match_member: finds the local accessor's member by name in target `tid` (through anonymous members). */
function matchMember(lb: KBtf, la: Accessor, tb: KBtf, tid: number, ts: Spec): { found: boolean; next: number } {
  const lt = lb.types[la.typeId]!;
  const lm = lt.members[la.idx]!;
  const t = skip(tb, tid);
  if (!t || !isComposite(t.t)) return { found: false, next: 0 };
  for (let i = 0; i < t.t.members.length; i++) {
    const m = t.t.members[i]!;
    ts.bitOffset += m.bitOffset;
    if (!m.name) {
      const r = matchMember(lb, la, tb, m.type, ts);
      if (r.found) return r;
    } else if (m.name === lm.name) {
      ts.acc.push({ typeId: t.id, idx: i, name: m.name });
      const ok = fieldsCompat(lb, lm.type, tb, m.type);
      if (!ok) ts.acc.pop();
      return { found: ok, next: m.type };
    }
    ts.bitOffset -= m.bitOffset;
  }
  return { found: false, next: 0 };
}

function specMatch(ls: Spec, kind: number, tb: KBtf, tid: number): Spec | null | 'unknown' {
  const ts: Spec = { btf: tb, rootId: tid, acc: [], bitOffset: 0 };
  if (TYPE_BASED.has(kind)) {
    if (kind === CORE_KIND.TYPE_MATCHES) return 'unknown'; // bpf_core_types_match: not modelled exactly
    return typesCompat(ls.btf, ls.rootId, tb, tid) ? ts : null;
  }
  if (ENUM_BASED.has(kind)) {
    const t = skip(tb, tid);
    if (!t || !isAnyEnum(t.t)) return null;
    const want = essentialName(ls.acc[0]!.name!);
    const i = t.t.values.findIndex((v) => essentialName(v.name) === want);
    if (i < 0) return null;
    ts.acc.push({ typeId: t.id, idx: i, name: t.t.values[i]!.name });
    return ts;
  }
  let id = tid;
  for (let i = 0; i < ls.acc.length; i++) {
    const la = ls.acc[i]!;
    const t = skip(tb, id);
    if (!t) return null;
    id = t.id;
    if (la.name) {
      const r = matchMember(ls.btf, la, tb, id, ts);
      if (!r.found) return null;
      id = r.next;
    } else {
      if (i > 0) {
        if (t.t.kind !== KIND.ARRAY) return null;
        if (!isFlexArr(tb, ts.acc[ts.acc.length - 1], t.t.nelems) && la.idx >= t.t.nelems) return null;
        const e = skip(tb, t.t.elem);
        if (!e) return null;
        id = e.id;
      }
      ts.acc.push({ typeId: id, idx: la.idx, name: null });
      const sz = resolveSize(tb, id);
      if (sz === null) return null;
      ts.bitOffset += la.idx * sz * 8;
    }
  }
  return ts;
}

// ---- values (bpf_core_calc_field_relo / bpf_core_calc_relo) ----

interface FieldRes { val: bigint; size: number; typeId: number; validate: boolean }

function fieldValue(spec: Spec, kind: number): FieldRes | string {
  const btf = spec.btf;
  const acc = spec.acc[spec.acc.length - 1]!;
  if (!acc.name) {
    const sz = resolveSize(btf, acc.typeId);
    if (sz === null) return 'array element without size';
    if (kind === CORE_KIND.FIELD_BYTE_OFFSET) return { val: BigInt(spec.bitOffset / 8), size: sz, typeId: acc.typeId, validate: true };
    if (kind === CORE_KIND.FIELD_BYTE_SIZE) return { val: BigInt(sz), size: 0, typeId: 0, validate: true };
    return "relocation can't be applied to array access";
  }
  const t = btf.types[acc.typeId]!;
  const m = t.members[acc.idx]!;
  const mt = skip(btf, m.type);
  if (!mt) return 'field type not found';
  const bitOff = spec.bitOffset;
  let bitSz = m.bitSize;
  const bitfield = bitSz > 0;
  let byteSz: number, byteOff: number;
  if (bitfield) {
    byteSz = mt.t.sizeOrType;
    if (!byteSz) return 'bitfield without size';
    byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz;
    while (bitOff + bitSz - byteOff * 8 > byteSz * 8) {
      if (byteSz >= 8) return "bitfield can't be read with a 64-bit load";
      byteSz *= 2;
      byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz;
    }
  } else {
    const sz = resolveSize(btf, mt.id);
    if (sz === null) return 'field without size';
    byteSz = sz;
    byteOff = Math.floor(bitOff / 8);
    bitSz = byteSz * 8;
  }
  switch (kind) {
    case CORE_KIND.FIELD_BYTE_OFFSET: return { val: BigInt(byteOff), size: bitfield ? 0 : byteSz, typeId: bitfield ? 0 : mt.id, validate: !bitfield };
    case CORE_KIND.FIELD_BYTE_SIZE: return { val: BigInt(byteSz), size: 0, typeId: 0, validate: !bitfield };
    case CORE_KIND.FIELD_SIGNED:
      if (mt.t.kind === KIND.INT && mt.t.intUnknown) return 'signedness unknown';
      return { val: (isAnyEnum(mt.t) && mt.t.kflag) || (mt.t.kind === KIND.INT && mt.t.intSigned) ? 1n : 0n, size: 0, typeId: 0, validate: true };
    case CORE_KIND.FIELD_LSHIFT_U64: return { val: BigInt(64 - (bitOff + bitSz - byteOff * 8)), size: 0, typeId: 0, validate: !bitfield };
    case CORE_KIND.FIELD_RSHIFT_U64: return { val: BigInt(64 - bitSz), size: 0, typeId: 0, validate: true };
    default: return `relocation kind ${kind} is not a field value`;
  }
}

interface RelocRes { poison: boolean; val: bigint; size: number; typeId: number; validate: boolean; unknown?: true }

/** The value for one spec (local or a matched target); `spec` null: no target matched. */
function relocValue(kind: number, spec: Spec | null, local: Spec): RelocRes | string {
  const none = (val: bigint): RelocRes => ({ poison: false, val, size: 0, typeId: 0, validate: true });
  switch (kind) {
    case CORE_KIND.FIELD_EXISTS: return none(spec ? 1n : 0n);
    case CORE_KIND.TYPE_EXISTS: case CORE_KIND.TYPE_MATCHES: return none(spec ? 1n : 0n);
    case CORE_KIND.ENUMVAL_EXISTS: return none(spec ? 1n : 0n);
    // Type ids may change when objects are linked: libbpf does not check the instruction's value.
    case CORE_KIND.TYPE_ID_LOCAL: return { ...none(BigInt(local.rootId)), validate: false };
    // Type-based relocations give 0 when the kernel has no such type (bpf_core_calc_type_relo).
    case CORE_KIND.TYPE_ID_TARGET: return { ...none(spec ? BigInt(spec.rootId) : 0n), validate: false };
    case CORE_KIND.TYPE_SIZE: {
      if (!spec) return none(0n);
      const sz = resolveSize(spec.btf, spec.rootId);
      return sz === null ? 'type without size' : none(BigInt(sz));
    }
  }
  if (!spec) return { poison: true, val: 0n, size: 0, typeId: 0, validate: false };
  switch (kind) {
    case CORE_KIND.ENUMVAL_VALUE: {
      const t = skip(spec.btf, spec.acc[0]!.typeId)!;
      const v = t.t.values[spec.acc[0]!.idx]!.value;
      return none(v);
    }
  }
  const f = fieldValue(spec, kind);
  return typeof f === 'string' ? f : { poison: false, val: f.val, size: f.size, typeId: f.typeId, validate: f.validate };
}

/** Only unsigned integers and pointers may change size in a load or store (bpf_core_calc_relo). */
function resizable(lb: KBtf, lid: number, tb: KBtf, tid: number): boolean {
  const l = lb.types[lid], t = tb.types[tid];
  if (!l || !t) return false;
  if (l.kind === KIND.PTR && t.kind === KIND.PTR) return true;
  return l.kind === KIND.INT && t.kind === KIND.INT && !l.intUnknown && !l.intSigned && !t.intSigned;
}

/** The kernel's types named like the local root (same kind, same essential name). */
function candidates(local: KBtf, rootId: number, target: KBtf): KType[] | string {
  const lt = local.types[rootId];
  if (!lt) return 'relocation root type not found';
  if (!lt.name) return 'relocation against an anonymous type';
  const want = essentialName(lt.name);
  const out: KType[] = [];
  for (const t of target.byName.get(want) ?? []) if (t.kind === lt.kind) out.push(t);
  // Kernel names never carry a flavour suffix; a target with one would also match (libbpf allows it).
  return out;
}

/** The value libbpf patches into an instruction carrying `relos` (one relocation in practice). */
export function coreValue(localBtf: Btf | KBtf | null, relos: CoreRelo[], target: KBtf | null = vmlinux()): CoreValue {
  const bad = (why: string): CoreValue => ({ resolves: false, lo: 0n, hi: 0n, why, fatal: why });
  if (relos.length !== 1 || !localBtf) return bad('CO-RE relocation without BTF');
  const local = isKBtf(localBtf) ? localBtf : adapt(localBtf);
  const r = relos[0]!;
  const accessStr = local.str(r.accessStrOff);
  const ls = parseSpec(local, r.typeId, accessStr, r.kind);
  if (typeof ls === 'string') return bad(`CO-RE relocation not understood: ${ls}`);
  if (r.kind === CORE_KIND.TYPE_ID_LOCAL) {
    const v = BigInt(r.typeId);
    return { resolves: true, lo: v, hi: v, why: '' };
  }
  if (!target) return { resolves: false, lo: 0n, hi: 0n, why: 'no kernel BTF to resolve CO-RE relocations against' };
  // The value clang computed from the object's own types (what the instruction carries).
  const localRes = relocValue(r.kind, ls, ls);
  if (typeof localRes === 'string') return bad(`CO-RE relocation not understood: ${localRes}`);
  const cands = candidates(local, r.typeId, target);
  if (typeof cands === 'string') return bad(cands);
  let res: RelocRes | null = null;
  let unknown = false;
  for (const c of cands) {
    const ts = specMatch(ls, r.kind, target, c.id);
    if (ts === 'unknown') { unknown = true; continue; }
    if (!ts) continue;
    const v = relocValue(r.kind, ts, ls);
    if (typeof v === 'string') return bad(`CO-RE relocation not understood: ${v}`);
    if (res && (res.poison !== v.poison || res.val !== v.val)) return bad('CO-RE relocation is ambiguous on this kernel (libbpf refuses the object)');
    res = v;
  }
  if (unknown) {
    // TYPE_MATCHES: 0 or 1, k2 does not decide which.
    return { resolves: true, lo: 0n, hi: 1n, why: '', orig: localRes.val };
  }
  if (!res) {
    const n = relocValue(r.kind, null, ls);
    if (typeof n === 'string') return bad(n);
    res = n;
  }
  if (res.poison) return { resolves: false, lo: 0n, hi: 0n, why: 'CO-RE relocation has no match on this kernel (libbpf poisons the instruction)' };
  const cv: CoreValue = { resolves: true, lo: res.val, hi: res.val, why: '', orig: localRes.validate ? localRes.val : undefined };
  if (r.kind === CORE_KIND.FIELD_BYTE_OFFSET) {
    cv.memOff = Number(res.val);
    cv.localOff = Number(localRes.val);
    if (localRes.size && res.size && localRes.size !== res.size) {
      if (!resizable(local, localRes.typeId, target, res.typeId)) {
        // libbpf poisons loads and stores it cannot resize (fail_memsz_adjust); ALU uses keep the value.
        cv.memOff = undefined;
        cv.why = 'CO-RE field changed size on this kernel and cannot be resized (libbpf poisons the load or store)';
      } else {
        cv.memSize = res.size;
        cv.localSize = localRes.size;
      }
    }
  }
  return cv;
}

const BPF_LDX = 0x01, BPF_ST = 0x02, BPF_STX = 0x03, BPF_ALU = 0x04, BPF_ALU64 = 0x07, LD_IMM64_CODE = 0x18, SRC_X = 0x08;
const SIZE_OF: Record<number, number> = { 0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8 };
const SIZE_CODE: Record<number, number> = { 4: 0x00, 2: 0x08, 1: 0x10, 8: 0x18 };

/**
 * The instruction fields libbpf rewrites (bpf_core_patch_insn): a load or store's offset (and
 * size), an ALU immediate, an ld_imm64 value; or why libbpf refuses the object. Values k2 only
 * knows as a range are left in place (the checker reads them from `cv`).
 */
export function patchCoreInsn(insn: { code: number; off: number; imm: number; imm2?: number }, cv: CoreValue):
  { fatal: string } | { code?: number; off?: number; imm?: number; imm2?: number; cv: CoreValue } {
  if (cv.fatal) return { fatal: cv.fatal };
  if (!cv.resolves) return { cv }; // poisoned: unsafe if reached
  const cls = insn.code & 7;
  if (cls === BPF_LDX || cls === BPF_ST || cls === BPF_STX) {
    const m = patchedMem(insn.off, SIZE_OF[insn.code & 0x18]!, cv);
    if (cv.memOff !== undefined && cv.localOff !== insn.off) return { fatal: `CO-RE: unexpected insn->off ${insn.off} != ${cv.localOff} (libbpf refuses the object)` };
    if (!m) return { cv: { ...cv, memOff: undefined } };
    return { off: m.off, code: (insn.code & ~0x18) | SIZE_CODE[m.size]!, cv };
  }
  const exact = cv.lo === cv.hi;
  if ((cls === BPF_ALU || cls === BPF_ALU64) && !(insn.code & SRC_X)) {
    if (cv.orig !== undefined && BigInt(insn.imm) !== cv.orig) return { fatal: `CO-RE: unexpected insn->imm ${insn.imm} != ${cv.orig} (libbpf refuses the object)` };
    return exact ? { imm: Number(BigInt.asIntN(32, cv.lo)), cv } : { cv };
  }
  if (insn.code === LD_IMM64_CODE) {
    const v = (BigInt(insn.imm2 ?? 0) << 32n) | BigInt(insn.imm >>> 0);
    if (cv.orig !== undefined && BigInt.asUintN(64, v) !== BigInt.asUintN(64, cv.orig)) return { fatal: `CO-RE: unexpected ld_imm64 value ${v} != ${cv.orig} (libbpf refuses the object)` };
    if (!exact) return { cv };
    const u = BigInt.asUintN(64, cv.lo);
    return { imm: Number(BigInt.asIntN(32, u & 0xffffffffn)), imm2: Number(BigInt.asIntN(32, u >> 32n)), cv };
  }
  return { cv };
}
