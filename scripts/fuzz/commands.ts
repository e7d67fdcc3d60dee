// The k2 commands that read an object, and how the fuzzer invokes each on a mutated file.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repo } from './pool.js';

export const ALL_COMMANDS = ['dis', 'relink', 'safety', 'opt', 'equiv', 'verify', 'check'] as const;
export type FuzzCommand = (typeof ALL_COMMANDS)[number];

/** `k2` arguments for running `cmd` on `input`; `seed` is the unmutated object it came from. */
export function argvFor(cmd: FuzzCommand, input: string, seed: string, outDir: string): string[] {
  switch (cmd) {
    case 'dis': return ['dis', input];
    case 'relink': return ['relink', input, '-o', join(outDir, 'relink-out.o')];
    case 'safety': return ['safety', input];
    // A small search budget (the fuzzer is after the reader and the passes, not after savings), one
    // thread, and no proven-rewrite cache: mutated objects must not fill the user's cache.
    case 'opt': return ['opt', input, '-o', join(outDir, 'opt-out.o'), '--no-kernel', '--effort', 'build', '--budget-ms', '300', '--jobs', '1', '--no-cache', '--timeout-ms', '500'];
    case 'equiv': return ['equiv', input, seed, '--timeout', '1000'];
    case 'verify': return ['verify', input];
    // Against the unmutated seed as the baseline (the before/after path), logs kept in the work dir.
    case 'check': return ['check', input, '--compare', seed, '--log-dir', join(outDir, 'check-logs')];
  }
}

/** Commands this build has (`k2 check` is being added in parallel: included once `--help` works). */
export function availableCommands(): FuzzCommand[] {
  const r = spawnSync(process.execPath, [join(repo, 'bin/k2.js'), 'check', '--help'], { cwd: repo, encoding: 'utf8' });
  const hasCheck = r.status === 0 && /Usage: k2 check/.test(r.stdout);
  return ALL_COMMANDS.filter((c) => c !== 'check' || hasCheck);
}
