// .BTF (types and strings) and .BTF.ext (func_info, line_info, core_relo) parsing and encoding.
// Formats: kernel Documentation/bpf/btf.rst and llvm-project BTF.h.
import { K2Error } from '../util/errors.js';
import { cstring } from './read.js';

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

export function parseBtf(data: Uint8Array, file?: string): Btf {
  const bad = (c: string): K2Error => new K2Error('input', `.BTF: ${c}`, { file });
  if (data.length < 24) throw bad('truncated header');
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (v.getUint16(0, true) !== BTF_MAGIC) throw bad('bad magic');
  const hdrLen = v.getUint32(4, true);
  const typeOff = v.getUint32(8, true), typeLen = v.getUint32(12, true);
  const strOff = v.getUint32(16, true), strLen = v.getUint32(20, true);
  if (hdrLen + typeOff + typeLen > data.length || hdrLen + strOff + strLen > data.length) throw bad('section extends past its end');
  const strings = data.subarray(hdrLen + strOff, hdrLen + strOff + strLen);
  const types: BtfType[] = [{ id: 0, kind: 0, name: 'void', sizeOrType: 0, vlen: 0, kindFlag: false, members: [] }];
  let at = hdrLen + typeOff;
  const end = at + typeLen;
  while (at < end) {
    if (at + 12 > end) throw bad('truncated type');
    const nameOff = v.getUint32(at, true), info = v.getUint32(at + 4, true), sizeOrType = v.getUint32(at + 8, true);
    at += 12;
    const kind = (info >>> 24) & 0x1f, vlen = info & 0xffff;
    const t: BtfType = { id: types.length, kind, name: cstring(strings, nameOff), sizeOrType, vlen, kindFlag: (info >>> 31) === 1, members: [] };
    switch (kind) {
      case BTF_KIND.INT: case BTF_KIND.VAR: case BTF_KIND.DECL_TAG: at += 4; break;
      case BTF_KIND.ARRAY:
        t.elemType = v.getUint32(at, true);
        t.nelems = v.getUint32(at + 8, true);
        at += 12;
        break;
      case BTF_KIND.STRUCT: case BTF_KIND.UNION:
        for (let i = 0; i < vlen; i++, at += 12) t.members.push({ name: cstring(strings, v.getUint32(at, true)), type: v.getUint32(at + 4, true), offset: v.getUint32(at + 8, true) });
        break;
      case BTF_KIND.ENUM:
        t.enumerators = [];
        for (let i = 0; i < vlen; i++, at += 8) {
          const raw = t.kindFlag ? BigInt(v.getInt32(at + 4, true)) : BigInt(v.getUint32(at + 4, true));
          t.enumerators.push({ name: cstring(strings, v.getUint32(at, true)), value: raw });
        }
        break;
      case BTF_KIND.ENUM64:
        t.enumerators = [];
        for (let i = 0; i < vlen; i++, at += 12) {
          const u = (BigInt(v.getUint32(at + 8, true)) << 32n) | BigInt(v.getUint32(at + 4, true));
          t.enumerators.push({ name: cstring(strings, v.getUint32(at, true)), value: t.kindFlag ? BigInt.asIntN(64, u) : u });
        }
        break;
      case BTF_KIND.FUNC_PROTO: at += 8 * vlen; break;
      case BTF_KIND.DATASEC:
        for (let i = 0; i < vlen; i++, at += 12) t.members.push({ name: '', type: v.getUint32(at, true), offset: v.getUint32(at + 4, true), size: v.getUint32(at + 8, true) });
        break;
      case BTF_KIND.PTR: case BTF_KIND.FWD: case BTF_KIND.TYPEDEF: case BTF_KIND.VOLATILE: case BTF_KIND.CONST:
      case BTF_KIND.RESTRICT: case BTF_KIND.FUNC: case BTF_KIND.FLOAT: case BTF_KIND.TYPE_TAG:
        break;
      default:
        throw bad(`unknown type kind ${kind}`);
    }
    types.push(t);
  }
  return { types, strings };
}

/** Follows typedef/const/volatile/restrict/type_tag to the underlying type. */
export function skipModifiers(btf: Btf, id: number): BtfType | undefined {
  for (let n = 0; n < 64; n++) {
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

/** Byte size of a type, or null when it has none (void, func, fwd). */
export function typeSize(btf: Btf, id: number): number | null {
  const t = skipModifiers(btf, id);
  if (!t) return null;
  switch (t.kind) {
    case BTF_KIND.INT: case BTF_KIND.STRUCT: case BTF_KIND.UNION: case BTF_KIND.ENUM: case BTF_KIND.ENUM64:
    case BTF_KIND.FLOAT: case BTF_KIND.DATASEC:
      return t.sizeOrType;
    case BTF_KIND.PTR: return 8;
    case BTF_KIND.ARRAY: {
      const e = typeSize(btf, t.elemType!);
      return e === null ? null : e * t.nelems!;
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

export function parseBtfExt(data: Uint8Array, btfStrings: Uint8Array, file?: string): BtfExt {
  const bad = (c: string): K2Error => new K2Error('input', `.BTF.ext: ${c}`, { file });
  if (data.length < 24) throw bad('truncated header');
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (v.getUint16(0, true) !== BTF_MAGIC) throw bad('bad magic');
  const hdrLen = v.getUint32(4, true);
  const hasCore = hdrLen >= 32;
  const sub = (off: number, len: number, minRec: number, read: (at: number) => unknown) => {
    const sets: BtfExtRecordSet<any>[] = [];
    if (len === 0) return { recSize: 0, sets };
    let at = hdrLen + off;
    const end = at + len;
    if (end > data.length) throw bad('info section extends past its end');
    const recSize = v.getUint32(at, true);
    if (recSize < minRec) throw bad(`record size ${recSize} too small`);
    at += 4;
    while (at < end) {
      if (at + 8 > end) throw bad('truncated info block');
      const secNameOff = v.getUint32(at, true), n = v.getUint32(at + 4, true);
      at += 8;
      if (at + n * recSize > end) throw bad('truncated info records');
      const records = [];
      for (let i = 0; i < n; i++, at += recSize) records.push(read(at));
      sets.push({ secNameOff, secName: cstring(btfStrings, secNameOff), records });
    }
    return { recSize, sets };
  };
  const func = sub(v.getUint32(8, true), v.getUint32(12, true), 8, (at) => ({ insnOff: v.getUint32(at, true), typeId: v.getUint32(at + 4, true) }));
  const line = sub(v.getUint32(16, true), v.getUint32(20, true), 16, (at) => ({
    insnOff: v.getUint32(at, true), fileNameOff: v.getUint32(at + 4, true), lineOff: v.getUint32(at + 8, true), lineCol: v.getUint32(at + 12, true),
  }));
  const core = hasCore
    ? sub(v.getUint32(24, true), v.getUint32(28, true), 16, (at) => ({
        insnOff: v.getUint32(at, true), typeId: v.getUint32(at + 4, true), accessStrOff: v.getUint32(at + 8, true), kind: v.getUint32(at + 12, true),
      }))
    : { recSize: 0, sets: [] };
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
