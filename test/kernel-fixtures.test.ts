// The kernel layer against the fixtures and against bpftool, the reference loader:
// verdicts agree with `bpftool prog loadall`, the unsafe fixture is rejected with its verifier log,
// runs agree with `bpftool prog run` (retval and output packet), verified_insns is reported.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { bpfAvailable, findBpftool, openLoaded, verifyObject, type VerifyReport } from '../src/kernel/index.js';
import { makePinDir } from '../src/kernel/bpffs.js';

interface Sample { name: string; data: string; retval: number; dataOut?: string }
interface ManifestProgram { section: string; name: string; type: string; loads: boolean; testRun: boolean; samples?: Sample[]; why?: string; errorMatch?: string }
interface ManifestObject { object: string; programs: ManifestProgram[] }

const root = fileURLToPath(new URL('..', import.meta.url));
const manifestPath = join(root, 'fixtures/manifest.json');
const manifest: ManifestObject[] = existsSync(manifestPath) ? JSON.parse(readFileSync(manifestPath, 'utf8')) : [];
const objPath = (o: ManifestObject) => join(root, 'fixtures', o.object);

const avail = await bpfAvailable('libbpf');
const bpftool = findBpftool();
if (!avail.ok) console.error(`\n*** kernel-fixtures: SKIPPING bpf() tests: ${avail.reason} ***\n`);
if (!bpftool) console.error('\n*** kernel-fixtures: bpftool not found: the comparison tests will fail ***\n');
const kernelTest = avail.ok ? test : test.skip;

test('the fixtures are built', (t) => {
  if (manifest.length === 0) return t.fail(`no ${manifestPath}: run make -C fixtures`);
  for (const o of manifest) t.true(existsSync(objPath(o)), `${o.object} missing: run make -C fixtures`);
});

/** Raw bpftool: loadall into a private bpffs; returns exit status, stderr and the pin dirs. */
async function bpftoolLoadall(obj: string, pin: string) {
  const r = await execa(bpftool!, ['prog', 'loadall', obj, join(pin, 'progs'), 'pinmaps', join(pin, 'maps')], { reject: false });
  return { ok: r.exitCode === 0, stderr: String(r.stderr) };
}

async function bpftoolRun(pinned: string, data: Uint8Array, dir: string) {
  writeFileSync(join(dir, 'in'), data);
  const r = await execa(bpftool!, ['-j', 'prog', 'run', 'pinned', pinned, 'data_in', join(dir, 'in'), 'data_out', join(dir, 'out'), 'data_size_out', String(data.length + 4096)], { reject: false });
  if (r.exitCode !== 0) throw new Error(`bpftool prog run ${pinned}: ${r.stdout} ${r.stderr}`);
  const j = JSON.parse(String(r.stdout)) as { retval: number };
  return { retval: j.retval >>> 0, dataOut: Buffer.from(readFileSync(join(dir, 'out'))).toString('hex') };
}

const verdictsOf = (r: VerifyReport) => r.programs.map((p) => ({ section: p.section, name: p.name, type: p.type, verdict: p.verdict, error: p.error, xlatedInsns: p.xlatedInsns }));

for (const o of manifest) {
  kernelTest(`${o.object}: verdicts agree with bpftool prog loadall and the manifest`, async (t) => {
    const report = await verifyObject(objPath(o));
    const pin = makePinDir();
    let raw;
    try {
      raw = await bpftoolLoadall(objPath(o), pin.path);
    } finally {
      pin.remove();
    }
    const allAccepted = report.programs.length > 0 && report.programs.every((p) => p.accepted);
    // Legacy `maps` objects: bpftool (libbpf >= 1.0) refuses them, k2's legacy loader loads them.
    const viaLegacy = report.loader === 'legacy';
    if (viaLegacy) t.false(raw.ok, 'bpftool refuses the legacy object');
    else t.is(allAccepted, raw.ok, `k2 all-accepted=${allAccepted} but bpftool loadall ok=${raw.ok}: ${raw.stderr.slice(-400)}`);
    t.deepEqual(report.programs.map((p) => p.name).sort(), o.programs.map((p) => p.name).sort());
    for (const mp of o.programs) {
      const p = report.programs.find((x) => x.name === mp.name)!;
      if (viaLegacy) {
        t.true(p.accepted, `${mp.name}: the legacy loader accepts it (${p.error})`);
        if (mp.errorMatch) t.true(raw.stderr.includes(mp.errorMatch), `bpftool output mentions ${mp.errorMatch}`);
        continue;
      }
      t.is(p.accepted, mp.loads, `${mp.name}: manifest says loads=${mp.loads}; k2 says ${p.verdict}: ${p.error}`);
      t.is(p.section, mp.section);
      if (p.accepted) {
        t.is(p.type, mp.type);
        t.true((p.verifiedInsns ?? 0) > 0, `${mp.name}: verified_insns must be reported`);
        t.true((p.xlatedInsns ?? 0) > 0, `${mp.name}: xlated insns must be reported`);
      } else {
        t.truthy(p.error, `${mp.name}: a reason is given`);
        if (mp.errorMatch) t.true(raw.stderr.includes(mp.errorMatch), `bpftool output mentions ${mp.errorMatch}`);
      }
    }
  });

  kernelTest(`${o.object}: the bpftool loader gives the same verdicts as the libbpf loader`, async (t) => {
    const a = await verifyObject(objPath(o), { loader: 'libbpf' });
    const b = await verifyObject(objPath(o), { loader: 'bpftool' });
    t.deepEqual(verdictsOf(b), verdictsOf(a));
    t.is(b.objectError, a.objectError);
  });
}

kernelTest('the deliberately unsafe fixture is rejected with its verifier log', async (t) => {
  const o = manifest.find((x) => x.programs.some((p) => !p.loads && p.errorMatch && /packet/.test(p.errorMatch)));
  if (!o) return t.fail('no unsafe fixture in the manifest');
  const mp = o.programs.find((p) => !p.loads)!;
  const r = await verifyObject(objPath(o));
  const p = r.programs.find((x) => x.name === mp.name)!;
  t.is(p.verdict, 'rejected');
  t.false(p.accepted);
  t.true(p.log.includes(mp.errorMatch!), 'the verifier log is captured');
  t.regex(p.log, /processed \d+ insns/);
  t.regex(p.error ?? '', /^verifier: /);
  t.true((p.error ?? '').includes(mp.errorMatch!));
  const cli = await execa('node', [join(root, 'bin/k2.js'), 'verify', objPath(o)], { reject: false });
  t.is(cli.exitCode, 1, 'k2 verify exits 1 when a program is rejected');
  t.true(String(cli.stdout).includes(mp.errorMatch!), 'the table shows the last verifier-log lines');
});

for (const o of manifest) {
  const runnable = o.programs.filter((p) => p.loads && p.testRun && (p.samples?.length ?? 0) > 0);
  if (runnable.length === 0) continue;
  kernelTest(`${o.object}: test runs agree with bpftool prog run and the manifest (both loaders)`, async (t) => {
    const pin = makePinDir();
    const dir = mkdtempSync(join(tmpdir(), 'k2-test-run-'));
    const viaLibbpf = await openLoaded(objPath(o), { loader: 'libbpf' });
    const viaBpftool = await openLoaded(objPath(o), { loader: 'bpftool' });
    try {
      const raw = await bpftoolLoadall(objPath(o), pin.path);
      t.true(raw.ok, raw.stderr);
      for (const mp of runnable) {
        for (const s of mp.samples!) {
          const data = new Uint8Array(Buffer.from(s.data, 'hex'));
          const ref = await bpftoolRun(join(pin.path, 'progs', mp.name), data, dir);
          const a = await viaLibbpf.testRun(mp.name, { dataIn: data });
          const b = await viaBpftool.testRun(mp.name, { dataIn: data });
          const where = `${mp.name}/${s.name}`;
          t.is(a.retval, ref.retval, `${where}: retval (libbpf loader vs bpftool prog run)`);
          t.is(Buffer.from(a.dataOut).toString('hex'), ref.dataOut, `${where}: data_out (libbpf loader vs bpftool prog run)`);
          t.is(b.retval, ref.retval, `${where}: retval (bpftool loader)`);
          t.is(Buffer.from(b.dataOut).toString('hex'), ref.dataOut, `${where}: data_out (bpftool loader)`);
          t.is(a.retval, s.retval, `${where}: retval expected by the manifest`);
          if (s.dataOut) t.is(Buffer.from(a.dataOut).toString('hex'), s.dataOut, `${where}: data_out expected by the manifest`);
        }
      }
    } finally {
      await viaLibbpf.close();
      await viaBpftool.close();
      pin.remove();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

kernelTest('k2 run agrees with bpftool prog run on a fresh load (first sample of every program)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-test-cli-'));
  try {
    for (const o of manifest) {
      for (const mp of o.programs.filter((p) => p.loads && p.testRun && p.samples?.length)) {
        const s = mp.samples![0]!;
        const pin = makePinDir();
        let ref;
        try {
          const raw = await bpftoolLoadall(objPath(o), pin.path);
          t.true(raw.ok, raw.stderr);
          ref = await bpftoolRun(join(pin.path, 'progs', mp.name), new Uint8Array(Buffer.from(s.data, 'hex')), dir);
        } finally {
          pin.remove();
        }
        const cli = await execa('node', [join(root, 'bin/k2.js'), 'run', objPath(o), '--prog', mp.name, '--data-hex', s.data, '--json'], { reject: false });
        t.is(cli.exitCode, 0, String(cli.stderr));
        const out = JSON.parse(String(cli.stdout)) as { retval: number; durationNs: number; dataOut: string };
        t.is(out.retval, ref.retval, `${o.object} ${mp.name}: retval`);
        t.is(out.dataOut, ref.dataOut, `${o.object} ${mp.name}: data_out`);
        t.true(Number.isInteger(out.durationNs));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('maps can be written before and read after a run', async (t) => {
  const o = manifest.find((x) => x.object.includes('xdp_parser'));
  if (!o) return t.fail('xdp_parser fixture missing from the manifest');
  for (const loader of ['libbpf', 'bpftool'] as const) {
    const obj = await openLoaded(objPath(o), { loader });
    try {
      const maps = await obj.maps();
      t.true(maps.length > 0, `${loader}: maps are listed`);
      const counters = maps.find((m) => m.perCpu && m.type === 'percpu_array');
      if (!counters) return t.fail(`${loader}: the per-verdict per-CPU counter array is missing: ${JSON.stringify(maps)}`);
      const before = await obj.readMap(counters.name);
      t.is(before.length, counters.maxEntries);
      t.true(before.every((e) => e.perCpu !== undefined && e.value.every((b) => b === 0)));
      const s = o.programs[0]!.samples![0]!;
      const r = await obj.testRun(o.programs[0]!.name, { dataIn: new Uint8Array(Buffer.from(s.data, 'hex')) });
      const after = await obj.readMap(counters.name);
      const sum = (e: { perCpu?: Uint8Array[] }) => (e.perCpu ?? []).reduce((acc, v) => acc + Buffer.from(v).readBigUInt64LE(0), 0n);
      t.is(after.map(sum).reduce((a, b) => a + b, 0n), 1n, `${loader}: exactly one counter bumped by one run (retval ${r.retval})`);
      // write: set every counter of key 0 to 7 on every CPU, read it back
      const key = new Uint8Array(4);
      const seven = new Uint8Array(counters.valueSize);
      seven[0] = 7;
      await obj.writeMap(counters.name, [{ key, value: seven }]);
      const back = (await obj.readMap(counters.name)).find((e) => e.key.every((b) => b === 0))!;
      t.true(back.perCpu!.every((v) => v[0] === 7), `${loader}: written value read back on every CPU`);
      await obj.clearMap(counters.name);
      t.true((await obj.readMap(counters.name)).every((e) => e.value.every((b) => b === 0)), `${loader}: cleared`);
    } finally {
      await obj.close();
    }
  }
});

kernelTest('both loaders name maps alike and read the same contents after the same runs', async (t) => {
  const o = manifest.find((x) => x.object.includes('global_data'));
  if (!o) return t.fail('global_data fixture missing from the manifest');
  const mp = o.programs.find((p) => p.samples?.length)!;
  const a = await openLoaded(objPath(o), { loader: 'libbpf' });
  const b = await openLoaded(objPath(o), { loader: 'bpftool' });
  try {
    const names = async (x: typeof a) => (await x.maps()).map((m) => m.name).sort();
    t.deepEqual(await names(b), await names(a));
    t.true((await names(a)).some((n) => n.endsWith('.bss')), 'global data maps are listed');
    for (const s of mp.samples!) {
      const data = new Uint8Array(Buffer.from(s.data, 'hex'));
      t.is((await b.testRun(mp.name, { dataIn: data })).retval, (await a.testRun(mp.name, { dataIn: data })).retval);
    }
    const hex = (es: { key: Uint8Array; value: Uint8Array }[]) => es.map((e) => `${Buffer.from(e.key).toString('hex')}=${Buffer.from(e.value).toString('hex')}`).sort();
    for (const m of await a.maps()) {
      if (!['array', 'hash', 'percpu_array', 'percpu_hash', 'lru_hash'].includes(m.type)) continue;
      t.deepEqual(hex(await b.readMap(m.name)), hex(await a.readMap(m.name)), `map ${m.name}`);
    }
  } finally {
    await a.close();
    await b.close();
  }
});

kernelTest('verifyObject with `only` loads and reports just the programs asked for, with the verdicts of a full load', async (t) => {
  const file = join(root, 'fixtures/repair/build/mixed.O2.o');
  const full = await verifyObject(file);
  t.is(full.programs.length, 3);
  const accepted = full.programs.filter((p) => p.accepted);
  const rejected = full.programs.filter((p) => !p.accepted);
  t.true(accepted.length >= 1 && rejected.length >= 1, 'the fixture mixes accepted and rejected programs');
  // an accepted program alone: accepted, same verifier work
  const one = await verifyObject(file, { only: [accepted[0]!] });
  t.deepEqual(one.programs.map((p) => p.name), [accepted[0]!.name]);
  t.true(one.programs[0]!.accepted);
  t.is(one.programs[0]!.verifiedInsns, accepted[0]!.verifiedInsns);
  // a rejected one next to an accepted one: each keeps its verdict
  const two = await verifyObject(file, { only: [rejected[0]!, accepted[0]!] });
  t.deepEqual(two.programs.map((p) => p.name).sort(), [rejected[0]!.name, accepted[0]!.name].sort());
  t.false(two.programs.find((p) => p.name === rejected[0]!.name)!.accepted);
  t.true(two.programs.find((p) => p.name === accepted[0]!.name)!.accepted);
  // none asked for: nothing loaded, no error
  const none = await verifyObject(file, { only: [] });
  t.deepEqual(none.programs, []);
  t.is(none.objectError, null);
});
