// A short fixed-seed round of the mutation fuzzer (scripts/fuzz.ts) over every command that reads an
// object: no case may crash (exit 70, signal, JS stack trace), hang (> 30 s) or blow up (> 1 GiB).
// The long round (10,000 cases per command) is run by hand: `npm run fuzz -- --cases 10000`.
import test from 'ava';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSeeds, fuzz, type CommandStats } from '../scripts/fuzz.js';
import { availableCommands, type FuzzCommand } from '../scripts/fuzz/commands.js';
import { mutate } from '../scripts/fuzz/mutate.js';
import { DEFAULT_LIMITS } from '../scripts/fuzz/pool.js';
import { corpusAvailable, corpusDir } from './helpers/paths.js';

// Cases per command: enough to reach past the reader into every stage, small enough for ~30 s on two
// shared cores (opt runs a real, if tiny, search per case).
const CASES: Record<FuzzCommand, number> = { dis: 120, relink: 60, safety: 40, equiv: 30, opt: 16, verify: 30, check: 30 };

const out = mkdtempSync(join(tmpdir(), 'k2fuzz-'));
test.after.always(() => rmSync(out, { recursive: true, force: true }));

test('mutations are reproducible from the case seed and change the seed object', (t) => {
  const seed = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
  seed.set([0x7f, 0x45, 0x4c, 0x46, 2, 1], 0);
  const a = mutate(seed, 12345), b = mutate(seed, 12345), c = mutate(seed, 54321);
  t.deepEqual(a.bytes, b.bytes);
  t.deepEqual(a.steps, b.steps);
  t.true(a.steps.length >= 1);
  t.notDeepEqual(a.bytes, seed);
  t.notDeepEqual(a.bytes, c.bytes);
});

test('fixed-seed fuzz round: no crash, hang or memory blow-up in any command that reads an object', async (t) => {
  if (!corpusAvailable()) return t.fail(`shared corpus not found at ${corpusDir}`);
  const seeds = defaultSeeds(64 * 1024);
  t.true(seeds.length > 100, `${seeds.length} seed objects`);
  const commands = availableCommands();
  const log: string[] = [];
  // One worker process serves every command (its start-up is most of a short round's cost).
  const stats: CommandStats[] = await fuzz({
    cases: CASES, seed: 20261204, commands, seeds, outDir: out, limits: DEFAULT_LIMITS,
    minimize: false, confirm: true, firstCase: 0, nice: 0, log: (s) => log.push(s),
  });
  for (const s of stats) t.log(`${s.cmd}: ${s.cases} cases, ${s.failures} failures, ${s.casesPerSecond.toFixed(1)} cases/s, peak RSS ${s.peakRssMiB} MiB, exit codes ${JSON.stringify(s.exitCodes)}`);
  // Confirmed failures fail the test. A case that failed in the worker but passed through the CLI is
  // tolerated only when it was time or memory (the host is shared: load and other processes' memory
  // move both); a crash that does not replay is still a bug.
  const failed = log.filter((l) => / FAIL /.test(l) || (/ unconfirmed /.test(l) && !/ unconfirmed (timeout|memory):/.test(l)));
  t.deepEqual(failed, [], readdirSync(join(out, 'failures')).join(', '));
  for (const l of log.filter((x) => / unconfirmed /.test(x))) t.log(l);
  // The round is only worth something if mutated objects get past the reader into the commands.
  const deep = (s: CommandStats): number => (s.exitCodes['0'] ?? 0) + (s.exitCodes['1'] ?? 0) + (s.exitCodes['4'] ?? 0) + (s.exitCodes['7'] ?? 0);
  for (const s of stats) {
    t.is(s.cases, CASES[s.cmd]);
    t.is(s.failures, 0, s.cmd);
    t.true(deep(s) >= 1, `${s.cmd}: no mutated object got past the reader (exit codes ${JSON.stringify(s.exitCodes)})`);
  }
  const all = stats.reduce((n, s) => n + s.cases, 0), past = stats.reduce((n, s) => n + deep(s), 0);
  t.true(past >= all * 0.15, `only ${past} of ${all} mutated objects got past the reader`);
  t.true(commands.includes('dis') && commands.includes('verify') && commands.includes('opt'));
});
