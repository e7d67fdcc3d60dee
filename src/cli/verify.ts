// `k2 verify OBJ`: will this object load? The kernel verifier's verdict for every program.
import type { Command } from 'commander';
import { action, printJson, table, EXIT_CODES_HELP } from './common.js';
import { EXIT, K2Error } from '../util/errors.js';
import { bpfAvailable, lastLines, verifyObject, type LoaderKind, type VerifyReport } from '../kernel/index.js';

interface VerifyFlags {
  json?: boolean;
  loader: string;
  type?: string;
  logLines: string;
}

const HELP = `
Loads every program of OBJ into the kernel (nothing stays loaded, nothing is pinned) and prints,
per program: section, name, type, verdict, verified_insns (instructions the verifier processed)
and xlated insns (after kernel rewrites). Rejected programs show the last verifier-log lines.

Verdicts: accepted; rejected (the verifier refused the code: its log is shown); cannot load here
(the program was never judged on this machine: unknown section name, attach target, kfunc or
kernel feature missing, fentry/lsm trampolines not permitted — the reason is printed).

Loader fixups, listed as notes: legacy section prefixes (socket1, xdp_prog, tc/...) get their
program type; maps with max_entries 0 get a size; map pinning is ignored; old-clang and static
program symbols are adjusted. Use --type for sections no loader knows (e.g. --type xdp).

JSON (--json): {"file", "loader", "objectError", "fixups", "programs": [{"section", "name",
"type", "verdict", "accepted", "verifiedInsns", "xlatedInsns", "error", "log"}]}.

Objects with a legacy "maps" section (struct bpf_map_def), which libbpf >= 1.0 refuses, are loaded
by k2's own legacy loader (maps from the definitions, programs linked and loaded one by one, as
samples/bpf and libbpf < 1.0 did); the first note says so. --loader legacy forces that loader.

Exit status for verify (the same as k2 check): 0 every program accepted; 1 some program rejected
by the verifier; 7 no program rejected but some cannot be checked on this host (cannot load here:
attach target, kfunc or kernel feature missing, fentry/lsm trampolines not permitted, unknown
section type); 2 bad input (not a BPF ELF object, unreadable, bad flags); 3 bpf() unavailable
(needs root or CAP_BPF); 5 bpftool missing with --loader bpftool.
${EXIT_CODES_HELP}`;

/**
 * The gate's exit code for a set of reports (k2 verify, k2 check): 2 if an object is malformed,
 * else 1 if a program was rejected, else 7 if something could not be checked here (a program that
 * cannot load here, an object without programs), else 0.
 */
export function gateExitCode(reports: readonly VerifyReport[]): number {
  if (reports.some((r) => r.malformed)) return EXIT.BAD_INPUT;
  if (reports.some((r) => r.programs.some((p) => p.verdict === 'rejected'))) return EXIT.NEGATIVE;
  if (reports.some((r) => r.objectError !== null || r.programs.length === 0 || r.programs.some((p) => p.verdict === 'cannot-load'))) return EXIT.UNCHECKED;
  return EXIT.OK;
}

export function parseLoader(v: string): LoaderKind {
  if (v !== 'libbpf' && v !== 'bpftool' && v !== 'legacy') throw new K2Error('usage', `--loader must be libbpf, bpftool or legacy (got '${v}')`);
  return v;
}

/** Fails with exit 3 when bpf() cannot be used by the chosen loader. */
export async function requireBpf(loader: LoaderKind): Promise<void> {
  const a = await bpfAvailable(loader);
  if (a.ok) return;
  if ((loader === 'libbpf' || loader === 'legacy') && !a.libbpf) throw new K2Error('tool', `${a.reason}`);
  if (loader === 'bpftool' && !a.bpftool) throw new K2Error('tool', 'bpftool not found (install bpftool, or use --loader libbpf)');
  throw new K2Error('bpf', /CAP_BPF/.test(a.reason) ? a.reason : `${a.reason} (k2 needs root or CAP_BPF to load programs)`);
}

function printReport(r: VerifyReport, logLines: number): void {
  const rows = r.programs.map((p) => [
    p.section, p.name, p.type,
    p.verdict === 'accepted' ? 'yes' : p.verdict === 'rejected' ? 'NO' : 'cannot load',
    p.verifiedInsns ?? '-', p.xlatedInsns ?? '-',
  ]);
  process.stdout.write(`${r.file} (loader ${r.loader})\n`);
  if (rows.length) process.stdout.write(table(['section', 'name', 'type', 'accepted', 'verified_insns', 'xlated_insns'], rows));
  if (r.objectError) process.stdout.write(`${r.objectError}\n`);
  const fixups = [...r.fixups, ...r.programs.flatMap((p) => p.fixups.map((f) => `${p.name}: ${f}`))];
  for (const f of fixups.slice(0, 12)) process.stdout.write(`note: ${f}\n`);
  if (fixups.length > 12) process.stdout.write(`note: ... and ${fixups.length - 12} more fixups (see --json)\n`);
  const shown = new Set<string>();
  for (const p of r.programs) {
    if (p.accepted || !p.error) continue;
    if (p.verdict === 'cannot-load' && r.objectError === p.error) continue;
    if (p.verdict === 'cannot-load' && shown.has(p.error)) continue;
    shown.add(p.error);
    process.stdout.write(`\n${p.section}/${p.name}: ${p.error}\n`);
    if (p.verdict === 'rejected' && p.log) for (const l of lastLines(p.log, logLines)) process.stdout.write(`  | ${l}\n`);
  }
  const n = (v: string) => r.programs.filter((p) => p.verdict === v).length;
  process.stdout.write(`\n${n('accepted')} accepted, ${n('rejected')} rejected, ${n('cannot-load')} cannot load here\n`);
}

export function register(program: Command): void {
  program
    .command('verify')
    .description('load every program of a BPF object into the kernel and report the verifier verdicts')
    .argument('<OBJ>', 'BPF ELF object (clang -target bpf -c)')
    .option('--json', 'print the report as JSON')
    .option('--loader <name>', 'libbpf (in-process, default), bpftool, or legacy (k2\'s loader for legacy "maps" objects)', 'libbpf')
    .option('--type <TYPE>', 'program type for sections libbpf does not know (a libbpf section name: xdp, socket, tc, kprobe, ...)')
    .option('--log-lines <N>', 'verifier-log lines to show per rejected program', '8')
    .addHelpText('after', HELP)
    .action(
      action(async (obj: string, flags: VerifyFlags) => {
        const loader = parseLoader(flags.loader);
        const logLines = Number(flags.logLines);
        if (!Number.isInteger(logLines) || logLines < 0) throw new K2Error('usage', `--log-lines must be a non-negative integer (got '${flags.logLines}')`);
        const { readFileSync } = await import('node:fs');
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(readFileSync(obj));
        } catch (e) {
          throw new K2Error('input', `cannot read: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { file: obj });
        }
        await requireBpf(loader);
        const report = await verifyObject(bytes, { loader, progType: flags.type, name: obj });
        if (flags.json) {
          printJson({
            file: report.file,
            loader: report.loader,
            malformed: report.malformed,
            objectError: report.objectError,
            fixups: report.fixups,
            programs: report.programs.map((p) => ({
              section: p.section, name: p.name, type: p.type, verdict: p.verdict, accepted: p.accepted,
              verifiedInsns: p.verifiedInsns, xlatedInsns: p.xlatedInsns, error: p.error, log: p.log, fixups: p.fixups,
            })),
          });
        } else if (report.malformed) {
          throw new K2Error('input', report.objectError ?? 'malformed BPF object', { file: obj });
        } else {
          printReport(report, logLines);
        }
        return gateExitCode([report]);
      }),
    );
}
