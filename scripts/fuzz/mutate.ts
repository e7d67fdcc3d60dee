// The mutation engine: 1–4 stacked mutations of a seed object, chosen by a seeded PRNG, so a case
// is reproducible from (seed file, case seed). Structure-aware mutators aim at the fields a reader
// must not trust (sizes, offsets, counts, indices); the rest are the classic blind ones.
import { layoutOf, type Field, type FieldGroup, type Layout } from './layout.js';
import { Rng } from './rng.js';

export interface Mutation {
  bytes: Uint8Array;
  steps: string[]; // what was done, for the failure report
}

const MAX_OUT = 8 << 20; // never produce inputs larger than 8 MiB

/** Values that break size/offset/count arithmetic: boundaries, sign bits, the file's own length. */
function interesting(width: Field['width'], cur: bigint, fileLen: number, rng: Rng): bigint {
  const bits = BigInt(width * 8);
  const mask = (1n << bits) - 1n;
  const common = [0n, 1n, 2n, 3n, 4n, 7n, 8n, 12n, 16n, 24n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n];
  const wide = [0x7fffffffn, 0x80000000n, 0xfffffff8n, 0xffffffffn, 0x100000000n, 0x20000000040n, 1n << 53n, (1n << 53n) + 1n, 1n << 63n, (1n << 64n) - 1n];
  const relative = [cur + 1n, cur - 1n, cur + 8n, cur - 8n, cur * 2n, cur + 0x1000n, BigInt(fileLen), BigInt(fileLen) + 1n, BigInt(fileLen) - 1n, BigInt(fileLen) * 8n];
  const all = [...common, ...wide, ...relative];
  switch (rng.below(4)) {
    case 0: return rng.pick(common) & mask;
    case 1: return rng.pick(wide) & mask;
    case 2: return rng.pick(relative) & mask;
    default: return rng.pick(all) & mask;
  }
}

function readField(b: Uint8Array, f: Field): bigint {
  let v = 0n;
  for (let i = f.width - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[f.at + i]!);
  return v;
}

function writeField(b: Uint8Array, f: Field, v: bigint): void {
  for (let i = 0; i < f.width; i++, v >>= 8n) b[f.at + i] = Number(v & 0xffn);
}

type Mutator = (b: Uint8Array, lay: Layout, rng: Rng) => { bytes: Uint8Array; step: string } | null;

const fieldsOf = (lay: Layout, groups: FieldGroup[]): Field[] => lay.fields.filter((f) => groups.includes(f.group));

/** An interesting integer into a structural field of one of `groups`. */
const setField = (groups: FieldGroup[]): Mutator => (b, lay, rng) => {
  const fs = fieldsOf(lay, groups);
  if (!fs.length) return null;
  const f = rng.pick(fs);
  const cur = readField(b, f);
  const v = interesting(f.width, cur, b.length, rng);
  writeField(b, f, v);
  return { bytes: b, step: `${f.what} @${f.at}: ${cur} -> ${v}` };
};

/** One flipped bit inside a structural field (how a 2^41 size comes about). */
const flipFieldBit = (groups: FieldGroup[]): Mutator => (b, lay, rng) => {
  const fs = fieldsOf(lay, groups);
  if (!fs.length) return null;
  const f = rng.pick(fs);
  const bit = rng.below(f.width * 8);
  b[f.at + (bit >> 3)]! ^= 1 << (bit & 7);
  return { bytes: b, step: `${f.what} @${f.at}: flip bit ${bit}` };
};

const bitFlips: Mutator = (b, _l, rng) => {
  if (!b.length) return null;
  const n = 1 + rng.below(8);
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = rng.below(b.length * 8);
    b[p >> 3]! ^= 1 << (p & 7);
    at.push(p >> 3);
  }
  return { bytes: b, step: `flip ${n} bits at ${at.join(',')}` };
};

const byteSets: Mutator = (b, _l, rng) => {
  if (!b.length) return null;
  const n = 1 + rng.below(8);
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = rng.below(b.length);
    b[p] = rng.pick([0, 0xff, 0x7f, 0x80, 1, rng.below(256)]);
    at.push(p);
  }
  return { bytes: b, step: `set ${n} bytes at ${at.join(',')}` };
};

const truncate: Mutator = (b, lay, rng) => {
  if (b.length < 2) return null;
  // Cut inside a section or the header table as often as at a random point.
  const cuts = [rng.below(b.length), ...lay.sections.filter((s) => s.offset > 0).map((s) => s.offset + rng.below(Math.max(1, s.size))), lay.shoff + rng.below(64 * Math.max(1, lay.shnum))];
  const len = Math.min(rng.pick(cuts), b.length - 1);
  return { bytes: b.slice(0, len), step: `truncate to ${len}` };
};

const zeroRange: Mutator = (b, lay, rng) => {
  if (!b.length) return null;
  const secs = lay.sections.filter((s) => s.offset > 0 && s.size > 0);
  let start: number, len: number;
  if (secs.length && rng.chance(0.5)) {
    const s = rng.pick(secs);
    start = s.offset + rng.below(s.size);
    len = 1 + rng.below(Math.min(s.size, 256));
  } else {
    start = rng.below(b.length);
    len = 1 + rng.below(64);
  }
  const fill = rng.chance(0.8) ? 0 : 0xff;
  b.fill(fill, start, Math.min(b.length, start + len));
  return { bytes: b, step: `fill ${len} bytes at ${start} with ${fill}` };
};

/**
 * Appends a copy of the section header table with one section duplicated (same data). Half the time
 * the copy is renamed by pointing its sh_name one byte further ("xdp" -> "dp"), so it survives the
 * duplicate-name check and reaches the later stages as a second section over the same bytes.
 */
const duplicateSection: Mutator = (b, lay, rng) => {
  if (lay.shnum < 2 || lay.shoff + lay.shnum * 64 > b.length || lay.shnum >= 0xfff0) return null;
  const dup = 1 + rng.below(lay.shnum - 1);
  const table = b.subarray(lay.shoff, lay.shoff + lay.shnum * 64);
  const pad = (8 - (b.length % 8)) % 8;
  const out = new Uint8Array(b.length + pad + table.length + 64);
  out.set(b);
  const at = b.length + pad;
  out.set(table, at);
  out.set(table.subarray(dup * 64, dup * 64 + 64), at + table.length);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(40, BigInt(at), true);
  dv.setUint16(60, lay.shnum + 1, true);
  const rename = (lay.sections[dup]?.name.length ?? 0) > 1 && rng.chance(0.5);
  if (rename) dv.setUint32(at + table.length, dv.getUint32(at + table.length, true) + 1, true);
  return { bytes: out, step: `duplicate section ${dup} (${lay.sections[dup]?.name ?? '?'}) as ${lay.shnum}${rename ? ', renamed' : ''}` };
};

/** Swaps two section headers: every sh_link, sh_info and st_shndx naming them is now wrong. */
const swapSections: Mutator = (b, lay, rng) => {
  if (lay.shnum < 3 || lay.shoff + lay.shnum * 64 > b.length) return null;
  const i = 1 + rng.below(lay.shnum - 1), j = 1 + rng.below(lay.shnum - 1);
  if (i === j) return null;
  const a = b.slice(lay.shoff + i * 64, lay.shoff + i * 64 + 64);
  b.copyWithin(lay.shoff + i * 64, lay.shoff + j * 64, lay.shoff + j * 64 + 64);
  b.set(a, lay.shoff + j * 64);
  return { bytes: b, step: `swap section headers ${i} and ${j}` };
};

/** Inserts or deletes bytes in the middle: every later offset is now wrong by a little. */
const splice: Mutator = (b, _l, rng) => {
  if (b.length < 64) return null;
  const at = rng.below(b.length);
  const n = 1 + rng.below(32);
  if (rng.chance(0.5)) {
    const out = new Uint8Array(b.length + n);
    out.set(b.subarray(0, at));
    out.set(b.subarray(at), at + n);
    return { bytes: out, step: `insert ${n} bytes at ${at}` };
  }
  const from = Math.min(at, b.length - n);
  const out = new Uint8Array(b.length - n);
  out.set(b.subarray(0, from));
  out.set(b.subarray(from + n), from);
  return { bytes: out, step: `delete ${n} bytes at ${from}` };
};

/** Copies one instruction over another: ld_imm64 halves, calls and jumps land in odd places. */
const insnCopy: Mutator = (b, lay, rng) => {
  const ops = fieldsOf(lay, ['insn']).filter((f) => f.what.startsWith('opcode'));
  if (ops.length < 2) return null;
  const from = rng.pick(ops).at, to = rng.pick(ops).at;
  b.copyWithin(to, from, from + 8);
  return { bytes: b, step: `copy insn @${from} over @${to}` };
};

const MUTATORS: [number, string, Mutator][] = [
  [10, 'bits', bitFlips],
  [6, 'bytes', byteSets],
  [6, 'truncate', truncate],
  [5, 'zero', zeroRange],
  [3, 'splice', splice],
  [3, 'dup-section', duplicateSection],
  [2, 'swap-sections', swapSections],
  [5, 'ehdr', setField(['ehdr'])],
  [12, 'shdr', setField(['shdr'])],
  [6, 'shdr-bit', flipFieldBit(['shdr', 'ehdr'])],
  [5, 'sym', setField(['sym'])],
  [4, 'rel', setField(['rel'])],
  [6, 'btf-hdr', setField(['btfhdr'])],
  [8, 'btf-type', setField(['btftype'])],
  [5, 'btf-bit', flipFieldBit(['btfhdr', 'btftype', 'exthdr', 'extrec'])],
  [5, 'ext-hdr', setField(['exthdr'])],
  [6, 'ext-rec', setField(['extrec'])],
  [6, 'insn', setField(['insn'])],
  [3, 'insn-copy', insnCopy],
  [3, 'mapdef', setField(['mapdef'])],
];
const TOTAL_WEIGHT = MUTATORS.reduce((n, [w]) => n + w, 0);

function pickMutator(rng: Rng): [string, Mutator] {
  let r = rng.below(TOTAL_WEIGHT);
  for (const [w, name, m] of MUTATORS) {
    if (r < w) return [name, m];
    r -= w;
  }
  return [MUTATORS[0]![1], MUTATORS[0]![2]];
}

export const MUTATOR_NAMES = MUTATORS.map(([, n]) => n);

/** 1–4 stacked mutations of `seed` (never returns the seed unchanged unless nothing applied). */
export function mutate(seed: Uint8Array, caseSeed: number): Mutation {
  const rng = new Rng(caseSeed);
  let bytes: Uint8Array = new Uint8Array(seed);
  const steps: string[] = [];
  const n = 1 + (rng.chance(0.5) ? 0 : rng.below(4));
  for (let tries = 0; steps.length < n && tries < 20; tries++) {
    const [name, m] = pickMutator(rng);
    const r = m(bytes, layoutOf(bytes), rng);
    if (!r || r.bytes.length > MAX_OUT) continue;
    bytes = r.bytes;
    steps.push(`${name}: ${r.step}`);
  }
  return { bytes, steps };
}
