// CO-RE relocations. libbpf rewrites each relocated instruction at load time with a value computed
// against the running kernel's BTF, or "poisons" it (turns it into an invalid call) when the target
// is missing. k2 does not compute the values: it models a relocated immediate as an unknown value
// in the range the relocation kind allows, and calls the instruction poisoned unless it can see
// that the target exists in /sys/kernel/btf/vmlinux (matched by names, the way libbpf matches
// candidates; anything unusual counts as missing).
import { existsSync, readFileSync } from 'node:fs';
import { BTF_KIND, parseBtf, skipModifiers, typeSize, type Btf, type BtfType } from '../elf/btf.js';
import type { CoreRelo } from '../ir/types.js';
import { U32 } from './scalar.js';

export const CORE_KIND = {
  FIELD_BYTE_OFFSET: 0, FIELD_BYTE_SIZE: 1, FIELD_EXISTS: 2, FIELD_SIGNED: 3, FIELD_LSHIFT_U64: 4, FIELD_RSHIFT_U64: 5,
  TYPE_ID_LOCAL: 6, TYPE_ID_TARGET: 7, TYPE_EXISTS: 8, TYPE_SIZE: 9, ENUMVAL_EXISTS: 10, ENUMVAL_VALUE: 11, TYPE_MATCHES: 12,
} as const;

/** What k2 knows about a relocated instruction's new immediate. */
export interface CoreValue {
  resolves: boolean; // false: libbpf may poison the instruction on this kernel
  lo: bigint; // range of the patched value
  hi: bigint;
  why: string;
  /** Field byte offsets: the exact offset in the running kernel's type (patched into loads and stores). */
  memOff?: number;
  /** ... and the field's offset in the object's own type (libbpf refuses a load or store whose offset differs). */
  localOff?: number;
}

/** The instruction as libbpf patches it (relocated loads and stores get the kernel's field offset), or null if libbpf would refuse it. */
export function patchedMemOffset(insnOff: number, cv: CoreValue): number | null {
  if (cv.memOff === undefined || cv.localOff !== insnOff) return null;
  return cv.memOff;
}

interface Target { btf: Btf; byName: Map<string, BtfType[]> }

/** ENUMVAL_VALUE: the enumerator's value in the kernel's same-named enum, when every candidate agrees. */
function enumValue(local: Btf, r: CoreRelo, tgt: Target): CoreValue {
  const no = (why: string): CoreValue => ({ resolves: false, lo: 0n, hi: 0n, why });
  const t = local.types[r.typeId];
  const idx = Number(cstr(local.strings, r.accessStrOff));
  const e = t?.enumerators?.[idx];
  if (!t || !t.name || !e || !Number.isInteger(idx)) return no('CO-RE enum relocation not understood');
  let value: bigint | null = null;
  for (const c of tgt.byName.get(essential(t.name)) ?? []) {
    if (c.kind !== BTF_KIND.ENUM && c.kind !== BTF_KIND.ENUM64) continue;
    const m = c.enumerators?.find((x) => essential(x.name) === essential(e.name));
    if (!m) continue;
    if (value !== null && value !== m.value) return no('CO-RE enum value is ambiguous');
    value = m.value;
  }
  if (value === null) return no('CO-RE enum value may be missing on this kernel (libbpf would poison the instruction)');
  // Only plain non-negative 32-bit values: what a 32- or 64-bit move of the immediate gives alike.
  if (value < 0n || value > 0x7fffffffn) return no('CO-RE enum value out of the modelled range');
  return { resolves: true, lo: value, hi: value, why: '' };
}
let target: Target | null | undefined;

function vmlinux(): Target | null {
  if (target !== undefined) return target;
  const path = '/sys/kernel/btf/vmlinux';
  try {
    if (!existsSync(path)) return (target = null);
    const btf = parseBtf(readFileSync(path), path);
    const byName = new Map<string, BtfType[]>();
    for (const t of btf.types) {
      if (!t.name) continue;
      const l = byName.get(t.name);
      if (l) l.push(t); else byName.set(t.name, [t]);
    }
    target = { btf, byName };
  } catch {
    target = null;
  }
  return target;
}

const essential = (name: string): string => name.replace(/___.*$/, '');
const composite = (t: BtfType | undefined) => !!t && (t.kind === BTF_KIND.STRUCT || t.kind === BTF_KIND.UNION);

/** Does the local field access path `spec` exist, by names, in some same-named target type? */
function fieldResolves(local: Btf, rootId: number, spec: number[], tgt: Target): boolean {
  const root = skipModifiers(local, rootId);
  if (!root || !root.name) return false;
  // Path of member names (or array steps) from the root.
  const path: ({ member: string } | { array: true })[] = [];
  let cur: BtfType | undefined = root;
  for (const idx of spec.slice(1)) {
    if (!cur) return false;
    if (composite(cur)) {
      const m: BtfType['members'][number] | undefined = cur.members[idx];
      if (!m || !m.name) return false; // anonymous members: not modelled
      path.push({ member: m.name });
      cur = skipModifiers(local, m.type);
    } else if (cur.kind === BTF_KIND.ARRAY) {
      path.push({ array: true });
      cur = skipModifiers(local, cur.elemType!);
    } else return false;
  }
  const cands = (tgt.byName.get(essential(root.name)) ?? []).filter((t) => t.kind === root.kind);
  return cands.some((cand) => {
    let c: BtfType | undefined = cand;
    for (const step of path) {
      if (!c) return false;
      if ('member' in step) {
        if (!composite(c)) return false;
        const m: BtfType['members'][number] | undefined = c.members.find((x) => x.name === step.member);
        if (!m) return false;
        c = skipModifiers(tgt.btf, m.type);
      } else {
        if (c.kind !== BTF_KIND.ARRAY) return false;
        c = skipModifiers(tgt.btf, c.elemType!);
      }
    }
    return true;
  });
}

/** Field types libbpf's compatibility check could accept together (ints and enums; same other kinds). */
const kindClass = (t: BtfType | undefined): number =>
  !t ? -1 : t.kind === BTF_KIND.ENUM || t.kind === BTF_KIND.ENUM64 ? BTF_KIND.INT : t.kind;

/** The local field at `spec` is an int, enum, pointer, struct or union (kinds whose compatibility is a kind match). */
function plainFinalKind(local: Btf, rootId: number, spec: number[]): boolean {
  let cur = skipModifiers(local, rootId);
  for (const idx of spec.slice(1)) {
    if (!cur) return false;
    if (composite(cur)) { const m = cur.members[idx]; if (!m) return false; cur = skipModifiers(local, m.type); }
    else if (cur.kind === BTF_KIND.ARRAY) cur = skipModifiers(local, cur.elemType!);
    else return false;
  }
  return !!cur && [BTF_KIND.INT, BTF_KIND.ENUM, BTF_KIND.ENUM64, BTF_KIND.PTR, BTF_KIND.STRUCT, BTF_KIND.UNION].includes(cur.kind as 1);
}

/** Some same-named target type has the path's member names (through anonymous members) and array steps. */
function namedPathExists(local: Btf, rootId: number, spec: number[], tgt: Target): boolean {
  const root = skipModifiers(local, rootId);
  if (!root || !root.name) return true; // not understood: assume it may exist
  const path: (string | null)[] = [];
  let cur: BtfType | undefined = root;
  for (const idx of spec.slice(1)) {
    if (!cur) return true;
    if (composite(cur)) {
      const m: BtfType['members'][number] | undefined = cur.members[idx];
      if (!m) return true;
      if (m.name) path.push(m.name);
      cur = skipModifiers(local, m.type);
    } else if (cur.kind === BTF_KIND.ARRAY) { path.push(null); cur = skipModifiers(local, cur.elemType!); } else return true;
  }
  return (tgt.byName.get(essential(root.name)) ?? []).filter((t) => t.kind === root.kind).some((cand) => {
    let c: BtfType | undefined = cand;
    for (const step of path) {
      if (!c) return false;
      if (step === null) { if (c.kind !== BTF_KIND.ARRAY) return false; c = skipModifiers(tgt.btf, c.elemType!); continue; }
      if (!composite(c)) return false;
      const m = findMember(tgt.btf, c, step);
      if (!m) return false;
      c = skipModifiers(tgt.btf, m.type);
    }
    return true;
  });
}

/** A named member of `t`, looked up through anonymous struct/union members as libbpf does. */
function findMember(btf: Btf, t: BtfType, name: string, depth = 0): { bits: number; bitfield: boolean; type: number } | null {
  if (depth > 8) return null;
  for (const m of t.members) {
    const bits = t.kindFlag ? m.offset & 0xffffff : m.offset;
    const bitfield = t.kindFlag && m.offset >>> 24 !== 0;
    if (m.name === name) return { bits, bitfield, type: m.type };
    if (!m.name) {
      const inner = skipModifiers(btf, m.type);
      if (!composite(inner)) continue;
      const r = findMember(btf, inner!, name, depth + 1);
      if (r) return { bits: bits + r.bits, bitfield: r.bitfield, type: r.type };
    }
  }
  return null;
}

/**
 * Byte offset and size of the field at access path `spec` of local type `rootId`, in the running
 * kernel's same-named type: what libbpf patches into a relocated load or store. Null when the
 * field is missing, a bitfield, or candidates disagree (libbpf fails on ambiguity too).
 */
function targetField(local: Btf, rootId: number, spec: number[], tgt: Target): { off: number; size: number; localSize: number; localOff: number; bitfield: boolean } | null {
  const root = skipModifiers(local, rootId);
  if (!root || !root.name || !composite(root) || spec[0] !== 0) return null;
  const path: ({ member: string } | { index: number })[] = [];
  let cur: BtfType | undefined = root;
  let curId = rootId;
  let localBits = 0;
  const steps = spec.slice(1);
  for (let si = 0; si < steps.length; si++) {
    const idx = steps[si]!;
    if (!cur) return null;
    if (composite(cur)) {
      const m: BtfType['members'][number] | undefined = cur.members[idx];
      if (!m) return null;
      if (cur.kindFlag && m.offset >>> 24 !== 0 && si !== steps.length - 1) return null; // bitfield inside the path
      localBits += cur.kindFlag ? m.offset & 0xffffff : m.offset;
      if (m.name) path.push({ member: m.name });
      curId = m.type;
      cur = skipModifiers(local, m.type);
    } else if (cur.kind === BTF_KIND.ARRAY) {
      path.push({ index: idx });
      const es = typeSize(local, cur.elemType!);
      if (es === null) return null;
      localBits += 8 * es * idx;
      curId = cur.elemType!;
      cur = skipModifiers(local, cur.elemType!);
    } else return null;
  }
  const localSize = typeSize(local, curId);
  if (localSize === null) return null;
  let found: { off: number; size: number; bitfield: boolean } | null = null;
  for (const cand of (tgt.byName.get(essential(root.name)) ?? []).filter((t) => t.kind === root.kind)) {
    let c: BtfType | undefined = cand;
    let cId = cand.id;
    let bits = 0;
    let ok = true;
    let bitfield = false;
    for (let pi = 0; pi < path.length; pi++) {
      const step = path[pi]!;
      if (!c) { ok = false; break; }
      if ('member' in step) {
        if (!composite(c)) { ok = false; break; }
        const m = findMember(tgt.btf, c, step.member);
        if (!m || (m.bitfield && pi !== path.length - 1)) { ok = false; break; }
        bitfield = m.bitfield;
        bits += m.bits;
        cId = m.type;
        c = skipModifiers(tgt.btf, m.type);
      } else {
        if (c.kind !== BTF_KIND.ARRAY || step.index >= (c.nelems ?? 0)) { ok = false; break; }
        const es = typeSize(tgt.btf, c.elemType!);
        if (es === null) { ok = false; break; }
        bits += 8 * es * step.index;
        cId = c.elemType!;
        c = skipModifiers(tgt.btf, c.elemType!);
      }
    }
    if (!ok) continue;
    const size = typeSize(tgt.btf, cId);
    if (size === null || kindClass(skipModifiers(tgt.btf, cId)) !== kindClass(skipModifiers(local, curId))) continue;
    if (bitfield) {
      // Bitfields: only their existence and kind are used (libbpf computes the covering load itself).
      if (found && !found.bitfield) return null;
      found = { off: -1, size: -1, bitfield: true };
      continue;
    }
    if (bits % 8 !== 0) continue;
    if (found && (found.bitfield || found.off !== bits / 8 || found.size !== size)) return null;
    found = { off: bits / 8, size, bitfield: false };
  }
  return found && { ...found, localSize, localOff: localBits / 8 };
}

function typeResolves(local: Btf, id: number, tgt: Target): boolean {
  const t = local.types[id];
  if (!t || !t.name) return false;
  const k = skipModifiers(local, id);
  return (tgt.byName.get(essential(t.name)) ?? []).some((c) => c.kind === t.kind || (k && c.kind === k.kind));
}

const cstr = (table: Uint8Array, off: number): string => {
  let end = off;
  while (end < table.length && table[end] !== 0) end++;
  return Buffer.from(table.buffer, table.byteOffset + off, end - off).toString('latin1');
};

/** The value libbpf will patch into an instruction carrying `relos` (one relocation in practice). */
export function coreValue(local: Btf | null, relos: CoreRelo[]): CoreValue {
  if (relos.length !== 1 || !local) return { resolves: false, lo: 0n, hi: 0n, why: 'CO-RE relocation without BTF' };
  const r = relos[0]!;
  const K = CORE_KIND;
  if (r.kind === K.FIELD_EXISTS) {
    const tgt = vmlinux();
    const spec = cstr(local.strings, r.accessStrOff).split(':').map(Number);
    if (tgt && spec.every((x) => Number.isInteger(x) && x >= 0)) {
      // No same-named type has the path of member names: libbpf cannot match it either (0).
      if (!namedPathExists(local, r.typeId, spec, tgt)) return { resolves: true, lo: 0n, hi: 0n, why: '' };
      // A match with a field of a plainly compatible kind: libbpf finds it too (1).
      const f = targetField(local, r.typeId, spec, tgt);
      if (f && plainFinalKind(local, r.typeId, spec)) return { resolves: true, lo: 1n, hi: 1n, why: '' };
    }
    return { resolves: true, lo: 0n, hi: 1n, why: '' };
  }
  if (r.kind === K.TYPE_EXISTS || r.kind === K.ENUMVAL_EXISTS || r.kind === K.TYPE_MATCHES || r.kind === K.FIELD_SIGNED) {
    if (r.kind === K.FIELD_SIGNED) return resolvesField(local, r, 0n, 1n);
    return { resolves: true, lo: 0n, hi: 1n, why: '' };
  }
  if (r.kind === K.TYPE_ID_LOCAL) return { resolves: true, lo: 0n, hi: U32, why: '' };
  const tgt = vmlinux();
  if (!tgt) return { resolves: false, lo: 0n, hi: 0n, why: 'no kernel BTF to resolve CO-RE relocations against' };
  switch (r.kind) {
    case K.FIELD_BYTE_OFFSET: {
      const spec = cstr(local.strings, r.accessStrOff).split(':').map(Number);
      const f = spec.every((x) => Number.isInteger(x) && x >= 0) ? targetField(local, r.typeId, spec, tgt) : null;
      // Loads and stores need the exact offset, and libbpf changes their size when the field's differs: k2 requires it not to.
      if (f && !f.bitfield && f.localOff === Math.floor(f.localOff)) {
        const off = BigInt(f.off);
        // Loads and stores get the offset patched in; their size too when the field's differs (k2 requires it not to).
        return f.size === f.localSize
          ? { resolves: true, lo: off, hi: off, why: '', memOff: f.off, localOff: f.localOff }
          : { resolves: true, lo: off, hi: off, why: '' };
      }
      return resolvesField(local, r, 0n, 0x7fffffffn);
    }
    case K.FIELD_BYTE_SIZE: {
      const spec = cstr(local.strings, r.accessStrOff).split(':').map(Number);
      const f = spec.every((x) => Number.isInteger(x) && x >= 0) ? targetField(local, r.typeId, spec, tgt) : null;
      // A bitfield's byte size is that of the load libbpf picks to cover it: 1, 2, 4 or 8.
      if (f) return f.bitfield ? { resolves: true, lo: 1n, hi: 8n, why: '' } : { resolves: true, lo: BigInt(f.size), hi: BigInt(f.size), why: '' };
      return resolvesField(local, r, 0n, 0x7fffffffn);
    }
    case K.FIELD_LSHIFT_U64: case K.FIELD_RSHIFT_U64: return resolvesField(local, r, 0n, 63n);
    case K.TYPE_ID_TARGET: case K.TYPE_SIZE:
      return typeResolves(local, r.typeId, tgt) ? { resolves: true, lo: 0n, hi: 0x7fffffffn, why: '' } : { resolves: false, lo: 0n, hi: 0n, why: 'CO-RE type may be missing on this kernel' };
    case K.ENUMVAL_VALUE: return enumValue(local, r, tgt);
    default:
      return { resolves: false, lo: 0n, hi: 0n, why: `CO-RE relocation kind ${r.kind} is not modelled` };
  }
}

function resolvesField(local: Btf, r: CoreRelo, lo: bigint, hi: bigint): CoreValue {
  const tgt = vmlinux();
  const spec = cstr(local.strings, r.accessStrOff).split(':').map(Number);
  if (!tgt || spec.some((x) => !Number.isInteger(x) || x < 0)) return { resolves: false, lo, hi, why: 'CO-RE access string not understood' };
  return fieldResolves(local, r.typeId, spec, tgt)
    ? { resolves: true, lo, hi, why: '' }
    : { resolves: false, lo, hi, why: 'CO-RE field may be missing on this kernel (libbpf would poison the instruction)' };
}
