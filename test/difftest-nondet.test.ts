// `k2 difftest` is right when it says "different": nondeterministic outputs (clock values) are
// detected by running the original twice and named, not reported as mismatches; a real difference
// next to them is still caught; a program the kernel cannot test-run is listed with the kernel's
// reason while the others are tested; exit codes 0 / 1 / 7. Needs root (bpf()) and the fixtures
// in fixtures/difftest (make -C fixtures).
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { diffObjects } from '../src/testgen/diff.js';
import { bpfAvailable } from '../src/kernel/index.js';

const root = new URL('..', import.meta.url).pathname;
const fx = (n: string): string => join(root, 'fixtures/difftest/build', n);
const bin = join(root, 'bin/k2.js');

test.serial('difftest fixtures are built and bpf() works', async (t) => {
  const a = await bpfAvailable();
  t.true(a.ok, `bpf() unavailable: ${a.reason}`);
  for (const f of ['timestamp.o', 'cpumap.o', 'pair_orig.o', 'pair_diff.o']) t.true(existsSync(fx(f)), `${f} is not built (make -C fixtures)`);
});

test.serial('a program stamping bpf_ktime_get_ns() into its packet metadata: 0 mismatches against itself, the clock bytes named', async (t) => {
  const r = await diffObjects(fx('timestamp.o'), fx('timestamp.o'), { inputs: 300, seed: 2 });
  t.deepEqual(r.untestable, []);
  const p = r.programs.find((x) => x.name === 'xdp_timestamp')!;
  t.truthy(p);
  t.is(p.inputs, 300);
  t.is(p.mismatches, 0, JSON.stringify(p.mismatchList));
  // The metadata (output bytes 0..7) holds the clock: its low bytes change from run to run; the
  // frame after it never does.
  const pkt = p.nondeterministic?.find((f) => f.field === 'packet');
  t.truthy(pkt, JSON.stringify(p.nondeterministic));
  const bytes = pkt!.bytes!.split(',').flatMap((r) => {
    const [lo, hi] = r.split('-').map(Number);
    return Array.from({ length: (hi ?? lo!) - lo! + 1 }, (_, i) => lo! + i);
  });
  t.true(bytes.includes(0) && bytes.every((b) => b < 8), pkt!.bytes!);
  t.is(pkt!.inputs, 300, 'the clock differs on every input');
  // The map of last-seen times is nondeterministic in its values; the per-protocol counters are not.
  t.truthy(p.nondeterministic!.find((f) => f.field === 'map last_seen value'));
  t.falsy(p.nondeterministic!.find((f) => f.field.startsWith('map per_proto')));
  t.falsy(p.nondeterministic!.find((f) => f.field === 'ret'));
  t.is(p.nondetInputs, 300);
});

test.serial('a real difference next to nondeterministic bytes is still caught, with its input', async (t) => {
  const same = await diffObjects(fx('pair_orig.o'), fx('pair_orig.o'), { inputs: 400, seed: 4 });
  t.is(same.programs[0]!.mismatches, 0, JSON.stringify(same.programs[0]!.mismatchList));
  t.truthy(same.programs[0]!.nondeterministic?.find((f) => f.field === 'map flow_time value'));

  const r = await diffObjects(fx('pair_orig.o'), fx('pair_diff.o'), { inputs: 400, seed: 4 });
  const p = r.programs[0]!;
  t.true(p.mismatches > 0);
  const ret = p.mismatchList!.find((m) => m.field === 'ret');
  t.truthy(ret, JSON.stringify(p.mismatchList));
  // The input that shows it is an IPv4 packet with TTL 1: dropped by the original, passed by the other.
  const pkt = Buffer.from(ret!.packet, 'hex');
  t.is(pkt.readUInt16BE(12), 0x0800);
  t.is(pkt[14 + 8], 1);
  t.is(ret!.a, 1); // XDP_DROP
  t.is(ret!.b, 2); // XDP_PASS
  // The per-TTL counters differ too (after the session holding such a packet); the clock never counts.
  t.truthy(p.mismatchList!.find((m) => m.field === 'map stats' && m.after));
  t.falsy(p.mismatchList!.find((m) => m.field === 'map flow_time'));
});

test.serial('an xdp/cpumap program next to a normal XDP program: the normal one is tested, the other listed with the kernel reason', async (t) => {
  const r = await diffObjects(fx('cpumap.o'), fx('cpumap.o'), { inputs: 100, seed: 1 });
  t.deepEqual(r.programs.map((p) => p.name), ['xdp_redirect_cpu']);
  t.is(r.programs[0]!.inputs, 100);
  t.is(r.programs[0]!.mismatches, 0);
  t.is(r.untestable.length, 1);
  t.is(r.untestable[0]!.name, 'xdp_on_cpu');
  t.regex(r.untestable[0]!.why, /xdp\/cpumap.*EINVAL/);
});

test.serial('k2 difftest exit codes and --json: 0 same, 1 different, 7 nothing testable', async (t) => {
  if (!existsSync(join(root, 'dist/cli/main.js'))) return t.fail('dist/ is not built (npm run build)');
  const same = await execa('node', [bin, 'difftest', fx('timestamp.o'), fx('timestamp.o'), '--inputs', '60', '--json'], { reject: false });
  t.is(same.exitCode, 0, same.stderr);
  const j = JSON.parse(same.stdout) as { tested: boolean; programs: { name: string; inputs: number; mismatches: number; nondeterministic: { field: string; bytes: string | null }[] }[]; untestable: unknown[] };
  t.true(j.tested);
  t.is(j.programs[0]!.mismatches, 0);
  t.true(j.programs[0]!.nondeterministic.some((f) => f.field === 'packet'));

  const text = await execa('node', [bin, 'difftest', fx('timestamp.o'), fx('timestamp.o'), '--inputs', '30'], { reject: false });
  t.is(text.exitCode, 0, text.stderr);
  t.regex(text.stdout, /nondeterministic in orig .*packet bytes 0-/);

  const diff = await execa('node', [bin, 'difftest', fx('pair_orig.o'), fx('pair_diff.o'), '--inputs', '200', '--json'], { reject: false });
  t.is(diff.exitCode, 1, diff.stderr);
  const dj = JSON.parse(diff.stdout) as { programs: { mismatches: number; mismatchList: { input: number; packet: string; field: string }[] }[] };
  t.true(dj.programs[0]!.mismatches > 0);
  t.true(dj.programs[0]!.mismatchList.every((m) => typeof m.input === 'number' && typeof m.packet === 'string'));

  const cpumap = await execa('node', [bin, 'difftest', fx('cpumap.o'), fx('cpumap.o'), '--inputs', '20'], { reject: false });
  t.is(cpumap.exitCode, 0, cpumap.stderr);
  t.regex(cpumap.stdout, /not tested: xdp\/cpumap xdp_on_cpu/);

  // Only a kprobe and tracepoints: nothing can be test-run.
  const none = await execa('node', [bin, 'difftest', join(root, 'fixtures/build/tracing.o'), join(root, 'fixtures/build/tracing.o'), '--json'], { reject: false });
  t.is(none.exitCode, 7, none.stderr);
  const nj = JSON.parse(none.stdout) as { tested: boolean; untestable: { why: string }[] };
  t.false(nj.tested);
  t.true(nj.untestable.length >= 1 && nj.untestable.every((u) => /BPF_PROG_TEST_RUN/.test(u.why)));
});
