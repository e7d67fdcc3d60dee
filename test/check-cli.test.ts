// `k2 check` (the pre-deploy gate) and `k2 verify` as a CI job sees them: exit codes 0/1/7/2 on an
// accepted, a rejected and a cannot-load-here object, the full verifier log in a file, --compare
// columns and deltas, --json. Needs `npm run build` first (the CLI runs from dist/).
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { bpfAvailable } from '../src/kernel/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (n: string) => join(root, 'fixtures/build', n);
const legacy = (n: string) => join(root, 'fixtures/legacy/build', n);
const cilium = (n: string) => fileURLToPath(new URL(`../../shared/corpus/cilium-ebpf-testdata/${n}`, import.meta.url));
const samples = (n: string) => fileURLToPath(new URL(`../../shared/corpus/ebpf-samples/${n}`, import.meta.url));
const k2 = (...args: string[]) => execa('node', [join(root, 'bin/k2.js'), ...args], { reject: false, cwd: root });

const ACCEPTED = fixture('xdp_parser.o');
const REJECTED = fixture('unsafe.o');
const CANNOT = cilium('fentry_fexit-el.elf'); // fentry/fexit get EPERM here; its sched_cls `target` loads
const LEGACY = legacy('xdp_maps.o');

const avail = await bpfAvailable('libbpf');
if (!avail.ok) console.error(`\n*** check-cli: SKIPPING bpf() tests: ${avail.reason} ***\n`);
const kernelTest = avail.ok ? test : test.skip;
const missing = () => [ACCEPTED, REJECTED, CANNOT, LEGACY].find((f) => !existsSync(f));

interface JsonProgram { section: string; name: string; type: string; verdict: string; verifiedInsns: number | null; xlatedInsns: number | null; loadMs: number | null; error: string | null; logFile: string | null; before: null | { verdict: string; verifiedInsns: number | null; xlatedInsns: number | null } }
interface JsonCheck { objects: { file: string; compare: string | null; loader: string; programs: JsonProgram[] }[]; summary: { accepted: number; rejected: number; cannotLoad: number; missing: number }; exitCode: number }

test('check --help documents the table, --compare and the exit codes', async (t) => {
  const r = await k2('check', '--help');
  t.is(r.exitCode, 0);
  const out = String(r.stdout);
  for (const code of ['0 ', '1 ', '2 ', '3 ', '7 ']) t.true(out.includes(`\n  ${code}`), `lists exit code ${code}`);
  t.regex(out, /Exit status for check/);
  t.regex(out, /--compare <OTHER\.\.\.>/);
  t.regex(out, /--json/);
  t.regex(String((await k2('verify', '--help')).stdout), /7 no program rejected but some cannot be checked on this host/);
});

test('check: usage errors exit 2', async (t) => {
  t.is((await k2('check')).exitCode, 2, 'an object is required');
  t.is((await k2('check', '/no/such/object.o')).exitCode, 2);
  t.is((await k2('check', ACCEPTED, '--loader', 'nope')).exitCode, 2);
  const pairs = await k2('check', ACCEPTED, REJECTED, '--compare', ACCEPTED);
  t.is(pairs.exitCode, 2);
  t.regex(String(pairs.stderr), /--compare needs one baseline per object/);
});

kernelTest('check exits 0 when every program is accepted (table with verified/xlated insns and load ms)', async (t) => {
  if (missing()) return t.fail(`${missing()} missing: make -C fixtures; corpus at ../shared/corpus`);
  const r = await k2('check', ACCEPTED, LEGACY);
  t.is(r.exitCode, 0, String(r.stderr));
  const out = String(r.stdout);
  t.regex(out, /object\s+program\s+type\s+verdict\s+verified_insns\s+xlated_insns\s+load_ms/);
  t.regex(out, /xdp_parser\.o\s+xdp_parser\s+xdp\s+accepted\s+\d+\s+\d+\s+\d+\.\d/);
  t.regex(out, /xdp_maps\.o\s+xdp_count\s+xdp\s+accepted/, 'a legacy-maps object is checked too');
  t.regex(out, /note: xdp_maps\.o: loaded by k2's legacy loader/);
  t.regex(out, /2 accepted, 0 rejected, 0 cannot load here \(2 objects\)/);
});

kernelTest('check exits 1 on a rejected program: last verifier lines on screen, the full log in a file', async (t) => {
  if (missing()) return t.fail(`${missing()} missing`);
  const dir = mkdtempSync(join(tmpdir(), 'k2-check-test-'));
  try {
    const r = await k2('check', ACCEPTED, REJECTED, '--log-dir', dir, '--log-lines', '3');
    t.is(r.exitCode, 1, String(r.stderr));
    const out = String(r.stdout);
    t.regex(out, /unsafe\.o\s+xdp_unsafe\s+xdp\s+REJECTED/);
    t.regex(out, /xdp\/xdp_unsafe: rejected: verifier: invalid access to packet/);
    t.is(out.split('\n').filter((l) => l.startsWith('  | ')).length, 3, '--log-lines 3');
    const m = /full verifier log: (.+)/.exec(out);
    t.truthy(m, 'the log file is named');
    t.true(m![1]!.startsWith(dir));
    const log = readFileSync(m![1]!, 'utf8');
    t.regex(log, /R1 offset is outside of the packet/);
    t.regex(log, /processed \d+ insns/);
    // A rejection wins over programs that cannot load here.
    t.is((await k2('check', CANNOT, REJECTED, '--log-dir', dir)).exitCode, 1);
    // k2 verify: the same meaning.
    t.is((await k2('verify', REJECTED)).exitCode, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('check exits 7 when a program cannot load on this host and nothing was rejected (fentry EPERM)', async (t) => {
  if (missing()) return t.fail(`${missing()} missing`);
  const r = await k2('check', CANNOT, ACCEPTED);
  t.is(r.exitCode, 7, String(r.stdout) + String(r.stderr));
  const out = String(r.stdout);
  t.regex(out, /trace_on_entry\s+tracing\s+cannot load here/);
  t.regex(out, /target\s+sched_cls\s+accepted/, 'the loadable program of the same object is checked');
  t.regex(out, /EPERM/);
  t.is((await k2('verify', CANNOT)).exitCode, 7, 'k2 verify: cannot load here is not a rejection');
  t.is((await k2('verify', ACCEPTED)).exitCode, 0);
  t.is((await k2('verify', LEGACY)).exitCode, 0, 'a legacy-maps object verifies through the legacy loader');
});

kernelTest('check exits 2 on a malformed object', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-check-bad-'));
  try {
    const bad = join(dir, 'bad.o');
    const bytes = readFileSync(ACCEPTED);
    writeFileSync(bad, bytes.subarray(0, 200));
    const r = await k2('check', ACCEPTED, bad);
    t.is(r.exitCode, 2);
    t.regex(String(r.stderr), /bad\.o: malformed BPF object/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('check --compare: before/after columns and deltas; programs missing from the new object fail', async (t) => {
  const oldObj = samples('linux/sockex1_kern.o'); // legacy maps (k2's legacy loader)
  const newObj = samples('new_linux/sockex1_kern.o'); // the same program with BTF maps (libbpf)
  for (const f of [oldObj, newObj, samples('linux/tracex4_kern.o'), samples('new_linux/tracex4_kern.o')]) if (!existsSync(f)) return t.fail(`${f} missing (corpus at ../shared/corpus)`);
  const r = await k2('check', newObj, samples('new_linux/tracex4_kern.o'), '--compare', oldObj, samples('linux/tracex4_kern.o'));
  t.is(r.exitCode, 0, String(r.stdout) + String(r.stderr));
  const out = String(r.stdout);
  t.regex(out, /A = --compare \(before\), B = OBJ \(after\)/);
  t.regex(out, /verified \(A\)\s+verified \(B\)\s+verified \(B-A\)\s+xlated \(A\)\s+xlated \(B\)\s+xlated \(B-A\)\s+load ms \(A\)\s+load ms \(B\)/);
  t.regex(out, /sockex1_kern\.o\s+bpf_prog1\s+socket_filter\s+accepted\s+(\d+)\s+\1\s+0\s+(\d+)\s+\2\s+0/, 'same program, zero deltas');
  const json = await k2('check', newObj, '--compare', oldObj, '--json');
  const j = JSON.parse(String(json.stdout)) as JsonCheck;
  t.is(j.objects[0]!.compare, oldObj);
  const p = j.objects[0]!.programs[0]!;
  t.is(p.before!.verdict, 'accepted');
  t.is(p.before!.xlatedInsns, p.xlatedInsns);
  // A different object as baseline: its programs are missing from the checked one.
  const other = await k2('check', ACCEPTED, '--compare', fixture('tc_classifier.o'));
  t.is(other.exitCode, 1);
  t.regex(String(other.stdout), /MISSING/);
  t.regex(String(other.stdout), /missing \(the --compare object has it\)/);
  // A baseline's verdict shows in the before column.
  const d = await k2('check', REJECTED, '--compare', REJECTED, '--json');
  const dj = JSON.parse(String(d.stdout)) as JsonCheck;
  t.is(d.exitCode, 1);
  t.is(dj.objects[0]!.programs[0]!.before!.verdict, 'rejected');
});

kernelTest('check --json: every program with verdict, sizes, load time, log file; summary and exit code', async (t) => {
  if (missing()) return t.fail(`${missing()} missing`);
  const dir = mkdtempSync(join(tmpdir(), 'k2-check-json-'));
  try {
    const r = await k2('check', ACCEPTED, REJECTED, CANNOT, '--json', '--log-dir', dir);
    t.is(r.exitCode, 1);
    const j = JSON.parse(String(r.stdout)) as JsonCheck;
    t.is(j.exitCode, 1);
    t.deepEqual(j.summary, { accepted: 2, rejected: 1, cannotLoad: 2, missing: 0 });
    t.deepEqual(j.objects.map((o) => o.file), [ACCEPTED, REJECTED, CANNOT]);
    const all = j.objects.flatMap((o) => o.programs);
    for (const p of all) {
      for (const k of ['section', 'name', 'type', 'verdict', 'verifiedInsns', 'xlatedInsns', 'loadMs', 'error', 'logFile', 'before']) t.true(k in p, `${p.name} has ${k}`);
      if (p.verdict === 'accepted') {
        t.true((p.verifiedInsns ?? 0) > 0 && (p.xlatedInsns ?? 0) > 0 && (p.loadMs ?? -1) >= 0, `${p.name}: sizes and load time`);
        t.is(p.error, null);
      } else t.truthy(p.error);
      t.is(p.before, null);
    }
    const rej = all.find((p) => p.verdict === 'rejected')!;
    t.truthy(rej.logFile);
    t.regex(readFileSync(rej.logFile!, 'utf8'), /outside of the packet/);
    const ok = await k2('check', ACCEPTED, '--json');
    t.is(ok.exitCode, 0);
    t.is((JSON.parse(String(ok.stdout)) as JsonCheck).exitCode, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
