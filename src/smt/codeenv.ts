// Maps and relocations of an object as the symbolic machine sees them (the interpreter's view:
// map definitions first, then one single-element array map per global data section).
import type { BpfObject, IrInsn } from '../ir/types.js';
import { STT, symType } from '../elf/types.js';
import type { CodeEnv, MapInfo, RelocTarget } from './machine.js';

export function objectMaps(obj: BpfObject | undefined): MapInfo[] {
  if (!obj) return [];
  const maps: MapInfo[] = obj.maps.map((m) => ({
    name: m.name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, readonly: false, data: false,
  }));
  for (const d of obj.data) maps.push({ name: d.name, type: 2, keySize: 4, valueSize: d.size, maxEntries: 1, readonly: d.readonly, data: true });
  return maps;
}

export function relocResolver(obj: BpfObject | undefined): (insn: IrInsn, section: string) => RelocTarget {
  return (insn, section) => {
    if (!obj || !insn.reloc) return { kind: 'error', message: `ld_imm64 relocation in ${section} without an object` };
    const syms = obj.elf.symbols;
    const sym = syms[insn.reloc.sym];
    if (!sym) return { kind: 'error', message: `relocation against missing symbol ${insn.reloc.sym}` };
    const m = obj.maps.findIndex((d) => d.sym === insn.reloc!.sym);
    if (m >= 0) return { kind: 'map', map: m };
    const secName = obj.elf.sections[sym.shndx]?.name;
    if (symType(sym) === STT.SECTION && (secName === 'maps' || secName === '.maps')) {
      const hit = obj.maps.findIndex((d) => d.section === secName && Number(syms[d.sym]?.value ?? -1n) === insn.imm);
      if (hit >= 0) return { kind: 'map', map: hit };
    }
    const d = obj.data.findIndex((x) => x.shndx === sym.shndx);
    if (d >= 0) return { kind: 'value', map: obj.maps.length + d, offset: Number(sym.value) + insn.imm };
    return { kind: 'error', message: `ld_imm64 relocation against ${sym.name || 'symbol ' + insn.reloc.sym} is not modelled` };
  };
}

export function codeEnv(sections: Map<string, IrInsn[]>, obj: BpfObject | undefined, progType: string, whole: boolean): CodeEnv {
  return { sections, maps: objectMaps(obj), resolveReloc: relocResolver(obj), progType, whole };
}
