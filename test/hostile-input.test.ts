// Hostile and malformed objects: k2 answers with one located line and exit 2, never a crash (exit 70),
// a hang or an allocation sized by a field of the file. Two kinds of cases:
// - test/regress/*.o: inputs the fuzzer (scripts/fuzz.ts) found crashing or hanging k2 (0.7-16 KB; shrunk only
//   where the shrunk file still reaches the same check), run through the real CLI command that crashed
//   (each exited 70, died of a signal or ran > 30 s before its fix);
// - edits of fixture objects, one per validated field (ELF and section headers, symbols, relocations,
//   .BTF, .BTF.ext, map definitions, instructions), read in-process.
import test from 'ava';
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturesBuild, k2, repo } from './helpers/paths.js';
import { readObjectBytes } from '../src/ir/index.js';
import { typeSize, skipModifiers, BTF_KIND, type Btf, type BtfType } from '../src/elf/btf.js';
import { scanElf } from '../src/kernel/elfscan.js';
import { bpfAvailable } from '../src/kernel/index.js';
import { K2Error } from '../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2hostile-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

// ---- Regressions found by the fuzzer, through the CLI ------------------------------------------------

const regressions: { file: string; argv: (f: string) => string[]; cause: RegExp; found: string; scan?: boolean }[] = [
  {
    file: 'dis-btf-struct-vlen.o',
    argv: (f) => ['dis', f],
    cause: /section \.BTF: offset 424: type 23 \(kind 15, vlen 1025\) extends past the type area$/,
    found: 'issue 13: one flipped bit in a BTF vlen; k2 dis read members past the type area ("Offset is outside the bounds of the DataView", exit 70)',
  },
  {
    file: 'opt-huge-addralign.o',
    argv: (f) => ['opt', f, '-o', join(tmp, 'opt-out.o'), '--no-kernel', '--budget-ms', '50'],
    cause: /section 2: alignment 35184372088832: expected a power of two no larger than 4096$/,
    found: 'issue 13: sh_addralign 2^45 trusted by the ELF writer\'s layout ("Invalid typed array length: 35184372089664", exit 70)',
  },
  {
    file: 'equiv-register-r15.o',
    argv: (f) => ['equiv', f, join(repo, '../shared/corpus/ebpf-samples/prototype-kernel/xdp_ttl_kern.o'), '--timeout', '2000'],
    cause: /section xdp_ttl: offset 112: invalid destination register r15$/,
    found: 'fuzzer: `if r15 == 0xa888 goto` (register byte 0xff); the decoder let r15 through and the equivalence checker\'s machine crashed on it ("Cannot read properties of undefined (reading \'id\')", exit 70)',
  },
  {
    file: 'verify-btf-type-id.o',
    argv: (f) => ['verify', f],
    cause: /malformed BPF object: section \.BTF: offset 408: type 18 refers to type 2097169, which does not exist/,
    found: 'fuzzer: a flipped bit in a BTF type id; libbpf 1.1 (in-process) crashed with SIGSEGV',
    scan: true,
  },
  {
    file: 'verify-btf-name-offset.o',
    argv: (f) => ['verify', f],
    cause: /malformed BPF object: section \.BTF: offset \d+: type 2: name offset 1 is past the string table \(1 bytes\)/,
    found: 'fuzzer: BTF str_len 315 -> 1, every name offset past the strings; libbpf 1.1 crashed with SIGSEGV',
    scan: true,
  },
  {
    file: 'verify-symbol-name-offset.o',
    argv: (f) => ['verify', f],
    cause: /malformed BPF object: section \.symtab: offset 960: symbol 40: name offset 4527 is past the string table/,
    found: 'fuzzer: a NOTYPE symbol with a bad name became a program after the old-clang fixup ("fixed-up object no longer scans", exit 70)',
    scan: true,
  },
  {
    file: 'verify-no-symbol-strtab.o',
    argv: (f) => ['verify', f],
    cause: /malformed BPF object: section \.symtab: symbol table has no string table/,
    found: 'fuzzer: symbol table whose sh_link is not a string table ("fixed-up object no longer scans", exit 70)',
    scan: true,
  },
  {
    file: 'verify-map-16gib.o',
    argv: (f) => ['verify', f],
    cause: /malformed BPF object: its maps would need about 16\.0 GiB of kernel memory, more than the 2\.0 GiB k2 lets an object create \(the largest: cgroup_map, type 8, 2147483648 entries, 16\.0 GiB\)/,
    found: 'fuzzer: legacy map max_entries 1 -> 2^31; the kernel spent 33 s of system time zeroing a 16 GiB cgroup array (> 30 s, and a memory DoS on the host)',
    scan: true,
  },
  {
    file: 'verify-btf-void-bitfield.o',
    argv: (f) => ['verify', f],
    cause: /malformed BPF object: section \.BTF: offset 204: type 6: member 6 has type void$/,
    found: 'fuzzer (long round): a bitfield member\'s type id zeroed; libbpf 1.1 divided by its size in a CO-RE relocation (SIGFPE)',
    scan: true,
  },
];

const bpf = await bpfAvailable();

for (const r of regressions) {
  if (r.scan) {
    test(`regression ${r.file}: the loaders' scan refuses it before libbpf sees it`, (t) => {
      const s = scanElf(readFileSync(join(repo, 'test/regress', r.file)));
      t.false(s.ok);
      if (!s.ok) t.regex(`malformed BPF object: ${s.reason}`, r.cause);
    });
  }
  const cliTest = r.argv('')[0] === 'verify' && !bpf.ok ? test.skip : test;
  cliTest(`regression ${r.file}: k2 ${r.argv('')[0]} exits 2 with one line naming the file`, async (t) => {
    t.log(r.found);
    const input = join(repo, 'test/regress', r.file);
    const p = await execa('node', [k2, ...r.argv(input)], { reject: false, timeout: 60_000 });
    const lines = String(p.stderr).trim().split('\n');
    t.is(p.exitCode, 2, String(p.stderr));
    t.is(lines.length, 1, String(p.stderr));
    t.true(lines[0]!.startsWith(`k2: ${input}: `), lines[0]);
    t.regex(lines[0]!, r.cause);
  });
}

// A well-formed object on which the fuzzer found k2 opt hanging (the unmutated corpus seed
// ebpf-samples/build/byteswap.o hung too): not bad input, so opt must simply end. Each `goto` after an
// `exit` starts a block nothing jumps to, one more entry of the control-flow graph; the dominator walk
// of the constant-hoisting pass (src/synth/regions.ts) climbed from one entry's tree into another forever.
test('regression opt-dead-goto-join.o: k2 opt ends on dead gotos into one block', async (t) => {
  const input = join(repo, 'test/regress/opt-dead-goto-join.o');
  const out = join(tmp, 'dead-goto-join.o');
  const p = await execa('node', [k2, 'opt', input, '-o', out, '--no-kernel', '--effort', 'build', '--budget-ms', '300', '--jobs', '1', '--no-cache'], { reject: false, timeout: 60_000 });
  t.false(p.timedOut, 'k2 opt was still running after 60 s (it ran forever before the fix)');
  t.is(p.exitCode, 0, String(p.stderr));
  t.is(readObjectBytes(readFileSync(out)).code.map((s) => s.name).join(), '.text');
});

// ---- Field-by-field edits of fixture objects, in-process ---------------------------------------------

const fixture = (name: string): Buffer => readFileSync(join(fixturesBuild, `${name}.o`));

interface Elf {
  b: Buffer;
  shoff: number;
  shnum: number;
  hdr: (i: number) => number; // file offset of section header i
  index: (name: string) => number;
  off: (name: string) => number; // file offset of a section's contents
  size: (name: string) => number;
}

function elf(b: Buffer): Elf {
  const shoff = Number(b.readBigUInt64LE(40));
  const shnum = b.readUInt16LE(60);
  const hdr = (i: number): number => shoff + i * 64;
  const strOff = Number(b.readBigUInt64LE(hdr(b.readUInt16LE(62)) + 24));
  const index = (name: string): number => {
    for (let i = 1; i < shnum; i++) {
      const at = strOff + b.readUInt32LE(hdr(i));
      if (b.toString('latin1', at, b.indexOf(0, at)) === name) return i;
    }
    throw new Error(`no section ${name}`);
  };
  return {
    b, shoff, shnum, hdr, index,
    off: (name) => Number(b.readBigUInt64LE(hdr(index(name)) + 24)),
    size: (name) => Number(b.readBigUInt64LE(hdr(index(name)) + 32)),
  };
}

/** File offset of the first .BTF type record of `kind` (and its id). */
function btfType(e: Elf, kind: number, pred: (at: number) => boolean = () => true): { at: number; id: number } {
  const base = e.off('.BTF');
  const hdrLen = e.b.readUInt32LE(base + 4);
  let at = base + hdrLen + e.b.readUInt32LE(base + 8);
  const end = at + e.b.readUInt32LE(base + 12);
  for (let id = 1; at < end; id++) {
    const info = e.b.readUInt32LE(at + 4);
    const k = (info >>> 24) & 0x1f, vlen = info & 0xffff;
    if (k === kind && pred(at)) return { at, id };
    const extra = [1, 14, 17].includes(k) ? 4 : k === 3 ? 12 : [4, 5, 15, 19].includes(k) ? 12 * vlen : [6, 13].includes(k) ? 8 * vlen : 0;
    at += 12 + extra;
  }
  throw new Error(`no BTF type of kind ${kind}`);
}

/** File offset of the .BTF.ext header field at `field` and of the first record of that kind. */
function btfExt(e: Elf, field: 8 | 16 | 24): { hdr: number; recSize: number; firstBlock: number } {
  const base = e.off('.BTF.ext');
  const hdrLen = e.b.readUInt32LE(base + 4);
  const recSize = base + hdrLen + e.b.readUInt32LE(base + field);
  return { hdr: base + field, recSize, firstBlock: recSize + 4 };
}

/** Symbol table entry `i`'s file offset, for the first symbol that `pred` accepts. */
function symbol(e: Elf, pred: (name: string, shndx: number, at: number) => boolean): number {
  const st = e.off('.symtab'), n = e.size('.symtab') / 24;
  const str = e.off('.strtab');
  for (let i = 1; i < n; i++) {
    const at = st + i * 24;
    const nameAt = str + e.b.readUInt32LE(at);
    if (pred(e.b.toString('latin1', nameAt, e.b.indexOf(0, nameAt)), e.b.readUInt16LE(at + 6), at)) return at;
  }
  throw new Error('no such symbol');
}

/** First instruction in `section` whose opcode `pred` accepts: its file offset. */
function insn(e: Elf, section: string, pred: (code: number, at: number) => boolean): number {
  const o = e.off(section);
  for (let at = o; at < o + e.size(section); at += 8) if (pred(e.b[at]!, at)) return at;
  throw new Error(`no such instruction in ${section}`);
}

const u64 = (e: Elf, at: number, v: bigint): void => void e.b.writeBigUInt64LE(v, at);
const u32 = (e: Elf, at: number, v: number): void => void e.b.writeUInt32LE(v >>> 0, at);
const u16 = (e: Elf, at: number, v: number): void => void e.b.writeUInt16LE(v, at);

const edits: [string, string, (e: Elf) => void, RegExp][] = [
  // ELF header and section headers
  ['e_shoff 2^63', 'xdp_parser', (e) => u64(e, 40, 1n << 63n), /truncated section header table/],
  ['e_shnum 0 with a table (extended numbering)', 'xdp_parser', (e) => u16(e, 60, 0), /extended section numbering/],
  ['e_shstrndx naming a code section', 'xdp_parser', (e) => u16(e, 62, e.index('xdp')), /section name table \(section \d+\) is not a string table/],
  ['sh_offset 2^63 - 1', 'xdp_parser', (e) => u64(e, e.hdr(e.index('xdp')) + 24, (1n << 63n) - 1n), /section \d+: section \d+ extends past end of file/],
  ['sh_size 2^64 - 1', 'xdp_parser', (e) => u64(e, e.hdr(e.index('.BTF')) + 32, (1n << 64n) - 1n), /extends past end of file/],
  ['sh_addralign 2^45', 'xdp_parser', (e) => u64(e, e.hdr(e.index('xdp')) + 48, 1n << 45n), /alignment 35184372088832: expected a power of two/],
  ['sh_addralign 24 (not a power of two)', 'xdp_parser', (e) => u64(e, e.hdr(e.index('xdp')) + 48, 24n), /alignment 24: expected a power of two/],
  ['.bss of 1 TiB (SHT_NOBITS size)', 'global_data', (e) => u64(e, e.hdr(e.index('.bss')) + 32, 1n << 40n), /zero-initialized sections add up to 1099511627776 bytes/],
  ['two sections over the same bytes', 'xdp_parser', (e) => u64(e, e.hdr(e.index('license')) + 24, BigInt(e.off('xdp'))), /section \d+ and section \d+ overlap/],
  ['section over the section header table', 'xdp_parser', (e) => u64(e, e.hdr(e.index('license')) + 24, BigInt(e.shoff)), /overlap/],
  ['two sections of one name', 'global_data', (e) => u32(e, e.hdr(e.index('.data')), e.b.readUInt32LE(e.hdr(e.index('.rodata')))), /sections \d+ and \d+ are both named '\.rodata'/],
  ['a symbol in section 500', 'xdp_parser', (e) => u16(e, symbol(e, (_n, shndx) => shndx === e.index('xdp')) + 6, 500), /section \.symtab: offset \d+: symbol \d+ is in section 500, which does not exist/],
  ['string table without a NUL', 'xdp_parser', (e) => e.b.fill(0x41, e.off('.strtab'), e.off('.strtab') + e.size('.strtab')), /string at offset \d+ is (not NUL-terminated|longer than 4096 bytes)/],
  ['two relocation sections for one section', 'xdp_parser', (e) => u32(e, e.hdr(e.index('.rel.debug_info')) + 44, e.index('xdp')), /relocation sections .* patch the same section/],
  ['relocation naming symbol 2^32 - 1', 'xdp_parser', (e) => u32(e, e.off('.relxdp') + 12, 0xffffffff), /section \.relxdp: offset 0: relocation refers to symbol 4294967295 which does not exist/],
  ['relocation at offset 2^63', 'xdp_parser', (e) => u64(e, e.off('.relxdp'), 1n << 63n), /relocation is not at the start of an instruction/],
  // .BTF
  ['.BTF struct vlen 0xffff', 'xdp_parser', (e) => u16(e, btfType(e, BTF_KIND.STRUCT).at + 4, 0xffff), /section \.BTF: offset \d+: type \d+ \(kind 4, vlen 65535\) extends past the type area/],
  ['.BTF pointer to type 2^32 - 1', 'xdp_parser', (e) => u32(e, btfType(e, BTF_KIND.PTR).at + 8, 0xffffffff), /section \.BTF: offset \d+: type \d+ refers to type 4294967295, which does not exist/],
  ['.BTF hdr_len 2^32 - 1', 'xdp_parser', (e) => u32(e, e.off('.BTF') + 4, 0xffffffff), /section \.BTF: offset 4: header length 4294967295/],
  ['.BTF str_len 2^32 - 1', 'xdp_parser', (e) => u32(e, e.off('.BTF') + 20, 0xffffffff), /section \.BTF: offset 16: string area/],
  ['.BTF type_len past the section', 'xdp_parser', (e) => u32(e, e.off('.BTF') + 12, e.size('.BTF')), /section \.BTF: offset 8: type area/],
  ['.BTF struct member of type void', 'xdp_parser', (e) => u32(e, btfType(e, BTF_KIND.STRUCT).at + 12 + 4, 0), /section \.BTF: offset \d+: type \d+: member 0 has type void/],
  ['.BTF int of 0 bytes', 'xdp_parser', (e) => u32(e, btfType(e, BTF_KIND.INT).at + 8, 0), /section \.BTF: offset \d+: type \d+: int of 0 bytes/],
  ['.BTF unknown kind 31', 'xdp_parser', (e) => e.b.writeUInt8(31, btfType(e, BTF_KIND.PTR).at + 7), /unknown type kind 31/],
  // .BTF.ext
  ['.BTF.ext hdr_len 2^24', 'xdp_parser', (e) => u32(e, e.off('.BTF.ext') + 4, 1 << 24), /section \.BTF\.ext: offset 4: header length 16777216/],
  ['.BTF.ext func_info record size 10', 'xdp_parser', (e) => u32(e, btfExt(e, 8).recSize, 10), /func_info record size 10 is not a multiple of 4/],
  ['.BTF.ext line_info record size 2^32 - 4', 'xdp_parser', (e) => u32(e, btfExt(e, 16).recSize, 0xfffffffc), /line_info record size 4294967292/],
  ['.BTF.ext line_info num_info 2^32 - 1', 'xdp_parser', (e) => u32(e, btfExt(e, 16).firstBlock + 4, 0xffffffff), /line_info block of 4294967295 records of 16 bytes extends past its area/],
  ['.BTF.ext func_info area past the section', 'xdp_parser', (e) => u32(e, btfExt(e, 8).hdr + 4, 0x7fffffff), /func_info \(offset \d+, 2147483647 bytes\) extends past the section/],
  ['.BTF.ext func_info naming type 2^32 - 1', 'xdp_parser', (e) => u32(e, btfExt(e, 8).firstBlock + 8 + 4, 0xffffffff), /func_info names BTF type 4294967295, which does not exist/],
  ['.BTF.ext CO-RE access string past the strings', 'core', (e) => u32(e, btfExt(e, 24).firstBlock + 8 + 8, 0x7fffffff), /CO-RE relocation names BTF string offset 2147483647, past the string table/],
  // Map definitions
  ['legacy map value_size 2^32 - 1', 'legacy_maps', (e) => u32(e, e.off('maps') + Number(e.b.readBigUInt64LE(symbol(e, (n, s) => s === e.index('maps') && n !== '') + 8)) + 8, 0xffffffff), /section maps: offset \d+: map \w+: value_size 4294967295 is more than any kernel map accepts/],
  ['legacy map key_size 4096', 'legacy_maps', (e) => u32(e, e.off('maps') + Number(e.b.readBigUInt64LE(symbol(e, (n, s) => s === e.index('maps') && n !== '') + 8)) + 4, 4096), /key_size 4096 is more than any kernel map accepts \(512\)/],
  ['legacy map symbol at the last 16 bytes of a 20-byte-per-map section', 'legacy_maps', (e) => {
    const at = symbol(e, (n, s) => s === e.index('maps') && n !== '');
    e.b.writeBigUInt64LE(BigInt(e.size('maps') - 16), at + 8);
  }, /legacy map \w+ has a truncated definition/],
  ['BTF map key of 2^31 bytes', 'xdp_parser', (e) => {
    // v4_blocklist's key is struct lpm_v4_key (8 bytes, the first 8-byte struct): make it 2^31 bytes.
    u32(e, btfType(e, BTF_KIND.STRUCT, (at) => e.b.readUInt32LE(at + 8) === 8).at + 8, 0x80000000);
  }, /section \.maps: map v4_blocklist: key_size 2147483648 is more than any kernel map accepts \(512\)/],
  // Instructions
  ['jump 0x7fff slots ahead', 'xdp_parser', (e) => u16(e, insn(e, 'xdp', (c) => (c & 7) === 5 && c !== 0x85 && c !== 0x95) + 2, 0x7fff), /section xdp: offset \d+: jump to slot \d+ is outside the section/],
  ['ld_imm64 second half with an opcode', 'xdp_parser', (e) => e.b.writeUInt8(0xbf, insn(e, 'xdp', (c) => c === 0x18) + 8), /section xdp: offset \d+: malformed second half of a 64-bit immediate/],
  ['bpf-to-bpf call 2^31 - 1 slots ahead', 'calls', (e) => u32(e, insn(e, 'xdp', (c, at) => c === 0x85 && e.b[at + 1]! >> 4 === 1) + 4, 0x7fffffff), /call to slot \d+ is outside the section/],
];

for (const [name, fx, edit, cause] of edits) {
  test(`hostile ${fx}.o: ${name} → one located line, bad input`, (t) => {
    const e = elf(Buffer.from(fixture(fx)));
    edit(e);
    const file = `${fx}-edited.o`;
    const err = t.throws(() => readObjectBytes(e.b, file), { instanceOf: K2Error });
    if (!err) return;
    t.is(err.exitCode, 2, err.message);
    t.true(err.message.startsWith(`${file}: `), err.message);
    t.false(err.message.includes('\n'), err.message);
    t.regex(err.message, cause);
  });
}

test('hostile edit through the CLI: k2 dis on a 1 TiB .bss prints one line and exits 2', async (t) => {
  const e = elf(Buffer.from(fixture('global_data')));
  u64(e, e.hdr(e.index('.bss')) + 32, 1n << 40n);
  const input = join(tmp, 'huge-bss.o');
  writeFileSync(input, e.b);
  const p = await execa('node', [k2, 'dis', input], { reject: false });
  t.is(p.exitCode, 2);
  t.regex(String(p.stderr), new RegExp(`^k2: ${input}: section \\d+: zero-initialized sections add up to 1099511627776 bytes, more than the 16 MiB limit\\n?$`));
});

/** A minimal relocatable BPF ELF: the NULL section, .shstrtab, then `sections` in order. */
function buildElf(sections: { name: string; type: number; flags: bigint; data: Uint8Array; align?: bigint }[]): Buffer {
  const names = ['', '.shstrtab', ...sections.map((s) => s.name)];
  const strtab = Buffer.from(names.join('\0') + '\0', 'latin1');
  const nameOff = (i: number): number => names.slice(0, i).reduce((n, x) => n + x.length + 1, 0);
  const all: typeof sections = [{ name: '.shstrtab', type: 3, flags: 0n, data: new Uint8Array(strtab) }, ...sections];
  let at = 64;
  const offsets = all.map((s) => {
    at = Math.ceil(at / 8) * 8;
    const o = at;
    at += s.data.length;
    return o;
  });
  const shoff = Math.ceil(at / 8) * 8;
  const b = Buffer.alloc(shoff + (all.length + 1) * 64);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeUInt16LE(1, 16);
  b.writeUInt16LE(247, 18);
  b.writeBigUInt64LE(BigInt(shoff), 40);
  b.writeUInt16LE(64, 58);
  b.writeUInt16LE(all.length + 1, 60);
  b.writeUInt16LE(1, 62);
  all.forEach((s, i) => {
    b.set(s.data, offsets[i]!);
    const h = shoff + (i + 1) * 64;
    b.writeUInt32LE(nameOff(i + 1), h);
    b.writeUInt32LE(s.type, h + 4);
    b.writeBigUInt64LE(s.flags, h + 8);
    b.writeBigUInt64LE(BigInt(offsets[i]!), h + 24);
    b.writeBigUInt64LE(BigInt(s.data.length), h + 32);
    b.writeBigUInt64LE(s.align ?? 8n, h + 48);
  });
  return b;
}

test('a code section longer than the kernel loads (1,000,000 instructions) is refused before decoding', (t) => {
  const exit = Uint8Array.of(0x95, 0, 0, 0, 0, 0, 0, 0);
  const ok = buildElf([{ name: 'xdp', type: 1, flags: 6n, data: exit }]);
  t.is(readObjectBytes(ok, 'small.o').code[0]!.insns.length, 1, 'the builder makes readable objects');
  const code = new Uint8Array(8 * 1_000_001);
  for (let at = 0; at < code.length; at += 8) code[at] = 0xb7; // r0 = 0
  const big = buildElf([{ name: 'xdp', type: 1, flags: 6n, data: code }]);
  const err = t.throws(() => readObjectBytes(big, 'big.o'), { instanceOf: K2Error });
  t.is(err?.message, 'big.o: section xdp: 1000001 instructions, more than the kernel loads in one program (1000000)');
});

test('alignments adding up to more than 1 MiB (what writing the object back could pad) are refused', (t) => {
  const data = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `.data.${i}`, type: 1, flags: 3n, data: new Uint8Array(8), align: 4096n }));
  t.is(readObjectBytes(buildElf(data(200)), 'ok.o').data.length, 200);
  const err = t.throws(() => readObjectBytes(buildElf(data(300)), 'padded.o'), { instanceOf: K2Error });
  t.regex(err?.message ?? '', /^padded\.o: section \d+: section alignments add up to more than 1 MiB$/);
});

test('a file larger than 64 MiB is refused before it is read', async (t) => {
  const path = join(tmp, 'huge.o');
  writeFileSync(path, buildElf([{ name: 'xdp', type: 1, flags: 6n, data: Uint8Array.of(0x95, 0, 0, 0, 0, 0, 0, 0) }]));
  truncateSync(path, (64 << 20) + 1); // sparse: nothing is written
  const p = await execa('node', [k2, 'dis', path], { reject: false });
  t.is(p.exitCode, 2);
  t.is(String(p.stderr).trim(), `k2: ${path}: file is ${(64 << 20) + 1} bytes, more than the 64 MiB k2 reads`);
});

// ---- BTF recursion is bounded ------------------------------------------------------------------------

const btfOf = (types: Omit<BtfType, 'id' | 'name' | 'vlen' | 'kindFlag' | 'members'>[]): Btf => ({
  types: [{ id: 0, kind: 0, name: 'void', sizeOrType: 0, vlen: 0, kindFlag: false, members: [] },
    ...types.map((t, i) => ({ id: i + 1, name: '', vlen: 0, kindFlag: false, members: [], ...t }))],
  strings: new Uint8Array(1),
});

test('BTF cycles and deep chains: typeSize and skipModifiers give up instead of recursing forever', (t) => {
  // 1: array of 1 → itself
  t.is(typeSize(btfOf([{ kind: BTF_KIND.ARRAY, sizeOrType: 0, elemType: 1, nelems: 2 }]), 1), null);
  // 1: typedef → 2: const → 1
  const loop = btfOf([{ kind: BTF_KIND.TYPEDEF, sizeOrType: 2 }, { kind: BTF_KIND.CONST, sizeOrType: 1 }]);
  t.is(skipModifiers(loop, 1), undefined);
  t.is(typeSize(loop, 1), null);
  // 40 nested arrays of 2: deeper than the kernel's 32 → no size (it never reaches the int)
  const deep = btfOf([{ kind: BTF_KIND.INT, sizeOrType: 4 }, ...Array.from({ length: 40 }, (_, i) => ({ kind: BTF_KIND.ARRAY, sizeOrType: 0, elemType: i + 1, nelems: 2 }))]);
  t.is(typeSize(deep, 41), null);
  t.is(typeSize(deep, 3), 16);
  // an array of 2^32 - 1 elements of 2^32 - 1 bytes: larger than a u32 → no size, not 1.8e19
  const big = btfOf([{ kind: BTF_KIND.INT, sizeOrType: 0xffffffff }, { kind: BTF_KIND.ARRAY, sizeOrType: 0, elemType: 1, nelems: 0xffffffff }]);
  t.is(typeSize(big, 2), null);
});

// ---- The loaders' own scanner ------------------------------------------------------------------------

test('scanElf: a symbol string table that is SHT_NOBITS with a 2^50-byte size is refused at once (was a hang)', (t) => {
  const e = elf(Buffer.from(fixture('xdp_parser')));
  const strtab = e.b.readUInt32LE(e.hdr(e.index('.symtab')) + 40);
  u32(e, e.hdr(strtab) + 4, 8); // SHT_NOBITS
  u64(e, e.hdr(strtab) + 32, 1n << 50n);
  const r = scanElf(e.b);
  t.false(r.ok);
  if (!r.ok) t.regex(r.reason, /not in the file/);
});
