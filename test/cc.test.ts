import test from 'ava';
import { execa } from 'execa';
import { mkdtempSync, rmSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, basename } from 'node:path';
import { tmpdir } from 'node:os';
import { fixtureObjects, k2, k2clang, repo } from './helpers/paths.js';
import { classifyClangArgs } from '../src/toolchain/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'k2cc-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

test('k2-clang as CLANG= in the fixtures Makefile, relinking only (K2_OPT=0), builds byte-identical objects to plain clang', async (t) => {
  const build = join(tmp, 'build-k2');
  const r = await execa('make', ['-s', '-C', join(repo, 'fixtures'), `CLANG=${k2clang}`, `BUILD=${build}`], { reject: false, env: { K2_OPT: '0' } });
  t.is(r.exitCode, 0, String(r.stderr));
  const plain = fixtureObjects();
  t.deepEqual(readdirSync(build).filter((f) => f.endsWith('.o')).sort(), plain.map((f) => basename(f)));
  for (const f of plain) t.true(readFileSync(join(build, basename(f))).equals(readFileSync(f)), `${basename(f)} differs`);
});

test('k2 cc passes non-object invocations through untouched, with clang\'s output and exit code', async (t) => {
  const src = join(tmp, 'x.c');
  writeFileSync(src, 'int f(int a) { return a + X; }\n');
  for (const args of [['--version'], ['-E', '-DX=3', src], ['-target', 'bpf', '-S', '-O2', '-DX=1', src, '-o', '-'], ['-target', 'bpf', '-c', src, '-o', join(tmp, 'bad.o')]]) {
    const clang = await execa('clang', args, { reject: false });
    const ours = await execa('node', [k2, 'cc', ...args], { reject: false });
    const drop = await execa('node', [k2clang, ...args], { reject: false });
    t.is(ours.exitCode, clang.exitCode, args.join(' '));
    t.is(drop.exitCode, clang.exitCode, args.join(' '));
    t.is(ours.stdout, clang.stdout, args.join(' '));
    t.is(drop.stdout, clang.stdout, args.join(' '));
  }
});

test('clang argument classification finds BPF object outputs', (t) => {
  t.deepEqual(classifyClangArgs(['-O2', '-target', 'bpf', '-c', 'a.c', '-o', 'a.o']), { bpfObject: true, outputs: ['a.o'] });
  t.deepEqual(classifyClangArgs(['--target=bpfel', '-c', 'dir/b.c']), { bpfObject: true, outputs: ['b.o'] });
  t.deepEqual(classifyClangArgs(['-target', 'bpf', '-c', 'a.c', 'c.c']), { bpfObject: true, outputs: ['a.o', 'c.o'] });
  t.is(classifyClangArgs(['-target', 'bpf', '-S', '-c', 'a.c']).bpfObject, false);
  t.is(classifyClangArgs(['-target', 'bpf', '-emit-llvm', '-c', 'a.c']).bpfObject, false);
  t.is(classifyClangArgs(['-c', 'a.c', '-o', 'a.o']).bpfObject, false);
  t.is(classifyClangArgs(['-target', 'x86_64-linux-gnu', '-c', 'a.c']).bpfObject, false);
  t.is(classifyClangArgs(['-target', 'bpf', '-I', 'inc', '-c', 'a.c', '-o', 'a.o']).outputs.length, 1);
  t.is(classifyClangArgs(['-target', 'bpf', '-c', 'a.c', '-o', '-']).bpfObject, false);
});

test('k2-clang as CLANG= optimizing: every object that loaded still loads, none grew', async (t) => {
  const build = join(tmp, 'build-k2opt');
  const some = fixtureObjects().filter((f) => /(redundant|jmp32)\.o$/.test(f));
  const r = await execa('make', ['-s', '-C', join(repo, 'fixtures'), `CLANG=${k2clang}`, `BUILD=${build}`, ...some.map((f) => join(build, basename(f)))], { reject: false, env: { K2_BUDGET_MS: '60000' } });
  t.is(r.exitCode, 0, String(r.stderr));
  let before = 0, after = 0;
  for (const f of some) {
    const opt = join(build, basename(f));
    const [a, b] = await Promise.all([f, opt].map((o) => execa('node', [k2, 'verify', o, '--json'], { reject: false })));
    const va = JSON.parse(a!.stdout), vb = JSON.parse(b!.stdout);
    t.deepEqual(vb.programs.map((p: { accepted: boolean }) => p.accepted), va.programs.map((p: { accepted: boolean }) => p.accepted), basename(f));
    const [da, db] = await Promise.all([f, opt].map((o) => execa('node', [k2, 'dis', '--json', o])));
    const slots = (j: string) => JSON.parse(j).sections.reduce((n: number, s: { slots: number }) => n + s.slots, 0);
    before += slots(da!.stdout);
    after += slots(db!.stdout);
    t.true(slots(db!.stdout) <= slots(da!.stdout), basename(f));
  }
  t.log(`fixtures: ${before} → ${after} slots through k2-clang`);
  t.true(after < before);
});
