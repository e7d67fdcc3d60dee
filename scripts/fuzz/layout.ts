// Where the interesting fields of a (well-formed) BPF ELF object are, so the mutator can aim at
// sizes, offsets, counts and indices instead of only random bytes. Lenient on purpose: it reads
// whatever it can and stops where the bytes stop making sense (a seed may be an already-mutated file).

export type FieldGroup =
  | 'ehdr' // ELF header: e_shoff, e_shnum, e_shstrndx, e_shentsize, ...
  | 'shdr' // section headers: sh_name, sh_type, sh_offset, sh_size, sh_link, sh_info, sh_entsize
  | 'sym' // symbol table entries: st_name, st_shndx, st_value, st_size, st_info
  | 'rel' // relocation entries: r_offset, r_info (symbol index, type)
  | 'btfhdr' // .BTF header: hdr_len, type_off/len, str_off/len
  | 'btftype' // .BTF type records: name_off, info (kind, vlen), size/type, kind-specific words
  | 'exthdr' // .BTF.ext header: hdr_len, func/line/core info off/len
  | 'extrec' // .BTF.ext blocks: rec_size, sec_name_off, num_info, insn_off, type ids
  | 'insn' // instructions of code sections (opcode, regs, off, imm)
  | 'mapdef'; // legacy struct bpf_map_def words in "maps" sections

export interface Field {
  group: FieldGroup;
  at: number; // file offset
  width: 1 | 2 | 4 | 8;
  what: string; // e.g. "sh_size of .BTF"
}

export interface SectionLoc {
  index: number;
  name: string;
  type: number;
  offset: number;
  size: number;
  headerAt: number;
}

export interface Layout {
  fields: Field[];
  sections: SectionLoc[];
  shoff: number;
  shnum: number;
}

const SHT_SYMTAB = 2, SHT_RELA = 4, SHT_NOBITS = 8, SHT_REL = 9;

export function layoutOf(b: Uint8Array): Layout {
  const fields: Field[] = [];
  const sections: SectionLoc[] = [];
  const out: Layout = { fields, sections, shoff: 0, shnum: 0 };
  if (b.length < 64 || b[0] !== 0x7f || b[4] !== 2 || b[5] !== 1) return out;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const f = (group: FieldGroup, at: number, width: Field['width'], what: string): void => {
    if (at >= 0 && at + width <= b.length) fields.push({ group, at, width, what });
  };
  f('ehdr', 16, 2, 'e_type');
  f('ehdr', 18, 2, 'e_machine');
  f('ehdr', 40, 8, 'e_shoff');
  f('ehdr', 52, 2, 'e_ehsize');
  f('ehdr', 58, 2, 'e_shentsize');
  f('ehdr', 60, 2, 'e_shnum');
  f('ehdr', 62, 2, 'e_shstrndx');
  const shoffBig = dv.getBigUint64(40, true);
  const shnum = dv.getUint16(60, true);
  if (shoffBig > BigInt(b.length) || dv.getUint16(58, true) !== 64) return out;
  const shoff = Number(shoffBig);
  out.shoff = shoff;
  out.shnum = shnum;
  const shstrndx = dv.getUint16(62, true);
  for (let i = 0; i < shnum && shoff + (i + 1) * 64 <= b.length; i++) {
    const h = shoff + i * 64;
    const off = dv.getBigUint64(h + 24, true), size = dv.getBigUint64(h + 32, true);
    sections.push({
      index: i, name: '', type: dv.getUint32(h + 4, true), headerAt: h,
      offset: off <= BigInt(b.length) ? Number(off) : -1,
      size: size <= BigInt(b.length) ? Number(size) : -1,
    });
  }
  const valid = (s: SectionLoc): boolean => s.offset >= 0 && s.size >= 0 && s.offset + s.size <= b.length && s.type !== SHT_NOBITS;
  const strtab = sections[shstrndx];
  for (const s of sections) {
    if (!strtab || !valid(strtab)) break;
    const nameOff = dv.getUint32(s.headerAt, true);
    if (nameOff >= strtab.size) continue;
    let end = strtab.offset + nameOff;
    while (end < strtab.offset + strtab.size && b[end] !== 0) end++;
    s.name = Buffer.from(b.subarray(strtab.offset + nameOff, end)).toString('latin1');
  }
  for (const s of sections) {
    const n = s.name || `#${s.index}`;
    f('shdr', s.headerAt, 4, `sh_name of ${n}`);
    f('shdr', s.headerAt + 4, 4, `sh_type of ${n}`);
    f('shdr', s.headerAt + 8, 8, `sh_flags of ${n}`);
    f('shdr', s.headerAt + 24, 8, `sh_offset of ${n}`);
    f('shdr', s.headerAt + 32, 8, `sh_size of ${n}`);
    f('shdr', s.headerAt + 40, 4, `sh_link of ${n}`);
    f('shdr', s.headerAt + 44, 4, `sh_info of ${n}`);
    f('shdr', s.headerAt + 56, 8, `sh_entsize of ${n}`);
  }
  for (const s of sections) {
    if (!valid(s) || s.index === 0) continue;
    const n = s.name;
    if (s.type === SHT_SYMTAB) {
      for (let at = s.offset + 24; at + 24 <= s.offset + s.size; at += 24) {
        f('sym', at, 4, `st_name in ${n}`);
        f('sym', at + 4, 1, `st_info in ${n}`);
        f('sym', at + 6, 2, `st_shndx in ${n}`);
        f('sym', at + 8, 8, `st_value in ${n}`);
        f('sym', at + 16, 8, `st_size in ${n}`);
      }
    } else if (s.type === SHT_REL || s.type === SHT_RELA) {
      const step = s.type === SHT_RELA ? 24 : 16;
      for (let at = s.offset; at + step <= s.offset + s.size; at += step) {
        f('rel', at, 8, `r_offset in ${n}`);
        f('rel', at + 8, 4, `r_type in ${n}`);
        f('rel', at + 12, 4, `r_sym in ${n}`);
      }
    } else if (n === '.BTF') {
      btfFields(dv, s, f);
    } else if (n === '.BTF.ext') {
      btfExtFields(dv, s, f);
    } else if (n === 'maps' || n.startsWith('maps/')) {
      for (let at = s.offset; at + 4 <= s.offset + s.size; at += 4) f('mapdef', at, 4, `word in ${n}`);
    } else if (s.type === 1 && (dv.getBigUint64(s.headerAt + 8, true) & 4n) !== 0n) {
      for (let at = s.offset; at + 8 <= s.offset + s.size; at += 8) {
        f('insn', at, 1, `opcode in ${n}`);
        f('insn', at + 1, 1, `regs in ${n}`);
        f('insn', at + 2, 2, `off in ${n}`);
        f('insn', at + 4, 4, `imm in ${n}`);
      }
    }
  }
  return out;
}

type AddField = (group: FieldGroup, at: number, width: Field['width'], what: string) => void;

function btfFields(dv: DataView, s: SectionLoc, f: AddField): void {
  const b = s.offset;
  if (s.size < 24) return;
  f('btfhdr', b + 4, 4, 'BTF hdr_len');
  f('btfhdr', b + 8, 4, 'BTF type_off');
  f('btfhdr', b + 12, 4, 'BTF type_len');
  f('btfhdr', b + 16, 4, 'BTF str_off');
  f('btfhdr', b + 20, 4, 'BTF str_len');
  const hdrLen = dv.getUint32(b + 4, true);
  const start = b + hdrLen + dv.getUint32(b + 8, true);
  const end = Math.min(start + dv.getUint32(b + 12, true), b + s.size);
  let at = start;
  for (let n = 0; at + 12 <= end && n < 100000; n++) {
    f('btftype', at, 4, 'BTF name_off');
    f('btftype', at + 4, 2, 'BTF vlen');
    f('btftype', at + 7, 1, 'BTF kind');
    f('btftype', at + 8, 4, 'BTF size/type');
    const info = dv.getUint32(at + 4, true);
    const kind = (info >>> 24) & 0x1f, vlen = info & 0xffff;
    at += 12;
    let extra = 0;
    switch (kind) {
      case 1: case 14: case 17: extra = 4; break;
      case 3: extra = 12; break;
      case 4: case 5: case 15: case 19: extra = 12 * vlen; break;
      case 6: case 13: extra = 8 * vlen; break;
      default: break;
    }
    for (let w = 0; w < extra && at + w + 4 <= end; w += 4) f('btftype', at + w, 4, `BTF kind ${kind} word`);
    at += extra;
  }
}

function btfExtFields(dv: DataView, s: SectionLoc, f: AddField): void {
  const b = s.offset;
  if (s.size < 24) return;
  f('exthdr', b + 4, 4, 'BTF.ext hdr_len');
  for (const [o, n] of [[8, 'func_info_off'], [12, 'func_info_len'], [16, 'line_info_off'], [20, 'line_info_len'], [24, 'core_relo_off'], [28, 'core_relo_len']] as const) {
    if (o + 4 <= s.size) f('exthdr', b + o, 4, `BTF.ext ${n}`);
  }
  const hdrLen = dv.getUint32(b + 4, true);
  for (const o of [8, 16, 24]) {
    if (o + 8 > hdrLen || o + 8 > s.size) continue;
    let at = b + hdrLen + dv.getUint32(b + o, true);
    const end = Math.min(at + dv.getUint32(b + o + 4, true), b + s.size);
    if (at + 4 > end) continue;
    f('extrec', at, 4, 'BTF.ext rec_size');
    const recSize = dv.getUint32(at, true);
    if (recSize < 4 || recSize > 64) continue;
    at += 4;
    for (let n = 0; at + 8 <= end && n < 10000; n++) {
      f('extrec', at, 4, 'BTF.ext sec_name_off');
      f('extrec', at + 4, 4, 'BTF.ext num_info');
      const num = dv.getUint32(at + 4, true);
      at += 8;
      for (let r = 0; r < num && at + recSize <= end; r++, at += recSize) {
        for (let w = 0; w < recSize; w += 4) f('extrec', at + w, 4, 'BTF.ext record word');
      }
    }
  }
}
