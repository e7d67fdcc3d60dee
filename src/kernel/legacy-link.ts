// What an old-style loader (samples/bpf's bpf_load.c, iproute2, libbpf < 1.0) did with an object
// that libbpf >= 1.0 refuses for its legacy `maps` section, as pure functions on k2's IR:
// - the map definitions: struct bpf_map_def (20–28 bytes, `inner_map_idx` at offset 20) or
//   iproute2's struct bpf_elf_map (36 bytes: id, pinning, inner_id, inner_idx), with the inner map
//   of each map-in-map;
// - one program linked into one instruction array: its function first, then every function it
//   calls (bpf-to-bpf calls, callbacks), each once, with call offsets recomputed;
// - the loads to patch: map ld_imm64 → BPF_PSEUDO_MAP_FD, global data → BPF_PSEUDO_MAP_VALUE + offset;
// - which prog-array slot a program goes into (samples/bpf "socket/N", "kprobe/N"; iproute2 "ID/N").
// The loader (legacy-loader.ts) does the bpf() calls.
import { CLASS, JMP, LD_IMM64, PSEUDO, CALL_PSEUDO, slotsOf, opClass, jmpOp, type Insn } from '../isa/index.js';
import { END_LABEL, type BpfObject, type CodeSection, type Label, type MapDef, type ProgramRef } from '../ir/types.js';
import { STT, symType } from '../elf/types.js';
import { K2Error } from '../util/errors.js';

export const MAP_TYPE_PROG_ARRAY = 3;
export const MAP_TYPE_ARRAY_OF_MAPS = 12;
export const MAP_TYPE_HASH_OF_MAPS = 13;
export const isMapInMap = (type: number): boolean => type === MAP_TYPE_ARRAY_OF_MAPS || type === MAP_TYPE_HASH_OF_MAPS;

/** Layout of the legacy definitions of an object's `maps` section(s). */
export type LegacyLayout = 'bpf_map_def' | 'bpf_elf_map';

/** One map to create, in creation order of the old loaders (section, then offset). */
export interface LegacyMap {
  def: MapDef; // as k2's IR reads it (type, sizes, flags)
  index: number; // in obj.maps
  layout: LegacyLayout | 'btf';
  /** bpf_elf_map `id` (0 when none), bpf_map_def: null. */
  id: number | null;
  /** For a legacy map-in-map: index (in obj.maps) of the map whose shape the inner maps have; null
   * otherwise (BTF map-in-map: `def.innerMap` describes the inner maps). */
  inner: number | null;
  /** Why `inner` is null for a map-in-map. */
  innerProblem: string | null;
  numaNode: number | null; // bpf_map_def's numa_node when BPF_F_NUMA_NODE is set
}

const BPF_F_NUMA_NODE = 4;

/** Byte size of one definition in a legacy maps section: section size / number of map symbols. */
function defSizeOf(obj: BpfObject, section: string): number {
  const sec = obj.elf.sections.find((s) => s.name === section);
  const n = obj.maps.filter((m) => m.section === section).length;
  return sec && n ? Math.floor(sec.data.length / n) : 0;
}

/** The maps of an object with their legacy-definition extras, in the old loaders' order. */
export function legacyMaps(obj: BpfObject): LegacyMap[] {
  const u32 = (section: string, at: number): number | null => {
    const sec = obj.elf.sections.find((s) => s.name === section);
    if (!sec || at + 4 > sec.data.length) return null;
    return new DataView(sec.data.buffer, sec.data.byteOffset, sec.data.byteLength).getUint32(at, true);
  };
  const offsetOf = (m: MapDef) => Number(obj.elf.symbols[m.sym]?.value ?? 0n);
  const shndxOf = (m: MapDef) => obj.elf.symbols[m.sym]?.shndx ?? 0;
  const order = obj.maps.map((def, index) => ({ def, index })).sort((a, b) => {
    if (a.def.btf !== b.def.btf) return a.def.btf ? 1 : -1;
    return shndxOf(a.def) - shndxOf(b.def) || offsetOf(a.def) - offsetOf(b.def);
  });
  const legacyOrder = order.filter((x) => !x.def.btf);
  const out: LegacyMap[] = order.map(({ def, index }) => {
    if (def.btf) return { def, index, layout: 'btf', id: null, inner: null, innerProblem: null, numaNode: null };
    const size = defSizeOf(obj, def.section);
    const at = offsetOf(def);
    const layout: LegacyLayout = size >= 36 ? 'bpf_elf_map' : 'bpf_map_def';
    const flags = def.flags;
    const numa = layout === 'bpf_map_def' && size >= 28 && flags & BPF_F_NUMA_NODE ? u32(def.section, at + 24) : null;
    return { def, index, layout, id: layout === 'bpf_elf_map' ? u32(def.section, at + 20) ?? 0 : null, inner: null, innerProblem: null, numaNode: numa };
  });
  for (const m of out) {
    if (!isMapInMap(m.def.type)) continue;
    if (m.layout === 'btf') {
      if (!m.def.innerMap || m.def.innerMap.type === 0) m.innerProblem = 'its BTF definition has no inner map (`values`) definition';
      continue;
    }
    const size = defSizeOf(obj, m.def.section);
    const at = offsetOf(m.def);
    let target: LegacyMap | undefined;
    if (m.layout === 'bpf_elf_map') {
      // iproute2: inner_id names the `id` of the map the inner maps look like.
      const innerId = u32(m.def.section, at + 28) ?? 0;
      target = innerId ? out.find((x) => x !== m && x.layout === 'bpf_elf_map' && x.id === innerId) : undefined;
      if (!target) m.innerProblem = innerId ? `no map has id ${innerId} (its inner_id)` : 'inner_id is 0';
    } else if (size >= 24) {
      // samples/bpf: inner_map_idx is the index of the inner map among the maps, in section order.
      const idx = u32(m.def.section, at + 20) ?? 0;
      target = legacyOrder[idx] ? out.find((x) => x.index === legacyOrder[idx]!.index) : undefined;
      if (!target) m.innerProblem = `inner_map_idx ${idx} is not a map of the object (${legacyOrder.length} maps)`;
    } else {
      m.innerProblem = `a ${size}-byte struct bpf_map_def has no inner_map_idx`;
    }
    if (target && (target === m || isMapInMap(target.def.type))) {
      m.innerProblem = `its inner map '${target.def.name}' is ${target === m ? 'itself' : 'a map-in-map'}`;
      target = undefined;
    }
    if (target) m.inner = target.index;
  }
  return out;
}

/**
 * The prog-array slot an old loader put a program into, from its section name:
 * samples/bpf's bpf_load.c: "socket/N", "kprobe/N", "kretprobe/N", "sockops/N", "sk_skb/N", "sk_msg/N"
 * → slot N of the object's (last) prog array; iproute2: "ID/N" → slot N of the prog array whose
 * bpf_elf_map id is ID. Null when the section names no slot.
 */
export function progArraySlot(section: string, maps: readonly LegacyMap[]): { map: number; slot: number; rule: string } | null {
  const arrays = maps.filter((m) => m.def.type === MAP_TYPE_PROG_ARRAY);
  if (arrays.length === 0) return null;
  const sample = /^(socket|kprobe|kretprobe|sockops|sk_skb|sk_msg)\/(\d+)$/.exec(section);
  if (sample) {
    const legacy = arrays.filter((m) => m.layout !== 'btf');
    const last = legacy[legacy.length - 1];
    return last ? { map: last.index, slot: Number(sample[2]), rule: `samples/bpf: section '${section}' goes into slot ${sample[2]} of prog array '${last.def.name}'` } : null;
  }
  const iproute = /^(\d+)\/(\d+)$/.exec(section);
  if (iproute) {
    const id = Number(iproute[1]);
    const m = arrays.find((x) => x.layout === 'bpf_elf_map' && x.id === id);
    return m ? { map: m.index, slot: Number(iproute[2]), rule: `iproute2: section '${section}' goes into slot ${iproute[2]} of prog array '${m.def.name}' (id ${id})` } : null;
  }
  return null;
}

/** LINUX_VERSION_CODE of a release string such as "6.18.0-1-amd64" (kprobe kern_version). */
export function kernelVersionCode(release: string): number {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  if (!m) return 0;
  return (Number(m[1]) << 16) + (Number(m[2]) << 8) + Math.min(Number(m[3] ?? 0), 255);
}

/** The object's `version` section (u32 kern_version that old kprobe objects carry), or null. */
export function objectKernVersion(obj: BpfObject): number | null {
  const sec = obj.elf.sections.find((s) => s.name === 'version');
  if (!sec || sec.data.length < 4) return null;
  return new DataView(sec.data.buffer, sec.data.byteOffset, 4).getUint32(0, true);
}

/** A map reference to patch in a linked program. */
export type MapRef = { kind: 'map'; index: number } | { kind: 'data'; index: number }; // obj.maps / obj.data

export interface LinkedProgram {
  insns: Insn[];
  /** ld_imm64 instructions (indices in `insns`) that load a map (fd) or a map value address (data). */
  loads: { at: number; ref: MapRef; off: number }[];
  /** Functions in link order, "section:index" of their first instruction. */
  functions: string[];
}

interface SectionIndex {
  sec: CodeSection;
  slotOf: number[]; // instruction index → slot (length insns.length + 1)
  indexAtSlot: Map<number, number>;
  labels: Map<Label, number>;
  starts: number[]; // sorted instruction indices where a function starts (FUNC symbols, call targets)
  ends: Map<number, number>; // FUNC symbol start → end (from its size)
}

const unsupported = (obj: BpfObject, section: string, why: string) => new K2Error('unsupported', why, { file: obj.file, section });

const indexCache = new WeakMap<BpfObject, Map<string, SectionIndex>>();

function indexSections(obj: BpfObject): Map<string, SectionIndex> {
  const cached = indexCache.get(obj);
  if (cached) return cached;
  const out = new Map<string, SectionIndex>();
  indexCache.set(obj, out);
  for (const sec of obj.code) {
    const slotOf: number[] = [];
    const indexAtSlot = new Map<number, number>();
    let slot = 0;
    sec.insns.forEach((insn, i) => {
      slotOf.push(slot);
      indexAtSlot.set(slot, i);
      slot += slotsOf(insn);
    });
    slotOf.push(slot);
    const labels = new Map<Label, number>();
    sec.insns.forEach((insn, i) => insn.labels?.forEach((l) => labels.set(l, i)));
    labels.set(END_LABEL, sec.insns.length);
    const starts = new Set<number>();
    const ends = new Map<number, number>();
    for (const s of sec.symbols) {
      if (symType(obj.elf.symbols[s.sym]!) !== STT.FUNC) continue;
      const start = labels.get(s.start);
      if (start === undefined || start >= sec.insns.length) continue;
      starts.add(start);
      const end = s.end !== null ? labels.get(s.end) : undefined;
      if (end !== undefined && end > start) ends.set(start, Math.min(end, ends.get(start) ?? end));
    }
    out.set(sec.name, { sec, slotOf, indexAtSlot, labels, starts: [...starts], ends });
  }
  // Call targets start functions too (old clang left static functions without FUNC symbols).
  for (const sec of obj.code) {
    for (const insn of sec.insns) {
      if (!insn.callee) continue;
      const t = out.get(insn.callee.section);
      const i = t?.labels.get(insn.callee.label);
      if (t && i !== undefined && i < t.sec.insns.length && !t.starts.includes(i)) t.starts.push(i);
    }
  }
  for (const s of out.values()) s.starts.sort((a, b) => a - b);
  return out;
}

/** [start, end) of the function starting at instruction `start`. */
function functionRange(s: SectionIndex, start: number): { start: number; end: number } {
  let end = s.sec.insns.length;
  for (const st of s.starts) if (st > start) { end = st; break; }
  const own = s.ends.get(start);
  if (own !== undefined) end = Math.min(end, own);
  return { start, end };
}

const isJump = (insn: Insn): boolean => {
  const cls = opClass(insn.code);
  if (cls !== CLASS.JMP && cls !== CLASS.JMP32) return false;
  const op = jmpOp(insn.code);
  return op !== JMP.CALL && op !== JMP.EXIT;
};

const MAP_SECTION = (name: string) => name === 'maps' || name.startsWith('maps/') || name === '.maps';

/**
 * Links program `prog` of `obj` the way libbpf does: its own function, then each function it
 * reaches through bpf-to-bpf calls or callback loads (ld_imm64 of a function), once each, with
 * call offsets recomputed; map and global-data loads are listed in `loads` for the loader to patch.
 * Throws K2Error('unsupported') for what the legacy loader does not do (CO-RE, externs, kfuncs).
 */
export function linkLegacyProgram(obj: BpfObject, prog: ProgramRef): LinkedProgram {
  const secs = indexSections(obj);
  const entrySec = secs.get(prog.section);
  if (!entrySec) throw unsupported(obj, prog.section, 'no code section for the program');
  const entry = entrySec.labels.get(prog.entry);
  if (entry === undefined) throw unsupported(obj, prog.section, `program entry ${prog.entry} not found`);

  interface Chunk { s: SectionIndex; start: number; end: number; base: number } // base: output slot
  const chunks: Chunk[] = [];
  const insns: Insn[] = [];
  const outSlot: number[] = []; // output insn index → output slot
  let slot = 0;
  const loads: LinkedProgram['loads'] = [];
  const calls: { at: number; s: SectionIndex; target: number }[] = []; // output index, target section/index

  const place = (s: SectionIndex, start: number): Chunk => {
    const r = functionRange(s, start);
    const c: Chunk = { s, start: r.start, end: r.end, base: -1 };
    chunks.push(c);
    return c;
  };
  const chunkOf = (s: SectionIndex, i: number): Chunk | undefined => chunks.find((c) => c.s === s && c.start <= i && i < c.end);

  place(entrySec, entry);
  for (let k = 0; k < chunks.length; k++) {
    const c = chunks[k]!;
    c.base = slot;
    const { sec } = c.s;
    for (let i = c.start; i < c.end; i++) {
      const src = sec.insns[i]!;
      const insn: Insn = { code: src.code, dst: src.dst, src: src.src, off: src.off, imm: src.imm, ...(src.imm2 !== undefined ? { imm2: src.imm2 } : {}) };
      const at = insns.length;
      const where = `${sec.name}+${c.s.slotOf[i]! * 8}`;
      if (src.core?.length) throw unsupported(obj, sec.name, `CO-RE relocation at ${where} (k2's legacy loader does not apply CO-RE; libbpf refused the object for its legacy maps)`);
      if (isJump(src)) {
        const t = src.target !== undefined ? c.s.labels.get(src.target) : undefined;
        if (t === undefined || t < c.start || t >= c.end) throw unsupported(obj, sec.name, `jump at ${where} leaves its function`);
      } else if (src.code === (CLASS.JMP | JMP.CALL) && src.src === CALL_PSEUDO) {
        if (!src.callee) throw unsupported(obj, sec.name, `bpf-to-bpf call at ${where} to ${src.reloc ? `'${obj.elf.symbols[src.reloc.sym]?.name ?? '?'}'` : 'an unknown target'} outside the object's code`);
        const ts = secs.get(src.callee.section)!;
        calls.push({ at, s: ts, target: ts.labels.get(src.callee.label)! });
      } else if (src.code === (CLASS.JMP | JMP.CALL) && src.reloc) {
        throw unsupported(obj, sec.name, `call at ${where} to extern '${obj.elf.symbols[src.reloc.sym]?.name ?? '?'}' (kfunc or external function)`);
      } else if (src.code === LD_IMM64 && (src.reloc || src.callee)) {
        if (src.callee) {
          const ts = secs.get(src.callee.section)!;
          calls.push({ at, s: ts, target: ts.labels.get(src.callee.label)! });
          insn.src = PSEUDO.FUNC;
        } else {
          const r = src.reloc!;
          const sym = obj.elf.symbols[r.sym];
          if (!sym || sym.shndx === 0) throw unsupported(obj, sec.name, `ld_imm64 at ${where} of extern '${sym?.name ?? '?'}' (.kconfig/.ksyms externs are not resolved by k2's legacy loader)`);
          const target = obj.elf.sections[sym.shndx];
          const symOff = Number(sym.value) + (symType(sym) === STT.SECTION ? src.imm : 0);
          const code = [...secs.values()].find((x) => x.sec.shndx === sym.shndx);
          const data = obj.data.findIndex((d) => d.shndx === sym.shndx);
          if (target && MAP_SECTION(target.name)) {
            // Old loaders matched the map by the symbol's offset in the maps section.
            let mi = obj.maps.findIndex((m) => m.sym === r.sym);
            if (mi < 0) mi = obj.maps.findIndex((m) => m.section === target.name && obj.elf.symbols[m.sym]?.value === BigInt(symOff));
            if (mi < 0) throw unsupported(obj, sec.name, `ld_imm64 at ${where}: no map at offset ${symOff} of section ${target.name}`);
            loads.push({ at, ref: { kind: 'map', index: mi }, off: 0 });
          } else if (data >= 0) {
            // libbpf: the value address is the variable's offset plus the instruction's addend.
            if (obj.data[data]!.name.startsWith('.kconfig') || obj.data[data]!.name.startsWith('.ksyms')) throw unsupported(obj, sec.name, `ld_imm64 at ${where} of extern data in ${obj.data[data]!.name}`);
            loads.push({ at, ref: { kind: 'data', index: data }, off: Number(sym.value) + src.imm });
          } else if (code) {
            // A function address with src 0 (older clang): libbpf turns it into BPF_PSEUDO_FUNC.
            const byteOff = Number(sym.value) + src.imm;
            const t = byteOff % 8 === 0 ? code.indexAtSlot.get(byteOff / 8) : undefined;
            if (t === undefined) throw unsupported(obj, sec.name, `ld_imm64 at ${where}: function address is not an instruction`);
            calls.push({ at, s: code, target: t });
            insn.src = PSEUDO.FUNC;
          } else {
            throw unsupported(obj, sec.name, `ld_imm64 at ${where}: relocation against section ${target?.name ?? sym.shndx} is not a map, global data or code`);
          }
        }
      } else if (src.reloc) {
        throw unsupported(obj, sec.name, `relocation on a non-ld_imm64 instruction at ${where}`);
      }
      insns.push(insn);
      outSlot.push(slot);
      slot += slotsOf(insn);
    }
    // Place every function this chunk reaches that is not placed yet.
    for (const call of calls) if (!chunkOf(call.s, call.target)) place(call.s, call.target);
  }
  for (const call of calls) {
    const c = chunkOf(call.s, call.target)!;
    const targetSlot = c.base + (c.s.slotOf[call.target]! - c.s.slotOf[c.start]!);
    insns[call.at]!.imm = targetSlot - outSlot[call.at]! - 1;
    if (insns[call.at]!.code === LD_IMM64) insns[call.at]!.imm2 = 0;
  }
  return { insns, loads, functions: chunks.map((c) => `${c.s.sec.name}:${c.start}`) };
}

/** BPF object name rules: at most 15 characters of [A-Za-z0-9_.] (the kernel refuses others). */
export function kernelObjName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.]/g, '_').slice(0, 15);
}

/**
 * libbpf's name for a global data map, so that both loaders name such maps alike: a custom section
 * (".data.quota", ".rodata.str1.1") keeps its own name; ".data"/".rodata"/".bss" get as much of
 * the object name as fits before them in 15 characters ("xdp_maps.rodata").
 */
export function dataMapName(objName: string, section: string): string {
  if (section.indexOf('.', 1) >= 0) return kernelObjName(section);
  const sfx = Math.max(7, section.length);
  const pfx = Math.max(0, Math.min(15 - sfx, objName.length));
  return kernelObjName(objName.slice(0, pfx) + section);
}
