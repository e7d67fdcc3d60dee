// Checks the C fixtures against the running kernel: every object in
// fixtures/manifest.json exists, loads (or is rejected) exactly as the manifest
// says, pins programs of the declared types, and produces the recorded return
// values (and output packets) under BPF_PROG_TEST_RUN.
// Builds nothing: `npm test` runs `make -C fixtures` before ava.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Sample {
  name: string;
  data: string; // hex, a whole Ethernet frame
  retval: number;
  dataOut?: string; // hex, expected packet after the run
}

interface ProgramEntry {
  section: string;
  name: string;
  type: string;
  loads: boolean;
  testRun: boolean;
  why?: string;
  errorMatch?: string;
  samples?: Sample[];
}

interface ObjectEntry {
  object: string;
  source: string;
  mcpu?: string;
  programs: ProgramEntry[];
}

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const MANIFEST_PATH = join(FIXTURES, 'manifest.json');
const BPFTOOL = existsSync('/usr/sbin/bpftool') ? '/usr/sbin/bpftool' : 'bpftool';
const BPFFS = '/sys/fs/bpf';
const KNOWN_TYPES = new Set(['xdp', 'sched_cls', 'socket_filter', 'kprobe', 'tracepoint', 'cgroup_skb']);
const TEST_RUN_TYPES = new Set(['xdp', 'sched_cls', 'socket_filter', 'cgroup_skb']);
const KERNEL_NAME_MAX = 15; // BPF_OBJ_NAME_LEN - 1

const manifest: ObjectEntry[] = JSON.parse(readFileSync(MANIFEST_PATH, 'utf8'));

// bpf() availability: only EPERM is a reason to skip; anything else fails loudly.
let skipKernel: string | null = null;
let kernelBroken: string | null = null;
{
  const probe = await execa(BPFTOOL, ['prog', 'show'], { reject: false, all: true });
  if (probe.failed) {
    const out = `${probe.all ?? ''} ${probe.shortMessage ?? ''}`;
    if (/Operation not permitted|EPERM/.test(out)) {
      skipKernel = `bpftool prog show failed with EPERM (no privilege for bpf()): ${out.trim()}`;
      console.warn(`fixtures.test.ts: skipping kernel load/run tests: ${skipKernel}`);
    } else {
      kernelBroken = `bpftool prog show failed (bpf() unavailable?): ${out.trim()}`;
    }
  }
}

function stem(o: ObjectEntry): string {
  return basename(o.object, '.o');
}

function tail(s: string, n = 40): string {
  return s.split('\n').slice(-n).join('\n');
}

/** Sane return values per program type (independent of the recorded samples). */
function saneRetval(type: string, retval: number, dataLen: number): boolean {
  switch (type) {
    case 'xdp':
      return retval >= 0 && retval <= 4; // XDP_ABORTED .. XDP_REDIRECT
    case 'sched_cls':
      return (retval >= 0 && retval <= 8) || retval === 0xffffffff || retval === -1; // TC_ACT_*
    case 'socket_filter':
      return retval >= 0 && retval <= dataLen; // bytes to keep
    case 'cgroup_skb':
      return retval >= 0 && retval <= 3; // allow bit | congestion-notification bit
    default:
      return false;
  }
}

test('manifest is well formed and lists every fixture source', (t) => {
  const sources = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.c'))
    .sort();
  t.deepEqual(manifest.map((o) => o.source).sort(), sources, 'manifest sources vs fixtures/*.c');
  for (const o of manifest) {
    t.is(o.object, `build/${basename(o.source, '.c')}.o`, `${o.source}: object path`);
    t.true(o.programs.length > 0, `${o.object}: has programs`);
    const loads = new Set(o.programs.map((p) => p.loads));
    t.is(loads.size, 1, `${o.object}: objects load all-or-nothing, so every program must agree on "loads"`);
    for (const p of o.programs) {
      const where = `${o.object}:${p.name}`;
      t.true(KNOWN_TYPES.has(p.type), `${where}: unknown type ${p.type}`);
      t.is(p.testRun, TEST_RUN_TYPES.has(p.type), `${where}: testRun must match the program type`);
      if (!p.loads) {
        t.truthy(p.why, `${where}: a program that does not load needs "why"`);
        t.truthy(p.errorMatch, `${where}: a program that does not load needs "errorMatch"`);
      }
      if (p.loads && p.testRun) t.true((p.samples ?? []).length > 0, `${where}: needs at least one sample`);
      for (const s of p.samples ?? []) {
        t.regex(s.data, /^([0-9a-f]{2})+$/, `${where}/${s.name}: data is hex`);
        t.true(s.data.length / 2 >= 14, `${where}/${s.name}: at least an Ethernet header`);
        if (s.dataOut !== undefined) t.regex(s.dataOut, /^([0-9a-f]{2})+$/, `${where}/${s.name}: dataOut is hex`);
      }
    }
  }
  const names = manifest.flatMap((o) => o.programs.map((p) => `${stem(o)}/${p.name}`));
  t.is(new Set(names).size, names.length, 'program names are unique per object');
});

test('every manifest object is built', (t) => {
  const missing = manifest.map((o) => o.object).filter((obj) => !existsSync(join(FIXTURES, obj)));
  t.deepEqual(missing, [], `missing objects (run "make -C fixtures"): ${missing.join(', ')}`);
});

test('manifest sections and names match the ELF symbol tables', async (t) => {
  for (const o of manifest) {
    const path = join(FIXTURES, o.object);
    if (!existsSync(path)) {
      t.fail(`${o.object} is not built (run "make -C fixtures")`);
      continue;
    }
    const { stdout } = await execa('llvm-objdump', ['-t', path]);
    // e.g. "0000000000000000 g     F xdp	00000000000001a0 xdp_parser"
    const funcs = new Map<string, string>();
    for (const line of stdout.split('\n')) {
      const m = /^[0-9a-f]+ g\s+F (\S+)\s+[0-9a-f]+ (\S+)$/.exec(line);
      if (m && m[1] !== '.text') funcs.set(m[2]!, m[1]!);
    }
    const expected = new Map(o.programs.map((p) => [p.name, p.section]));
    t.deepEqual(
      [...funcs.entries()].sort(),
      [...expected.entries()].sort(),
      `${o.object}: entry functions (global FUNC outside .text) and their sections`,
    );
  }
});

async function runSample(
  t: ExecutionContext,
  o: ObjectEntry,
  p: ProgramEntry,
  pinned: string,
  s: Sample,
  work: string,
): Promise<void> {
  const where = `${o.object}:${p.name}/${s.name}`;
  const input = Buffer.from(s.data, 'hex');
  const inFile = join(work, `${p.name}.${s.name}.in`);
  const outFile = join(work, `${p.name}.${s.name}.out`);
  writeFileSync(inFile, input);
  rmSync(outFile, { force: true });
  const args = ['-j', 'prog', 'run', 'pinned', pinned, 'data_in', inFile, 'data_out', outFile, 'repeat', '1'];
  const r = await execa(BPFTOOL, args, { reject: false, all: true });
  if (r.exitCode !== 0) {
    t.fail(`${where}: bpftool ${args.join(' ')} failed:\n${tail(r.all ?? '')}`);
    return;
  }
  const res = JSON.parse(r.stdout) as { retval: number };
  t.true(saneRetval(p.type, res.retval, input.length - 14) || saneRetval(p.type, res.retval, input.length),
    `${where}: retval ${res.retval} is not a sane ${p.type} verdict`);
  t.is(res.retval, s.retval, `${where}: retval`);
  if (s.dataOut !== undefined) {
    t.true(existsSync(outFile), `${where}: no data_out written`);
    if (existsSync(outFile)) t.is(readFileSync(outFile).toString('hex'), s.dataOut, `${where}: output packet`);
  }
}

for (const o of manifest) {
  const name = stem(o);
  const shouldLoad = o.programs.every((p) => p.loads);
  const title = `${o.object} ${shouldLoad ? 'loads' : 'is rejected'} on this kernel`;
  if (skipKernel !== null) {
    test.skip(title, () => {});
    continue;
  }
  test(title, async (t) => {
    if (kernelBroken !== null) {
      t.fail(kernelBroken);
      return;
    }
    const obj = join(FIXTURES, o.object);
    if (!existsSync(obj)) {
      t.fail(`${o.object} is not built (run "make -C fixtures")`);
      return;
    }
    const pinDir = join(BPFFS, `k2fx_${process.pid}_${name}`);
    // Maps are pinned too: the kernel empties a prog_array once no user
    // reference (fd or pin) is left, which would silently disable tail calls.
    const mapDir = `${pinDir}_maps`;
    const work = mkdtempSync(join(tmpdir(), `k2fx-${name}-`));
    rmSync(pinDir, { recursive: true, force: true });
    rmSync(mapDir, { recursive: true, force: true });
    t.teardown(() => {
      rmSync(pinDir, { recursive: true, force: true });
      rmSync(mapDir, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    });

    const load = await execa(BPFTOOL, ['prog', 'loadall', obj, pinDir, 'pinmaps', mapDir], {
      reject: false,
      all: true,
    });
    const output = load.all ?? '';
    if (!shouldLoad) {
      t.not(load.exitCode, 0, `${o.object} was expected to be rejected but loaded`);
      for (const p of o.programs) {
        t.true(output.includes(p.errorMatch!), `${o.object}: expected "${p.errorMatch}" in:\n${tail(output)}`);
      }
      t.deepEqual(existsSync(pinDir) ? readdirSync(pinDir) : [], [], 'no program pinned');
      t.deepEqual(existsSync(mapDir) ? readdirSync(mapDir) : [], [], 'no map pinned');
      return;
    }
    if (load.exitCode !== 0) {
      t.fail(`${o.object} failed to load:\n${tail(output)}`);
      return;
    }
    t.deepEqual(readdirSync(pinDir).sort(), o.programs.map((p) => p.name).sort(), `${o.object}: pinned programs`);

    for (const p of o.programs) {
      const pinned = join(pinDir, p.name);
      const show = await execa(BPFTOOL, ['-j', 'prog', 'show', 'pinned', pinned], { reject: false, all: true });
      if (show.exitCode !== 0) {
        t.fail(`${o.object}:${p.name}: bpftool prog show failed:\n${tail(show.all ?? '')}`);
        continue;
      }
      const info = JSON.parse(show.stdout) as { type: string; name: string };
      t.is(info.type, p.type, `${o.object}:${p.name}: program type`);
      t.is(info.name, p.name.slice(0, KERNEL_NAME_MAX), `${o.object}:${p.name}: kernel program name`);

      if (p.testRun) {
        // In order: samples of stateful programs may depend on earlier ones.
        for (const s of p.samples ?? []) await runSample(t, o, p, pinned, s, work);
      } else {
        // The manifest says BPF_PROG_TEST_RUN is unsupported: the kernel must agree.
        const inFile = join(work, `${p.name}.in`);
        writeFileSync(inFile, Buffer.alloc(64));
        const r = await execa(BPFTOOL, ['prog', 'run', 'pinned', pinned, 'data_in', inFile, 'repeat', '1'], {
          reject: false,
          all: true,
        });
        t.not(r.exitCode, 0, `${o.object}:${p.name}: test run unexpectedly supported for ${p.type}`);
      }
    }
  });
}
