// BTF-defined map definitions (the `.maps` section) read straight from the object's .BTF, for the
// bpftool backend: bpftool cannot adjust a map before loading, so k2 creates the maps that need a
// fixup itself and hands them to `bpftool prog loadall ... map name NAME pinned PATH`.
// Only what map creation needs is decoded; anything unexpected yields no definition (never throws).

import type { ElfScan } from './elfscan.js';

export interface BtfMapDef {
  name: string;
  type: number; // enum bpf_map_type
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  hasInner: boolean; // map-in-map (`values` array of map pointers) or prog_array with `values`
}

/** bpftool's names of enum bpf_map_type values (index = value). */
export const MAP_TYPE_NAMES = [
  'unspec', 'hash', 'array', 'prog_array', 'perf_event_array', 'percpu_hash', 'percpu_array', 'stack_trace',
  'cgroup_array', 'lru_hash', 'lru_percpu_hash', 'lpm_trie', 'array_of_maps', 'hash_of_maps', 'devmap', 'sockmap',
  'cpumap', 'xskmap', 'sockhash', 'cgroup_storage', 'reuseport_sockarray', 'percpu_cgroup_storage', 'queue', 'stack',
  'sk_storage', 'devmap_hash', 'struct_ops', 'ringbuf', 'inode_storage', 'task_storage', 'bloom_filter',
  'user_ringbuf', 'cgrp_storage',
];

const KIND = { INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19 } as const;

interface BtfType {
  name: string;
  kind: number;
  vlen: number;
  sizeOrType: number;
  at: number; // offset of the kind-specific data
}

export function readBtfMapDefs(bytes: Uint8Array, scan: ElfScan): BtfMapDef[] {
  try {
    return read(bytes, scan);
  } catch {
    return [];
  }
}

function read(bytes: Uint8Array, scan: ElfScan): BtfMapDef[] {
  if (!scan.btf || !scan.hasBtfMaps) return [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const b = scan.btf.offset;
  if (dv.getUint16(b, true) !== 0xeb9f) return [];
  const hdrLen = dv.getUint32(b + 4, true);
  const typeStart = b + hdrLen + dv.getUint32(b + 8, true);
  const typeEnd = typeStart + dv.getUint32(b + 12, true);
  const strStart = b + hdrLen + dv.getUint32(b + 16, true);
  const strLen = dv.getUint32(b + 20, true);
  if (typeEnd > b + scan.btf.size || strStart + strLen > b + scan.btf.size) return [];
  // Names are short: a bounded native search keeps a string area without NULs from costing O(n^2).
  const str = (off: number): string => {
    if (off >= strLen) return '';
    const w = bytes.subarray(strStart + off, Math.min(strStart + strLen, strStart + off + 256));
    const e = w.indexOf(0);
    return Buffer.from(w.subarray(0, e < 0 ? w.length : e)).toString('latin1');
  };
  const types: BtfType[] = [{ name: '', kind: 0, vlen: 0, sizeOrType: 0, at: 0 }]; // id 0 = void
  for (let o = typeStart; o + 12 <= typeEnd; ) {
    const info = dv.getUint32(o + 4, true);
    const t: BtfType = { name: str(dv.getUint32(o, true)), kind: (info >>> 24) & 0x1f, vlen: info & 0xffff, sizeOrType: dv.getUint32(o + 8, true), at: o + 12 };
    types.push(t);
    o += 12;
    switch (t.kind) {
      case KIND.INT: case KIND.VAR: case KIND.DECL_TAG: o += 4; break;
      case KIND.ARRAY: o += 12; break;
      case KIND.STRUCT: case KIND.UNION: case KIND.DATASEC: case KIND.ENUM64: o += 12 * t.vlen; break;
      case KIND.ENUM: case KIND.FUNC_PROTO: o += 8 * t.vlen; break;
      default: break;
    }
  }
  const skipMods = (id: number): number => {
    for (let i = 0; i < 32; i++) {
      const t = types[id];
      if (!t || ![KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG].includes(t.kind as 8)) return id;
      id = t.sizeOrType;
    }
    return id;
  };
  const sizeOf = (id: number, depth = 0): number => {
    const t = types[skipMods(id)];
    if (!t || depth > 16) return 0;
    if (t.kind === KIND.PTR) return 8;
    if (t.kind === KIND.ARRAY) return dv.getUint32(t.at + 8, true) * sizeOf(dv.getUint32(t.at, true), depth + 1);
    return [KIND.INT, KIND.STRUCT, KIND.UNION, KIND.ENUM, KIND.ENUM64, KIND.FLOAT].includes(t.kind as 1) ? t.sizeOrType : 0;
  };
  /** __uint(name, N) is `int (*name)[N]`: N is the array's element count. */
  const uintOf = (id: number): number | null => {
    const p = types[skipMods(id)];
    if (!p || p.kind !== KIND.PTR) return null;
    const a = types[skipMods(p.sizeOrType)];
    return a && a.kind === KIND.ARRAY ? dv.getUint32(a.at + 8, true) : null;
  };
  const sec = types.find((t) => t.kind === KIND.DATASEC && t.name === '.maps');
  if (!sec) return [];
  const defs: BtfMapDef[] = [];
  // Many variables may share one struct type: each struct is decoded once, so the work stays
  // linear in the size of .BTF (vlen x vlen member visits otherwise).
  const byStruct = new Map<number, Omit<BtfMapDef, 'name'>>();
  for (let i = 0; i < sec.vlen; i++) {
    const v = types[dv.getUint32(sec.at + i * 12, true)];
    if (!v || v.kind !== KIND.VAR) continue;
    const stId = skipMods(v.sizeOrType);
    const st = types[stId];
    if (!st || st.kind !== KIND.STRUCT) continue;
    const known = byStruct.get(stId);
    if (known) {
      defs.push({ ...known, name: v.name });
      continue;
    }
    const def: BtfMapDef = { name: v.name, type: 0, keySize: 0, valueSize: 0, maxEntries: 0, flags: 0, hasInner: false };
    for (let m = 0; m < st.vlen; m++) {
      const name = str(dv.getUint32(st.at + m * 12, true));
      const mt = dv.getUint32(st.at + m * 12 + 4, true);
      switch (name) {
        case 'type': def.type = uintOf(mt) ?? 0; break;
        case 'max_entries': def.maxEntries = uintOf(mt) ?? 0; break;
        case 'map_flags': def.flags = uintOf(mt) ?? 0; break;
        case 'key_size': def.keySize = uintOf(mt) ?? 0; break;
        case 'value_size': def.valueSize = uintOf(mt) ?? 0; break;
        case 'key': { const p = types[skipMods(mt)]; if (p?.kind === KIND.PTR) def.keySize = sizeOf(p.sizeOrType); break; }
        case 'value': { const p = types[skipMods(mt)]; if (p?.kind === KIND.PTR) def.valueSize = sizeOf(p.sizeOrType); break; }
        case 'values': def.hasInner = true; break;
        default: break;
      }
    }
    const { name: _name, ...shape } = def;
    byStruct.set(stId, shape);
    defs.push(def);
  }
  return defs;
}
