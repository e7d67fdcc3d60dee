// Map definitions: BTF-defined (.maps, described by a DATASEC in .BTF) and legacy (struct bpf_map_def).
// Key and value sizes are checked against what any kernel map type accepts, since later stages size
// buffers and solver terms by them.
import { BTF_KIND, skipModifiers, typeSize, type Btf } from '../elf/btf.js';
import { STT, symType, type ElfFile } from '../elf/types.js';
import { K2Error, type Where } from '../util/errors.js';
import type { MapDef } from './types.js';

/** What the kernel accepts for any map type (kernel/bpf/hashtab.c, arraymap.c). */
export const MAP_LIMITS = {
  /** Keys live on the BPF stack: hash maps refuse key_size > MAX_BPF_STACK (512); no type takes more. */
  keySize: 512,
  /** Array and hash maps refuse value_size > KMALLOC_MAX_SIZE (4 MiB on x86-64 and arm64). */
  valueSize: 4 << 20,
} as const;

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

/** `inner`: this is the definition of a map-in-map's inner map (which cannot have one itself). */
function btfMapFromStruct(btf: Btf, structId: number, name: string, sym: number, inner = false): MapDef {
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
        // map-in-map: `values` is an array of pointers to the inner map struct. libbpf refuses an
        // inner map with `values` of its own, and following it could go round a cycle of types.
        if (inner) throw new K2Error('input', `map ${name}: an inner map cannot have inner maps itself`, { section: '.maps' });
        const arr = skipModifiers(btf, m.type);
        const ptr = arr && arr.kind === BTF_KIND.ARRAY ? skipModifiers(btf, arr.elemType!) : undefined;
        if (ptr && ptr.kind === BTF_KIND.PTR) def.innerMap = btfMapFromStruct(btf, ptr.sizeOrType, `${name}.inner`, -1, true);
        def.valueSize = 4;
        break;
      }
    }
  }
  return def;
}

function checkSizes(def: MapDef, where: Where): MapDef {
  if (def.keySize > MAP_LIMITS.keySize) throw new K2Error('input', `map ${def.name}: key_size ${def.keySize} is more than any kernel map accepts (${MAP_LIMITS.keySize})`, where);
  if (def.valueSize > MAP_LIMITS.valueSize) throw new K2Error('input', `map ${def.name}: value_size ${def.valueSize} is more than any kernel map accepts (${MAP_LIMITS.valueSize})`, where);
  if (def.innerMap) checkSizes(def.innerMap, where);
  return def;
}

export function readMaps(elf: ElfFile, btf: Btf | null): MapDef[] {
  const out: MapDef[] = [];
  // Named, non-section symbols by section, built once (an object may have many of both).
  const symsIn = new Map<number, { name: string; index: number; value: bigint }[]>();
  elf.symbols.forEach((s, i) => {
    if (i === 0 || symType(s) === STT.SECTION || s.name === '') return;
    const l = symsIn.get(s.shndx);
    const e = { name: s.name, index: i, value: s.value };
    if (l) l.push(e);
    else symsIn.set(s.shndx, [e]);
  });
  elf.sections.forEach((sec, shndx) => {
    const where = { file: elf.path, section: sec.name };
    if (sec.name === '.maps') {
      if (!btf) throw new K2Error('input', '.maps section without .BTF', where);
      const ds = btf.types.find((t) => t.kind === BTF_KIND.DATASEC && t.name === '.maps');
      const symByName = new Map<string, number>();
      for (const s of symsIn.get(shndx) ?? []) if (!symByName.has(s.name)) symByName.set(s.name, s.index);
      // Variables sharing a struct type are decoded once: the work stays linear in the size of .BTF.
      const byStruct = new Map<number, MapDef>();
      for (const v of ds?.members ?? []) {
        const varT = btf.types[v.type];
        if (!varT || varT.kind !== BTF_KIND.VAR) continue;
        const sym = symByName.get(varT.name) ?? -1;
        const known = byStruct.get(varT.sizeOrType);
        if (known) {
          out.push({ ...known, name: varT.name, sym, ...(known.innerMap ? { innerMap: { ...known.innerMap, name: `${varT.name}.inner` } } : {}) });
          continue;
        }
        try {
          const def = checkSizes(btfMapFromStruct(btf, varT.sizeOrType, varT.name, sym), where);
          byStruct.set(varT.sizeOrType, def);
          out.push(def);
        } catch (e) {
          throw e instanceof K2Error && e.where.file === undefined ? new K2Error(e.kind, e.cause_, where) : e;
        }
      }
    } else if (sec.name === 'maps' || sec.name.startsWith('maps/')) {
      const syms = symsIn.get(shndx) ?? [];
      if (syms.length === 0) return;
      const defSize = Math.floor(sec.data.length / syms.length);
      const view = new DataView(sec.data.buffer, sec.data.byteOffset, sec.data.byteLength);
      for (const s of syms) {
        // struct bpf_map_def: type, key_size, value_size, max_entries (16 bytes), then map_flags, ...
        const hasFlags = defSize >= 20;
        const need = hasFlags ? 20n : 16n;
        if (defSize < 16 || s.value + need > BigInt(sec.data.length)) throw new K2Error('input', `legacy map ${s.name} has a truncated definition`, { ...where, offset: Number(s.value) });
        const at = Number(s.value);
        out.push(checkSizes({
          name: s.name, sym: s.index, section: sec.name, btf: false,
          type: view.getUint32(at, true), keySize: view.getUint32(at + 4, true), valueSize: view.getUint32(at + 8, true),
          maxEntries: view.getUint32(at + 12, true), flags: hasFlags ? view.getUint32(at + 16, true) : 0,
        }, { ...where, offset: at }));
      }
    }
  });
  return out;
}
