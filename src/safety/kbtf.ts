// A complete BTF reader for the safety model: the running kernel's types (/sys/kernel/btf/vmlinux)
// and an object's own .BTF, with what the verifier's BTF rules need and the shared parser
// (src/elf/btf.ts) does not keep: function parameters, integer encodings, bitfield sizes, variable
// linkage, decl tags and type tags. Format: kernel Documentation/bpf/btf.rst.
import { existsSync, readFileSync } from 'node:fs';

export const KIND = {
  VOID: 0, INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10,
  RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19,
} as const;

export interface KMember {
  name: string;
  type: number;
  bitOffset: number;
  bitSize: number; // 0 unless a bitfield
}

export interface KType {
  id: number;
  kind: number;
  name: string;
  /** Size (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC) or referenced type id (the rest). */
  sizeOrType: number;
  vlen: number;
  kflag: boolean;
  members: KMember[]; // STRUCT, UNION
  params: { name: string; type: number }[]; // FUNC_PROTO
  values: { name: string; value: bigint }[]; // ENUM, ENUM64
  vars: { type: number; offset: number; size: number }[]; // DATASEC
  /** INT: encoding bits, offset and signedness. */
  intBits: number;
  intSigned: boolean;
  intOffset: number;
  /** INT encoding not known (a type adapted from a parser that drops it). */
  intUnknown?: boolean;
  /** ARRAY */
  elem: number;
  nelems: number;
  /** VAR: linkage (0 static, 1 global, 2 extern); FUNC: linkage; DECL_TAG: component index (-1: the type itself). */
  linkage: number;
  component: number;
}

export interface KBtf {
  types: KType[]; // index = type id; 0 is void
  /** Named types by name (every kind). */
  byName: Map<string, KType[]>;
  /** The string at an offset of the string table (CO-RE access strings). */
  str(off: number): string;
}

const VOID: KType = {
  id: 0, kind: KIND.VOID, name: '', sizeOrType: 0, vlen: 0, kflag: false, members: [], params: [], values: [], vars: [],
  intBits: 0, intSigned: false, intOffset: 0, elem: 0, nelems: 0, linkage: 0, component: -1,
};

/** Parses raw .BTF bytes; null when they are not BTF or are truncated. */
export function parseKBtf(data: Uint8Array): KBtf | null {
  if (data.length < 24) return null;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (v.getUint16(0, true) !== 0xeb9f) return null;
  const hdrLen = v.getUint32(4, true);
  const typeOff = v.getUint32(8, true), typeLen = v.getUint32(12, true);
  const strOff = v.getUint32(16, true), strLen = v.getUint32(20, true);
  if (hdrLen + typeOff + typeLen > data.length || hdrLen + strOff + strLen > data.length) return null;
  const strBase = hdrLen + strOff;
  const str = (off: number): string => {
    if (off >= strLen) return '';
    let end = strBase + off;
    while (end < strBase + strLen && data[end] !== 0) end++;
    return Buffer.from(data.buffer, data.byteOffset + strBase + off, end - strBase - off).toString('latin1');
  };
  const types: KType[] = [VOID];
  let at = hdrLen + typeOff;
  const end = at + typeLen;
  while (at + 12 <= end) {
    const info = v.getUint32(at + 4, true);
    const t: KType = { ...VOID, id: types.length, name: str(v.getUint32(at, true)), sizeOrType: v.getUint32(at + 8, true),
      kind: (info >>> 24) & 0x1f, vlen: info & 0xffff, kflag: (info >>> 31) === 1, members: [], params: [], values: [], vars: [] };
    at += 12;
    const need = (n: number) => at + n <= end;
    switch (t.kind) {
      case KIND.INT: {
        if (!need(4)) return null;
        const enc = v.getUint32(at, true);
        t.intBits = enc & 0xff;
        t.intOffset = (enc >>> 16) & 0xff;
        t.intSigned = ((enc >>> 24) & 1) === 1;
        at += 4;
        break;
      }
      case KIND.ARRAY:
        if (!need(12)) return null;
        t.elem = v.getUint32(at, true);
        t.nelems = v.getUint32(at + 8, true);
        at += 12;
        break;
      case KIND.STRUCT: case KIND.UNION:
        if (!need(12 * t.vlen)) return null;
        for (let i = 0; i < t.vlen; i++, at += 12) {
          const off = v.getUint32(at + 8, true);
          t.members.push({ name: str(v.getUint32(at, true)), type: v.getUint32(at + 4, true),
            bitOffset: t.kflag ? off & 0xffffff : off, bitSize: t.kflag ? off >>> 24 : 0 });
        }
        break;
      case KIND.ENUM:
        if (!need(8 * t.vlen)) return null;
        for (let i = 0; i < t.vlen; i++, at += 8) {
          t.values.push({ name: str(v.getUint32(at, true)), value: t.kflag ? BigInt(v.getInt32(at + 4, true)) : BigInt(v.getUint32(at + 4, true)) });
        }
        break;
      case KIND.ENUM64:
        if (!need(12 * t.vlen)) return null;
        for (let i = 0; i < t.vlen; i++, at += 12) {
          const u = (BigInt(v.getUint32(at + 8, true)) << 32n) | BigInt(v.getUint32(at + 4, true));
          t.values.push({ name: str(v.getUint32(at, true)), value: t.kflag ? BigInt.asIntN(64, u) : u });
        }
        break;
      case KIND.FUNC_PROTO:
        if (!need(8 * t.vlen)) return null;
        for (let i = 0; i < t.vlen; i++, at += 8) t.params.push({ name: str(v.getUint32(at, true)), type: v.getUint32(at + 4, true) });
        break;
      case KIND.VAR:
        if (!need(4)) return null;
        t.linkage = v.getUint32(at, true);
        at += 4;
        break;
      case KIND.DATASEC:
        if (!need(12 * t.vlen)) return null;
        for (let i = 0; i < t.vlen; i++, at += 12) t.vars.push({ type: v.getUint32(at, true), offset: v.getUint32(at + 4, true), size: v.getUint32(at + 8, true) });
        break;
      case KIND.DECL_TAG:
        if (!need(4)) return null;
        t.component = v.getInt32(at, true);
        at += 4;
        break;
      case KIND.FUNC:
        t.linkage = t.vlen;
        break;
      case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST: case KIND.RESTRICT:
      case KIND.FLOAT: case KIND.TYPE_TAG:
        break;
      default:
        return null;
    }
    types.push(t);
  }
  const byName = new Map<string, KType[]>();
  for (const t of types) {
    if (!t.name) continue;
    const l = byName.get(t.name);
    if (l) l.push(t); else byName.set(t.name, [t]);
  }
  return { types, byName, str };
}

let vmlinuxBtf: KBtf | null | undefined;
/** The running kernel's BTF, or null when the kernel has none (every BTF-based rule then says unsafe). */
export function vmlinux(): KBtf | null {
  if (vmlinuxBtf !== undefined) return vmlinuxBtf;
  const path = '/sys/kernel/btf/vmlinux';
  try {
    vmlinuxBtf = existsSync(path) ? parseKBtf(readFileSync(path)) : null;
  } catch {
    vmlinuxBtf = null;
  }
  return vmlinuxBtf;
}

const MODIFIERS: ReadonlySet<number> = new Set([KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG]);
export const isModifier = (t: KType): boolean => MODIFIERS.has(t.kind);
export const isStruct = (t: KType | undefined): boolean => !!t && (t.kind === KIND.STRUCT || t.kind === KIND.UNION);
export const isIntOrEnum = (t: KType | undefined): boolean => !!t && (t.kind === KIND.INT || t.kind === KIND.ENUM || t.kind === KIND.ENUM64);

/** Follows typedef/const/volatile/restrict/type_tag; returns the type and its id. */
export function skipMods(btf: KBtf, id: number): { t: KType; id: number } | null {
  for (let n = 0; n < 64; n++) {
    const t = btf.types[id];
    if (!t) return null;
    if (!isModifier(t)) return { t, id };
    id = t.sizeOrType;
  }
  return null;
}

/** The first type tag ("user", "percpu", "rcu") directly under a pointer (type tags precede other modifiers). */
export function pointeeTag(btf: KBtf, ptrTarget: number): string | null {
  const t = btf.types[ptrTarget];
  return t && t.kind === KIND.TYPE_TAG && !t.kflag ? t.name : null;
}

/** btf_resolve_size: byte size of a type (arrays multiplied out), with the innermost array element. */
export function resolveSize(btf: KBtf, id: number, depth = 0): { size: number; elem: { t: KType; id: number } | null; nelems: number } | null {
  const s = skipMods(btf, id);
  if (!s || depth > 32) return null;
  const t = s.t;
  switch (t.kind) {
    case KIND.INT: case KIND.STRUCT: case KIND.UNION: case KIND.ENUM: case KIND.ENUM64: case KIND.FLOAT:
      return { size: t.sizeOrType, elem: null, nelems: 1 };
    case KIND.PTR:
      return { size: 8, elem: null, nelems: 1 };
    case KIND.ARRAY: {
      const e = resolveSize(btf, t.elem, depth + 1);
      if (!e) return null;
      const inner = e.elem ?? skipMods(btf, t.elem);
      return { size: e.size * t.nelems, elem: inner, nelems: e.nelems * t.nelems };
    }
    default:
      return null;
  }
}

/** Type ids of a kind by name, in the kernel BTF. */
export function findType(btf: KBtf, kind: number, name: string): KType | null {
  return btf.byName.get(name)?.find((t) => t.kind === kind) ?? null;
}
