// A cache entry as data: built from an optimization result, and read back into an object only after
// every field has been checked (an entry on disk is untrusted input: anyone who can write the cache
// directory can plant one). Only code comes from an entry; everything else (ELF, maps, BTF, symbols,
// programs) comes from clang's object, and the code must reference only what clang's code did.
import type { BpfObject, CodeSection, IrInsn, RelocRef } from '../ir/index.js';
import type { OptimizeReport } from '../driver/optimize.js';
import { ENTRY_FORMAT } from './key.js';
import { applyStep, type Step } from '../synth/parallel-steps.js';
import type { CacheEntry, SectionSummary } from './store.js';

export class BadEntry extends Error {}

const isInt = (v: unknown, lo: number, hi: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
const isStr = (v: unknown, max = 512): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;

function relocRef(v: unknown, what: string): RelocRef {
  const r = v as Record<string, unknown>;
  if (!r || typeof r !== 'object' || !isInt(r.sym, 0, 0xffffffff) || !isInt(r.type, 0, 0xffffffff) || Object.keys(r).length !== 2) throw new BadEntry(`bad ${what}`);
  return { sym: r.sym, type: r.type };
}

const INSN_KEYS = new Set(['code', 'dst', 'src', 'off', 'imm', 'imm2', 'labels', 'target', 'callee', 'reloc', 'funcInfo', 'lines', 'core', 'pinned']);

/** One instruction of an entry, checked field by field (unknown fields are refused). */
export function parseInsn(v: unknown): IrInsn {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new BadEntry('an instruction is not an object');
  const x = v as Record<string, unknown>;
  for (const k of Object.keys(x)) if (!INSN_KEYS.has(k)) throw new BadEntry(`unknown instruction field "${k}"`);
  if (!isInt(x.code, 0, 255) || !isInt(x.dst, 0, 15) || !isInt(x.src, 0, 15) || !isInt(x.off, -32768, 32767) || !isInt(x.imm, -0x80000000, 0xffffffff)) {
    throw new BadEntry('an instruction has a field out of range');
  }
  const insn: IrInsn = { code: x.code, dst: x.dst, src: x.src, off: x.off, imm: x.imm };
  if (x.imm2 !== undefined) {
    if (!isInt(x.imm2, -0x80000000, 0xffffffff)) throw new BadEntry('imm2 out of range');
    insn.imm2 = x.imm2;
  }
  if (x.labels !== undefined) {
    if (!Array.isArray(x.labels) || x.labels.length > 64 || !x.labels.every((l) => isStr(l))) throw new BadEntry('bad labels');
    insn.labels = [...(x.labels as string[])];
  }
  if (x.target !== undefined) {
    if (!isStr(x.target)) throw new BadEntry('bad jump target');
    insn.target = x.target;
  }
  if (x.callee !== undefined) {
    const c = x.callee as Record<string, unknown>;
    if (!c || typeof c !== 'object' || !isStr(c.section) || !isStr(c.label) || Object.keys(c).length !== 2) throw new BadEntry('bad call target');
    insn.callee = { section: c.section, label: c.label };
  }
  if (x.reloc !== undefined) insn.reloc = relocRef(x.reloc, 'relocation');
  if (x.funcInfo !== undefined) {
    const f = x.funcInfo as Record<string, unknown>;
    if (!f || typeof f !== 'object' || !isInt(f.typeId, 0, 0xffffffff)) throw new BadEntry('bad func_info');
    insn.funcInfo = { typeId: f.typeId, ...(f.rel !== undefined ? { rel: relocRef(f.rel, 'func_info relocation') } : {}) };
  }
  if (x.lines !== undefined) {
    if (!Array.isArray(x.lines) || x.lines.length > 64) throw new BadEntry('bad line_info');
    insn.lines = x.lines.map((l: Record<string, unknown>) => {
      if (!l || typeof l !== 'object' || !isInt(l.fileNameOff, 0, 0xffffffff) || !isInt(l.lineOff, 0, 0xffffffff) || !isInt(l.lineCol, 0, 0xffffffff)) throw new BadEntry('bad line_info');
      return { fileNameOff: l.fileNameOff, lineOff: l.lineOff, lineCol: l.lineCol, ...(l.rel !== undefined ? { rel: relocRef(l.rel, 'line_info relocation') } : {}) };
    });
  }
  if (x.core !== undefined) {
    if (!Array.isArray(x.core) || x.core.length > 16) throw new BadEntry('bad CO-RE record');
    insn.core = x.core.map((c: Record<string, unknown>) => {
      if (!c || typeof c !== 'object' || !isInt(c.typeId, 0, 0xffffffff) || !isInt(c.accessStrOff, 0, 0xffffffff) || !isInt(c.kind, 0, 255)) throw new BadEntry('bad CO-RE record');
      return { typeId: c.typeId, accessStrOff: c.accessStrOff, kind: c.kind, ...(c.rel !== undefined ? { rel: relocRef(c.rel, 'CO-RE relocation') } : {}) };
    });
  }
  if (x.pinned !== undefined) {
    if (!isStr(x.pinned)) throw new BadEntry('bad pinned reason');
    insn.pinned = x.pinned;
  }
  return insn;
}

const relKey = (r: RelocRef | undefined): string => (r ? `${r.sym}/${r.type}` : '-');

/** What a section's code references outside itself: relocations, CO-RE and line records (sets), functions (in order). */
function references(insns: readonly IrInsn[]): { relocs: Set<string>; funcs: string; core: Set<string>; lines: Set<string> } {
  const relocs = new Set<string>(), core = new Set<string>(), lines = new Set<string>();
  const funcs: string[] = [];
  for (const i of insns) {
    if (i.reloc) relocs.add(relKey(i.reloc));
    if (i.funcInfo) funcs.push(`${i.funcInfo.typeId}@${relKey(i.funcInfo.rel)}`);
    for (const c of i.core ?? []) core.add(`${c.typeId}:${c.accessStrOff}:${c.kind}@${relKey(c.rel)}`);
    for (const l of i.lines ?? []) lines.add(`${l.fileNameOff}:${l.lineOff}:${l.lineCol}@${relKey(l.rel)}`);
  }
  return { relocs, funcs: funcs.join(','), core, lines };
}

/**
 * clang's object with the entry's code in place of the sections it lists, after checking that the
 * entry is well-formed, bound to this input and settings, and that its code references only
 * relocations, CO-RE and line records clang's code has, has the same functions in the same order
 * and defines every label the object's symbols and programs need. Throws BadEntry otherwise. (Equivalence and safety are checked by the caller.)
 */
export function objectFromEntry(raw: unknown, input: BpfObject, key: string, inputSha: string): { obj: BpfObject; entry: CacheEntry; changed: string[]; steps: Map<string, Step[]> } {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new BadEntry('not an object');
  const e = raw as Record<string, unknown>;
  if (e.format !== ENTRY_FORMAT) throw new BadEntry(`format ${String(e.format)}`);
  if (e.key !== key) throw new BadEntry('it is stored under another key');
  if (e.input !== inputSha) throw new BadEntry('it was made from another object');
  const result = e.result as Record<string, unknown>;
  if (!result || typeof result !== 'object' || typeof result.ms !== 'number' || typeof result.kernelChecked !== 'boolean' || !Array.isArray(result.sections)) throw new BadEntry('bad result summary');
  const sections: SectionSummary[] = (result.sections as Record<string, unknown>[]).map((s) => {
    if (!s || typeof s !== 'object' || !isStr(s.name) || !isInt(s.slotsBefore, 0, 1e7) || !isInt(s.slotsAfter, 0, 1e7) ||
      !['optimized', 'unchanged', 'fallback'].includes(s.status as string) || !(s.reason === null || isStr(s.reason, 4096))) throw new BadEntry('bad section summary');
    return { name: s.name, slotsBefore: s.slotsBefore, slotsAfter: s.slotsAfter, status: s.status as SectionSummary['status'], reason: s.reason as string | null };
  });
  if (!Array.isArray(e.code)) throw new BadEntry('no code list');
  const replaced = new Map<string, IrInsn[]>();
  const steps = new Map<string, Step[]>();
  for (const c of e.code as Record<string, unknown>[]) {
    if (!c || typeof c !== 'object' || !isStr(c.name) || !Array.isArray(c.insns)) throw new BadEntry('bad code section');
    const orig = input.code.find((s) => s.name === c.name);
    if (!orig) throw new BadEntry(`section ${c.name} is not in the object`);
    if (replaced.has(c.name)) throw new BadEntry(`section ${c.name} listed twice`);
    if (c.insns.length === 0 || c.insns.length > 2 * orig.insns.length + 16) throw new BadEntry(`section ${c.name}: ${c.insns.length} instructions for ${orig.insns.length}`);
    replaced.set(c.name, c.insns.map(parseInsn));
    if (c.steps !== undefined) steps.set(c.name, parseSteps(c.steps, orig.insns, replaced.get(c.name)!, c.name));
  }
  const code: CodeSection[] = input.code.map((s) => {
    const insns = replaced.get(s.name);
    if (!insns) return s;
    const want = references(s.insns), got = references(insns);
    // (merged tails may use a relocation or CO-RE record fewer times; the proof pairs every use)
    for (const r of got.relocs) if (!want.relocs.has(r)) throw new BadEntry(`section ${s.name}: a relocation clang's code does not have`);
    for (const c of got.core) if (!want.core.has(c)) throw new BadEntry(`section ${s.name}: a CO-RE record clang's code does not have`);
    if (got.funcs !== want.funcs) throw new BadEntry(`section ${s.name}: func_info differs from clang's`);
    for (const l of got.lines) if (!want.lines.has(l)) throw new BadEntry(`section ${s.name}: a line record clang did not write`);
    const labels = new Set(insns.flatMap((i) => i.labels ?? []));
    for (const sym of s.symbols) {
      for (const l of [sym.start, sym.end]) if (l !== null && l !== '$end' && !labels.has(l)) throw new BadEntry(`section ${s.name}: label ${l} of a symbol is missing`);
    }
    for (const p of input.programs) if (p.section === s.name && !labels.has(p.entry)) throw new BadEntry(`section ${s.name}: entry of program ${p.name} is missing`);
    return { ...s, insns };
  });
  const entry: CacheEntry = {
    format: ENTRY_FORMAT, key, input: inputSha, k2: String(e.k2), created: String(e.created),
    result: { ms: result.ms, kernelChecked: result.kernelChecked, sections },
    code: [...replaced].map(([name, insns]) => ({ name, insns, ...(steps.has(name) ? { steps: steps.get(name)! } : {}) })),
  };
  return { obj: { ...input, code }, entry, changed: [...replaced.keys()], steps };
}

/** Most steps an entry may list for one section. */
const MAX_STEPS = 4096;

/**
 * A section's steps, checked: each within the code it applies to (sizes bounded before anything
 * is built), and replaying them on clang's code must give exactly the entry's code.
 */
function parseSteps(raw: unknown, orig: readonly IrInsn[], final: readonly IrInsn[], name: string): Step[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_STEPS) throw new BadEntry(`section ${name}: bad step list`);
  const limit = 2 * orig.length + 16;
  let insns: IrInsn[] = [...orig];
  const out: Step[] = [];
  for (const v of raw as unknown[]) {
    const s = v as Record<string, unknown>;
    if (!s || typeof s !== 'object' || Object.keys(s).length !== 3 || !isInt(s.start, 0, insns.length) || !isInt(s.remove, 0, insns.length - (s.start as number)) ||
      !Array.isArray(s.insert) || s.insert.length > limit || insns.length - (s.remove as number) + s.insert.length > limit ||
      (s.remove === 0 && s.insert.length === 0)) throw new BadEntry(`section ${name}: bad step`); // (a real step changes something)
    const step: Step = { start: s.start, remove: s.remove, insert: s.insert.map(parseInsn) };
    insns = applyStep(insns, step);
    out.push(step);
  }
  const plain = (xs: readonly IrInsn[]): string => JSON.stringify(xs.map(plainInsn));
  if (plain(insns) !== plain(final)) throw new BadEntry(`section ${name}: its steps do not lead to its code`);
  return out;
}

/**
 * The entry for an optimization of `input` into `output` (only the sections whose code changed),
 * with each section's steps when given and they lead from `input`'s code to `output`'s.
 */
export function entryFor(input: BpfObject, output: BpfObject, report: OptimizeReport, key: string, inputSha: string, k2: string, steps?: ReadonlyMap<string, readonly Step[]>): CacheEntry {
  const code = output.code.map((s) => ({ name: s.name, insns: s.insns.map(plainInsn) })).filter((s) => {
    const orig = input.code.find((x) => x.name === s.name);
    return !orig || JSON.stringify(s.insns) !== JSON.stringify(orig.insns.map(plainInsn));
  }).map((s) => {
    const list = steps?.get(s.name);
    const orig = input.code.find((x) => x.name === s.name);
    if (!list?.length || !orig) return s;
    const replayed = list.reduce<IrInsn[]>((insns, st) => applyStep(insns, st), [...orig.insns]);
    if (JSON.stringify(replayed.map(plainInsn)) !== JSON.stringify(s.insns)) return s;
    return { ...s, steps: list.map((st) => ({ start: st.start, remove: st.remove, insert: st.insert.map(plainInsn) })) };
  });
  return {
    format: ENTRY_FORMAT, key, input: inputSha, k2, created: new Date().toISOString(),
    result: {
      ms: report.ms, kernelChecked: report.kernelChecked,
      sections: report.sections.map((s) => ({ name: s.name, slotsBefore: s.slotsBefore, slotsAfter: s.slotsAfter, status: s.status, reason: s.reason })),
    },
    code,
  };
}

/** The fields of an instruction an entry keeps (what `parseInsn` reads back), without undefined ones. */
export function plainInsn(i: IrInsn): IrInsn {
  const out: Record<string, unknown> = {};
  for (const k of INSN_KEYS) {
    const v = (i as unknown as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out as unknown as IrInsn;
}
