import test from 'ava';
import { execa } from 'execa';
import { basename } from 'node:path';
import { corpusObjects, fixtureObjects, k2 } from './helpers/paths.js';
import { readFileSync } from 'node:fs';

const bpf = (f: string) => { const b = readFileSync(f); return b.length > 20 && b[18] === 247; };

test('k2 dis prints exactly what llvm-objdump -d prints (fixtures and a corpus sample)', async (t) => {
  const corpus = corpusObjects().filter(bpf);
  const sample = [...fixtureObjects(), ...corpus.filter((_, i) => i % 12 === 0)];
  let same = 0;
  let unknown = 0;
  for (const f of sample) {
    const [ours, theirs] = await Promise.all([
      execa('node', [k2, 'dis', f], { reject: false }),
      execa('llvm-objdump', ['-d', f], { reject: false }),
    ]);
    t.is(ours.exitCode, 0, `${f}: ${ours.stderr}`);
    // LLVM 14 prints `<unknown>` for instructions it cannot decode (32-bit atomics other than add,
    // cpu v4); there k2 uses upstream LLVM's syntax, and that line is compared up to the text.
    const a = ours.stdout.split('\n'), b = theirs.stdout.split('\n');
    t.is(a.length, b.length, basename(f));
    const i = a.findIndex((l, k) => l !== b[k] && !(b[k]!.endsWith('\t<unknown>') && l.startsWith(b[k]!.slice(0, -'<unknown>'.length))));
    if (i < 0) same++;
    else t.fail(`${basename(f)} line ${i + 1}: k2 "${a[i]}" vs llvm-objdump "${b[i]}"`);
    unknown += b.filter((l) => l.endsWith('\t<unknown>')).length;
  }
  t.log(`${same}/${sample.length} objects identical (${unknown} lines llvm-objdump 14 cannot decode)`);
  t.is(same, sample.length);
});

test('k2 dis --json: slots count ld_imm64 twice, insns once, one text line per instruction', async (t) => {
  const f = fixtureObjects().find((p) => p.endsWith('global_data.o'))!;
  const r = await execa('node', [k2, 'dis', '--json', f]);
  const j = JSON.parse(r.stdout);
  t.is(j.file, f);
  const objdump = (await execa('llvm-objdump', ['-d', '--no-show-raw-insn', f])).stdout;
  for (const s of j.sections) {
    t.is(s.text.length, s.insns);
    const lddw = s.text.filter((x: string) => / ll$/.test(x)).length;
    t.true(lddw > 0 || s.name === '.text');
    t.is(s.slots, s.insns + lddw);
    // the section size llvm-objdump reports, in slots
    const sizes = (await execa('llvm-objdump', ['-h', f])).stdout.split('\n').find((l) => l.split(/\s+/)[2] === s.name)!;
    t.is(parseInt(sizes.split(/\s+/)[3]!, 16) / 8, s.slots);
  }
  t.true(objdump.length > 0);
});
