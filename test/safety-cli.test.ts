// `k2 safety OBJ [--json]` (run after `npx tsc -p .`).
import test from 'ava';
import { execa } from 'execa';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const k2 = (...args: string[]) => execa('node', [join(root, 'bin/k2.js'), ...args], { reject: false });

test('safety --json lists every program with a verdict; exit 0 when all are safe', async (t) => {
  const r = await k2('safety', '--json', join(root, 'fixtures/build/tc_classifier.o'));
  t.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { programs: { section: string; name: string; safe: boolean; reason: string | null; insn: number | null }[] };
  t.deepEqual(out.programs.map((p) => p.name).sort(), ['tc_ingress', 'tc_tcp', 'tc_udp']);
  for (const p of out.programs) t.deepEqual([p.safe, p.reason, p.insn], [true, null, null]);
});

test('an unsafe program is reported with a reason and an instruction; exit 1', async (t) => {
  const r = await k2('safety', '--json', join(root, 'fixtures/build/unsafe.o'));
  t.is(r.exitCode, 1);
  const [p] = (JSON.parse(r.stdout) as { programs: { safe: boolean; reason: string; insn: number }[] }).programs;
  t.false(p!.safe);
  t.regex(p!.reason, /packet/);
  t.is(typeof p!.insn, 'number');
});

test('a file that is not a BPF object is bad input (exit 2, one line)', async (t) => {
  const r = await k2('safety', join(root, 'package.json'));
  t.is(r.exitCode, 2);
  t.regex(r.stderr, /^k2: [^\n]*ELF[^\n]*$/);
});
