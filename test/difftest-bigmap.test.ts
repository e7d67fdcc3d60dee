// `k2 difftest` on a program with two maps of 1<<20 entries stays within 2 GiB (measured as the max
// RSS of a child process running it; it used 2.5 GB for 16 inputs when maps were read whole), finds
// no difference against itself and catches a difference that only the big array's contents show.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

const root = new URL('..', import.meta.url).pathname;
const fx = (n: string): string => join(root, 'fixtures/difftest/build', n);
const GIB = 1024 * 1024 * 1024;

interface Child {
  maxRssBytes: number;
  programs: { name: string; inputs: number; mismatches: number; mismatchList?: { field: string; after?: [number, number] }[] }[];
}

/** diffObjects in a fresh node process (the built dist/), with that process' peak RSS. */
async function difftestChild(a: string, b: string, inputs: number): Promise<Child> {
  const script = `
    const { diffObjects } = await import(${JSON.stringify(join(root, 'dist/testgen/diff.js'))});
    const r = await diffObjects(${JSON.stringify(a)}, ${JSON.stringify(b)}, { inputs: ${inputs}, seed: 3 });
    process.stdout.write(JSON.stringify({ maxRssBytes: process.resourceUsage().maxRSS * 1024, programs: r.programs }));`;
  const r = await execa('node', ['--input-type=module', '-e', script], { reject: false });
  if (r.exitCode !== 0) throw new Error(`child failed (${r.exitCode}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Child;
}

test.serial('a 1M-entry array and a 1M-entry hash: difftest within 2 GiB, 0 mismatches against itself', async (t) => {
  if (!existsSync(fx('bigmap.o'))) return t.fail('fixtures/difftest not built (make -C fixtures)');
  if (!existsSync(join(root, 'dist/testgen/diff.js'))) return t.fail('dist/ is not built (npm run build)');
  const r = await difftestChild(fx('bigmap.o'), fx('bigmap.o'), 160);
  t.log(`peak RSS ${(r.maxRssBytes / 2 ** 20).toFixed(0)} MiB`);
  t.true(r.maxRssBytes < 2 * GIB, `peak RSS ${r.maxRssBytes}`);
  t.is(r.programs.length, 1);
  t.is(r.programs[0]!.inputs, 160);
  t.is(r.programs[0]!.mismatches, 0, JSON.stringify(r.programs[0]!.mismatchList));
});

test.serial('a difference only the 1M-entry array shows is caught', async (t) => {
  if (!existsSync(fx('bigmap_diff.o'))) return t.fail('fixtures/difftest not built (make -C fixtures)');
  const r = await difftestChild(fx('bigmap.o'), fx('bigmap_diff.o'), 160);
  t.true(r.maxRssBytes < 2 * GIB, `peak RSS ${r.maxRssBytes}`);
  const p = r.programs[0]!;
  t.true(p.mismatches > 0);
  const m = p.mismatchList!.find((x) => x.field === 'map by_index');
  t.truthy(m, JSON.stringify(p.mismatchList));
  t.truthy(m!.after, 'a big map is compared after a run of inputs');
});
