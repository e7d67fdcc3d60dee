// Shared CLI plumbing: one-line errors with stable exit codes, JSON output, atomic file writes.
import { K2Error, EXIT } from '../util/errors.js';
export { writeFileAtomic } from '../util/fs.js';

export const EXIT_CODES_HELP = `
Exit codes:
  0   success (all accepted / equivalent / no mismatches)
  1   a check answered no (rejected, different, mismatches found)
  2   bad input or usage (not an ELF, not BPF, truncated, unknown opcode, bad flags)
  3   bpf() unavailable (needs root or CAP_BPF)
  4   undecided (solver timeout or unknown)
  5   a required tool is missing (clang, llvm-objdump, bpftool)
  6   could not write the output file
  7   nothing failed, but something could not be checked on this host (cannot load/run here)
  70  internal error (a bug in k2; please report it)`;

/** Wraps a command action: K2Errors become one line on stderr and their exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? EXIT.OK;
    } catch (e) {
      if (e instanceof K2Error) {
        process.stderr.write(`k2: ${e.message}\n`);
        process.exitCode = e.exitCode;
      } else {
        const err = e as Error;
        process.stderr.write(`k2: internal error: ${err?.message ?? String(e)}\n`);
        if (process.env.K2_DEBUG) process.stderr.write(`${err?.stack}\n`);
        process.exitCode = EXIT.INTERNAL;
      }
    }
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
}

/** Left-aligned text table for TTY summaries. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  return cells.map((r) => r.map((s, c) => s.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}
