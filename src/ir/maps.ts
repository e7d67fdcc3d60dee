// Map definitions: BTF-defined (.maps, described by a DATASEC in .BTF) and legacy (struct bpf_map_def).
import { BTF_KIND, skipModifiers, typeSize, type Btf } from '../elf/btf.js';
import { STT, symType, type ElfFile } from '../elf/types.js';
import { K2Error } from '../util/errors.js';
import type { MapDef } from './types.js';

/** `int (*name)[N]` encodes N: pointer to an array of N elements. */
function arrayPtrValue(btf: Btf, typeId: number): number | null {
  const p = skipModifiers(btf, typeId);
  if (!p || p.kind !== BTF_KIND.PTR) return null;
  const a = skipModifiers(btf, p.sizeOrType);
  return a && a.kind === BTF_KIND.ARRAY ? a.nelems! : null;
}

function pointeeSize(btf: Btf, typeId: number): number | null {
  const p = skipModifiers(btf, typeId);
  return p && p.kind === BTF_KIND.PTR ? typeSize(btf, p.sizeOrType) : null;
}

function btfMapFromStruct(btf: Btf, structId: number, name: string, sym: number): MapDef {
  const st = skipModifiers(btf, structId);
  const def: MapDef = { name, sym, section: '.maps', type: 0, keySize: 0, valueSize: 0, maxEntries: 0, flags: 0, btf: true };
  if (!st || st.kind !== BTF_KIND.STRUCT) return def;
  for (const m of st.members) {
    switch (m.name) {
      case 'type': def.type = arrayPtrValue(btf, m.type) ?? 0; break;
      case 'max_entries': def.maxEntries = arrayPtrValue(btf, m.type) ?? 0; break;
      case 'map_flags': def.flags = arrayPtrValue(btf, m.type) ?? 0; break;
      case 'pinning': def.pinning = arrayPtrValue(btf, m.type) ?? 0; break;
      case 'key_size': def.keySize = arrayPtrValue(btf, m.type) ?? 0; break;
      case 'value_size': def.valueSize = arrayPtrValue(btf, m.type) ?? 0; break;
      case 'key': def.keySize = pointeeSize(btf, m.type) ?? 0; break;
      case 'value': def.valueSize = pointeeSize(btf, m.type) ?? 0; break;
      case 'values': {
        // map-in-map: `values` is an array of pointers to the inner map struct.
        const arr = skipModifiers(btf, m.type);
        const ptr = arr && arr.kind === BTF_KIND.ARRAY ? skipModifiers(btf, arr.elemType!) : undefined;
        if (ptr && ptr.kind === BTF_KIND.PTR) def.innerMap = btfMapFromStruct(btf, ptr.sizeOrType, `${name}.inner`, -1);
        def.valueSize = 4;
        break;
      }
    }
  }
  return def;
}

export function readMaps(elf: ElfFile, btf: Btf | null): MapDef[] {
  const out: MapDef[] = [];
  elf.sections.forEach((sec, shndx) => {
    if (sec.name === '.maps') {
      if (!btf) throw new K2Error('input', '.maps section without .BTF', { file: elf.path });
      const ds = btf.types.find((t) => t.kind === BTF_KIND.DATASEC && t.name === '.maps');
      for (const v of ds?.members ?? []) {
        const varT = btf.types[v.type];
        if (!varT || varT.kind !== BTF_KIND.VAR) continue;
        const sym = elf.symbols.findIndex((s) => s.shndx === shndx && s.name === varT.name);
        out.push(btfMapFromStruct(btf, varT.sizeOrType, varT.name, sym));
      }
    } else if (sec.name === 'maps' || sec.name.startsWith('maps/')) {
      const syms = elf.symbols
        .map((s, i) => ({ s, i }))
        .filter(({ s }) => s.shndx === shndx && symType(s) !== STT.SECTION && s.name !== '');
      if (syms.length === 0) return;
      const defSize = Math.floor(sec.data.length / syms.length);
      const view = new DataView(sec.data.buffer, sec.data.byteOffset, sec.data.byteLength);
      for (const { s, i } of syms) {
        const at = Number(s.value);
        if (defSize < 16 || at + 16 > sec.data.length) throw new K2Error('input', `legacy map ${s.name} has a truncated definition`, { file: elf.path, section: sec.name });
        out.push({
          name: s.name, sym: i, section: sec.name, btf: false,
          type: view.getUint32(at, true), keySize: view.getUint32(at + 4, true), valueSize: view.getUint32(at + 8, true),
          maxEntries: view.getUint32(at + 12, true), flags: defSize >= 20 ? view.getUint32(at + 16, true) : 0,
        });
      }
    }
  });
  return out;
}
