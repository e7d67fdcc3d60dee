// The checker's view of one program: the instructions the kernel would see after libbpf's linking
// (entry function, then every reachable subprogram appended), with numeric jump and call targets,
// and every ld_imm64 resolved to what it loads (map, global data, constant).
import { CLASS, JMP, LD_IMM64, PSEUDO, CALL_PSEUDO, imm64, jmpOp, opClass } from '../isa/index.js';
import { END_LABEL, type BpfObject, type CodeSection, type IrInsn, type Label, type ProgramRef } from '../ir/types.js';
import { STB, STT, symBind, symType } from '../elf/types.js';
import type { Btf } from '../elf/btf.js';
import { globalArgs, type GlobalArg } from './globals.js';
import { coreValue, patchCoreInsn, type CoreValue } from './core.js';
import { parseKBtf, type KBtf } from './kbtf.js';
import { kconfigMap } from './kconfig.js';
import { kernelHasFunc } from './kfuncs.js';

/** A map as the verifier sees it (global data sections are single-element array maps). */
export interface MapInfo {
  readonly uid: number; // identity within one program
  readonly name: string;
  readonly type: number; // enum bpf_map_type
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly inner: MapInfo | null; // map-in-map: the inner map's template
  readonly rdonly: boolean; // BPF_F_RDONLY_PROG (.rodata)
  /** Read-only global data: the contents libbpf loads before freezing the map (the kernel reads them). */
  readonly frozen?: Uint8Array;
}

export const MAP_TYPE = {
  HASH: 1, ARRAY: 2, PROG_ARRAY: 3, PERF_EVENT_ARRAY: 4, PERCPU_HASH: 5, PERCPU_ARRAY: 6, STACK_TRACE: 7,
  CGROUP_ARRAY: 8, LRU_HASH: 9, LRU_PERCPU_HASH: 10, LPM_TRIE: 11, ARRAY_OF_MAPS: 12, HASH_OF_MAPS: 13,
  DEVMAP: 14, SOCKMAP: 15, CPUMAP: 16, XSKMAP: 17, SOCKHASH: 18, QUEUE: 22, STACK: 23, DEVMAP_HASH: 25, RINGBUF: 27,
} as const;

/** What an ld_imm64 loads. */
export type LdImm =
  | { kind: 'const'; value: bigint }
  | { kind: 'map'; map: MapInfo }
  | { kind: 'value'; map: MapInfo; off: number }
  | { kind: 'func'; start: number } // BPF_PSEUDO_FUNC: a callback, by the linear index of its first instruction
  | { kind: 'funcref'; section: string; index: number } // a relocation to code (made a 'func' when linked)
  | { kind: 'kfunc_addr'; name: string } // the address of a kernel function (bpf_ksym_exists), present in the kernel
  | { kind: 'unsupported'; why: string };

export type { GlobalArg } from './globals.js';

export interface FuncInfo {
  start: number; // index of the first instruction
  end: number; // one past the last
  name: string;
  global: GlobalArg[] | null; // null: static (verified in the caller's context)
}

export interface SafetyInsn extends IrInsn {
  /** CO-RE relocated instructions: what libbpf will patch in (see core.ts). */
  coreVal?: CoreValue;
  /** Jumps: absolute target index; pseudo calls: index of the callee's first instruction; else -1. */
  tgt: number;
  /** Calls of kernel functions (extern __ksym functions libbpf turns into kfunc calls). */
  kfunc?: { name: string; weak: boolean };
  ld?: LdImm;
}

export interface SafetyProgram {
  insns: SafetyInsn[];
  funcs: FuncInfo[]; // funcs[0] is the entry function
  progType: string;
  /** Section name of the entry (libbpf derives the expected attach type from it). */
  attach: string;
  /** struct_ops programs: the kernel struct and member (function pointer) the program implements, "struct.member". */
  structOps?: string;
  gpl: boolean;
  /** Where each linear instruction came from (section and index there), for messages. */
  origin: { section: string; index: number }[];
  problems: { insn: number; why: string }[]; // structural problems found while linking
}

const isJumpInsn = (i: IrInsn): boolean => {
  const c = opClass(i.code);
  if (c !== CLASS.JMP && c !== CLASS.JMP32) return false;
  const op = jmpOp(i.code);
  return op !== JMP.CALL && op !== JMP.EXIT;
};

const GPL_LICENSES = new Set(['GPL', 'GPL v2', 'GPL and additional rights', 'Dual BSD/GPL', 'Dual MIT/GPL', 'Dual MPL/GPL']);
export const isGplLicense = (l: string | null): boolean => l !== null && GPL_LICENSES.has(l);

function labelIndex(sec: CodeSection): Map<Label, number> {
  const m = new Map<Label, number>();
  sec.insns.forEach((insn, i) => insn.labels?.forEach((l) => m.set(l, i)));
  m.set(END_LABEL, sec.insns.length);
  return m;
}

export interface MapResolver {
  /** What an ld_imm64 with this relocation loads. */
  resolve(insn: IrInsn): LdImm;
  /** Why libbpf would refuse the whole object (e.g. a strong .kconfig extern without a value). */
  objectProblem?: string | null;
  /** A call relocated to an extern function: the kernel function it names. */
  externFunc?(insn: IrInsn): { name: string; weak: boolean } | null;
}

/** Map types the kernel creates read-only for programs (BPF_F_RDONLY_PROG): devmap values. */
const progReadOnly = (type: number): boolean => type === MAP_TYPE.DEVMAP || type === MAP_TYPE.DEVMAP_HASH;

const isMapInMap = (type: number): boolean => type === MAP_TYPE.ARRAY_OF_MAPS || type === MAP_TYPE.HASH_OF_MAPS;

/**
 * The template of a legacy map-in-map's inner maps, as the old loaders created it: samples/bpf's
 * struct bpf_map_def names it by `inner_map_idx` (offset 20: index among the maps, in section
 * order), iproute2's struct bpf_elf_map (36 bytes) by `inner_id` (offset 28: the `id` at offset 20
 * of another definition).
 */
function legacyInnerMap(obj: BpfObject, def: BpfObject['maps'][number]): BpfObject['maps'][number] | null {
  const sec = obj.elf.sections.find((x) => x.name === def.section);
  const legacy = obj.maps.filter((m) => !m.btf && m.section === def.section);
  if (!sec || !legacy.length) return null;
  const size = Math.floor(sec.data.length / legacy.length);
  const off = (m: BpfObject['maps'][number]) => Number(obj.elf.symbols[m.sym]?.value ?? -1n);
  const u32 = (at: number) => (at >= 0 && at + 4 <= sec.data.length ? new DataView(sec.data.buffer, sec.data.byteOffset, sec.data.byteLength).getUint32(at, true) : null);
  const ordered = [...legacy].sort((a, b) => off(a) - off(b));
  let inner: BpfObject['maps'][number] | undefined;
  if (size >= 36) {
    const id = u32(off(def) + 28);
    inner = id ? ordered.find((m) => m !== def && u32(off(m) + 20) === id) : undefined;
  } else if (size >= 24) {
    const idx = u32(off(def) + 20);
    inner = idx !== null ? ordered[idx] : undefined;
  }
  return inner && inner !== def && !isMapInMap(inner.type) ? inner : null;
}

/** Maps and global data of an object, by relocation symbol. */
export function objectMaps(obj: BpfObject): MapResolver {
  const cache = new Map<string, MapInfo>();
  let uid = 0;
  // .kconfig externs: one frozen read-only map laid out and filled as libbpf does (kconfig.ts).
  const kbtf = objectKBtf(obj);
  const kc = kbtf && 'str' in kbtf ? kconfigMap(kbtf) : null;
  let kcMap: MapInfo | null = null;
  const strongMissing = kc ? kc.missing.filter((n) => obj.elf.symbols.some((y) => y.name === n && y.shndx === 0 && symBind(y) !== STB.WEAK)) : [];
  const objectProblem = kc?.error ?? (strongMissing.length ? `kconfig extern ${strongMissing[0]} has no value on this kernel (libbpf refuses the object)` : null);
  const mk = (name: string, type: number, keySize: number, valueSize: number, maxEntries: number, inner: MapInfo | null, rdonly: boolean): MapInfo =>
    ({ uid: ++uid, name, type, keySize, valueSize, maxEntries, inner, rdonly });
  const fromDef = (d: BpfObject['maps'][number]): MapInfo => {
    const inner = d.innerMap ?? (isMapInMap(d.type) && !d.btf ? legacyInnerMap(obj, d) : null);
    return mk(d.name, d.type, d.keySize, d.valueSize, d.maxEntries, inner ? fromDef(inner) : null, progReadOnly(d.type));
  };
  const externFn = (insn: IrInsn) => {
    const sym = insn.reloc ? obj.elf.symbols[insn.reloc.sym] : undefined;
    if (!sym || sym.shndx !== 0 || !sym.name || kc?.externs.has(sym.name)) return null;
    return { name: sym.name, weak: symBind(sym) === STB.WEAK };
  };
  return {
    objectProblem,
    externFunc: externFn,
    resolve(insn) {
      const r = insn.reloc;
      if (!r) return { kind: 'const', value: imm64(insn) };
      const sym = obj.elf.symbols[r.sym];
      if (!sym) return { kind: 'unsupported', why: 'relocation to a missing symbol' };
      const ext = sym.shndx === 0 ? kc?.externs.get(sym.name) : undefined;
      if (ext) {
        kcMap ??= { uid: ++uid, name: '.kconfig', type: MAP_TYPE.ARRAY, keySize: 4, valueSize: kc!.bytes.length, maxEntries: 1, inner: null, rdonly: true, frozen: kc!.bytes };
        return { kind: 'value', map: kcMap, off: ext.off + insn.imm };
      }
      // The address of an extern kernel function (bpf_ksym_exists): libbpf gives its BTF id, or 0 when
      // a weak one is missing; a missing strong one makes libbpf refuse the object.
      const fnExt = externFn(insn);
      if (fnExt && kernelHasFunc(fnExt.name)) return { kind: 'kfunc_addr', name: fnExt.name };
      if (fnExt && fnExt.weak) return { kind: 'const', value: 0n };
      const def = obj.maps.find((m) => m.sym === r.sym) ??
        (symType(sym) === STT.SECTION ? undefined : undefined);
      if (def) {
        const key = `m${def.sym}`;
        let m = cache.get(key);
        if (!m) { m = fromDef(def); cache.set(key, m); }
        return { kind: 'map', map: m };
      }
      const data = obj.data.find((d) => d.shndx === sym.shndx);
      if (data) {
        if (data.name.startsWith('.kconfig') || data.name.startsWith('.ksyms')) return { kind: 'unsupported', why: `extern data in ${data.name}` };
        const key = `d${data.shndx}`;
        let m = cache.get(key);
        if (!m) {
          m = mk(data.name, MAP_TYPE.ARRAY, 4, data.size, 1, null, data.readonly);
          if (data.readonly && data.init.length === data.size) m = { ...m, frozen: data.init };
          cache.set(key, m);
        }
        const off = Number(sym.value) + insn.imm;
        return { kind: 'value', map: m, off };
      }
      // Legacy maps section addressed through the section symbol plus an offset.
      const secName = obj.elf.sections[sym.shndx]?.name;
      const code = obj.code.find((c) => c.shndx === sym.shndx);
      if (code) {
        // libbpf turns this into a BPF_PSEUDO_FUNC load of the function at that byte offset.
        let slots = (Number(sym.value) + insn.imm) / 8;
        let idx = 0;
        while (slots > 0 && idx < code.insns.length) { slots -= code.insns[idx]!.code === LD_IMM64 ? 2 : 1; idx++; }
        if (slots !== 0) return { kind: 'unsupported', why: 'callback address is not an instruction' };
        return { kind: 'funcref', section: code.name, index: idx };
      }
      if (secName === 'maps' || secName === '.maps') {
        const byOff = obj.maps.filter((m) => m.section === secName).find((m) => obj.elf.symbols[m.sym] && obj.elf.symbols[m.sym]!.value === sym.value + BigInt(insn.imm));
        if (byOff) return this.resolve({ ...insn, reloc: { sym: byOff.sym, type: r.type }, imm: 0 });
      }
      return { kind: 'unsupported', why: `relocation to ${sym.name || 'an unknown symbol'}` };
    },
  };
}

/** A resolver for hand-built code: `ld_imm64 src=MAP_FD imm=i` is maps[i]; `src=MAP_VALUE imm=i imm2=off`. */
export function rawMaps(maps: MapInfo[]): MapResolver {
  return {
    resolve(insn) {
      if (insn.reloc) return { kind: 'unsupported', why: 'relocated ld_imm64 in hand-built code (link it from its object)' };
      if (insn.src === PSEUDO.MAP_FD || insn.src === PSEUDO.MAP_IDX) {
        const m = maps[insn.imm];
        return m ? { kind: 'map', map: m } : { kind: 'unsupported', why: `no map ${insn.imm}` };
      }
      if (insn.src === PSEUDO.MAP_VALUE || insn.src === PSEUDO.MAP_IDX_VALUE) {
        const m = maps[insn.imm];
        return m ? { kind: 'value', map: m, off: insn.imm2 ?? 0 } : { kind: 'unsupported', why: `no map ${insn.imm}` };
      }
      if (insn.src !== 0) return { kind: 'unsupported', why: `ld_imm64 src ${insn.src}` };
      return { kind: 'const', value: imm64(insn) };
    },
  };
}

let rawUid = 1000;
export function rawMap(type: number, keySize: number, valueSize: number, opts: { maxEntries?: number; inner?: MapInfo; rdonly?: boolean; name?: string } = {}): MapInfo {
  return { uid: ++rawUid, name: opts.name ?? `map${rawUid}`, type, keySize, valueSize, maxEntries: opts.maxEntries ?? 1, inner: opts.inner ?? null, rdonly: opts.rdonly ?? progReadOnly(type) };
}

interface FuncSrc { sec: CodeSection; start: number; end: number; name: string; global: GlobalArg[] | null }

function funcRange(obj: BpfObject | null, sec: CodeSection, labels: Map<Label, number>, start: number): FuncSrc {
  let end = sec.insns.length;
  let name = `${sec.name}+${start}`;
  let global: GlobalArg[] | null = null;
  const isFunc = (sym: number) => !obj || symType(obj.elf.symbols[sym]!) === STT.FUNC;
  const starts = sec.symbols.filter((s) => isFunc(s.sym)).map((s) => labels.get(s.start) ?? -1).filter((i) => i > start);
  if (starts.length) end = Math.min(end, ...starts);
  const own = sec.symbols.find((s) => labels.get(s.start) === start && (!obj || symType(obj.elf.symbols[s.sym]!) === STT.FUNC));
  if (own && obj) {
    const sym = obj.elf.symbols[own.sym]!;
    name = sym.name;
    if (own.end !== null) end = Math.min(end, labels.get(own.end) ?? end);
    else if (sym.size > 0n) {
      // size in bytes -> count instructions covering that many slots
      let slots = Number(sym.size) / 8;
      let i = start;
      while (i < sec.insns.length && slots > 0) { slots -= sec.insns[i]!.code === LD_IMM64 ? 2 : 1; i++; }
      end = Math.min(end, i);
    }
  }
  return { sec, start, end, name, global };
}

const OBJ_BTF = new WeakMap<BpfObject, KBtf | Btf | null>();
/** The object's own BTF with everything CO-RE needs (integer encodings): parsed from its .BTF section. */
export function objectKBtf(obj: BpfObject): KBtf | Btf | null {
  if (OBJ_BTF.has(obj)) return OBJ_BTF.get(obj)!;
  const raw = obj.elf.sections.find((s) => s.name === '.BTF')?.data;
  const k = (raw && parseKBtf(raw)) || obj.btf;
  OBJ_BTF.set(obj, k);
  return k;
}

/**
 * The struct_ops member a program implements: the .struct_ops(.link) variable whose function
 * pointer member is relocated to the program's symbol ("tcp_congestion_ops.cong_avoid").
 */
export function structOpsMember(obj: BpfObject, progName: string): string | null {
  const kb = objectKBtf(obj);
  if (!kb || !('str' in kb)) return null;
  for (let i = 0; i < obj.elf.sections.length; i++) {
    const sec = obj.elf.sections[i]!;
    if (sec.name !== '.struct_ops' && sec.name !== '.struct_ops.link') continue;
    const ds = kb.types.find((t) => t.kind === 15 /* DATASEC */ && t.name === sec.name);
    for (const [relIdx, rels] of obj.elf.relocs) {
      if (obj.elf.sections[relIdx]?.info !== i) continue;
      for (const rel of rels) {
        if (obj.elf.symbols[rel.sym]?.name !== progName) continue;
        const off = Number(rel.offset);
        const v = ds?.vars.find((x) => off >= x.offset && off < x.offset + x.size);
        const vt = v && kb.types[v.type];
        const st = vt && kb.types[vt.sizeOrType];
        const m = st?.members.find((x) => x.bitOffset / 8 === off - v!.offset);
        if (st && m) return `${st.name}.${m.name}`;
      }
    }
  }
  return null;
}

/** Links a program of an object the way libbpf does, for checking. */
export function linkProgram(obj: BpfObject, prog: ProgramRef, resolver: MapResolver = objectMaps(obj)): SafetyProgram {
  const secs = new Map(obj.code.map((s) => [s.name, s]));
  const labelMaps = new Map<string, Map<Label, number>>();
  const labelsOf = (s: CodeSection) => {
    let m = labelMaps.get(s.name);
    if (!m) { m = labelIndex(s); labelMaps.set(s.name, m); }
    return m;
  };
  const entrySec = secs.get(prog.section)!;
  const entryStart = labelsOf(entrySec).get(prog.entry) ?? 0;
  const order: FuncSrc[] = [funcRange(obj, entrySec, labelsOf(entrySec), entryStart)];
  const globalOf = (sec: CodeSection, start: number): GlobalArg[] | null => {
    const own = sec.symbols.find((s) => labelsOf(sec).get(s.start) === start && symType(obj.elf.symbols[s.sym]!) === STT.FUNC);
    if (!own) return null;
    const sym = obj.elf.symbols[own.sym]!;
    if (symBind(sym) !== STB.GLOBAL) return null;
    // Without BTF func_info the kernel cannot tell global functions from static ones: all are static.
    if (!obj.btfExt || sec.insns[start]?.funcInfo === undefined) return null;
    const kb = objectKBtf(obj);
    return globalArgs(kb && 'str' in kb ? kb : null, sec.insns[start]?.funcInfo?.typeId, prog.progType);
  };
  const linked = link(order, (sec, label) => {
    const s = secs.get(sec);
    if (!s) return null;
    const start = labelsOf(s).get(label);
    if (start === undefined) return null;
    const f = funcRange(obj, s, labelsOf(s), start);
    f.global = globalOf(s, start);
    return f;
  }, labelsOf, resolver, prog.progType, isGplLicense(obj.license), undefined, objectKBtf(obj), (sec, index) => {
    const s = secs.get(sec);
    if (!s || index < 0 || index >= s.insns.length) return null;
    const f = funcRange(obj, s, labelsOf(s), index);
    f.global = globalOf(s, index);
    return f;
  });
  if (prog.progType === 'struct_ops') {
    const m = structOpsMember(obj, prog.name);
    if (m) linked.structOps = m;
    else linked.problems.push({ insn: 0, why: 'struct_ops program not referenced by a .struct_ops map' });
  }
  return linked;
}

/** A program from hand-built instructions in one section (tests, synthesizer candidates). */
export function rawProgram(insns: IrInsn[], opts: { progType: string; maps?: MapInfo[]; gpl?: boolean; section?: string }): SafetyProgram {
  const sec: CodeSection = { name: opts.section ?? 'raw', shndx: 0, insns, symbols: [], relSection: null };
  const labels = labelIndex(sec);
  // Without symbols, functions are the entry plus every pseudo-call target.
  const starts = new Set<number>([0]);
  insns.forEach((insn, i) => {
    if ((insn.code === (CLASS.JMP | JMP.CALL) && insn.src === CALL_PSEUDO) || (insn.code === LD_IMM64 && insn.src === PSEUDO.FUNC)) {
      const t = insn.callee ? labels.get(insn.callee.label) : i + 1 + insn.imm;
      if (t !== undefined) starts.add(t);
    }
  });
  const sorted = [...starts].sort((a, b) => a - b);
  const rangeOf = (start: number): FuncSrc => {
    const next = sorted.find((s) => s > start);
    return { sec, start, end: next ?? insns.length, name: start === 0 ? 'entry' : `func${start}`, global: null };
  };
  return link([rangeOf(0)], (_s, label) => {
    const start = labels.get(label);
    return start === undefined ? null : rangeOf(start);
  }, () => labels, rawMaps(opts.maps ?? []), opts.progType, opts.gpl ?? true, rangeOf);
}

function link(
  order: FuncSrc[],
  lookup: (section: string, label: Label) => FuncSrc | null,
  labelsOf: (s: CodeSection) => Map<Label, number>,
  resolver: MapResolver,
  progType: string,
  gpl: boolean,
  byIndex?: (start: number) => FuncSrc,
  btf: KBtf | Btf | null = null,
  funcAt?: (section: string, index: number) => FuncSrc | null,
): SafetyProgram {
  const insns: SafetyInsn[] = [];
  const origin: SafetyProgram['origin'] = [];
  const funcs: FuncInfo[] = [];
  const problems: SafetyProgram['problems'] = [];
  const placed = new Map<string, number>(); // "section:start" -> linear start
  const pendingCalls: { at: number; key: string }[] = [];
  const pendingFuncs: { at: number; key: string }[] = [];
  for (let k = 0; k < order.length; k++) {
    const f = order[k]!;
    const base = insns.length;
    placed.set(`${f.sec.name}:${f.start}`, base);
    funcs.push({ start: base, end: base + (f.end - f.start), name: f.name, global: f.global });
    const labels = labelsOf(f.sec);
    for (let i = f.start; i < f.end; i++) {
      const src = f.sec.insns[i]!;
      const insn: SafetyInsn = { ...src, tgt: -1 };
      const at = insns.length;
      if (isJumpInsn(src)) {
        let t: number | undefined;
        if (src.target !== undefined) t = labels.get(src.target);
        else t = i + 1 + (opClass(src.code) === CLASS.JMP32 && jmpOp(src.code) === JMP.JA ? src.imm : src.off);
        if (t === undefined || t < f.start || t >= f.end) problems.push({ insn: at, why: `jump out of range from insn ${at}` });
        else insn.tgt = base + (t - f.start);
      } else if (src.code === (CLASS.JMP | JMP.CALL) && src.src === CALL_PSEUDO && !src.callee && resolver.externFunc?.(src)) {
        // A kernel function: a weak one the kernel lacks is poisoned by libbpf (unsafe if reached), a strong one refused.
        const k = resolver.externFunc(src)!;
        insn.kfunc = k;
        if (!k.weak && !kernelHasFunc(k.name)) problems.push({ insn: at, why: `extern kernel function ${k.name} not found in the kernel's BTF (libbpf refuses the object)` });
      } else if (src.code === (CLASS.JMP | JMP.CALL) && src.src === CALL_PSEUDO) {
        let callee: FuncSrc | null = null;
        if (src.callee) callee = lookup(src.callee.section, src.callee.label);
        else if (byIndex) callee = byIndex(i + 1 + src.imm);
        if (!callee) problems.push({ insn: at, why: 'call to an unknown function' });
        else {
          const key = `${callee.sec.name}:${callee.start}`;
          if (!placed.has(key) && !order.some((o) => `${o.sec.name}:${o.start}` === key)) order.push(callee);
          pendingCalls.push({ at, key });
        }
      } else if (src.code === LD_IMM64) {
        if (src.src === PSEUDO.FUNC || src.callee) {
          // A callback function: linked in like a callee.
          let callee: FuncSrc | null = null;
          if (src.callee) callee = lookup(src.callee.section, src.callee.label);
          else if (byIndex && src.src === PSEUDO.FUNC) callee = byIndex(i + 1 + src.imm);
          insn.ld = { kind: 'unsupported', why: 'callback function not found' };
          if (callee) {
            const key = `${callee.sec.name}:${callee.start}`;
            if (!placed.has(key) && !order.some((o) => `${o.sec.name}:${o.start}` === key)) order.push(callee);
            pendingFuncs.push({ at, key });
          }
        } else {
          insn.ld = resolver.resolve(src);
          if (insn.ld.kind === 'funcref') {
            const callee = funcAt ? funcAt(insn.ld.section, insn.ld.index) : null;
            insn.ld = { kind: 'unsupported', why: 'callback function not found' };
            if (callee) {
              const key = `${callee.sec.name}:${callee.start}`;
              if (!placed.has(key) && !order.some((o) => `${o.sec.name}:${o.start}` === key)) order.push(callee);
              pendingFuncs.push({ at, key });
            }
          }
        }
      }
      if (src.core?.length) {
        // What libbpf patches in against the running kernel's BTF (core.ts).
        const p = patchCoreInsn(insn, coreValue(btf, src.core));
        if ('fatal' in p) problems.push({ insn: at, why: p.fatal });
        else {
          insn.coreVal = p.cv;
          if (p.code !== undefined) insn.code = p.code;
          if (p.off !== undefined) insn.off = p.off;
          if (p.imm !== undefined) insn.imm = p.imm;
          if (p.imm2 !== undefined) insn.imm2 = p.imm2;
          if (insn.code === LD_IMM64 && !src.reloc) insn.ld = { kind: 'const', value: imm64(insn) };
        }
      }
      insns.push(insn);
      origin.push({ section: f.sec.name, index: i });
    }
  }
  if (resolver.objectProblem) problems.push({ insn: 0, why: resolver.objectProblem });
  for (const c of pendingCalls) insns[c.at]!.tgt = placed.get(c.key) ?? -1;
  for (const c of pendingFuncs) {
    const start = placed.get(c.key);
    if (start !== undefined) insns[c.at]!.ld = { kind: 'func', start };
  }
  return { insns, funcs, progType, attach: order[0]!.sec.name, gpl, origin, problems };
}
