// Parameter types of a function from the object's .BTF (the parsed BTF in src/elf keeps no
// FUNC_PROTO parameters): how many parameters the function has when every one is an integer or
// an enum, else null. The function-level proof of an inlined call needs integer-only parameters.
import type { BpfObject } from '../ir/types.js';
import { BTF_KIND, extraBytes as extra } from '../elf/btf.js';
import { sectionNamed } from './edit.js';
import type { FuncRange } from './layout.js';


interface RawType { kind: number; vlen: number; ref: number; at: number }

/** Every type of a raw .BTF section (index = type id), or null when it does not parse. */
function rawTypes(data: Uint8Array): RawType[] | null {
  if (data.length < 24) return null;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (v.getUint16(0, true) !== 0xeb9f) return null;
  const hdr = v.getUint32(4, true);
  const typeOff = v.getUint32(8, true);
  const typeLen = v.getUint32(12, true);
  let at = hdr + typeOff;
  const end = at + typeLen;
  if (end > data.length) return null;
  const types: RawType[] = [{ kind: 0, vlen: 0, ref: 0, at: 0 }];
  while (at + 12 <= end) {
    const info = v.getUint32(at + 4, true);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const x = extra(kind, vlen);
    if (x === null || at + 12 + x > end) return null;
    types.push({ kind, vlen, ref: v.getUint32(at + 8, true), at });
    at += 12 + x;
  }
  return types;
}

const MODIFIERS = new Set<number>([BTF_KIND.TYPEDEF, BTF_KIND.VOLATILE, BTF_KIND.CONST, BTF_KIND.RESTRICT, BTF_KIND.TYPE_TAG]);

/** Number of parameters of the function at `f` if all are integers/enums; null otherwise or unknown. */
export function scalarParams(obj: BpfObject, f: FuncRange): number | null {
  const p = params(obj, f);
  return p && p.scalar ? p.count : null;
}

/** Number of parameters of the function at `f` (null: no BTF for it). */
export function paramCount(obj: BpfObject, f: FuncRange): number | null {
  return params(obj, f)?.count ?? null;
}

function params(obj: BpfObject, f: FuncRange): { count: number; scalar: boolean } | null {
  const typeId = sectionNamed(obj, f.section).insns[f.start]?.funcInfo?.typeId;
  const raw = obj.elf.sections.find((s) => s.name === '.BTF')?.data;
  if (typeId === undefined || !raw) return null;
  const types = rawTypes(raw);
  if (!types) return null;
  const fn = types[typeId];
  if (!fn || fn.kind !== BTF_KIND.FUNC) return null;
  const proto = types[fn.ref];
  if (!proto || proto.kind !== BTF_KIND.FUNC_PROTO) return null;
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let k = 0; k < proto.vlen; k++) {
    let t = types[v.getUint32(proto.at + 12 + 8 * k + 4, true)];
    for (let n = 0; t && MODIFIERS.has(t.kind) && n < 32; n++) t = types[t.ref];
    if (!t || !(t.kind === BTF_KIND.INT || t.kind === BTF_KIND.ENUM || t.kind === BTF_KIND.ENUM64)) return { count: proto.vlen, scalar: false };
  }
  return { count: proto.vlen, scalar: true };
}
