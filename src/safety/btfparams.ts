// Parameter types of BTF FUNC_PROTO records, read straight from the object's .BTF section
// (the shared BTF parser keeps no parameter list). Used to type the arguments of global functions.
import type { ElfFile } from '../elf/types.js';

const KIND = { INT: 1, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, DECL_TAG: 17, ENUM64: 19 } as const;

/** Parameter type ids of every FUNC_PROTO, by type id. */
export function funcProtoParams(elf: ElfFile): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const sec = elf.sections.find((s) => s.name === '.BTF');
  if (!sec || sec.data.length < 24) return out;
  const d = sec.data;
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const hdrLen = v.getUint32(4, true);
  const typeOff = v.getUint32(8, true), typeLen = v.getUint32(12, true);
  let at = hdrLen + typeOff;
  const end = Math.min(at + typeLen, d.length);
  let id = 1;
  while (at + 12 <= end) {
    const info = v.getUint32(at + 4, true);
    at += 12;
    const kind = (info >>> 24) & 0x1f, vlen = info & 0xffff;
    switch (kind) {
      case KIND.INT: case KIND.VAR: case KIND.DECL_TAG: at += 4; break;
      case KIND.ARRAY: at += 12; break;
      case KIND.STRUCT: case KIND.UNION: case KIND.DATASEC: at += 12 * vlen; break;
      case KIND.ENUM: at += 8 * vlen; break;
      case KIND.ENUM64: at += 12 * vlen; break;
      case KIND.FUNC_PROTO: {
        const params: number[] = [];
        for (let i = 0; i < vlen && at + 8 <= end; i++, at += 8) params.push(v.getUint32(at + 4, true));
        out.set(id, params);
        break;
      }
      default: break;
    }
    id++;
  }
  return out;
}
