// The build flows real projects use, with CLANG=k2-clang (issue 10): libbpf-bootstrap (clang -g →
// bpftool gen object, also linking two objects → gen skeleton → C loader with -lbpf -lelf -lz) and bcc
// libbpf-tools (clang -g → llvm-strip -g → gen skeleton → loader). fixtures/flows/Makefile is the
// build; this test runs it with plain clang and with k2-clang and compares.
import test from 'ava';
import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { k2clang, repo } from './helpers/paths.js';
import { bpfAvailable } from './helpers/bpftool.js';
import { readObject } from '../src/ir/index.js';
import { slotsOf } from '../src/isa/index.js';

const flowsDir = join(repo, 'fixtures/flows');
const tmp = mkdtempSync(join(tmpdir(), 'k2flows-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const BOOT_APPS = ['pktcount', 'sockfilter', 'pair'];
const BCC_APPS = ['bccstat'];
// Objects k2 must really change: each has identical block tails clang leaves (one inlined copy of an
// accounting function per return), which k2's tail merge removes whatever its search budget.
const CHANGED = ['bootstrap/pktcount.tmp.bpf.o', 'bootstrap/sockfilter.tmp.bpf.o', 'bcc/bccstat.bpf.o'];

interface Build {
  dir: string;
  exitCode: number;
  log: string;
}

async function build(name: string, clang: string, env: Record<string, string> = {}): Promise<Build> {
  const dir = join(tmp, name);
  const r = await execa('make', ['-C', flowsDir, `CLANG=${clang}`, `BUILD=${dir}`], { reject: false, all: true, env });
  return { dir, exitCode: r.exitCode ?? -1, log: String(r.all) };
}

// Built once (in order: the two builds share the machine's 2 cores with other test files).
let builds: Promise<{ plain: Build; k2: Build; bpf: { ok: boolean; reason: string } }> | null = null;
const both = () =>
  (builds ??= (async () => {
    const plain = await build('plain', 'clang');
    // Small search budget keeps the test fast; a private cache directory keeps runs independent.
    const k2 = await build('k2', k2clang, { K2_BUDGET_MS: '500', K2_CACHE_DIR: join(tmp, 'cache') });
    return { plain, k2, bpf: await bpfAvailable() };
  })());

/** Slots per code section of an object, e.g. { xdp: 99 }. */
function slots(path: string): Record<string, number> {
  const obj = readObject(path);
  return Object.fromEntries(obj.code.map((s) => [s.name, s.insns.reduce((n, i) => n + slotsOf(i), 0)]));
}

/** What each flow's steps write: compiler objects (bootstrap), final objects, skeletons, loaders. */
const artifacts = (flow: string, apps: readonly string[]): string[] =>
  apps.flatMap((a) => [
    ...(flow === 'bootstrap' ? (a === 'pair' ? ['pair_main.tmp.bpf.o', 'pair_lib.tmp.bpf.o'] : [`${a}.tmp.bpf.o`]) : []),
    `${a}.bpf.o`, `${a}.skel.h`, a,
  ]).map((f) => `${flow}/${f}`);

for (const [flow, apps] of [['bootstrap', BOOT_APPS], ['bcc', BCC_APPS]] as const) {
  test(`${flow} flow with CLANG=k2-clang: every step succeeds and k2 changed code`, async (t) => {
    const { plain, k2, bpf } = await both();
    t.is(plain.exitCode, 0, `plain clang build failed:\n${plain.log.slice(-3000)}`);
    t.is(k2.exitCode, 0, `k2-clang build failed:\n${k2.log.slice(-3000)}`);
    const expected = artifacts(flow, apps);
    for (const f of expected) t.true(existsSync(join(k2.dir, f)), `${f} was not built with k2-clang`);
    // What the flow's post-processing saw: clang's -g objects after k2 are valid for bpftool and llvm-strip.
    for (const f of expected.filter((x) => x.endsWith('.o'))) {
      const r = await execa('llvm-readelf', ['--all', join(k2.dir, f)], { reject: false, stdout: 'ignore' });
      t.is(r.exitCode, 0, f);
      t.is(String(r.stderr), '', `llvm-readelf warns on ${f}`);
    }
    if (!bpf.ok) {
      // Without bpf() k2 keeps clang's code (nothing can be kernel-verified): only the steps are checked.
      t.log(`SKIPPED LOUDLY: "k2 changed code" not checked: bpf() unavailable: ${bpf.reason}`);
      return;
    }
    let before = 0;
    let after = 0;
    for (const f of CHANGED.filter((c) => c.startsWith(flow))) {
      const [a, b] = [slots(join(plain.dir, f)), slots(join(k2.dir, f))];
      t.deepEqual(Object.keys(b).sort(), Object.keys(a).sort(), f);
      const sa = Object.values(a).reduce((x, y) => x + y, 0);
      const sb = Object.values(b).reduce((x, y) => x + y, 0);
      t.true(sb < sa, `${f}: k2 did not shrink it (${sa} → ${sb} slots)`);
      before += sa;
      after += sb;
      // Code changed, so DWARF is gone from k2's object (bootstrap) — and its section symbols with it.
      if (flow === 'bootstrap') t.false(readObject(join(k2.dir, f)).elf.sections.some((s) => s.name.startsWith('.debug_')), f);
    }
    t.log(`${flow}: ${before} → ${after} slots`);
  });
}

test('linked pair: bpftool gen object linked two k2-clang objects into one with both halves', async (t) => {
  const { plain, k2 } = await both();
  t.is(k2.exitCode, 0, k2.log.slice(-3000));
  const [a, b] = [slots(join(plain.dir, 'bootstrap/pair.bpf.o')), slots(join(k2.dir, 'bootstrap/pair.bpf.o'))];
  t.deepEqual(Object.keys(b).sort(), ['.text', 'tc', 'xdp']);
  t.deepEqual(Object.keys(a).sort(), ['.text', 'tc', 'xdp']);
  // Whether k2 changed pair_lib's xdp program depends on the search budget left after .text (logged only).
  t.log(`pair.bpf.o: ${JSON.stringify(a)} → ${JSON.stringify(b)}`);
});

test('linking two objects k2 changed: bpftool gen object, gen skeleton', async (t) => {
  // Not a step of the Makefile (the pair above is the realistic case): two changed objects linked.
  const { k2, bpf } = await both();
  t.is(k2.exitCode, 0, k2.log.slice(-3000));
  if (!bpf.ok) {
    t.log(`SKIPPED LOUDLY: bpf() unavailable (${bpf.reason}), so k2 changed nothing to link`);
    return t.pass();
  }
  const out = join(k2.dir, 'both.bpf.o');
  const link = await execa('bpftool', ['gen', 'object', out, ...CHANGED.filter((c) => c.startsWith('bootstrap')).map((c) => join(k2.dir, c))], { reject: false });
  t.is(link.exitCode, 0, String(link.stderr));
  const skel = await execa('bpftool', ['gen', 'skeleton', out], { reject: false });
  t.is(skel.exitCode, 0, String(skel.stderr));
  t.regex(String(skel.stdout), /xdp_count[\s\S]*dns_or_syn|dns_or_syn[\s\S]*xdp_count/);
});

test('every loader built against a k2 skeleton loads, runs and prints what the plain-clang build prints', async (t) => {
  const { plain, k2, bpf } = await both();
  t.is(plain.exitCode, 0, plain.log.slice(-3000));
  t.is(k2.exitCode, 0, k2.log.slice(-3000));
  if (!bpf.ok) {
    t.log(`SKIPPED LOUDLY: loaders not run: bpf() unavailable: ${bpf.reason}`);
    return t.pass();
  }
  let lines = 0;
  for (const app of [...BOOT_APPS.map((a) => `bootstrap/${a}`), ...BCC_APPS.map((a) => `bcc/${a}`)]) {
    const [p, k] = await Promise.all([plain, k2].map((b) => execa(join(b.dir, app), [], { reject: false })));
    t.is(p!.exitCode, 0, `${app} (plain clang): ${p!.stderr}`);
    t.is(k!.exitCode, 0, `${app} (k2-clang): ${k!.stderr}`);
    t.is(k!.stdout, p!.stdout, `${app}: output differs`);
    // The loaders test-ran something: one "retval=" line per run.
    t.true(/retval=\d+/.test(k!.stdout), `${app} printed no test run`);
    lines += k!.stdout.split('\n').length;
  }
  t.log(`${lines} lines of loader output identical`);
});
