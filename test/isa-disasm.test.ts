import test from 'ava';
import fc from 'fast-check';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ALU, ATOMIC, CLASS, JMP, LD_IMM64, MODE, SIZE,
  aluOp, decodeInsns, disassembleSection, encodeInsns, formatInsn, invalidReason, jmpOp, memMode, memSize, opClass,
  rawBytesOf, renderFileHeader, renderSection, sectionSymbolizer, slotsOf,
} from '../src/isa/index.js';
import type { Insn, SectionSymbol } from '../src/isa/index.js';

const run = promisify(execFile);
const repo = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const corpus = path.resolve(repo, '../shared/corpus/ebpf-samples');
const fixtures = path.join(repo, 'fixtures/build');

// ---- A small, defensive ELF64 little-endian reader (sections and symbols only) -------------------

interface Section { index: number; name: string; type: number; flags: bigint; data: Uint8Array }
interface Elf { sections: Section[]; symbols: { name: string; value: bigint; info: number; shndx: number }[] }

function readElf(bytes: Uint8Array): Elf {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const slice = (off: number, len: number): Uint8Array => {
    if (off < 0 || len < 0 || off + len > bytes.length) throw new Error(`range ${off}+${len} outside file`);
    return bytes.subarray(off, off + len);
  };
  const cstr = (table: Uint8Array, off: number): string => {
    if (off >= table.length) throw new Error(`name offset ${off} outside string table`);
    const end = table.indexOf(0, off);
    return new TextDecoder().decode(table.subarray(off, end < 0 ? table.length : end));
  };
  if (bytes.length < 64 || v.getUint32(0) !== 0x7f454c46) throw new Error('not ELF');
  const shoff = Number(v.getBigUint64(0x28, true));
  const shentsize = v.getUint16(0x3a, true);
  const shnum = v.getUint16(0x3c, true);
  const shstrndx = v.getUint16(0x3e, true);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const hb = slice(shoff + i * shentsize, 64);
    const h = new DataView(hb.buffer, hb.byteOffset, hb.byteLength);
    return {
      name: h.getUint32(0, true), type: h.getUint32(4, true), flags: h.getBigUint64(8, true),
      offset: Number(h.getBigUint64(24, true)), size: Number(h.getBigUint64(32, true)), link: h.getUint32(40, true),
    };
  });
  const shstr = raw[shstrndx] ? slice(raw[shstrndx]!.offset, raw[shstrndx]!.size) : new Uint8Array();
  const sections = raw.map((s, index) => ({
    index, name: cstr(shstr, s.name), type: s.type, flags: s.flags,
    data: s.type === 8 ? new Uint8Array() : slice(s.offset, s.size),
  }));
  const symtab = raw.findIndex((s) => s.type === 2);
  const symbols: Elf['symbols'] = [];
  if (symtab >= 0) {
    const strs = slice(raw[raw[symtab]!.link]!.offset, raw[raw[symtab]!.link]!.size);
    const data = sections[symtab]!.data;
    const sv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let at = 0; at + 24 <= data.length; at += 24) {
      symbols.push({ name: cstr(strs, sv.getUint32(at, true)), info: sv.getUint8(at + 4), shndx: sv.getUint16(at + 6, true), value: sv.getBigUint64(at + 8, true) });
    }
  }
  return { sections, symbols };
}

const isCode = (s: Section): boolean => (s.flags & 4n) !== 0n && s.type !== 8 && s.data.length > 0;
const symbolsOf = (elf: Elf, shndx: number): SectionSymbol[] =>
  elf.symbols.filter((s) => s.shndx === shndx).map((s) => ({ name: s.name, offset: Number(s.value), type: s.info & 0xf }));

// ---- What LLVM 14's disassembler (default cpu) gets wrong ----------------------------------------

const memRefText = (reg: number, off: number): string => (off >= 0 ? `r${reg} + ${off}` : `r${reg} - ${-off}`);

/**
 * What llvm-objdump 14 prints for an instruction it cannot print correctly (`<unknown>`, or a text
 * that means something else), or null when it prints it right. k2 uses upstream LLVM syntax there.
 */
function llvm14Text(i: Insn): string | null {
  const cls = opClass(i.code);
  const r = cls === CLASS.ALU64 ? 'r' : 'w';
  if (cls === CLASS.ALU || cls === CLASS.ALU64) {
    const op = aluOp(i.code);
    if (op === ALU.MOD) return '<unknown>'; // no BPF_MOD before LLVM 17
    if (op === ALU.END && (cls === CLASS.ALU64 || i.src !== 0)) return '<unknown>'; // bswap (v4)
    if (op === ALU.DIV && i.off === 1) return formatInsn({ ...i, off: 0 }, 0); // sdiv shown as udiv
    if (op === ALU.MOV && (i.code & 0x08) && i.off !== 0) return `${r}${i.dst} = ${r}${i.src}`; // movsx shown as mov
    return null;
  }
  if (cls === CLASS.JMP || cls === CLASS.JMP32) {
    const op = jmpOp(i.code);
    if (op === JMP.JSET) return '<unknown>';
    if (op === JMP.JA && cls === CLASS.JMP32) return '<unknown>'; // gotol (v4)
    if (op === JMP.EXIT && i.imm !== 0) return '<unknown>';
    return null;
  }
  if (cls === CLASS.ST) return '<unknown>';
  if (cls === CLASS.LDX && memMode(i.code) === MODE.MEMSX) return '<unknown>'; // v4
  if (i.code === LD_IMM64 && i.off !== 0) return '<unknown>';
  if (cls === CLASS.STX && memMode(i.code) === MODE.ATOMIC && memSize(i.code) === SIZE.W) {
    // Without alu32 only the 32-bit add decodes, and its fetch bit is ignored.
    if (i.imm === (ATOMIC.ADD | ATOMIC.FETCH)) return `lock *(u32 *)(${memRefText(i.dst, i.off)}) += r${i.src}`;
    if (i.imm !== ATOMIC.ADD) return '<unknown>';
  }
  return null;
}

// ---- llvm-objdump output -----------------------------------------------------------------------------

interface ObjLine { slot: number; bytes: number[]; text: string }
interface ObjSection { name: string; lines: ObjLine[]; skipped: boolean }

function parseObjdump(out: string): ObjSection[] {
  const sections: ObjSection[] = [];
  let cur: ObjSection | undefined;
  for (const line of out.split('\n')) {
    const sec = /^Disassembly of section (.*):$/.exec(line);
    if (sec) {
      cur = { name: sec[1]!, lines: [], skipped: false };
      sections.push(cur);
      continue;
    }
    const m = /^ *(\d+):\t([0-9a-f]{2}(?: [0-9a-f]{2})*)\t(.*)$/.exec(line);
    if (m && cur) cur.lines.push({ slot: Number(m[1]), bytes: m[2]!.split(' ').map((b) => parseInt(b, 16)), text: m[3]! });
    else if (line === '\t\t...' && cur) cur.skipped = true;
  }
  return sections;
}

async function objdump(file: string, ...flags: string[]): Promise<string> {
  const { stdout } = await run('llvm-objdump', ['-d', ...flags, file], { maxBuffer: 1 << 28 });
  return stdout;
}

/** llvm-objdump -d; objects with e_machine EM_NONE (one in the corpus) need the target named. */
async function objdumpBpf(file: string): Promise<string> {
  try {
    return await objdump(file);
  } catch (e) {
    if (!/can't find target/.test(String((e as { stderr?: string }).stderr))) throw e;
    const out = await objdump(file, '--triple=bpfel');
    return out.replace(`${file}:\tfile format elf64-unknown\n`, `${file}:\tfile format elf64-bpf\n`);
  }
}

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function listObjects(dir: string, skip?: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== skip) out.push(...listObjects(p, skip));
    } else if (e.name.endsWith('.o')) out.push(p);
  }
  return out.sort();
}

interface Mismatch { file: string; section: string; slot: number; expected: string; got: string }

interface FileResult { insns: number; unprintable: Mismatch[]; mismatches: Mismatch[]; layout: string | null }

/** Compares k2's text with llvm-objdump's for every instruction of one object, and the whole layout. */
async function compareObject(file: string): Promise<FileResult> {
  const rel = path.relative(repo, file);
  const res: FileResult = { insns: 0, unprintable: [], mismatches: [], layout: null };
  const bad = (section: string, slot: number, expected: string, got: string): void => {
    res.mismatches.push({ file: rel, section, slot, expected, got });
  };
  const out = await objdumpBpf(file);
  const elf = readElf(readFileSync(file));
  const code = elf.sections.filter(isCode);
  const parsed = parseObjdump(out);
  if (parsed.length !== code.length) bad('*', -1, `${parsed.length} sections`, `${code.length} code sections`);
  let rendered = renderFileHeader(file);
  parsed.forEach((ps, k) => {
    const sec = code[k];
    if (!sec || sec.name !== ps.name) return bad(ps.name, -1, `section ${ps.name}`, `section ${sec?.name}`);
    if (ps.skipped) bad(ps.name, -1, 'no zero-byte skipping', 'llvm-objdump skipped zero bytes');
    // The bytes as llvm-objdump shows them, slot after slot, must be the section's bytes.
    const bytes: number[] = [];
    for (const l of ps.lines) {
      if (l.slot * 8 !== bytes.length) bad(ps.name, l.slot, `line at slot ${bytes.length / 8}`, `line at slot ${l.slot}`);
      bytes.push(...l.bytes);
    }
    if (Buffer.compare(Buffer.from(bytes), Buffer.from(sec.data)) !== 0) bad(ps.name, -1, 'objdump bytes = section bytes', 'different bytes');
    let insns: Insn[];
    try {
      insns = decodeInsns(Uint8Array.from(bytes), { file: rel, section: ps.name });
    } catch (e) {
      return bad(ps.name, -1, 'decodable section', (e as Error).message);
    }
    const symbols = symbolsOf(elf, sec.index);
    const bySlot = new Map(ps.lines.map((l) => [l.slot, l]));
    // One pass: renderSection hands each instruction with llvm-objdump's own symbolAt to this callback,
    // which checks the text against llvm-objdump's line and shows LLVM 14's text where k2 differs on purpose.
    rendered += renderSection(ps.name, insns, {
      symbols,
      text: (insn, slot, opts) => {
        res.insns++;
        const got = formatInsn(insn, slot, opts);
        const line = bySlot.get(slot);
        const expected = line?.text ?? '(no line)';
        const llvm14 = llvm14Text(insn);
        if (llvm14 !== null && expected === llvm14) res.unprintable.push({ file: rel, section: ps.name, slot, expected, got });
        else if (got !== expected || line!.bytes.length !== slotsOf(insn) * 8) bad(ps.name, slot, expected, got);
        return llvm14 ?? got;
      },
    });
  });
  if (rendered !== out) {
    const a = out.split('\n');
    const b = rendered.split('\n');
    const at = a.findIndex((l, i) => l !== b[i]);
    res.layout = `${rel}: line ${at + 1}: llvm-objdump ${JSON.stringify(a[at])}, k2 ${JSON.stringify(b[at])}`;
  }
  return res;
}

test('every instruction of the corpus and fixtures prints as llvm-objdump 14 prints it', async (t) => {
  if (!existsSync(corpus)) return t.fail(`corpus not found at ${corpus}`);
  const files = listObjects(corpus, 'invalid');
  if (existsSync(fixtures)) files.push(...readdirSync(fixtures).filter((f) => f.endsWith('.o')).map((f) => path.join(fixtures, f)));
  t.true(files.length >= 145, `expected the corpus objects, found ${files.length}`);
  const results = await mapLimited(files, 2, compareObject);
  const insns = results.reduce((n, r) => n + r.insns, 0);
  const mismatches = results.flatMap((r) => r.mismatches);
  const unprintable = results.flatMap((r) => r.unprintable);
  const layouts = results.map((r) => r.layout).filter((l): l is string => l !== null);
  t.log(`${files.length} objects, ${insns} instructions compared; ${unprintable.length} that LLVM 14 cannot print right`);
  for (const u of unprintable.slice(0, 3)) t.log(`  LLVM 14 ${JSON.stringify(u.expected)}: ${u.file} ${u.section} slot ${u.slot}: k2 prints ${JSON.stringify(u.got)}`);
  for (const m of mismatches.slice(0, 30)) t.log(`  mismatch ${m.file} section ${m.section} slot ${m.slot}: expected ${JSON.stringify(m.expected)}, got ${JSON.stringify(m.got)}`);
  for (const l of layouts.slice(0, 10)) t.log(`  layout differs: ${l}`);
  t.true(insns > 400_000, `only ${insns} instructions compared`);
  t.is(mismatches.length, 0, `${mismatches.length} instruction mismatches`);
  t.is(layouts.length, 0, `${layouts.length} objects whose rendered layout differs`);
});

test('objects in the invalid/ folder never make the disassembler crash', (t) => {
  const dir = path.join(corpus, 'invalid');
  if (!existsSync(dir)) return t.fail(`corpus folder not found at ${dir}`);
  const files = readdirSync(dir).map((f) => path.join(dir, f)).filter((f) => statSync(f).isFile());
  t.true(files.length > 0);
  let formatted = 0;
  for (const file of files) {
    let elf: Elf;
    try {
      elf = readElf(readFileSync(file));
    } catch (e) {
      t.log(`${path.basename(file)}: unreadable ELF (${(e as Error).message})`);
      continue;
    }
    for (const sec of elf.sections.filter(isCode)) {
      // Slot by slot: every slot that is a valid instruction on its own gets a text.
      const view = new DataView(sec.data.buffer, sec.data.byteOffset, sec.data.byteLength);
      for (let at = 0; at + 8 <= sec.data.length; at += 8) {
        const regs = view.getUint8(at + 1);
        const insn: Insn = { code: view.getUint8(at), dst: regs & 15, src: regs >> 4, off: view.getInt16(at + 2, true), imm: view.getInt32(at + 4, true) };
        if (insn.code === LD_IMM64) insn.imm2 = at + 16 <= sec.data.length ? view.getInt32(at + 12, true) : 0;
        if (invalidReason(insn) !== null) continue;
        t.true(formatInsn(insn, at / 8, { symbolAt: sectionSymbolizer(symbolsOf(elf, sec.index), sec.name) }).length > 0);
        formatted++;
      }
      // Whole section: either a K2Error from the decoder or a rendering.
      try {
        const insns = decodeInsns(sec.data, { file, section: sec.name });
        t.true(renderSection(sec.name, insns, { symbols: symbolsOf(elf, sec.index) }).includes(`Disassembly of section ${sec.name}:`));
      } catch (e) {
        t.is((e as Error).name, 'K2Error', `${file} ${sec.name}: ${(e as Error).stack}`);
      }
    }
  }
  t.log(`${files.length} invalid objects, ${formatted} slots formatted`);
  t.true(formatted > 0);
});

// ---- Hand-encoded instructions -----------------------------------------------------------------------

const I = (code: number, dst: number, src: number, off: number, imm: number, imm2?: number): Insn =>
  (imm2 === undefined ? { code, dst, src, off, imm } : { code, dst, src, off, imm, imm2 });

test('cpu v4 instructions use upstream LLVM syntax', (t) => {
  const cases: [Insn, string][] = [
    [I(0x3f, 1, 2, 1, 0), 'r1 s/= r2'], [I(0x37, 1, 0, 1, -7), 'r1 s/= -7'],
    [I(0x3c, 1, 2, 1, 0), 'w1 s/= w2'], [I(0x34, 1, 0, 1, 7), 'w1 s/= 7'],
    [I(0x9f, 1, 2, 1, 0), 'r1 s%= r2'], [I(0x97, 1, 0, 1, 3), 'r1 s%= 3'],
    [I(0x9c, 1, 2, 1, 0), 'w1 s%= w2'], [I(0x94, 1, 0, 1, -3), 'w1 s%= -3'],
    [I(0x9f, 1, 2, 0, 0), 'r1 %= r2'], [I(0x94, 1, 0, 0, 10), 'w1 %= 10'],
    [I(0xbf, 1, 2, 8, 0), 'r1 = (s8)r2'], [I(0xbf, 1, 2, 16, 0), 'r1 = (s16)r2'], [I(0xbf, 1, 2, 32, 0), 'r1 = (s32)r2'],
    [I(0xbc, 1, 2, 8, 0), 'w1 = (s8)w2'], [I(0xbc, 1, 2, 16, 0), 'w1 = (s16)w2'],
    [I(0xd7, 1, 0, 0, 16), 'r1 = bswap16 r1'], [I(0xd7, 1, 0, 0, 32), 'r1 = bswap32 r1'], [I(0xd7, 1, 0, 0, 64), 'r1 = bswap64 r1'],
    [I(0x91, 1, 2, 0, 0), 'r1 = *(s8 *)(r2 + 0)'], [I(0x89, 1, 2, -2, 0), 'r1 = *(s16 *)(r2 - 2)'], [I(0x81, 1, 2, 4, 0), 'r1 = *(s32 *)(r2 + 4)'],
    [I(0x06, 0, 0, 0, 5), 'gotol +5'], [I(0x06, 0, 0, 0, -100000), 'gotol -100000'],
    [I(0x85, 0, 1, 0, -1), 'call -1'], [I(0x85, 0, 2, 0, 12345), 'call 12345'],
    [I(0x7a, 10, 0, -8, -1), '*(u64 *)(r10 - 8) = -1'], [I(0x62, 1, 0, 4, 7), '*(u32 *)(r1 + 4) = 7'],
    [I(0x6a, 1, 0, 0, 65535), '*(u16 *)(r1 + 0) = 65535'], [I(0x72, 1, 0, 1, 255), '*(u8 *)(r1 + 1) = 255'],
    [I(0x45, 1, 0, 3, 8), 'if r1 & 8 goto +3'], [I(0x4e, 1, 2, -3, 0), 'if w1 & w2 goto -3'],
  ];
  for (const [insn, text] of cases) t.is(formatInsn(insn, 10), text, JSON.stringify(insn));
  t.is(formatInsn(I(0x06, 0, 0, 0, -4), 10, { symbolAt: (s) => `at${s}` }), 'gotol -4 <at7>');
  t.is(formatInsn(I(0x45, 1, 0, 3, 8), 10, { symbolAt: (s) => `at${s}` }), 'if r1 & 8 goto +3 <at14>');
  t.is(formatInsn(I(0x85, 0, 1, 0, 3), 10, { symbolAt: () => 'never' }), 'call 3', 'calls are not annotated');
});

/** Assembles raw instruction bytes into an object with llvm-mc and disassembles it with llvm-objdump. */
async function objdumpOf(insns: readonly Insn[], ...flags: string[]): Promise<ObjLine[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'k2-disasm-'));
  try {
    const bytes = Array.from(encodeInsns(insns), (b) => `0x${b.toString(16)}`);
    writeFileSync(path.join(dir, 'a.s'), `.section xdp,"ax",@progbits\n.globl prog\nprog:\n.byte ${bytes.join(',')}\n`);
    await run('llvm-mc', ['-triple=bpfel', '-filetype=obj', path.join(dir, 'a.s'), '-o', path.join(dir, 'a.o')]);
    return parseObjdump(await objdump(path.join(dir, 'a.o'), ...flags))[0]!.lines;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('every atomic form prints as llvm-objdump 14 (with +alu32 where the default cpu cannot)', async (t) => {
  const ops = [ATOMIC.ADD, ATOMIC.OR, ATOMIC.AND, ATOMIC.XOR].flatMap((a) => [a, a | ATOMIC.FETCH]);
  ops.push(ATOMIC.XCHG, ATOMIC.CMPXCHG);
  const insns = [0xdb, 0xc3].flatMap((code) => ops.map((imm) => I(code, 1, 2, -16, imm)));
  insns.push(I(0xdb, 10, 9, 32767, ATOMIC.ADD | ATOMIC.FETCH), I(0xc3, 0, 0, -32768, ATOMIC.CMPXCHG));
  const plain = await objdumpOf(insns);
  const alu32 = await objdumpOf(insns, '--mattr=+alu32');
  t.is(plain.length, insns.length);
  insns.forEach((insn, k) => {
    // LLVM 14's default cpu decodes only the 32-bit add (ignoring its fetch bit); +alu32 decodes all.
    const expected = llvm14Text(insn) === null ? plain[k]!.text : alu32[k]!.text;
    if (llvm14Text(insn) !== null) t.is(plain[k]!.text, llvm14Text(insn)!, `LLVM 14 default text of ${JSON.stringify(insn)}`);
    t.is(formatInsn(insn, k), expected, JSON.stringify(insn));
  });
  // What the texts are, spelled out for readers.
  t.is(formatInsn(I(0xc3, 1, 2, 0, ATOMIC.ADD), 0), 'lock *(u32 *)(r1 + 0) += r2');
  t.is(formatInsn(I(0xc3, 1, 2, 0, ATOMIC.AND), 0), 'lock *(u32 *)(r1 + 0) &= w2');
  t.is(formatInsn(I(0xc3, 1, 2, 0, ATOMIC.XOR | ATOMIC.FETCH), 0), 'w2 = atomic_fetch_xor((u32 *)(r1 + 0), w2)');
  t.is(formatInsn(I(0xdb, 1, 2, 8, ATOMIC.OR | ATOMIC.FETCH), 0), 'r2 = atomic_fetch_or((u64 *)(r1 + 8), r2)');
  t.is(formatInsn(I(0xdb, 1, 2, 0, ATOMIC.XCHG), 0), 'r2 = xchg_64(r1 + 0, r2)');
  t.is(formatInsn(I(0xc3, 1, 2, 0, ATOMIC.CMPXCHG), 0), 'w0 = cmpxchg32_32(r1 + 0, w0, w2)');
});

test('hand-encoded classic instructions print exactly as llvm-objdump 14 prints them', async (t) => {
  const insns: Insn[] = [
    I(0x18, 1, 0, 0, -0x80000000, -1), I(0x18, 2, 0, 0, 0, -0x80000000), I(0x18, 3, 1, 0, 7, 0), I(0x18, 4, 2, 0, -5, 1), I(0x18, 5, 6, 0, 0, 0),
    I(0x20, 0, 0, 0, -5), I(0x28, 0, 0, 0, 70000), I(0x30, 0, 0, 0, 0), I(0x40, 0, 3, 0, 9), I(0x48, 0, 4, 0, 0), I(0x50, 0, 5, 0, 0),
    I(0xd4, 1, 0, 0, 16), I(0xd4, 1, 0, 0, 32), I(0xd4, 1, 0, 0, 64), I(0xdc, 2, 0, 0, 16), I(0xdc, 2, 0, 0, 32), I(0xdc, 2, 0, 0, 64),
    I(0x84, 3, 0, 0, 0), I(0x87, 3, 0, 0, 0), I(0xb4, 1, 0, 0, -1), I(0xb7, 1, 0, 0, 2147483647), I(0xbc, 1, 2, 0, 0),
    I(0xc7, 1, 0, 0, 63), I(0xcc, 1, 2, 0, 0), I(0x6f, 1, 2, 0, 0), I(0x77, 1, 0, 0, 1), I(0x24, 1, 0, 0, -2), I(0x5c, 1, 2, 0, 0),
    I(0x79, 1, 10, -32768, 0), I(0x7b, 10, 1, 32767, 0), I(0x69, 1, 2, 0, 0), I(0x73, 1, 2, -1, 0),
    I(0x05, 0, 0, -32768, 0), I(0x05, 0, 0, 32767, 0), I(0x16, 1, 0, 0, -1), I(0xde, 1, 2, 4, 0), I(0xa5, 1, 0, -2, 5), I(0x7d, 1, 2, 1, 0),
    I(0x85, 0, 0, 0, 1), I(0x85, 0, 1, 0, -3), I(0x95, 0, 0, 0, 0),
  ];
  const raw = await objdumpOf(insns);
  t.is(raw.length, insns.length);
  let slot = 0;
  insns.forEach((insn, k) => {
    const text = formatInsn(insn, slot).replace(/ <[^ ]*>$/, '');
    t.is(text, raw[k]!.text.replace(/ <[^ ]*>$/, ''), JSON.stringify(insn));
    slot += slotsOf(insn);
  });
});

test('symbols: ties, dummy section symbol, wrapped targets and headers follow llvm-objdump', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'k2-disasm-'));
  try {
    const src = [
      '.section xdp,"ax",@progbits', '.globl aa_func', '.type aa_func,@function', 'aa_func:', 'zz_notype:',
      '.byte 0x05,0,0xff,0xff,0,0,0,0', 'mid_b:', '.globl mid_a', '.type mid_a,@object', 'mid_a:',
      '.byte 0x05,0,0x00,0x80,0,0,0,0', '.byte 0x18,1,0,0,1,0,0,0,0,0,0,0,2,0,0,0', 'after_ld:',
      '.byte 0x25,1,0xfb,0xff,4,0,0,0', '.byte 0x95,0,0,0,0,0,0,0',
      '.section other,"ax",@progbits', '.byte 0x05,0,0x01,0x00,0,0,0,0', '.byte 0x05,0,0xfe,0xff,0,0,0,0', 'late:', '.byte 0x95,0,0,0,0,0,0,0',
    ].join('\n');
    writeFileSync(path.join(dir, 'a.s'), src + '\n');
    const obj = path.join(dir, 'a.o');
    await run('llvm-mc', ['-triple=bpfel', '-filetype=obj', path.join(dir, 'a.s'), '-o', obj]);
    const out = await objdump(obj);
    const elf = readElf(readFileSync(obj));
    let rendered = renderFileHeader(obj);
    for (const sec of elf.sections.filter(isCode)) rendered += renderSection(sec.name, decodeInsns(sec.data), { symbols: symbolsOf(elf, sec.index) });
    t.is(rendered, out);
    t.regex(out, /goto -32768 <after_ld\+0xfffffffffffbfff0>/);
    t.regex(out, /<other>:/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('disassembleSection numbers lines by slot, counting ld_imm64 twice', (t) => {
  const insns = [I(0xb7, 0, 0, 0, 0), I(0x18, 1, 0, 0, 5, 0), I(0x15, 0, 0, -4, 0), I(0x95, 0, 0, 0, 0)];
  const lines = disassembleSection(insns, { symbolAt: sectionSymbolizer([{ name: 'f', offset: 0, type: 2 }], 'xdp') });
  t.deepEqual(lines.map((l) => [l.slot, l.index, l.text]), [
    [0, 0, 'r0 = 0'], [1, 1, 'r1 = 5 ll'], [3, 2, 'if r0 == 0 goto -4 <f>'], [4, 3, 'exit'],
  ]);
  t.is(renderSection('xdp', insns, { rawBytes: false }).split('\n')[5], '       1:\tr1 = 5 ll');
});

test('every valid instruction gets a non-empty text without throwing', (t) => {
  const arbInsn = fc
    .record({
      code: fc.integer({ min: 0, max: 255 }),
      dst: fc.integer({ min: 0, max: 10 }),
      src: fc.integer({ min: 0, max: 10 }),
      off: fc.oneof(fc.integer({ min: -32768, max: 32767 }), fc.constantFrom(0, 1, 8, 16, 32)),
      imm: fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(16, 32, 64, ...Object.values(ATOMIC))),
      imm2: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    })
    .map(({ imm2, ...i }): Insn => (i.code === LD_IMM64 ? { ...i, imm2 } : i))
    .filter((i) => invalidReason(i) === null);
  fc.assert(
    fc.property(arbInsn, fc.integer({ min: 0, max: 1 << 20 }), (insn, slot) => {
      const text = formatInsn(insn, slot, { symbolAt: (s) => `t${s}` });
      t.true(text.length > 0 && !/undefined|NaN|\[object/.test(text), `${JSON.stringify(insn)}: ${text}`);
      const bytes = Array.from(encodeInsns([insn]), (b) => b.toString(16).padStart(2, '0')).join(' ');
      t.is(rawBytesOf(insn), bytes);
    }),
    { numRuns: 20_000 },
  );
  // And exhaustively over opcodes, with operands that make each opcode valid where one can.
  const opcodes = new Set<number>();
  for (let code = 0; code < 256; code++) {
    for (const [off, imm] of [[0, 0], [0, 16], [1, 0], [8, 0], [0, ATOMIC.XCHG]] as const) {
      const insn = code === LD_IMM64 ? I(code, 1, 2, off, imm, 0) : I(code, 1, 2, off, imm);
      if (invalidReason(insn) === null) {
        t.true(formatInsn(insn, 0).length > 0);
        opcodes.add(code);
      }
    }
  }
  t.true(opcodes.size > 100, `${opcodes.size} opcodes`);
  t.throws(() => formatInsn(I(0xff, 0, 0, 0, 0), 3), { message: /insn 3: cannot disassemble opcode 0xff/ });
});
