// .BTF (types and strings) and .BTF.ext (func_info, line_info, core_relo) parsing and encoding.
// Formats: kernel Documentation/bpf/btf.rst and llvm-project BTF.h.
import { K2Error } from '../util/errors.js';
import { cstring, nameAt } from './read.js';

export const BTF_MAGIC = 0xeb9f;
export const BTF_KIND = {
  INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10,
  RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19,
} as const;

export interface BtfMember { name: string; type: number; offset: number } // struct member, enum value, datasec var (offset, size in `size`)
export interface BtfType {
  id: number;
  kind: number;
  name: string;
  sizeOrType: number; // size for INT/STRUCT/UNION/ENUM/DATASEC/FLOAT, type id for the rest
  vlen: number;
  kindFlag: boolean;
  members: (BtfMember & { size?: number })[];
  nelems?: number; // ARRAY
  elemType?: number; // ARRAY
  enumerators?: { name: string; value: bigint }[]; // ENUM / ENUM64 (signed when kindFlag is set)
}

export interface Btf {
  types: BtfType[]; // index = type id; types[0] is void
  strings: Uint8Array;
}

/** Bounds on BTF a reader follows: the kernel's own (btf.c MAX_RESOLVE_DEPTH, u32 sizes). */
export const BTF_LIMITS = {
  /** Longest chain of modifiers / array elements followed when resolving a type. */
  depth: 32,
  /** Largest type size in bytes (BTF sizes are u32). */
  size: 0xffffffff,
} as const;

/** Bytes of kind-specific data after the 12-byte common header, or null for an unknown kind. */
export function extraBytes(kind: number, vlen: number): number | null {
  switch (kind) {
    case BTF_KIND.INT: case BTF_KIND.VAR: case BTF_KIND.DECL_TAG: return 4;
    case BTF_KIND.ARRAY: return 12;
    case BTF_KIND.STRUCT: case BTF_KIND.UNION: case BTF_KIND.DATASEC: case BTF_KIND.ENUM64: return 12 * vlen;
    case BTF_KIND.ENUM: case BTF_KIND.FUNC_PROTO: return 8 * vlen;
    case BTF_KIND.PTR: case BTF_KIND.FWD: case BTF_KIND.TYPEDEF: case BTF_KIND.VOLATILE: case BTF_KIND.CONST:
    case BTF_KIND.RESTRICT: case BTF_KIND.FUNC: case BTF_KIND.FLOAT: case BTF_KIND.TYPE_TAG:
      return 0;
    default: return null;
  }
}

/** Kinds whose `sizeOrType` is a type id. */
const REFERS_BY_TYPE: ReadonlySet<number> = new Set([
  BTF_KIND.PTR, BTF_KIND.TYPEDEF, BTF_KIND.VOLATILE, BTF_KIND.CONST, BTF_KIND.RESTRICT, BTF_KIND.FUNC,
  BTF_KIND.FUNC_PROTO, BTF_KIND.VAR, BTF_KIND.DECL_TAG, BTF_KIND.TYPE_TAG,
]);

/**
 * Parses .BTF. Every header field, record and type id is checked against the section: a type that
 * runs past the type area or refers to a type id that does not exist is bad input.
 */
export function parseBtf(data: Uint8Array, file?: string): Btf {
  const bad = (c: string, offset?: number): K2Error => new K2Error('input', c, { file, section: '.BTF', ...(offset !== undefined ? { offset } : {}) });
  if (data.length < 24) throw bad(`truncated header (${data.length} bytes)`);
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (v.getUint16(0, true) !== BTF_MAGIC) throw bad('bad magic', 0);
  const hdrLen = v.getUint32(4, true);
  const typeOff = v.getUint32(8, true), typeLen = v.getUint32(12, true);
  const strOff = v.getUint32(16, true), strLen = v.getUint32(20, true);
  if (hdrLen < 24 || hdrLen > data.length) throw bad(`header length ${hdrLen} is outside 24..${data.length}`, 4);
  if (hdrLen + typeOff + typeLen > data.length) throw bad(`type area (offset ${typeOff}, ${typeLen} bytes) extends past the section (${data.length} bytes)`, 8);
  if (hdrLen + strOff + strLen > data.length) throw bad(`string area (offset ${strOff}, ${strLen} bytes) extends past the section (${data.length} bytes)`, 16);
  const strings = data.subarray(hdrLen + strOff, hdrLen + strOff + strLen);
  // libbpf and the kernel: the string area starts with the empty string and ends with a NUL.
  if (strLen === 0 || strings[0] !== 0 || strings[strLen - 1] !== 0) throw bad(`string area (${strLen} bytes) does not start and end with a NUL`, 16);
  const types: BtfType[] = [{ id: 0, kind: 0, name: 'void', sizeOrType: 0, vlen: 0, kindFlag: false, members: [] }];
  const refs: { from: number; to: number; at: number }[] = []; // type ids to check once all types are known
  let at = hdrLen + typeOff;
  const end = at + typeLen;
  while (at < end) {
    const start = at;
    const id = types.length;
    if (at + 12 > end) throw bad(`type ${id} is truncated`, start);
    const nameOff = v.getUint32(at, true), info = v.getUint32(at + 4, true), sizeOrType = v.getUint32(at + 8, true);
    const kind = (info >>> 24) & 0x1f, vlen = info & 0xffff;
    const extra = extraBytes(kind, vlen);
    if (extra === null) throw bad(`unknown type kind ${kind}`, start);
    if (at + 12 + extra > end) throw bad(`type ${id} (kind ${kind}, vlen ${vlen}) extends past the type area`, start);
    const str = (off: number, field: number): string => nameAt(strings, off, `type ${id}`, { file, section: '.BTF', offset: field });
    const t: BtfType = { id, kind, name: str(nameOff, at), sizeOrType, vlen, kindFlag: (info >>> 31) === 1, members: [] };
    if (REFERS_BY_TYPE.has(kind)) refs.push({ from: id, to: sizeOrType, at: at + 8 });
    // Sizes the kernel's BTF checker insists on (libbpf 1.1 divides by them: a 0 is SIGFPE).
    if (kind === BTF_KIND.INT && ![1, 2, 4, 8, 16].includes(sizeOrType)) throw bad(`type ${id}: int of ${sizeOrType} bytes`, at + 8);
    if ((kind === BTF_KIND.ENUM || kind === BTF_KIND.ENUM64) && ![1, 2, 4, 8].includes(sizeOrType)) throw bad(`type ${id}: enum of ${sizeOrType} bytes`, at + 8);
    at += 12;
    switch (kind) {
      case BTF_KIND.ARRAY:
        t.elemType = v.getUint32(at, true);
        t.nelems = v.getUint32(at + 8, true);
        refs.push({ from: id, to: t.elemType, at }, { from: id, to: v.getUint32(at + 4, true), at: at + 4 });
        break;
      case BTF_KIND.STRUCT: case BTF_KIND.UNION:
        for (let i = 0, m = at; i < vlen; i++, m += 12) {
          const type = v.getUint32(m + 4, true);
          // A member of type void has no size: the kernel refuses it ("Invalid member"), libbpf 1.1 divides by it.
          if (type === 0) throw bad(`type ${id}: member ${i} has type void`, m + 4);
          t.members.push({ name: str(v.getUint32(m, true), m), type, offset: v.getUint32(m + 8, true) });
          refs.push({ from: id, to: type, at: m + 4 });
        }
        break;
      case BTF_KIND.ENUM:
        t.enumerators = [];
        for (let i = 0, m = at; i < vlen; i++, m += 8) {
          const raw = t.kindFlag ? BigInt(v.getInt32(m + 4, true)) : BigInt(v.getUint32(m + 4, true));
          t.enumerators.push({ name: str(v.getUint32(m, true), m), value: raw });
        }
        break;
      case BTF_KIND.ENUM64:
        t.enumerators = [];
        for (let i = 0, m = at; i < vlen; i++, m += 12) {
          const u = (BigInt(v.getUint32(m + 8, true)) << 32n) | BigInt(v.getUint32(m + 4, true));
          t.enumerators.push({ name: str(v.getUint32(m, true), m), value: t.kindFlag ? BigInt.asIntN(64, u) : u });
        }
        break;
      case BTF_KIND.FUNC_PROTO:
        for (let i = 0, m = at; i < vlen; i++, m += 8) refs.push({ from: id, to: v.getUint32(m + 4, true), at: m + 4 });
        break;
      case BTF_KIND.DATASEC:
        for (let i = 0, m = at; i < vlen; i++, m += 12) {
          t.members.push({ name: '', type: v.getUint32(m, true), offset: v.getUint32(m + 4, true), size: v.getUint32(m + 8, true) });
          refs.push({ from: id, to: v.getUint32(m, true), at: m });
        }
        break;
      default:
        break;
    }
    at += extra;
    types.push(t);
  }
  for (const r of refs) if (r.to >= types.length) throw bad(`type ${r.from} refers to type ${r.to}, which does not exist (${types.length - 1} types)`, r.at);
  return { types, strings };
}

/** Follows typedef/const/volatile/restrict/type_tag to the underlying type. */
export function skipModifiers(btf: Btf, id: number): BtfType | undefined {
  for (let n = 0; n <= BTF_LIMITS.depth; n++) {
    const t = btf.types[id];
    if (!t) return undefined;
    if (t.kind === BTF_KIND.TYPEDEF || t.kind === BTF_KIND.CONST || t.kind === BTF_KIND.VOLATILE || t.kind === BTF_KIND.RESTRICT || t.kind === BTF_KIND.TYPE_TAG) {
      id = t.sizeOrType;
      continue;
    }
    return t;
  }
  return undefined;
}

/** Byte size of a type, or null when it has none (void, func, fwd), is nested too deeply or is too large. */
export function typeSize(btf: Btf, id: number, depth = 0): number | null {
  if (depth > BTF_LIMITS.depth) return null;
  const t = skipModifiers(btf, id);
  if (!t) return null;
  switch (t.kind) {
    case BTF_KIND.INT: case BTF_KIND.STRUCT: case BTF_KIND.UNION: case BTF_KIND.ENUM: case BTF_KIND.ENUM64:
    case BTF_KIND.FLOAT: case BTF_KIND.DATASEC:
      return t.sizeOrType;
    case BTF_KIND.PTR: return 8;
    case BTF_KIND.ARRAY: {
      const e = typeSize(btf, t.elemType!, depth + 1);
      if (e === null) return null;
      const n = e * t.nelems!;
      return n <= BTF_LIMITS.size ? n : null;
    }
    default: return null;
  }
}

// ---- .BTF.ext ----

export interface BtfExtRecordSet<R> {
  secNameOff: number;
  secName: string;
  records: R[];
}
export interface FuncInfoRec { insnOff: number; typeId: number }
export interface LineInfoRec { insnOff: number; fileNameOff: number; lineOff: number; lineCol: number }
export interface CoreReloRec { insnOff: number; typeId: number; accessStrOff: number; kind: number }

export interface BtfExt {
  magic: number;
  version: number;
  flags: number;
  hdrLen: number;
  funcRecSize: number;
  lineRecSize: number;
  coreRecSize: number;
  hasCore: boolean;
  func: BtfExtRecordSet<FuncInfoRec>[];
  line: BtfExtRecordSet<LineInfoRec>[];
  core: BtfExtRecordSet<CoreReloRec>[];
}

/** Largest .BTF.ext record size accepted (the kernel's limit is a page; LLVM writes 8 and 16). */
export const BTF_EXT_MAX_REC_SIZE = 4096;

/**
 * Parses .BTF.ext: header, then per kind (func_info, line_info, core_relo) a record size and blocks
 * of `num_info` records per code section. Every length, count and record size is checked against
 * the section before a record is read.
 */
export function parseBtfExt(data: Uint8Array, btfStrings: Uint8Array, file?: string): BtfExt {
  const bad = (c: string, offset?: number): K2Error => new K2Error('input', c, { file, section: '.BTF.ext', ...(offset !== undefined ? { offset } : {}) });
  if (data.length < 24) throw bad(`truncated header (${data.length} bytes)`);
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (v.getUint16(0, true) !== BTF_MAGIC) throw bad('bad magic', 0);
  const hdrLen = v.getUint32(4, true);
  if (hdrLen < 24 || hdrLen > data.length) throw bad(`header length ${hdrLen} is outside 24..${data.length}`, 4);
  const hasCore = hdrLen >= 32;
  const sub = <R>(what: string, hdrAt: number, minRec: number, read: (at: number) => R) => {
    const off = v.getUint32(hdrAt, true), len = v.getUint32(hdrAt + 4, true);
    const sets: BtfExtRecordSet<R>[] = [];
    if (len === 0) return { recSize: 0, sets };
    if (off % 4 !== 0) throw bad(`${what} at offset ${off} is not 4-byte aligned`, hdrAt);
    let at = hdrLen + off;
    const end = at + len;
    if (end > data.length) throw bad(`${what} (offset ${off}, ${len} bytes) extends past the section (${data.length} bytes)`, hdrAt);
    if (len < 4) throw bad(`${what} is ${len} bytes, too short for a record size`, hdrAt);
    const recSize = v.getUint32(at, true);
    if (recSize < minRec || recSize > BTF_EXT_MAX_REC_SIZE || recSize % 4 !== 0) {
      throw bad(`${what} record size ${recSize} is not a multiple of 4 in ${minRec}..${BTF_EXT_MAX_REC_SIZE}`, at);
    }
    at += 4;
    while (at < end) {
      if (at + 8 > end) throw bad(`truncated ${what} block`, at);
      const secNameOff = v.getUint32(at, true), n = v.getUint32(at + 4, true);
      if (at + 8 + n * recSize > end) throw bad(`${what} block of ${n} records of ${recSize} bytes extends past its area`, at + 4);
      if (n === 0) throw bad(`${what} block with no records`, at + 4); // libbpf refuses it too
      const secName = nameAt(btfStrings, secNameOff, `${what} block`, { file, section: '.BTF.ext', offset: at });
      at += 8;
      const records: R[] = [];
      for (let i = 0; i < n; i++, at += recSize) records.push(read(at));
      sets.push({ secNameOff, secName, records });
    }
    return { recSize, sets };
  };
  const func = sub('func_info', 8, 8, (at): FuncInfoRec => ({ insnOff: v.getUint32(at, true), typeId: v.getUint32(at + 4, true) }));
  const line = sub('line_info', 16, 16, (at): LineInfoRec => ({
    insnOff: v.getUint32(at, true), fileNameOff: v.getUint32(at + 4, true), lineOff: v.getUint32(at + 8, true), lineCol: v.getUint32(at + 12, true),
  }));
  const core = hasCore
    ? sub('core_relo', 24, 16, (at): CoreReloRec => ({
        insnOff: v.getUint32(at, true), typeId: v.getUint32(at + 4, true), accessStrOff: v.getUint32(at + 8, true), kind: v.getUint32(at + 12, true),
      }))
    : { recSize: 0, sets: [] as BtfExtRecordSet<CoreReloRec>[] };
  return {
    magic: BTF_MAGIC, version: data[2]!, flags: data[3]!, hdrLen, hasCore,
    funcRecSize: func.recSize, lineRecSize: line.recSize, coreRecSize: core.recSize,
    func: func.sets, line: line.sets, core: core.sets,
  };
}

/** Byte offset of every record's first field (insn_off) in the encoded section, in func, line, core order. */
export function btfExtRecordOffsets(ext: BtfExt): { func: number[][]; line: number[][]; core: number[][] } {
  let at = ext.hdrLen;
  const walk = <R>(sets: BtfExtRecordSet<R>[], recSize: number): number[][] => {
    if (sets.length === 0) return [];
    at += 4;
    return sets.map((s) => {
      at += 8;
      return s.records.map(() => (at += recSize) - recSize);
    });
  };
  const func = walk(ext.func, ext.funcRecSize);
  const line = walk(ext.line, ext.lineRecSize);
  const core = ext.hasCore ? walk(ext.core, ext.coreRecSize) : [];
  return { func, line, core };
}

export function encodeBtfExt(ext: BtfExt): Uint8Array {
  const block = <R>(sets: BtfExtRecordSet<R>[], recSize: number, fields: (r: R) => number[]): number[] => {
    if (sets.length === 0) return [];
    const words: number[] = [recSize];
    for (const s of sets) {
      words.push(s.secNameOff, s.records.length);
      for (const r of s.records) {
        const f = fields(r);
        words.push(...f, ...new Array(recSize / 4 - f.length).fill(0));
      }
    }
    return words;
  };
  const func = block(ext.func, ext.funcRecSize, (r) => [r.insnOff, r.typeId]);
  const line = block(ext.line, ext.lineRecSize, (r) => [r.insnOff, r.fileNameOff, r.lineOff, r.lineCol]);
  const core = ext.hasCore ? block(ext.core, ext.coreRecSize, (r) => [r.insnOff, r.typeId, r.accessStrOff, r.kind]) : [];
  const out = new Uint8Array(ext.hdrLen + 4 * (func.length + line.length + core.length));
  const v = new DataView(out.buffer);
  v.setUint16(0, ext.magic, true);
  out[2] = ext.version;
  out[3] = ext.flags;
  v.setUint32(4, ext.hdrLen, true);
  v.setUint32(8, 0, true);
  v.setUint32(12, func.length * 4, true);
  v.setUint32(16, func.length * 4, true);
  v.setUint32(20, line.length * 4, true);
  if (ext.hdrLen >= 32) {
    v.setUint32(24, (func.length + line.length) * 4, true);
    v.setUint32(28, core.length * 4, true);
  }
  [...func, ...line, ...core].forEach((w, i) => v.setUint32(ext.hdrLen + i * 4, w >>> 0, true));
  return out;
}
