import test from 'ava';
import { readFileSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { join, basename } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { readObject, readObjectBytes, objectBytes, insertNops, lowerObject, type BpfObject, type CodeSection } from '../src/ir/index.js';
import { writeElf, parseBtfExt, parseBtf } from '../src/elf/index.js';
import { CLASS, JMP } from '../src/isa/index.js';
import { corpusObjects, fixtureObjects, k2 } from './helpers/paths.js';
import { bpfAvailable, loadAll, runPinned, samplePackets } from './helpers/bpftool.js';

const bpfObjects = () => [...corpusObjects(), ...fixtureObjects()].filter((f) => {
  const b = readFileSync(f);
  return b.length > 20 && b[18] === 247; // e_machine EM_BPF (others are covered by bad-input tests)
});

test('read → IR → write reproduces every corpus and fixture object byte for byte', (t) => {
  let objects = 0;
  let insns = 0;
  for (const f of bpfObjects()) {
    const orig = readFileSync(f);
    const obj = readObject(f);
    insns += obj.code.reduce((n, s) => n + s.insns.length, 0);
    const out = objectBytes(obj);
    if (Buffer.compare(Buffer.from(out), orig) !== 0) t.fail(`${f}: relinked object differs`);
    objects++;
  }
  t.log(`${objects} objects, ${insns} instructions`);
  t.true(objects > 150);
});

/** Removes the inserted nops (every even position), moving their labels/func_info/line_info to the next instruction. */
function removeNops(sec: CodeSection): CodeSection {
  const out = [];
  let carry: { labels?: string[]; funcInfo?: unknown; lines?: unknown } | null = null;
  for (const [k, insn] of sec.insns.entries()) {
    if (k % 2 === 0) {
      if (insn.code !== (CLASS.JMP | JMP.JA) || insn.off !== 0) throw new Error(`${sec.name}: insn ${k} is not an inserted nop`);
      carry = { labels: insn.labels, funcInfo: insn.funcInfo, lines: insn.lines };
      continue;
    }
    const copy = { ...insn };
    if (carry) {
      if (carry.labels) copy.labels = [...carry.labels, ...(copy.labels ?? [])];
      if (carry.funcInfo) copy.funcInfo = carry.funcInfo as never;
      if (carry.lines) copy.lines = carry.lines as never;
      carry = null;
    }
    out.push(copy);
  }
  return { ...sec, insns: out };
}

const sectionBytes = (obj: BpfObject, names: string[]) => {
  const elf = lowerObject(obj, { dropDwarf: false });
  return names.map((n) => Buffer.from(elf.sections.find((s) => s.name === n)!.data).toString('hex'));
};

test('inserting nops and removing them again gives back the original code, relocations and BTF.ext', (t) => {
  let sections = 0;
  for (const f of bpfObjects()) {
    const obj = readObject(f);
    if (obj.code.length === 0) continue;
    // DWARF kept (stale) so symbol indices stay comparable; test/elf-fidelity covers dropping it.
    const withNops = readObjectBytes(objectBytes({ ...obj, code: obj.code.map(insertNops) }, { dropDwarf: false }), f);
    // Offsets really moved: every section doubled in instruction count.
    withNops.code.forEach((s, i) => t.is(s.insns.length, 2 * obj.code[i]!.insns.length));
    const back = { ...withNops, code: withNops.code.map(removeNops) };
    const names = obj.elf.sections.filter((s, i) => i > 0 && (obj.code.some((c) => c.shndx === i) || s.name.startsWith('.rel') && !s.name.startsWith('.rel.debug') || s.name === '.BTF.ext')).map((s) => s.name);
    const a = sectionBytes(obj, names);
    const b = sectionBytes(back, names);
    names.forEach((n, i) => { if (a[i] !== b[i]) t.fail(`${f}: ${n} differs after nops were inserted and removed`); });
    sections += obj.code.length;
  }
  t.log(`${sections} code sections`);
  t.true(sections > 400);
});

test('relink --insert-nops keeps BTF.ext line_info strictly increasing and off ld_imm64 second slots', (t) => {
  for (const f of fixtureObjects()) {
    const obj = readObject(f);
    if (!obj.btfExt) continue;
    const elf = lowerObject({ ...obj, code: obj.code.map(insertNops) });
    const btf = parseBtf(elf.sections.find((s) => s.name === '.BTF')!.data);
    const ext = parseBtfExt(elf.sections.find((s) => s.name === '.BTF.ext')!.data, btf.strings);
    for (const set of ext.line) {
      const code = elf.sections.find((s) => s.name === set.secName)!.data;
      const offs = set.records.map((r) => r.insnOff);
      offs.forEach((o, i) => {
        if (i > 0 && o <= offs[i - 1]!) t.fail(`${basename(f)} ${set.secName}: line_info not increasing at ${o}`);
        if (o >= 8 && code[o - 8] === 0x18 && !(o >= 16 && code[o - 16] === 0x18)) t.fail(`${basename(f)}: line_info on the second slot of an ld_imm64 at ${o}`);
      });
    }
  }
  t.pass();
});

test('relink --insert-nops output loads and runs like the original in the kernel', async (t) => {
  const avail = await bpfAvailable();
  if (!avail.ok) {
    t.log(`SKIPPED LOUDLY: bpf() unavailable: ${avail.reason}`);
    return t.pass();
  }
  const tmp = mkdtempSync(join(tmpdir(), 'k2relink-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  let loaded = 0;
  let runs = 0;
  for (const f of fixtureObjects()) {
    const orig = await loadAll(f, 'o');
    if (!orig.loaded) continue; // fixtures that do not load (unsafe, legacy maps) are not relink tests
    const out = join(tmp, basename(f));
    const r = await execa('node', [k2, 'relink', f, '-o', out, '--insert-nops'], { reject: false });
    t.is(r.exitCode, 0, `${f}: ${r.stderr}`);
    const nops = await loadAll(out, 'n');
    try {
      t.truthy(nops.loaded, `${basename(f)} with nops does not load: ${nops.error.split('\n').slice(-5).join('\n')}`);
      if (!nops.loaded) continue;
      loaded++;
      t.deepEqual(nops.loaded.programs, orig.loaded.programs);
      for (const p of orig.loaded.programs) {
        for (const pkt of samplePackets()) {
          let a, b;
          try {
            a = await runPinned(join(orig.loaded.dir, p), pkt);
          } catch {
            break; // program type without BPF_PROG_TEST_RUN support
          }
          b = await runPinned(join(nops.loaded.dir, p), pkt);
          t.deepEqual(b, a, `${basename(f)}:${p} differs on packet ${Buffer.from(pkt).toString('hex').slice(0, 40)}…`);
          runs++;
        }
      }
    } finally {
      orig.loaded.cleanup();
      nops.loaded?.cleanup();
    }
  }
  t.log(`${loaded} fixtures loaded with nops, ${runs} test runs compared`);
  t.true(loaded >= 8);
  t.true(runs >= 20);
});
