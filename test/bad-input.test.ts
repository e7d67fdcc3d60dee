import test from 'ava';
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fixtureObjects, k2, corpusInvalid } from './helpers/paths.js';
import { readObject } from '../src/ir/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2bad-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const sample = (): Buffer => readFileSync(fixtureObjects().find((f) => f.endsWith('xdp_parser.o'))!);

function patched(edit: (b: Buffer) => Buffer): Buffer {
  return edit(Buffer.from(sample()));
}

/** Section header `i` of an ELF64 object. */
const shdr = (b: Buffer, i: number) => Number(b.readBigUInt64LE(40)) + i * 64;
const sectionIndex = (b: Buffer, name: string): number => {
  const shnum = b.readUInt16LE(60);
  const strtab = shdr(b, b.readUInt16LE(62));
  const strOff = Number(b.readBigUInt64LE(strtab + 24));
  for (let i = 1; i < shnum; i++) {
    const nameOff = b.readUInt32LE(shdr(b, i));
    const end = b.indexOf(0, strOff + nameOff);
    if (b.toString('latin1', strOff + nameOff, end) === name) return i;
  }
  throw new Error(`no section ${name}`);
};

const cases: [string, () => Buffer, RegExp][] = [
  ['empty file', () => Buffer.alloc(0), /empty file/],
  ['not an ELF file', () => Buffer.from('int main() { return 0; }\n'), /not an ELF file/],
  ['32-bit ELF', () => patched((b) => { b[4] = 1; return b; }), /32-bit ELF/],
  ['big-endian ELF', () => patched((b) => { b[5] = 2; return b; }), /big-endian/],
  ['not BPF (x86-64 machine)', () => patched((b) => { b.writeUInt16LE(62, 18); return b; }), /not a BPF object/],
  ['truncated section header table', () => patched((b) => b.subarray(0, b.length - 100)), /truncated section header table/],
  ['section pointing past the end of the file', () => patched((b) => { b.writeBigUInt64LE(BigInt(b.length + 4096), shdr(b, sectionIndex(b, 'xdp')) + 24); return b; }), /past end of file/],
  ['unknown opcode', () => patched((b) => { b[Number(b.readBigUInt64LE(shdr(b, sectionIndex(b, 'xdp')) + 24)) + 8] = 0xff; return b; }), /section xdp: offset 8: unknown opcode 0xff/],
];

for (const [name, make, cause] of cases) {
  test(`bad input: ${name} → one-line error naming file and cause, exit 2, no output written`, async (t) => {
    const dir = mkdtempSync(join(tmp, 'case-'));
    const input = join(dir, 'in.o');
    const output = join(dir, 'out.o');
    writeFileSync(input, make());
    const r = await execa('node', [k2, 'relink', input, '-o', output], { reject: false });
    t.is(r.exitCode, 2);
    const lines = String(r.stderr).trim().split('\n');
    t.is(lines.length, 1, String(r.stderr));
    t.true(lines[0]!.startsWith(`k2: ${input}: `), lines[0]);
    t.regex(lines[0]!, cause);
    t.false(existsSync(output));
    t.deepEqual(readdirSync(dir), ['in.o'], 'no temporary file left behind');
  });
}

test('missing input file and directory input are bad input', async (t) => {
  for (const input of [join(tmp, 'does-not-exist.o'), tmp]) {
    const r = await execa('node', [k2, 'relink', input, '-o', join(tmp, 'x.o')], { reject: false });
    t.is(r.exitCode, 2);
    t.regex(String(r.stderr), new RegExp(`^k2: ${input}: (no such file|is a directory)$`));
  }
});

test('unwritable output is exit 6 and leaves no temporary file', async (t) => {
  const r = await execa('node', [k2, 'relink', fixtureObjects()[0]!, '-o', '/proc/k2-cannot-write.o'], { reject: false });
  t.is(r.exitCode, 6);
  t.regex(String(r.stderr), /^k2: \/proc\/k2-cannot-write\.o: cannot write output/);
});

test('every malformed corpus object gives a K2Error or reads cleanly, never a crash', (t) => {
  let rejected = 0;
  for (const f of corpusInvalid()) {
    try {
      readObject(f);
    } catch (e) {
      t.is((e as Error).name, 'K2Error', `${f}: ${(e as Error).stack}`);
      t.true((e as Error).message.startsWith(f), (e as Error).message);
      rejected++;
    }
  }
  t.log(`${rejected} of ${corpusInvalid().length} malformed objects rejected with a located error`);
  t.true(rejected >= 5);
});

test('k2 cc with clang missing: one line, exit 5', async (t) => {
  const r = await execa('node', [k2, 'cc', '-target', 'bpf', '-c', 'x.c'], { reject: false, env: { K2_CLANG: '/nonexistent/clang' } });
  t.is(r.exitCode, 5);
  t.regex(String(r.stderr), /^k2: \/nonexistent\/clang: clang not found/);
  t.is(String(r.stderr).trim().split('\n').length, 1);
});
