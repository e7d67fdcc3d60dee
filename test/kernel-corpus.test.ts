// Every object of the shared corpus gets a verdict (accepted / rejected with reason / cannot load
// here with reason, or malformed input) without crashing, and the two loaders agree on a sample.
import test from 'ava';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { bpfAvailable, verifyObject, type VerifyReport } from '../src/kernel/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const corpus = fileURLToPath(new URL('../../shared/corpus/ebpf-samples', import.meta.url));

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out.sort();
}

const avail = await bpfAvailable('libbpf');
if (!avail.ok) console.error(`\n*** kernel-corpus: SKIPPING bpf() tests: ${avail.reason} ***\n`);
const kernelTest = avail.ok ? test : test.skip;

test('the corpus is present', (t) => {
  if (!existsSync(corpus)) return t.fail(`corpus not found at ${corpus} (expected ../shared/corpus/ebpf-samples next to the repository)`);
  t.true(walk(corpus).length >= 150);
});

const reports = new Map<string, VerifyReport>();

kernelTest.serial('every corpus object gets a verdict with a reason, without crashing', async (t) => {
  if (!existsSync(corpus)) return t.fail(`corpus not found at ${corpus}`);
  const started = Date.now();
  const tally = { accepted: 0, rejected: 0, cannotLoad: 0, malformed: 0 };
  const progs = { accepted: 0, rejected: 0, cannotLoad: 0 };
  const reasons = new Map<string, number>();
  const legacyJudged = new Map<string, number>(); // program type → programs judged through k2's legacy loader
  for (const f of walk(corpus)) {
    const r = await verifyObject(f);
    reports.set(relative(corpus, f), r);
    if (r.loader === 'legacy') {
      t.regex(r.fixups[0] ?? '', /libbpf >= 1\.0 refuses legacy map definitions/, `${f}: the legacy path says why`);
      for (const p of r.programs) if (p.verdict !== 'cannot-load') legacyJudged.set(p.type, (legacyJudged.get(p.type) ?? 0) + 1);
    }
    for (const p of r.programs) {
      t.true(['accepted', 'rejected', 'cannot-load'].includes(p.verdict));
      t.is(p.accepted, p.verdict === 'accepted');
      if (!p.accepted) t.truthy(p.error, `${f} ${p.name}: a reason is given`);
      if (p.verdict === 'rejected') t.true(p.log.length > 0 || /kernel refused/.test(p.error ?? ''), `${f} ${p.name}: rejected with a log`);
      if (p.accepted) t.true(p.xlatedInsns !== null && p.verifiedInsns !== null, `${f} ${p.name}: sizes reported`);
      progs[p.verdict === 'cannot-load' ? 'cannotLoad' : p.verdict]++;
    }
    let verdict: keyof typeof tally;
    if (r.malformed) verdict = 'malformed';
    else if (r.programs.length > 0 && r.programs.every((p) => p.accepted) && !r.objectError) verdict = 'accepted';
    else if (r.programs.some((p) => p.verdict === 'rejected')) verdict = 'rejected';
    else verdict = 'cannotLoad';
    tally[verdict]++;
    if (verdict !== 'accepted') {
      const why = (r.objectError ?? r.programs.find((p) => !p.accepted)?.error ?? '?').replace(/'[^']*'/g, "'…'").replace(/\(.*$/, '').slice(0, 90);
      t.truthy(why, `${f}: a reason`);
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
    }
  }
  const ms = Date.now() - started;
  t.log(`objects: ${JSON.stringify(tally)}; programs: ${JSON.stringify(progs)}; ${ms} ms`);
  for (const [why, n] of [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 8)) t.log(`${n} × ${why}`);
  t.true(tally.accepted > 0 && tally.rejected > 0 && tally.cannotLoad > 0 && tally.malformed > 0, 'all four outcomes occur');
  const judged = [...legacyJudged.values()].reduce((a, b) => a + b, 0);
  t.log(`programs judged by the kernel through k2's legacy loader (libbpf refuses their objects): ${judged} ${JSON.stringify(Object.fromEntries(legacyJudged))}`);
  t.true(judged >= 125, `legacy-maps objects have kernel ground truth (${judged} programs)`);
  for (const type of ['xdp', 'kprobe', 'socket_filter', 'tracepoint']) t.true((legacyJudged.get(type) ?? 0) > 0, `some ${type} program judged through the legacy loader`);
});

kernelTest.serial('known corpus objects get the expected verdicts', (t) => {
  if (reports.size === 0) return t.fail('the corpus pass did not run');
  const get = (name: string) => {
    const r = reports.get(name);
    if (!r) throw new Error(`no report for ${name}`);
    return r;
  };
  const sockex1 = get('linux/sockex1_kern.o');
  t.is(sockex1.loader, 'legacy', 'libbpf refuses legacy maps; k2 loads them itself');
  t.true(sockex1.programs.length > 0 && sockex1.programs.every((p) => p.accepted));
  t.true(get('invalid/badsymsize.o').malformed);
  t.true(get('new_linux/sockex1_kern.o').programs.every((p) => p.accepted));
  const overflow = get('build/packet_overflow.o').programs[0]!;
  t.is(overflow.verdict, 'rejected');
  t.regex(overflow.error ?? '', /outside of the packet/);
  const tcbpf = get('linux/tcbpf1_kern.o');
  t.is(tcbpf.programs.find((p) => p.section === 'classifier')?.verdict, 'accepted', 'old-clang symbols fixed up');
  t.true(tcbpf.fixups.some((f) => /NOTYPE/.test(f)));
  const fentry = get('cilium-examples/fentry_bpf_bpfel.o').programs[0]!;
  t.is(fentry.verdict, 'cannot-load', 'fentry cannot load on this kernel');
  t.is(get('build/divzero.o').programs[0]!.verdict, 'cannot-load', "section 'test' has no program type");
  t.regex(get('build/divzero.o').programs[0]!.error ?? '', /--type/);
});

kernelTest.serial('--type gives a program type to unknown sections', async (t) => {
  const r = await verifyObject(join(corpus, 'build/divzero.o'), { progType: 'socket' });
  t.is(r.programs[0]!.verdict, 'accepted');
  t.is(r.programs[0]!.type, 'socket_filter');
  t.true(r.programs[0]!.fixups.some((f) => /--type socket/.test(f)));
});

const SAMPLE = [
  'build/packet_overflow.o', 'build/tail_call.o', 'build/divzero.o', 'linux/sockex1_kern.o', 'linux/tcbpf1_kern.o',
  'invalid/badsymsize.o', 'invalid/806cc077e56f0ec32236c99055714f63649e7a38', 'new_linux/sockex3_kern.o',
  'cilium-examples/fentry_bpf_bpfel.o', 'cilium-core/bpf_sock.o',
];

kernelTest('the bpftool loader gives the same verdicts on a corpus sample', async (t) => {
  for (const name of SAMPLE) {
    const f = join(corpus, name);
    const a = await verifyObject(f, { loader: 'libbpf' });
    const b = await verifyObject(f, { loader: 'bpftool' });
    const v = (r: VerifyReport) => ({ malformed: r.malformed, objectError: r.objectError, programs: r.programs.map((p) => [p.section, p.name, p.type, p.verdict, p.error]) });
    t.deepEqual(v(b), v(a), name);
  }
});

kernelTest('k2 verify exits 2 on malformed input, 0 for a legacy-maps object, 7 when programs cannot load here', async (t) => {
  const bad = await execa('node', [join(root, 'bin/k2.js'), 'verify', join(corpus, 'invalid/badsymsize.o')], { reject: false });
  t.is(bad.exitCode, 2);
  t.regex(String(bad.stderr), /malformed BPF object/);
  const legacy = await execa('node', [join(root, 'bin/k2.js'), 'verify', join(corpus, 'linux/sockex1_kern.o'), '--json'], { reject: false });
  t.is(legacy.exitCode, 0, String(legacy.stderr));
  const j = JSON.parse(String(legacy.stdout)) as { loader: string; programs: { verdict: string; accepted: boolean }[] };
  t.is(j.loader, 'legacy');
  t.true(j.programs.length > 0 && j.programs.every((p) => p.verdict === 'accepted' && p.accepted));
  const fentry = await execa('node', [join(root, 'bin/k2.js'), 'verify', join(corpus, 'cilium-examples/fentry_bpf_bpfel.o')], { reject: false });
  t.is(fentry.exitCode, 7, 'cannot load here (EPERM on fentry) is not a rejection');
  t.regex(String(fentry.stdout), /cannot load here/);
});

kernelTest('randomly corrupted fixtures get a verdict, never a crash or an exception', async (t) => {
  const names = ['xdp_parser.o', 'tc_classifier.o', 'global_data.o', 'core.o', 'calls.o'];
  const files = names.map((n) => join(root, 'fixtures/build', n)).filter((p) => existsSync(p));
  if (files.length !== names.length) return t.fail('fixtures not built: run make -C fixtures');
  const { readFileSync } = await import('node:fs');
  const srcs = files.map((f) => readFileSync(f));
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < 80; i++) {
    const b = new Uint8Array(srcs[rnd() % srcs.length]!);
    for (let k = 1 + (rnd() % 4); k > 0; k--) b[rnd() % b.length] = rnd() & 0xff;
    const r = await verifyObject(b, { name: `mutant-${i}.o` });
    t.true(r.malformed || r.objectError !== null || r.programs.length > 0, `mutant ${i}: some verdict`);
    for (const p of r.programs) if (!p.accepted) t.truthy(p.error, `mutant ${i} ${p.name}: a reason`);
  }
});
