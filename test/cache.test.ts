import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join, basename } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { readObject, readObjectBytes, objectBytes, insertNops, type BpfObject, type IrInsn } from '../src/ir/index.js';
import { CLASS, ALU, opClass, aluOp } from '../src/isa/index.js';
import { checkObjects, shutdownZ3 } from '../src/smt/index.js';
import { DEFAULTS, optimizerSettings, type K2Config } from '../src/config/index.js';
import {
  cacheKey, cacheRoot, cacheStats, cleanCache, encodeEntry, entryFor, entryPath, k2BuildId, processObject, proveSameBehaviour, proveStepwise, readEntry, sha256, writeEntry,
  objectFromEntry, BadEntry, ENTRY_FORMAT, type CacheEntry,
} from '../src/cache/index.js';
import { optimizeObject } from '../src/driver/optimize.js';
import { applyStep, diffInsns } from '../src/synth/parallel-steps.js';

const plain = (i: IrInsn): string => `${i.code},${i.dst},${i.src},${i.off},${i.imm},${i.imm2 ?? ''},${i.target ?? ''}`;
import { fixtureObjects, k2, repo } from './helpers/paths.js';
import { hasDwarf, processObjectBytes } from '../src/cache/pipeline.js';
import { checkCandidate, rememberProof } from '../src/cache/verify.js';
import { readElf } from '../src/elf/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2cache-'));
process.env.K2_CACHE_DIR = join(tmp, 'cache');
test.after.always(async () => {
  await shutdownZ3();
  rmSync(tmp, { recursive: true, force: true });
});

const config: K2Config = { ...DEFAULTS, budgetMs: 300 };
const fixture = (name: string): string => {
  const f = fixtureObjects().find((p) => basename(p) === name);
  if (!f) throw new Error(`fixture ${name} not built (make -C fixtures)`);
  return f;
};
const withNops = (obj: BpfObject): BpfObject => ({ ...obj, code: obj.code.map(insertNops) });
const isMovR0 = (i: IrInsn): boolean => (opClass(i.code) === CLASS.ALU64 || opClass(i.code) === CLASS.ALU) && aluOp(i.code) === ALU.MOV && (i.code & 0x08) === 0 && i.dst === 0;

/** A hand-made entry for clang's object `file` holding `code` (so these tests do not depend on what the optimizer finds). */
function plant(file: string, code: (obj: BpfObject) => BpfObject): { key: string; entry: CacheEntry; obj: BpfObject; planted: BpfObject } {
  const bytes = new Uint8Array(readFileSync(file));
  const obj = readObjectBytes(bytes, file);
  const planted = code(obj);
  const inputSha = sha256(bytes);
  const key = cacheKey(inputSha, optimizerSettings(config));
  const report = { ms: 1, kernelChecked: true, slotsBefore: 0, slotsAfter: 0, sections: obj.code.map((s) => ({ name: s.name, slotsBefore: 1, slotsAfter: 1, status: 'optimized', reason: null })) };
  const entry = entryFor(obj, planted, report as never, key, inputSha, k2BuildId());
  return { key, entry, obj, planted };
}

test('entries are written whole: a flipped byte or a torn file is reported as corrupt, never parsed', (t) => {
  const root = join(tmp, 'store');
  const e: CacheEntry = { format: ENTRY_FORMAT, key: 'ab'.repeat(32), input: 'cd'.repeat(32), k2: 'x', created: 'now', result: { ms: 1, kernelChecked: false, sections: [] }, code: [] };
  t.true(writeEntry(e, root));
  const r = readEntry(e.key, root);
  t.is(r.kind, 'entry');
  t.deepEqual((r as { entry: unknown }).entry, e);
  const path = entryPath(e.key, root);
  const text = readFileSync(path, 'utf8');
  writeFileSync(path, text.replace('"ms":1', '"ms":2'));
  t.like(readEntry(e.key, root), { kind: 'corrupt', reason: 'checksum mismatch (torn or altered entry)' });
  writeFileSync(path, text.slice(0, text.length - 10));
  t.like(readEntry(e.key, root), { kind: 'corrupt' });
  writeFileSync(path, 'garbage');
  t.like(readEntry(e.key, root), { kind: 'corrupt', reason: 'no k2-cache header' });
  t.is(readEntry('ef'.repeat(32), root).kind, 'absent');
  t.deepEqual(readdirSync(join(root, 'objects', 'ab')).filter((f) => f.startsWith('.tmp')), [], 'no temporary files left');
});

test('re-proof: relinked code (a nop before every instruction) is proven equal to clang\'s on every fixture, both ways', async (t) => {
  for (const f of fixtureObjects()) {
    const obj = readObject(f);
    const nops = withNops(obj);
    const ab = await proveSameBehaviour(obj, nops, { timeoutMs: 2000 });
    const ba = await proveSameBehaviour(nops, obj, { timeoutMs: 2000 });
    t.true(ab.proven, `${basename(f)}: ${ab.reason}`);
    t.true(ba.proven, `${basename(f)} (reverse): ${ba.reason}`);
  }
});

test('re-proof: one-instruction mutants are refused, and none the whole-program checker proves different is accepted', async (t) => {
  let seed = 11;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  let refused = 0, accepted = 0;
  for (const name of ['socket_filter.o', 'global_data.o', 'jmp32.o', 'calls.o', 'loops.o']) {
    const obj = readObject(fixture(name));
    for (let m = 0; m < 10; m++) {
      const si = rnd(obj.code.length);
      const sites = obj.code[si]!.insns.map((i, k) => [i, k] as const).filter(([i]) => !i.pinned && !i.reloc && (opClass(i.code) === CLASS.ALU || opClass(i.code) === CLASS.ALU64));
      if (!sites.length) continue;
      const [insn, k] = sites[rnd(sites.length)]!;
      const mutant: IrInsn = insn.code & 0x08 ? { ...insn, src: (insn.src + 1) % 10 } : { ...insn, imm: insn.imm + 1 };
      const mutated = { ...obj, code: obj.code.map((s, x) => (x === si ? { ...s, insns: s.insns.map((i, y) => (y === k ? mutant : i)) } : s)) };
      const r = await proveSameBehaviour(obj, withNops(mutated), { timeoutMs: 2000 });
      if (!r.proven) { refused++; continue; }
      accepted++;
      const oracle = await checkObjects(obj, mutated, { timeoutMs: 2000 });
      t.not(oracle.equivalent, false, `${name}: section ${obj.code[si]!.name} insn ${k} mutant accepted but proven different`);
    }
  }
  t.log(`${refused} mutants refused, ${accepted} accepted (each checked by the whole-program checker)`);
  t.true(refused >= 35, `only ${refused} of ${refused + accepted} mutants refused`);
});

test.serial('a valid entry is used: the output is its code, written by k2 from clang\'s object', async (t) => {
  const file = fixture('xdp_parser.o');
  const { key, entry, planted } = plant(file, withNops);
  t.true(writeEntry(entry));
  const out = join(tmp, 'hit.o');
  const r = await processObject(file, { config, write: out });
  t.is(r.cache, 'hit');
  t.is(r.verification, 'kernel');
  t.true(Buffer.from(readFileSync(out)).equals(Buffer.from(objectBytes(planted))));
  t.is(readEntry(key).kind, 'entry');
});

test.serial('a planted entry (valid checksum, changed return values) is detected, removed and not used', async (t) => {
  const file = fixture('calls.o');
  // every `r0 = K` / `w0 = K` gets another constant: the programs' verdicts change
  const { key, entry, planted } = plant(file, (o) => ({
    ...o, code: o.code.map((s) => ({ ...s, insns: s.insns.map((i) => (isMovR0(i) ? { ...i, imm: i.imm ^ 1 } : i)) })),
  }));
  t.true(entry.code.length > 0, 'the plant changes code');
  t.true(writeEntry(entry));
  const before = cacheStats();
  const warnings: string[] = [];
  const out = join(tmp, 'planted.o');
  const r = await processObject(file, { config, write: out, onWarning: (m) => warnings.push(m) });
  t.is(r.cache, 'rejected');
  t.regex(warnings.join('\n'), /failed its check \(not proven equivalent to clang's object: .*differs/);
  t.is(cacheStats().rejected, before.rejected + 1);
  // the output is k2's own result, not the planted code
  t.false(Buffer.from(readFileSync(out)).equals(Buffer.from(objectBytes(planted))));
  // whatever is stored now is not the planted code
  const now = readEntry(key);
  if (now.kind === 'entry') t.notDeepEqual((now.entry as CacheEntry).code, entry.code);
});

test.serial('a corrupted entry, an entry of another object and a malformed entry are each refused', async (t) => {
  const file = fixture('socket_filter.o');
  const other = fixture('global_data.o');
  const cases: [string, (e: CacheEntry, key: string) => string, RegExp][] = [
    ['flipped byte', (e) => encodeEntry(e).replace('"slotsBefore":1', '"slotsBefore":7'), /checksum mismatch/],
    ['another object', (e) => encodeEntry({ ...e, input: plant(other, withNops).entry.input }), /made from another object/],
    ['unknown field', (e) => encodeEntry({ ...e, code: [{ ...e.code[0]!, insns: e.code[0]!.insns.map((i, k) => (k === 0 ? { ...i, evil: 1 } as IrInsn : i)) }] }), /unknown instruction field "evil"/],
    ['foreign relocation', (e) => encodeEntry({ ...e, code: [{ ...e.code[0]!, insns: e.code[0]!.insns.map((i, k) => (k === 1 ? { ...i, reloc: { sym: 9999, type: 1 } } : i)) }] }), /relocation clang's code does not have/],
  ];
  for (const [what, corrupt, why] of cases) {
    const { key, entry } = plant(file, withNops);
    t.true(writeEntry(entry));
    writeFileSync(entryPath(key), corrupt(entry, key));
    const warnings: string[] = [];
    const r = await processObject(file, { config, write: join(tmp, 'c.o'), onWarning: (m) => warnings.push(m) });
    t.is(r.cache, 'rejected', what);
    t.regex(warnings.join('\n'), why, what);
  }
});

test.serial('k2 cache stats and clean', async (t) => {
  const s = await execa('node', [k2, 'cache', 'stats', '--json'], { env: { K2_CACHE_DIR: cacheRoot() } });
  const stats = JSON.parse(s.stdout);
  t.is(stats.root, cacheRoot());
  t.true(stats.entries >= 0 && stats.rejected >= 1);
  const c = await execa('node', [k2, 'cache', 'clean'], { env: { K2_CACHE_DIR: cacheRoot() } });
  t.regex(c.stdout, /^removed \d+ results/);
  t.false(existsSync(join(cacheRoot(), 'objects')));
  t.is(cleanCache().entries, 0);
  void repo;
});

test('hasDwarf (section headers only) agrees with a full ELF parse on every fixture, and is false on garbage', (t) => {
  let withDwarf = 0;
  for (const f of fixtureObjects()) {
    const bytes = new Uint8Array(readFileSync(f));
    const full = readElf(bytes).sections.some((s) => s.name.startsWith('.debug_'));
    t.is(hasDwarf(bytes), full, basename(f));
    if (full) withDwarf++;
  }
  t.true(withDwarf > 0, 'some fixture has DWARF');
  t.false(hasDwarf(new Uint8Array(100)));
  t.false(hasDwarf(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1])));
});

test('a check passed in this process is not repeated for the same bytes; other bytes are checked in full', async (t) => {
  const file = fixture('calls.o');
  const bytes = new Uint8Array(readFileSync(file));
  const obj = readObjectBytes(bytes, file);
  // relinked with a nop before every instruction: different bytes, provably the same behaviour
  const cand = withNops(obj);
  const changed = cand.code.map((s) => s.name);
  const first = await checkCandidate(obj, bytes, cand, changed, { kernel: true, timeoutMs: 2000 });
  t.true(first.ok, first.reason ?? '');
  t.false(first.proofReused);
  t.false(first.safetyReused);
  const again = await checkCandidate(obj, bytes, cand, changed, { kernel: true, timeoutMs: 2000 });
  t.true(again.ok);
  t.true(again.proofReused, 'the same bytes are not proven twice');
  t.true(again.safetyReused, 'nor loaded into the kernel twice');
  t.is(again.verification, first.verification);
  // a result this process proved when storing it is not proven again on its first hit
  const other = { ...obj, code: obj.code.map((s) => insertNops(insertNops(s))) };
  rememberProof(sha256(bytes), objectBytes(other));
  const hit = await checkCandidate(obj, bytes, other, changed, { kernel: true, timeoutMs: 2000 });
  t.true(hit.ok);
  t.true(hit.proofReused);
  t.false(hit.safetyReused, 'safety was not checked at store time: checked now');
  // a changed candidate (other return values) is checked in full and refused
  const mutant: BpfObject = { ...cand, code: cand.code.map((s) => ({ ...s, insns: s.insns.map((i) => (isMovR0(i) ? { ...i, imm: i.imm ^ 1 } : i)) })) };
  t.false(Buffer.from(objectBytes(mutant)).equals(Buffer.from(objectBytes(cand))), 'the mutant changes code');
  const bad = await checkCandidate(obj, bytes, mutant, changed, { kernel: true, timeoutMs: 2000 });
  t.false(bad.ok);
  t.false(bad.proofReused);
});

test('processObjectBytes takes clang\'s object as bytes and hands the output to a function (the compile server\'s way)', async (t) => {
  const file = fixture('socket_filter.o');
  const a = join(tmp, 'pob-a.o');
  const r1 = await processObject(file, { config: { ...config, cache: false }, write: a });
  let out: Uint8Array | null = null;
  const r2 = await processObjectBytes(new Uint8Array(readFileSync(file)), { config: { ...config, cache: false }, display: file, write: (b) => { out = b; } });
  t.is(r2.slotsBefore, r1.slotsBefore);
  t.is(r2.output, '-');
  t.truthy(out);
  t.is(readObjectBytes(out!, 'out').programs.length, readObject(a).programs.length);
  // (two searches to a deadline need not find the same rewrites: each result is checked on its own)
  t.is(r1.dwarfDropped, hasDwarf(readFileSync(file)) && !hasDwarf(readFileSync(a)));
  t.is(r2.dwarfDropped, hasDwarf(readFileSync(file)) && !hasDwarf(out!));
});

test('re-proof: a constant hoisted above a branch (set on both arms before) is proven; a different constant is not', async (t) => {
  const { asm } = await import('../src/smt/index.js');
  const base = readObject(fixture('redundant.o'));
  const objectWith = (text: string): BpfObject => {
    const insns = asm(text);
    insns[0] = { ...insns[0]!, labels: [...(insns[0]!.labels ?? []), 'L0'] };
    return { ...base, code: [{ ...base.code[0]!, insns, symbols: [] }], programs: base.programs.slice(0, 1).map((p) => ({ ...p, section: base.code[0]!.name, entry: 'L0' })) };
  };
  // XDP: r2 = ctx->rx_queue_index (a scalar); clang: `r1 = 1` on each arm; k2's const-hoist: once above the branch
  const clang = objectWith('r2 = *(u32 *)(r1 + 16); if r2 == 0 goto t; r1 = 1; *(u64 *)(r10 - 8) = r1; goto x; t: r1 = 1; *(u64 *)(r10 - 8) = r1; r1 = 5; *(u64 *)(r10 - 16) = r1; x: r0 = *(u64 *)(r10 - 8); exit');
  const hoisted = objectWith('r2 = *(u32 *)(r1 + 16); r1 = 1; if r2 == 0 goto t; *(u64 *)(r10 - 8) = r1; goto x; t: *(u64 *)(r10 - 8) = r1; r1 = 5; *(u64 *)(r10 - 16) = r1; x: r0 = *(u64 *)(r10 - 8); exit');
  const wrong = objectWith('r2 = *(u32 *)(r1 + 16); r1 = 1; if r2 == 0 goto t; *(u64 *)(r10 - 8) = r1; goto x; t: r1 = 2; *(u64 *)(r10 - 8) = r1; r1 = 5; *(u64 *)(r10 - 16) = r1; x: r0 = *(u64 *)(r10 - 8); exit');
  const ok = await proveSameBehaviour(clang, hoisted, { timeoutMs: 5000 });
  t.true(ok.proven, ok.reason ?? '');
  const bad = await proveSameBehaviour(clang, wrong, { timeoutMs: 5000 });
  t.false(bad.proven);
});

/** One XDP program (redundant.o's first) whose code is `text` (k2's asm syntax). */
async function xdpWith(text: string): Promise<BpfObject> {
  const { asm } = await import('../src/smt/index.js');
  const base = readObject(fixture('redundant.o'));
  const insns = asm(text);
  insns[0] = { ...insns[0]!, labels: [...(insns[0]!.labels ?? []), 'L0'] };
  return { ...base, code: [{ ...base.code[0]!, insns, symbols: [] }], programs: base.programs.slice(0, 1).map((p) => ({ ...p, section: base.code[0]!.name, entry: 'L0' })) };
}

test('re-proof: a window that lacks a fact from earlier in its run is widened to the whole run (a copy dropped; a load replaced across a branch)', async (t) => {
  // a copy k2 dropped (r3 = r2, then r3 used): the window at the use alone cannot know r3 == r2
  const copy = await xdpWith('r2 = *(u32 *)(r1 + 16); r3 = r2; r4 = 1; r4 += r3; r0 = r4; exit');
  const noCopy = await xdpWith('r2 = *(u32 *)(r1 + 16); r4 = 1; r4 += r2; r0 = r4; exit');
  const p1 = await proveSameBehaviour(copy, noCopy, { timeoutMs: 5000 });
  t.true(p1.proven, p1.reason ?? '');
  t.false(p1.wholeProgram, 'proven by the pairing, not by the whole-program checker');
  // a load replaced by the register loaded from the same address before the branch
  const load = await xdpWith('r2 = *(u32 *)(r1 + 16); r0 = 0; if r2 > 5 goto x; r0 = *(u32 *)(r1 + 16); r0 += 1; x: exit');
  const reuse = await xdpWith('r2 = *(u32 *)(r1 + 16); r0 = 0; if r2 > 5 goto x; r0 = r2; r0 += 1; x: exit');
  const p2 = await proveSameBehaviour(load, reuse, { timeoutMs: 5000 });
  t.true(p2.proven, p2.reason ?? '');
  t.false(p2.wholeProgram, 'proven by the pairing, not by the whole-program checker');
  // a wrong register instead: not proven, widened or not
  const wrong = await xdpWith('r2 = *(u32 *)(r1 + 16); r0 = 0; if r2 > 5 goto x; r0 = r1; r0 += 1; x: exit');
  t.false((await proveSameBehaviour(load, wrong, { timeoutMs: 5000 })).proven);
});

test('re-proof: a widened window does not vouch for code reached another way (there the fact it used does not hold)', async (t) => {
  // y is the branch's fall-through (where r2 == ctx->rx_queue_index) and also the target of a jump
  // taken after r2 = a random number: there r0 = r2 + 1 differs from clang's
  const clang = await xdpWith('r6 = r1; r2 = *(u32 *)(r6 + 16); r0 = 0; if r2 > 5 goto w; y: r0 = *(u32 *)(r6 + 16); r0 += 1; exit; w: call 7; r2 = r0; if r2 != 0 goto y; exit');
  const bad = await xdpWith('r6 = r1; r2 = *(u32 *)(r6 + 16); r0 = 0; if r2 > 5 goto w; y: r0 = r2; r0 += 1; exit; w: call 7; r2 = r0; if r2 != 0 goto y; exit');
  const r = await proveSameBehaviour(clang, bad, { timeoutMs: 5000 });
  t.false(r.proven, 'the second way into y must not be covered by the window across the first branch');
});

test('build profile: sections whose result the re-proof cannot follow keep clang\'s code; the rest is kept and checked as a hit', async (t) => {
  const { reprovableSubset } = await import('../src/cache/pipeline.js');
  const file = fixture('calls.o');
  const bytes = new Uint8Array(readFileSync(file));
  const obj = readObjectBytes(bytes, file);
  const xdp = obj.code.findIndex((s) => s.name === 'xdp'), tc = obj.code.findIndex((s) => s.name === 'tc');
  t.true(xdp >= 0 && tc >= 0);
  // xdp: a nop before every instruction (provably the same); tc: its first `r0 = K` changed (not the same)
  const code = obj.code.map((s, k) => {
    if (k === xdp) return insertNops(s);
    if (k !== tc) return s;
    const at = s.insns.findIndex(isMovR0);
    return { ...s, insns: s.insns.map((i, n) => (n === at ? { ...i, imm: i.imm + 1 } : i)) };
  });
  t.true(code[tc]!.insns.some((i, n) => i.imm !== obj.code[tc]!.insns[n]!.imm), 'the tc mutation applied');
  const r = await reprovableSubset(obj, { ...obj, code }, bytes, true);
  t.deepEqual(r.dropped, ['tc']);
  t.deepEqual(r.obj.code[tc]!.insns, obj.code[tc]!.insns, 'tc keeps clang\'s code');
  t.deepEqual(r.obj.code[xdp]!.insns, code[xdp]!.insns, 'xdp keeps the re-provable result');
});

test('re-proof step by step: the optimizer\'s own rewrites on every fixture are re-proven one by one — at least as often as the final code against clang\'s in one proof', async (t) => {
  let changed = 0, whole = 0, stepwise = 0;
  for (const file of fixtureObjects()) {
    const obj = readObject(file);
    const r = await optimizeObject(obj, { effort: 'build', cache: false, jobs: 1, kernel: false, timeSec: 1 });
    if (!r.steps.size) continue;
    changed++;
    // the steps lead from clang's code to the optimizer's output
    for (const [name, steps] of r.steps) {
      const sec = obj.code.find((x) => x.name === name)!;
      const replayed = steps.reduce((insns, st) => applyStep(insns, st), sec.insns);
      t.deepEqual(replayed.map(plain), r.obj.code.find((x) => x.name === name)!.insns.map(plain), `${file} ${name}`);
    }
    const s = await proveStepwise(obj, r.steps, { timeoutMs: 2000 });
    if (s.proven) {
      stepwise++;
      t.deepEqual(s.obj.code.map((x) => x.insns.map(plain)), r.obj.code.map((x) => x.insns.map(plain)), `${file}: the proven chain ends at the optimizer's output`);
    }
    if ((await proveSameBehaviour(obj, r.obj, { timeoutMs: 2000 })).proven) whole++;
  }
  t.log(`${changed} fixtures changed: ${stepwise} re-proven step by step, ${whole} in one proof`);
  t.true(changed >= 8, `${changed} fixtures changed`);
  t.true(stepwise >= whole, `step by step ${stepwise} < in one proof ${whole}`);
  t.true(stepwise >= changed - 1, `${changed - stepwise} of ${changed} not re-proven step by step`);
});

test('re-proof step by step: a step that is not equivalent fails its section, which keeps clang\'s code; the other sections stay', async (t) => {
  const file = fixture('calls.o');
  const obj = readObject(file);
  const xdp = obj.code.findIndex((s) => s.name === 'xdp'), tc = obj.code.findIndex((s) => s.name === 'tc');
  const nops = insertNops(obj.code[xdp]!);
  const at = obj.code[tc]!.insns.findIndex(isMovR0);
  const wrongTc = { ...obj.code[tc]!, insns: obj.code[tc]!.insns.map((i, n) => (n === at ? { ...i, imm: i.imm + 1 } : i)) };
  const steps = new Map([['xdp', [diffInsns(obj.code[xdp]!.insns, nops.insns)!]], ['tc', [diffInsns(obj.code[tc]!.insns, wrongTc.insns)!]]]);
  const r = await proveStepwise(obj, steps, { timeoutMs: 2000 });
  t.false(r.proven);
  t.deepEqual(r.failed, ['tc']);
  t.regex(r.reason ?? '', /section tc, step 1 of 1/);
  t.deepEqual(r.obj.code[tc]!.insns, obj.code[tc]!.insns, 'tc keeps clang\'s code');
  t.deepEqual(r.obj.code[xdp]!.insns.map((i) => i.code), nops.insns.map((i) => i.code), 'xdp keeps its proven steps');
  // a step that does not fit the code is a failed proof, not a crash
  const bad = await proveStepwise(obj, new Map([['xdp', [{ start: 1e6, remove: 1, insert: [] }]]]), { timeoutMs: 2000 });
  t.deepEqual(bad.failed, ['xdp']);
});

test('an entry\'s steps are checked: they must lead from clang\'s code to the entry\'s code, within bounds; a planted entry whose steps are not equivalent is refused at the hit', async (t) => {
  const file = fixture('calls.o');
  const bytes = new Uint8Array(readFileSync(file));
  const obj = readObjectBytes(bytes, file);
  const tc = obj.code.findIndex((s) => s.name === 'tc');
  const at = obj.code[tc]!.insns.findIndex(isMovR0);
  const wrong = { ...obj, code: obj.code.map((s, k) => (k === tc ? { ...s, insns: s.insns.map((i, n) => (n === at ? { ...i, imm: i.imm + 1 } : i)) } : s)) };
  const step = diffInsns(obj.code[tc]!.insns, wrong.code[tc]!.insns)!;
  const inputSha = sha256(bytes);
  const key = cacheKey(inputSha, optimizerSettings(config));
  const report = { ms: 1, kernelChecked: true, slotsBefore: 0, slotsAfter: 0, sections: obj.code.map((s) => ({ name: s.name, slotsBefore: 1, slotsAfter: 1, status: 'optimized', reason: null })) };
  const entry = entryFor(obj, wrong, report as never, key, inputSha, k2BuildId(), new Map([['tc', [step]]]));
  t.is(entry.code.length, 1);
  t.is(entry.code[0]!.steps?.length, 1, 'the steps are stored with the code');
  const { obj: cand, steps, changed } = objectFromEntry(JSON.parse(JSON.stringify(entry)), obj, key, inputSha);
  t.deepEqual(changed, ['tc']);
  const check = await checkCandidate(obj, bytes, cand, changed, { kernel: false, timeoutMs: 2000, steps });
  t.false(check.ok, 'a planted step that changes behaviour is refused');
  // steps that do not lead to the entry's code, or out of bounds, make the entry malformed
  const e2 = JSON.parse(JSON.stringify(entry)) as CacheEntry;
  e2.code[0]!.steps = [{ ...e2.code[0]!.steps![0]!, insert: [] }];
  t.throws(() => objectFromEntry(e2, obj, key, inputSha), { instanceOf: BadEntry, message: /do not lead to its code|bad step/ });
  const e3 = JSON.parse(JSON.stringify(entry)) as CacheEntry;
  e3.code[0]!.steps = [{ start: 1e6, remove: 2 ** 31, insert: [] }];
  t.throws(() => objectFromEntry(e3, obj, key, inputSha), { instanceOf: BadEntry, message: /bad step/ });
  const e4 = JSON.parse(JSON.stringify(entry)) as CacheEntry;
  e4.code[0]!.steps = Array.from({ length: 5000 }, () => ({ start: 0, remove: 0, insert: [] }));
  t.throws(() => objectFromEntry(e4, obj, key, inputSha), { instanceOf: BadEntry, message: /bad step list/ });
  const e5 = JSON.parse(JSON.stringify(entry)) as CacheEntry;
  e5.code[0]!.steps = [{ start: 0, remove: 0, insert: [] }, ...e5.code[0]!.steps!];
  t.throws(() => objectFromEntry(e5, obj, key, inputSha), { instanceOf: BadEntry, message: /bad step/ }, 'a step that changes nothing');
});

test('many steps (a huge section\'s): a hit is checked in one proof first, then step by step; a wrong one is still refused', async (t) => {
  const { MANY_STEPS } = await import('../src/cache/proof.js');
  const file = fixture('xdp_parser.o');
  const bytes = new Uint8Array(readFileSync(file));
  const obj = readObjectBytes(bytes, file);
  const xdp = 0;
  // a nop before each of MANY_STEPS + 8 instructions that the one before falls into (a nop after
  // an exit or a goto would be unreachable: the verifier refuses that), one step each
  const orig = obj.code[xdp]!.insns;
  const falls = orig.flatMap((_, k) => (k > 0 && orig[k - 1]!.code !== 0x95 && orig[k - 1]!.code !== 0x05 ? [k] : [])).slice(0, MANY_STEPS + 8);
  const n = falls.length;
  t.true(n > MANY_STEPS, 'enough instructions for many steps');
  const steps = falls.map((k, j) => ({ start: k + j, remove: 0, insert: [{ code: 0x05, dst: 0, src: 0, off: 0, imm: 0 }] as IrInsn[] }));
  const final = steps.reduce((insns, st) => applyStep(insns, st), obj.code[xdp]!.insns);
  const cand = { ...obj, code: obj.code.map((s, k) => (k === xdp ? { ...s, insns: final } : s)) };
  const ok = await checkCandidate(obj, bytes, cand, [obj.code[xdp]!.name], { kernel: false, timeoutMs: 2000, steps: new Map([[obj.code[xdp]!.name, steps]]) });
  t.true(ok.ok, ok.reason ?? '');
  // one more step changes an immediate: refused both ways
  const at = final.findIndex((i, k) => k > falls[n - 1]! + n && (i.code === 0x07 || i.code === 0xb7)); // rX += K, rX = K
  t.true(at > 0, 'an ALU instruction with an immediate after the nops');
  const bad = [...steps, { start: at, remove: 1, insert: [{ ...final[at]!, imm: final[at]!.imm + 1 }] }];
  const badFinal = applyStep(final, bad[bad.length - 1]!);
  const badCand = { ...obj, code: obj.code.map((s, k) => (k === xdp ? { ...s, insns: badFinal } : s)) };
  t.false((await checkCandidate(obj, bytes, badCand, [obj.code[xdp]!.name], { kernel: false, timeoutMs: 2000, steps: new Map([[obj.code[xdp]!.name, bad]]) })).ok);
});

test('re-proof: a changed callee reached only from unchanged code is walked from its call sites (even with no symbol at its label)', async (t) => {
  const obj = readObject(fixture('calls.o'));
  const text = obj.code.findIndex((s) => s.name === '.text');
  t.true(text >= 0 && obj.code.some((s, k) => k !== text && s.insns.some((i) => i.callee?.section === '.text')), 'calls.o calls into .text');
  // no symbols in .text: its functions are reached only through the calls of xdp and tc
  const bare = { ...obj, code: obj.code.map((s, k) => (k === text ? { ...s, symbols: [] } : s)) };
  const at = bare.code[text]!.insns.findIndex(isMovR0);
  t.true(at >= 0);
  const wrong = { ...bare, code: bare.code.map((s, k) => (k === text ? { ...s, insns: s.insns.map((i, n) => (n === at ? { ...i, imm: i.imm + 1 } : i)) } : s)) };
  const r = await proveSameBehaviour(bare, wrong, { timeoutMs: 2000 });
  t.false(r.proven, 'a wrong callee must not be proven equivalent');
  t.true((await proveSameBehaviour(bare, bare, { timeoutMs: 2000 })).proven);
});
