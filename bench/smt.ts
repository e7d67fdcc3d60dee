// SMT equivalence checker benchmark (run with `node --import=tsx bench/smt.ts [windows] [mutants]`):
//   1. window checks: windows of 2–8 instructions cut from corpus programs, each compared with a
//      mutated copy and with an equivalence-preserving rewrite, preconditions from the safety
//      checker's abstract states; median and p95 ms with every speed-up on, each one off, all off;
//   2. whole-program checks: every fixture and a sample of corpus programs against the same
//      program with a `ja +0` before every instruction (what `k2 relink --insert-nops` writes);
//   3. soundness: ≥ 1,000 random one-instruction mutants of fixture and corpus programs, checked
//      against the interpreter (never "equal" when the interpreter differs; counterexamples replay).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readObject, cloneCode, insertNops } from '../src/ir/index.js';
import type { BpfObject, IrInsn, ProgramRef } from '../src/ir/types.js';
import { ALU, CLASS, SRC_X, SRC_K, aluOp, opClass, srcBit } from '../src/isa/index.js';
import { WindowChecker, windowsOf } from '../src/safety/index.js';
import { liveness } from '../src/safety/liveness.js';
import { checkWindow, checkPrograms, windowCache, shutdownZ3, type CheckOptions, type EquivResult, type WindowPost, type WindowPre } from '../src/smt/index.js';
import { preFromSafety, liveRegs } from '../src/smt/facts.js';
import { rng } from '../src/smt/decide.js';
import { regUse } from '../src/smt/cache.js';
import { mutantExperiment, type MutantReport } from '../src/smt/soundness.js';
import { K2Error } from '../src/util/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const corpusDir = join(root, '..', 'shared', 'corpus', 'ebpf-samples');
const WINDOWS = Number(process.argv[2] ?? 120);
const MUTANTS = Number(process.argv[3] ?? 1000);

function corpusFiles(): string[] {
  if (!existsSync(corpusDir)) {
    console.error(`corpus not found at ${corpusDir}`);
    process.exit(2);
  }
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.o')) out.push(p);
    }
  };
  walk(corpusDir);
  return out;
}

const quantile = (xs: number[], q: number): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const fmt = (x: number): string => (Number.isNaN(x) ? '-' : x < 10 ? x.toFixed(2) : x.toFixed(0));

function load(path: string): BpfObject | null {
  try {
    return readObject(path);
  } catch (e) {
    if (e instanceof K2Error) return null;
    throw e;
  }
}

// ---------------------------------------------------------------- 1. windows
interface Query {
  a: IrInsn[];
  b: IrInsn[];
  pre: WindowPre;
  post: WindowPost;
  obj: BpfObject;
  progType: string;
  kind: 'mutant' | 'rewrite';
}

/** One random change to one instruction of a window (a candidate the synthesizer might propose). */
function mutateWindow(w: IrInsn[], r: () => number): IrInsn[] | null {
  const out = w.map((i) => ({ ...i }));
  for (let tries = 0; tries < 10; tries++) {
    const k = Math.floor(r() * out.length);
    const i = out[k]!;
    const c = opClass(i.code);
    if (i.reloc || i.callee) continue;
    if (c === CLASS.ALU || c === CLASS.ALU64) {
      if (srcBit(i.code) === SRC_K && aluOp(i.code) !== ALU.END && aluOp(i.code) !== ALU.NEG) i.imm = (i.imm + [1, -1, 2, 8][Math.floor(r() * 4)]!) | 0;
      else i.dst = (i.dst + 1) % 10;
      return out;
    }
    if (c === CLASS.LDX || c === CLASS.ST || c === CLASS.STX) {
      i.off = i.off + [1, -1, 4, -4][Math.floor(r() * 4)]!;
      return out;
    }
  }
  return null;
}

/** An equivalence-preserving rewrite (strength reduction, 32-bit move, reordering, no-op). */
function rewriteWindow(w: IrInsn[], r: () => number): IrInsn[] {
  const out = w.map((i) => ({ ...i }));
  const cands: (() => void)[] = [];
  out.forEach((i, k) => {
    const op = aluOp(i.code);
    const c = opClass(i.code);
    if (c === CLASS.ALU64 && srcBit(i.code) === SRC_K && op === ALU.ADD && i.imm !== -2147483648) cands.push(() => { out[k] = { ...i, code: CLASS.ALU64 | ALU.SUB | SRC_K, imm: -i.imm }; });
    if (c === CLASS.ALU64 && srcBit(i.code) === SRC_K && op === ALU.LSH && i.imm === 1) cands.push(() => { out[k] = { ...i, code: CLASS.ALU64 | ALU.ADD | SRC_X, src: i.dst, imm: 0 }; });
    if (c === CLASS.ALU64 && srcBit(i.code) === SRC_K && op === ALU.MOV && i.imm >= 0) cands.push(() => { out[k] = { ...i, code: CLASS.ALU | ALU.MOV | SRC_K }; });
    if (c === CLASS.ALU64 && srcBit(i.code) === SRC_K && op === ALU.MUL && i.imm > 0 && (i.imm & (i.imm - 1)) === 0) {
      cands.push(() => { out[k] = { ...i, code: CLASS.ALU64 | ALU.LSH | SRC_K, imm: Math.log2(i.imm) }; });
    }
    const j = out[k + 1];
    if (j && !i.labels && !j.labels && (c === CLASS.ALU || c === CLASS.ALU64) && (opClass(j.code) === CLASS.ALU || opClass(j.code) === CLASS.ALU64)) {
      const a = regUse(i), b = regUse(j);
      const touch = (x: { use: number[]; def: number[] }): Set<number> => new Set([...x.use, ...x.def]);
      const ta = touch(a), tb = touch(b);
      if (![...ta].some((x) => tb.has(x))) cands.push(() => { out[k] = j; out[k + 1] = i; });
    }
  });
  if (cands.length) cands[Math.floor(r() * cands.length)]!();
  else out.push({ code: CLASS.ALU64 | ALU.MOV | SRC_X, dst: 0, src: 0, off: 0, imm: 0 }); // r0 = r0
  return out;
}

function windowQueries(files: string[], want: number, seed: number): Query[] {
  const r = rng(seed);
  const qs: Query[] = [];
  const per = Math.max(2, Math.ceil(want / 40));
  for (const f of files) {
    if (qs.length >= 2 * want) break;
    const obj = load(f);
    if (!obj) continue;
    for (const p of obj.programs) {
      if (qs.length >= 2 * want) break;
      let wc: WindowChecker;
      try {
        wc = WindowChecker.forProgram(obj, p);
      } catch {
        continue;
      }
      const live = liveness(wc.prog);
      const cands: [number, number][] = [];
      for (let len = 2; len <= 8; len++) cands.push(...windowsOf(wc.prog, len));
      if (!cands.length) continue;
      const chosen: [number, number][] = [];
      for (let k = 0; k < per && cands.length; k++) chosen.push(cands.splice(Math.floor(r() * cands.length), 1)[0]!);
      let sites;
      try {
        sites = wc.prepare(chosen);
      } catch {
        continue;
      }
      for (const site of sites) {
        if (!site.entries.length) continue;
        // the object's own instructions (with their relocations), not the linked copies
        const w: IrInsn[] = [];
        for (let k = site.start; k < site.end; k++) {
          const o = wc.prog.origin[k]!;
          const { labels: _l, ...i } = obj.code.find((sec) => sec.name === o.section)!.insns[o.index]!;
          w.push(i);
        }
        const pre = preFromSafety(site.entries[0]!);
        const post: WindowPost = { regs: liveRegs(live[site.end] ?? 0x3ff), stack: 'all' };
        const m = mutateWindow(w, r);
        if (m) qs.push({ a: w, b: m, pre, post, obj, progType: p.progType, kind: 'mutant' });
        qs.push({ a: w, b: rewriteWindow(w, r), pre, post, obj, progType: p.progType, kind: 'rewrite' });
      }
    }
  }
  return qs;
}

const CONFIGS: [string, CheckOptions][] = [
  ['all speed-ups on', {}],
  ['memory types off', { memTypes: false }],
  ['map types off', { mapTypes: false }],
  ['offsets off', { offsets: false }],
  ['cache/canonical off', { cache: false }],
  ['fast paths off', { fastPaths: false }],
  ['all off', { memTypes: false, mapTypes: false, offsets: false, cache: false, fastPaths: false, modular: false }],
];

async function benchWindows(files: string[]): Promise<void> {
  const qs = windowQueries(files, WINDOWS, 7);
  console.log(`\n== window checks: ${qs.length} queries (${qs.filter((q) => q.kind === 'mutant').length} mutated, ${qs.filter((q) => q.kind === 'rewrite').length} rewritten windows of 2–8 instructions)`);
  console.log('config                 median ms   p95 ms   equal  different  unknown   via');
  // warm-up (Z3's WASM start, JIT) so the first configuration is not charged for it
  for (const q of qs.slice(0, 8)) await checkWindow(q.a, q.b, q.pre, q.post, { object: q.obj, progType: q.progType, timeoutMs: 2000, cache: false });
  for (const [name, opts] of CONFIGS) {
    windowCache.clear();
    const ms: number[] = [];
    const verdicts = { true: 0, false: 0, null: 0 };
    const via = new Map<string, number>();
    const passes = name === 'all speed-ups on' ? 2 : 1;
    const second: number[] = [];
    for (let pass = 0; pass < passes; pass++) {
      for (const q of qs) {
        const r = await checkWindow(q.a, q.b, q.pre, q.post, { ...opts, object: q.obj, progType: q.progType, timeoutMs: 2000 });
        if (pass === 1) {
          second.push(r.ms);
          continue;
        }
        ms.push(r.ms);
        if (r.equivalent === null && process.env.K2_BENCH_VERBOSE) console.log('   unknown:', r.reason, process.env.K2_BENCH_VERBOSE === '2' ? JSON.stringify({ a: q.a, b: q.b, pre: q.pre, post: q.post }, (_k, x) => (typeof x === 'bigint' ? x.toString() : x)) : '');
        verdicts[String(r.equivalent) as 'true' | 'false' | 'null']++;
        via.set(r.via, (via.get(r.via) ?? 0) + 1);
      }
    }
    const v = [...via].map(([k, n]) => `${k}:${n}`).join(' ');
    console.log(`${name.padEnd(22)} ${fmt(quantile(ms, 0.5)).padStart(9)} ${fmt(quantile(ms, 0.95)).padStart(8)} ${String(verdicts.true).padStart(7)} ${String(verdicts.false).padStart(10)} ${String(verdicts.null).padStart(8)}   ${v}`);
    if (second.length) console.log(`${'  (repeated queries)'.padEnd(22)} ${fmt(quantile(second, 0.5)).padStart(9)} ${fmt(quantile(second, 0.95)).padStart(8)}   cache hits ${windowCache.hits}`);
  }
}

// ---------------------------------------------------------------- 2. whole programs
function withNops(obj: BpfObject): BpfObject {
  const c = cloneCode(obj);
  return { ...c, code: c.code.map((s) => insertNops(s)) };
}

async function benchPrograms(files: string[]): Promise<void> {
  const pairs: { a: BpfObject; b: BpfObject; p: ProgramRef; q: ProgramRef }[] = [];
  for (const f of files) {
    const a = load(f);
    if (!a) continue;
    const b = withNops(a);
    for (const p of a.programs) pairs.push({ a, b, p, q: b.programs.find((x) => x.name === p.name && x.section === p.section)! });
  }
  console.log(`\n== whole-program checks: ${pairs.length} programs vs their relinked copy with nops inserted`);
  console.log('config                 median ms   p95 ms   equal  different  unknown');
  const configs: [string, CheckOptions][] = [
    ['all speed-ups on', {}],
    ['modular off', { modular: false }],
    ['cache/canonical off', { cache: false, modular: false }],
    ['memory types off', { memTypes: false, modular: false }],
    ['offsets off', { offsets: false, modular: false }],
    ['fast paths off', { fastPaths: false, modular: false }],
    ['all off', { memTypes: false, mapTypes: false, offsets: false, cache: false, fastPaths: false, modular: false }],
  ];
  for (const [name, opts] of configs) {
    const ms: number[] = [];
    const v = { true: 0, false: 0, null: 0 };
    for (const { a, b, p, q } of pairs) {
      let r: EquivResult;
      try {
        r = await checkPrograms(a, p, b, q, { ...opts, timeoutMs: 5000, maxPaths: 2048 });
      } catch (e) {
        if (!(e instanceof K2Error)) throw e;
        r = { equivalent: null, counterexample: null, ms: 0, via: 'none' };
      }
      ms.push(r.ms);
      v[String(r.equivalent) as 'true' | 'false' | 'null']++;
    }
    console.log(`${name.padEnd(22)} ${fmt(quantile(ms, 0.5)).padStart(9)} ${fmt(quantile(ms, 0.95)).padStart(8)} ${String(v.true).padStart(7)} ${String(v.false).padStart(10)} ${String(v.null).padStart(8)}`);
  }
}

// ---------------------------------------------------------------- 3. soundness
async function benchSoundness(fixtures: string[], corpus: string[]): Promise<void> {
  const progs: { obj: BpfObject; p: ProgramRef }[] = [];
  const runnable = new Set(['xdp', 'sched_cls', 'sched_act', 'socket_filter', 'cgroup_skb']);
  for (const f of [...fixtures, ...corpus]) {
    const o = load(f);
    if (!o) continue;
    for (const p of o.programs) if (runnable.has(p.progType)) progs.push({ obj: o, p });
  }
  const per = Math.max(4, Math.ceil(MUTANTS / Math.max(1, progs.length)));
  const all: MutantReport[] = [];
  let seed = 100;
  const t0 = performance.now();
  for (const { obj, p } of progs) {
    if (all.length >= MUTANTS) break;
    try {
      all.push(...(await mutantExperiment(obj, p, Math.min(per, MUTANTS - all.length), seed++, { timeoutMs: 1000, inputs: 32 })));
      process.stderr.write(`\r  ${all.length} mutants, ${Math.round((performance.now() - t0) / 1000)} s   `);
    } catch (e) {
      if (!(e instanceof K2Error)) throw e;
    }
  }
  const n = (f: (r: MutantReport) => boolean): number => all.filter(f).length;
  console.log(`\n== soundness: ${all.length} one-instruction mutants of ${progs.length} fixture/corpus programs (${Math.round((performance.now() - t0) / 1000)} s)`);
  console.log(`interpreter tells apart:      ${n((r) => r.interpDiffers === true)}`);
  console.log(`checker: equal ${n((r) => r.verdict === true)}, different ${n((r) => r.verdict === false)}, unknown ${n((r) => r.verdict === null)}`);
  console.log(`UNSOUND (interpreter differs, checker says equal): ${n((r) => r.unsound)}`);
  console.log(`differences the interpreter found that the checker also proved: ${n((r) => r.interpDiffers === true && r.verdict === false)}`);
  console.log(`counterexamples replayed in the interpreter: ${n((r) => r.reproduced === true)}; not reproduced: ${n((r) => r.reproduced === false)}; depend on helper results: ${n((r) => r.verdict === false && r.reproduced === null)}`);
  for (const r of all.filter((x) => x.unsound || x.reproduced === false)) console.log('  !!', JSON.stringify(r));
}

const fixtureDir = join(root, 'fixtures', 'build');
const fixtures = existsSync(fixtureDir) ? readdirSync(fixtureDir).filter((f) => f.endsWith('.o')).sort().map((f) => join(fixtureDir, f)) : [];
const corpus = corpusFiles();
const part = process.env.K2_BENCH_PART;
if (!part || part === 'windows') await benchWindows(corpus);
if (!part || part === 'programs') await benchPrograms([...fixtures, ...corpus.filter((_f, i) => i % 6 === 0)]);
if (!part || part === 'soundness') await benchSoundness(fixtures, corpus.filter((_f, i) => i % 3 === 0));
await shutdownZ3();
process.exit(0);
