// `k2 cache stats|clean`: the build cache (like `ccache -s` / `ccache -C`).
import type { Command } from 'commander';
import { cacheRoot, cacheStats, cleanCache } from '../cache/index.js';
import { action, printJson } from './common.js';

const size = (b: number): string => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b} B`);

export function register(program: Command): void {
  const cache = program
    .command('cache')
    .description('the build cache: stats, clean')
    .addHelpText('after', `
The build cache keeps k2's result for each clang object k2-clang / k2 cc / k2 build has seen, keyed
on clang's object bytes, k2's build and every setting that changes the result. It lives in
$K2_CACHE_DIR, else $XDG_CACHE_HOME/k2, else ~/.cache/k2 (objects/: results; rewrites/: proven
rewrites the optimizer reuses). A hit is used only after k2 re-proves it equivalent to clang's
object and the kernel verifier (or, without bpf(), k2's safety model) accepts it; an entry that
fails is removed. Turn the cache off with --no-cache (k2 build), K2_NO_CACHE=1 or "cache": false.`);
  cache
    .command('stats')
    .description('entries, size, hits and misses')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExit codes: 0 ok.')
    .action(action((o: { json?: boolean }) => {
      const s = cacheStats();
      if (o.json) return printJson(s);
      const lookups = s.hits + s.misses + s.rejected;
      process.stdout.write([
        `cache directory   ${s.root}`,
        `results           ${s.entries} (${size(s.bytes)})`,
        `proven rewrites   ${s.rewrites.files} files (${size(s.rewrites.bytes)})`,
        `hits              ${s.hits}${lookups ? ` (${((100 * s.hits) / lookups).toFixed(1)}% of ${lookups} lookups)` : ''}`,
        `misses            ${s.misses}`,
        `rejected entries  ${s.rejected} (failed their check on a hit; removed)`,
        `stored            ${s.stores}`,
      ].join('\n') + '\n');
    }));
  cache
    .command('clean')
    .description('remove every cached result, the proven rewrites and the counters')
    .addHelpText('after', '\nExit codes: 0 ok.')
    .action(action(() => {
      const s = cleanCache();
      process.stdout.write(`removed ${s.entries} results and ${s.rewrites.files} rewrite files (${size(s.bytes + s.rewrites.bytes)}) from ${cacheRoot()}\n`);
    }));
}
