// Region rewrites (control flow inside): what each enumerator proposes on small sections, the
// negative cases it must leave alone, and end to end on real objects that each accepted rewrite
// is proven (window steps and/or the whole-program checker), gated, and runs identically in the
// interpreter — while a wrong region rewrite is refused.
import test from 'ava';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { corpusDir, fixtureObjects } from './helpers/paths.js';
import { asm, shutdownZ3, type WindowPre } from '../src/smt/index.js';
import { boundsMerges, constHoists, deleteInsns, jumpThreads, nullChecks, unreachable, type RegionCandidate } from '../src/synth/regions.js';
import { SectionSession, DEFAULT_SYNTH, sectionSlots, type SectionStats } from '../src/synth/index.js';
import { programCode, readObject, type BpfObject, type CodeSection, type ProgramRef } from '../src/ir/index.js';
import { checkLinked, checkObject, linkProgram } from '../src/safety/index.js';
import { interpDiffers } from '../src/smt/soundness.js';
import { formatInsn, type Insn } from '../src/isa/index.js';

test.after.always(async () => {
  await shutdownZ3();
});

const section = (src: string): CodeSection => ({ name: 's', shndx: 0, insns: asm(src), symbols: [], relSection: null });
const text = (c: readonly Insn[]): string => c.map((i) => formatInsn(i, 0).replace(/goto [+-]\d+$/, `goto ${(i as { target?: string }).target ?? '?'}`)).join('; ');

test('bounds checks: a wider later check of the same pointer to the same place takes the first one\'s place', (t) => {
  const src = (second: string): string => `r2 = *(u32 *)(r1 + 4)
r1 = *(u32 *)(r1 + 0)
r3 = r1
r3 += 14
if r3 > r2 goto drop
r4 = *(u16 *)(r1 + 12)
if r4 != 8 goto drop
${second}
r0 = *(u8 *)(r1 + 23)
exit
drop:
r0 = 1
exit`;
  const c = boundsMerges(section(src('r3 = r1\nr3 += 34\nif r3 > r2 goto drop')));
  t.is(c.length, 1);
  t.is(c[0]!.saved, 3);
  t.is(text(c[0]!.window!), 'r3 = r1; r3 += 34; if r3 > r2 goto drop; r4 = *(u16 *)(r1 + 12); if r4 != 8 goto drop');
  t.is(c[0]!.next.insns.length, 11);
  // negative cases: another target, a narrower second check, the pointer changed in between,
  // a jump target in between (a second way in), a call in between
  t.deepEqual(boundsMerges(section(src('r3 = r1\nr3 += 34\nif r3 > r2 goto other\nother:'))), []);
  t.deepEqual(boundsMerges(section(src('r3 = r1\nr3 += 10\nif r3 > r2 goto drop'))), []);
  t.deepEqual(boundsMerges(section(src('r1 += 2\nr3 = r1\nr3 += 34\nif r3 > r2 goto drop'))), []);
  t.deepEqual(boundsMerges(section(src('in:\nr3 = r1\nr3 += 34\nif r3 > r2 goto drop'))), []);
  t.deepEqual(boundsMerges(section(src('call 5\nr3 = r1\nr3 += 34\nif r3 > r2 goto drop'))), []);
});

test('constants: one assigned on two paths is hoisted into their dominator where the register is dead', (t) => {
  const src = `if r1 == 0 goto a
w7 = -1
r0 = 1
goto j
a:
w7 = -1
r0 = 2
j:
*(u32 *)(r10 - 4) = r7
exit`;
  const c = constHoists(section(src));
  t.is(c.length, 1);
  t.is(c[0]!.saved, 1);
  t.is(text(c[0]!.next.insns), 'w7 = -1; if r1 == 0 goto a; r0 = 1; goto j; r0 = 2; *(u32 *)(r10 - 4) = r7; exit');
  t.deepEqual(c[0]!.steps!.map((s) => [s.at, s.remove, s.insns.length]), [[0, 0, 1], [5, 1, 0], [2, 1, 0]], 'inserted, then the copies deleted last first');
  // r7 read by the branch itself: live at the dominator's end, nothing to hoist into
  t.deepEqual(constHoists(section(src.replace('if r1 == 0', 'if r7 == 0'))), []);
  // read before the branch but dead at its end (both paths set it first): still hoisted
  t.is(constHoists(section(`*(u32 *)(r10 - 8) = r7\n${src}`))[0]?.saved, 1);
  // different constants on the two paths: not the same assignment
  t.deepEqual(constHoists(section(src.replace('a:\nw7 = -1', 'a:\nw7 = -2'))), []);
  // one path only assigns it: nothing redundant after hoisting (saves nothing)
  t.deepEqual(constHoists(section(src.replace('a:\nw7 = -1\n', 'a:\n'))), []);
});

test('null checks: a pointer the safety model knows cannot be null is not compared with 0', (t) => {
  const sec = section('if r1 == 0 goto out\nr0 = *(u32 *)(r1 + 0)\nexit\nout:\nr0 = 0\nexit');
  const ctx = new Map<number, WindowPre>([[0, { regs: { 1: { kind: 'ctx', off: 0 } } }]]);
  const c = nullChecks(sec, ctx);
  t.is(c.length, 1);
  t.is(text(c[0]!.next.insns), 'r0 = *(u32 *)(r1 + 0); exit', 'the check and the code only it reached are gone');
  t.true(c[0]!.cleanup);
  // `!= 0` always jumps
  const ne = nullChecks(section('if r1 != 0 goto on\nr0 = 0\nexit\non:\nr0 = 1\nexit'), ctx);
  t.is(text(ne[0]!.next.insns), 'goto on; r0 = 1; exit');
  // a scalar, memory that may be null (PTR_TO_MEM from a helper or a global function's argument), no facts
  t.deepEqual(nullChecks(sec, new Map([[0, { regs: { 1: { kind: 'scalar' } } }]])), []);
  t.deepEqual(nullChecks(sec, new Map([[0, { regs: { 1: { kind: 'mem', size: 8 } } }]])), []);
  t.deepEqual(nullChecks(sec, null), []);
});

test('jump threading and unreachable code', (t) => {
  const sec = section('if r1 == 0 goto a\nr0 = 1\nexit\na:\ngoto b\nb:\nr0 = 2\nexit');
  const c = jumpThreads(sec);
  t.is(c.length, 1);
  t.is(text(c[0]!.next.insns), 'if r1 == 0 goto b; r0 = 1; exit; r0 = 2; exit');
  // the goto is also reached by falling into it: it stays, nothing saved, no candidate
  t.deepEqual(jumpThreads(section('if r1 == 0 goto a\nif r2 == 0 goto c\nr0 = 1\na:\ngoto b\nc:\nr0 = 3\nexit\nb:\nr0 = 2\nexit')), []);
  t.deepEqual([...unreachable(section('r0 = 0\nexit\nr0 = 1\nexit'))], [2, 3]);
  const fn = { ...section('r0 = 0\nexit\nf:\nr0 = 1\nexit\ng:\nr0 = 2\nexit'), symbols: [{ sym: 1, start: 'f', end: 'g' }, { sym: 2, start: 'g', end: null }] };
  t.deepEqual([...unreachable(fn)], [4, 5], 'a function symbol is an entry, a sizeless block label is not');
  // deleting keeps labels on the next instruction; deleting the last labelled instruction fails
  const d = deleteInsns(section('r0 = 0\nl:\nr1 = 1\nexit'), new Set([1]))!;
  t.deepEqual(d.insns[1]!.labels, ['l']);
  t.is(deleteInsns(section('r0 = 0\nl:\nexit'), new Set([1])), null);
});

// ---- end to end: proven, gated, identical in the interpreter ----

const emptyStats = (): SectionStats => ({ windows: 0, proposals: 0, proven: 0, refuted: 0, unknown: 0, gateRejected: 0, rewrites: 0, smtMs: [] });

function sessionFor(obj: BpfObject, name: string): { s: SectionSession; users: ProgramRef[] } {
  const si = obj.code.findIndex((x) => x.name === name);
  const safe = new Map(checkObject(obj).map((v) => [`${v.section}/${v.name}`, v.safe]));
  const users = obj.programs.filter((p) => programCode(obj, p).some((x) => x.name === name) && safe.get(`${p.section}/${p.name}`));
  const gate = (c: BpfObject): boolean => users.every((p) => { try { return checkLinked(linkProgram(c, p)).safe; } catch { return false; } });
  return { s: new SectionSession(obj, si, gate, { ...DEFAULT_SYNTH, timeoutMs: 20000 }, emptyStats()), users };
}

const objectAt = (rel: string): string | undefined => (rel.includes('/') ? join(corpusDir, rel) : fixtureObjects().find((f) => f.endsWith(`/${rel}`)));

const e2e: [string, string, RegionCandidate['kind'], (s: SectionSession) => RegionCandidate[]][] = [
  ['cgroup_skb.o', 'cgroup_skb/ingress', 'const-hoist', (s) => constHoists(s.section)],
  ['cilium-examples/xdp_bpf_bpfel.o', 'xdp', 'bounds-merge', (s) => boundsMerges(s.section)],
  ['cilium-examples/tcprtt_sockops_bpf_bpfel.o', 'sockops', 'null-check', (s) => nullChecks(s.section, s.state.safetyPres())],
];
for (const [file, secName, kind, find] of e2e) {
  test.serial(`${kind} on ${file}: proven, accepted by the safety model, identical in the interpreter`, async (t) => {
    const f = objectAt(file);
    if (!f || !existsSync(f)) return t.fail(`${file} missing (fixtures: make -C fixtures; corpus: ../shared/corpus)`);
    const obj = readObject(f);
    const { s, users } = sessionFor(obj, secName);
    const c = find(s).filter((x) => x.kind === kind)[0];
    if (!c) return t.fail(`no ${kind} candidate in ${file}`);
    const before = sectionSlots(s.section);
    t.true(await s.tryRegion(c), `${kind} at ${c.start} proven and accepted`);
    t.is(sectionSlots(s.section), before - c.saved);
    t.is(s.steps[0]!.kind, kind);
    let runs = 0;
    for (const p of users) {
      const d = interpDiffers(obj, s.withSection(s.section), p, 60, 5);
      if (d === null) continue;
      t.false(d, `${p.name} behaves differently`);
      runs++;
    }
    t.log(`${file}: ${before} → ${sectionSlots(s.section)} slots, ${runs} programs replayed`);
  });
}

test.serial('a wrong region rewrite is refused: a constant deleted on a path that needs it, a bounds check widened to another place', async (t) => {
  const f = objectAt('cgroup_skb.o');
  if (!f || !existsSync(f)) return t.fail('cgroup_skb.o missing (make -C fixtures)');
  const obj = readObject(f);
  const { s } = sessionFor(obj, 'cgroup_skb/ingress');
  const c = constHoists(s.section)[0];
  if (!c) return t.fail('no constant hoist candidate');
  // without the inserted copy the deletions remove values some path needs
  const wrong: RegionCandidate = { ...c, steps: c.steps!.slice(1).map((x) => ({ ...x, at: x.at - 1 })) };
  t.false(await s.tryRegion(wrong));
  t.is(s.steps.length, 0);
  const g = objectAt('cilium-examples/xdp_bpf_bpfel.o');
  if (!g || !existsSync(g)) return t.fail('corpus missing');
  const xo = readObject(g);
  const x = sessionFor(xo, 'xdp').s;
  const b = boundsMerges(x.section)[0];
  if (!b) return t.fail('no bounds candidate');
  // the wider check moved up but jumping to the pass path instead of the drop path
  const bad: RegionCandidate = { ...b, window: b.window!.map((i, k) => (k === 2 ? { ...i, target: x.section.insns[b.end]!.labels?.[0] ?? 'nowhere' } : i)) };
  t.false(await x.tryRegion(bad));
  t.is(x.steps.length, 0);
});
