// The safety model against the kernel on fixtures/rules2: verifier rules the model once missed
// (false accepts): atomics are always strictly aligned (also on map values), and a global
// function's pointer argument clobbers the caller's stack bytes (zero and spilled slots become
// unknown). Every program is judged by the running kernel and by the model; they must agree, and
// rejections must be for the kernel's reason.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bpfAvailable, verifyObject } from '../src/kernel/index.js';
import { readObjectBytes } from '../src/ir/index.js';
import { checkObject } from '../src/safety/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const file = join(root, 'fixtures/rules2/build/rules2.o');

const REASONS: Record<string, RegExp> = {
  atomic_value_misaligned: /misaligned value access off 0\+0\+4 size 8/,
  atomic_value_var_misaligned: /misaligned value access off .*size 8/,
  atomic_u32_misaligned: /misaligned value access off 0\+0\+2 size 4/,
  global_clobbers_zero: /makes fp pointer be out of bounds/,
  global_clobbers_spill: /makes fp pointer be out of bounds|variable-offset|unbounded/,
};

test('fixtures/rules2: the model and the kernel agree on every program, for the kernel\'s reason', async (t) => {
  if (!existsSync(file)) return t.fail(`${file} is missing: run make -C fixtures`);
  const avail = await bpfAvailable();
  if (!avail.ok) return t.fail(`bpf() is not available here: ${avail.reason}`);
  const bytes = readFileSync(file);
  const obj = readObjectBytes(bytes, 'rules2.o');
  const model = checkObject(obj);
  const kernel = await verifyObject(bytes, { name: 'rules2.o' });
  t.true(obj.programs.length >= 8);
  for (const p of obj.programs) {
    const m = model.find((x) => x.section === p.section && x.name === p.name)!;
    const k = kernel.programs.find((x) => x.section === p.section && x.name === p.name)!;
    const ok = p.name.endsWith('_ok');
    t.is(k.verdict, ok ? 'accepted' : 'rejected', `${p.name}: the kernel (${k.error}) — the fixture no longer shows the rule`);
    t.is(m.safe, ok, `${p.name}: model says ${m.safe ? 'safe' : m.reason}, kernel: ${k.verdict} ${k.error ?? ''}`);
    if (!ok) {
      const re = REASONS[p.name]!;
      t.regex(k.error ?? '', re, `${p.name}: the kernel's reason`);
      t.regex(m.reason ?? '', re, `${p.name}: the model's reason`);
    }
  }
});
