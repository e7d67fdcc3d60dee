import test from 'ava';
import { execa } from 'execa';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readObject, writeObject, cloneCode, insertNops } from '../src/ir/index.js';
import { CLASS, ALU } from '../src/isa/index.js';
import type { BpfObject } from '../src/ir/types.js';
import { checkPrograms, shutdownZ3 } from '../src/smt/index.js';
import { replayPrograms } from '../src/smt/replay.js';

test.after.always(async () => {
  await shutdownZ3();
});

/** The object with `ja +0` before every instruction (what `k2 relink --insert-nops` writes). */
function withNops(obj: BpfObject): BpfObject {
  const c = cloneCode(obj);
  return { ...c, code: c.code.map((s) => insertNops(s)) };
}

const dir = mkdtempSync(join(tmpdir(), 'k2-smt-'));
const fixture = (name: string): string => `fixtures/build/${name}.o`;
const k2 = (...args: string[]) => execa('node', ['bin/k2.js', ...args], { reject: false });

function need(t: { fail(m: string): void }, ...files: string[]): boolean {
  for (const f of files) {
    if (!existsSync(f)) {
      t.fail(`${f} is missing (run make -C fixtures and npx tsc -p .)`);
      return false;
    }
  }
  return true;
}

/** A copy of `file` whose program `prog` has its first `r0 = K` changed to `r0 = K+1`. */
function changedReturn(file: string, prog: string, out: string): string {
  const obj = cloneCode(readObject(file));
  const p = obj.programs.find((x) => x.name === prog)!;
  const sec = obj.code.find((s) => s.name === p.section)!;
  const i = sec.insns.findIndex((x) => x.code === (CLASS.ALU64 | ALU.MOV) && x.dst === 0);
  if (i < 0) throw new Error(`no 'r0 = K' in ${prog}`);
  sec.insns[i] = { ...sec.insns[i]!, imm: sec.insns[i]!.imm + 1 };
  writeObject(obj, out);
  return out;
}

test('k2 equiv: an object and its relinked copy with nops are equivalent (exit 0, JSON contract)', async (t) => {
  const a = fixture('xdp_parser');
  if (!need(t, a, 'dist/cli/main.js')) return;
  const b = join(dir, 'xdp_parser.nops.o');
  writeObject(withNops(readObject(a)), b);
  const r = await k2('equiv', a, b, '--json');
  t.is(r.exitCode, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.is(j.equivalent, true);
  t.is(j.counterexample, null);
  t.is(typeof j.ms, 'number');
});

test('k2 equiv: a changed return value is different (exit 1) with a counterexample the interpreter reproduces', async (t) => {
  const a = fixture('calls');
  if (!need(t, a, 'dist/cli/main.js')) return;
  const b = changedReturn(a, 'xdp_calls', join(dir, 'calls.changed.o'));
  const r = await k2('equiv', a, b, '--section', 'xdp', '--json');
  t.is(r.exitCode, 1, r.stderr);
  const j = JSON.parse(r.stdout);
  t.is(j.equivalent, false);
  t.truthy(j.counterexample?.difference);
  const oa = readObject(a), ob = readObject(b);
  const pa = oa.programs.find((p) => p.name === 'xdp_calls')!, pb = ob.programs.find((p) => p.name === 'xdp_calls')!;
  t.true(replayPrograms(oa, pa, ob, pb, j.counterexample).reproduced);
});

test('k2 equiv: unsupported code is unknown (exit 4), never equal', async (t) => {
  const a = fixture('loops');
  if (!need(t, a, 'dist/cli/main.js')) return;
  // bpf_loop with a callback is not modelled; without the syntactic shortcut the answer is unknown
  const r = await k2('equiv', a, a, '--section', 'tc', '--no', 'modular', 'cache', '--json');
  t.is(r.exitCode, 4, r.stderr);
  t.is(JSON.parse(r.stdout).equivalent, null);
});

test('k2 equiv: a missing section is a usage error (exit 2)', async (t) => {
  const a = fixture('calls');
  if (!need(t, a, 'dist/cli/main.js')) return;
  const r = await k2('equiv', a, a, '--section', 'nonexistent');
  t.is(r.exitCode, 2);
  t.regex(r.stderr, /no program in section nonexistent/);
  const r2 = await k2('equiv', a, a, '--no', 'warp-drive');
  t.is(r2.exitCode, 2);
  t.regex(r2.stderr, /unknown speed-up warp-drive/);
});

test('whole-program checks agree with every speed-up switched off', async (t) => {
  const files = ['calls', 'global_data', 'atomics', 'jmp32'];
  if (!need(t, ...files.map(fixture))) return;
  for (const f of files) {
    const a = readObject(fixture(f));
    const b = withNops(readObject(fixture(f)));
    for (const p of a.programs.filter((x) => ['xdp', 'sched_cls'].includes(x.progType))) {
      const q = b.programs.find((x) => x.name === p.name)!;
      const fast = await checkPrograms(a, p, b, q, {});
      const slow = await checkPrograms(a, p, b, q, { memTypes: false, mapTypes: false, offsets: false, modular: false, cache: false, fastPaths: false, timeoutMs: 20000 });
      t.is(fast.equivalent, true, `${f}/${p.name}: ${fast.reason ?? ''}`);
      t.not(slow.equivalent, false, `${f}/${p.name} (no speed-ups): ${JSON.stringify(slow.counterexample?.difference)}`);
    }
  }
});

test('a changed program is different whichever speed-ups are on', async (t) => {
  const a0 = fixture('calls');
  if (!need(t, a0)) return;
  const b0 = changedReturn(a0, 'xdp_calls', join(dir, 'calls.changed2.o'));
  const a = readObject(a0), b = readObject(b0);
  const pa = a.programs.find((p) => p.name === 'xdp_calls')!, pb = b.programs.find((p) => p.name === 'xdp_calls')!;
  for (const opts of [{}, { memTypes: false }, { offsets: false }, { mapTypes: false }, { modular: false, cache: false }, { fastPaths: false, timeoutMs: 20000 }]) {
    const r = await checkPrograms(a, pa, b, pb, opts);
    t.is(r.equivalent, false, `${JSON.stringify(opts)}: ${r.reason ?? ''}`);
    t.true(replayPrograms(a, pa, b, pb, r.counterexample!).reproduced, JSON.stringify(opts));
  }
});

test('CO-RE relocations take part: a changed CO-RE record is never proven equal, a re-laid-out program is', async (t) => {
  const obj = readObject(fixture('core'));
  const prog = obj.programs[0]!;
  const sec = obj.code.findIndex((s) => s.name === prog.section);
  const insns = obj.code[sec]!.insns;
  const recs = insns.flatMap((i) => i.core ?? []);
  const k = insns.findIndex((i) => i.core?.length);
  t.true(k >= 0 && recs.length >= 2, 'core.o has CO-RE relocated instructions');
  const other = recs.find((c) => c.accessStrOff !== insns[k]!.core![0]!.accessStrOff || c.typeId !== insns[k]!.core![0]!.typeId)!;
  t.truthy(other);
  const changed = { ...obj, code: obj.code.map((s, j) => (j === sec ? { ...s, insns: s.insns.map((i, n) => (n === k ? { ...i, core: [{ ...i.core![0]!, typeId: other.typeId, accessStrOff: other.accessStrOff }] } : i)) } : s)) };
  const r = await checkPrograms(obj, prog, changed, prog, { timeoutMs: 2000 });
  t.not(r.equivalent, true, r.reason);
  const same = await checkPrograms(obj, prog, obj, prog, { timeoutMs: 2000 });
  t.is(same.equivalent, true);
});
