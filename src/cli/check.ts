// `k2 check OBJ...`: the pre-deploy gate. Loads every program of every object into the kernel (on
// its own, timed) and prints a veristat-style table; with --compare, before/after columns and deltas.
import { mkdtempSync, mkdirSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { action, printJson, table, writeFileAtomic, EXIT_CODES_HELP } from './common.js';
import { EXIT, K2Error } from '../util/errors.js';
import { lastLines, verifyObject, type ProgramVerdict, type Verdict, type VerifyReport } from '../kernel/index.js';
import { gateExitCode, parseLoader, requireBpf } from './verify.js';

interface CheckFlags {
  compare?: string[];
  json?: boolean;
  loader: string;
  type?: string;
  logDir?: string;
  logLines: string;
}

const HELP = `
Loads every program of each OBJ into the kernel on its own (nothing stays loaded, nothing is
pinned) and prints one row per program: object, program, type, verdict, verified_insns
(instructions the verifier processed), xlated insns (after kernel rewrites) and load ms (wall time
of loading that program with its maps). Objects with legacy "maps" sections are loaded by k2's
legacy loader (see k2 verify --help).

Verdicts: accepted; rejected (the verifier refused the code: its last log lines are printed and the
full log is written to a file, see --log-dir); cannot load here (the program was never judged on
this host: attach target, kfunc or kernel feature missing, fentry/fexit/lsm trampolines not
permitted, unknown section type — the reason is printed).

--compare OTHER...: before/after columns. OTHER is the baseline ("before", e.g. clang's object),
OBJ the object to deploy ("after", e.g. k2's); give one OTHER per OBJ, in the same order, after
the objects: k2 check new1.o new2.o --compare old1.o old2.o. Programs are matched by section and
name; a program of OTHER missing from OBJ counts as a failure (exit 1). Deltas are after - before.

JSON (--json): {"objects": [{"file", "compare", "loader", "malformed", "objectError", "fixups",
"programs": [{"section", "name", "type", "verdict", "verifiedInsns", "xlatedInsns", "loadMs",
"error", "logFile", "before": null | {"verdict", "verifiedInsns", "xlatedInsns", "loadMs",
"error"}}]}], "summary": {"accepted", "rejected", "cannotLoad", "missing"}, "exitCode"}.
"verdict" is accepted, rejected, cannot-load, or missing (only with --compare).

Exit status for check (the same as k2 verify): 0 every program that can load here is accepted
(and, with --compare, none is missing); 1 some program was rejected (or is missing); 7 nothing was
rejected but some program cannot be checked on this host; 2 bad input (unreadable or malformed
object, bad flags); 3 bpf() unavailable (needs root or CAP_BPF); 5 a loader tool is missing.
${EXIT_CODES_HELP}`;

export type CheckVerdict = Verdict | 'missing';

interface Side {
  verdict: CheckVerdict;
  verifiedInsns: number | null;
  xlatedInsns: number | null;
  loadMs: number | null;
  error: string | null;
}

export interface CheckRow extends Side {
  object: string;
  section: string;
  name: string;
  type: string;
  log: string; // full verifier log kept by the loader (rejected programs)
  logFile: string | null;
  before: Side | null;
}

const side = (p: ProgramVerdict): Side => ({ verdict: p.verdict, verifiedInsns: p.verifiedInsns, xlatedInsns: p.xlatedInsns, loadMs: p.loadMs ?? null, error: p.error });
const MISSING: Side = { verdict: 'missing', verifiedInsns: null, xlatedInsns: null, loadMs: null, error: null };

/**
 * One row per program of `after`, with the program of `before` of the same section and name (else
 * the same name); programs only `before` has come last, as "missing" from `after`.
 */
export function checkRows(after: VerifyReport, before: VerifyReport | null): CheckRow[] {
  const used = new Set<ProgramVerdict>();
  const match = (p: ProgramVerdict): ProgramVerdict | null => {
    if (!before) return null;
    const m = before.programs.find((q) => !used.has(q) && q.section === p.section && q.name === p.name) ?? before.programs.find((q) => !used.has(q) && q.name === p.name) ?? null;
    if (m) used.add(m);
    return m;
  };
  const rows: CheckRow[] = after.programs.map((p) => {
    const b = match(p);
    return { object: after.file, section: p.section, name: p.name, type: p.type, ...side(p), log: p.log, logFile: null, before: before ? (b ? side(b) : MISSING) : null };
  });
  for (const q of before?.programs ?? []) {
    if (used.has(q)) continue;
    rows.push({ object: after.file, section: q.section, name: q.name, type: q.type, ...MISSING, log: '', logFile: null, before: side(q) });
  }
  return rows;
}

/** "after - before" as "+12 (+3.4%)", "0", or "-" when either side is unknown. */
export function delta(before: number | null, after: number | null): string {
  if (before === null || after === null) return '-';
  const d = after - before;
  if (d === 0) return '0';
  const pct = before === 0 ? '' : ` (${d > 0 ? '+' : ''}${((d / before) * 100).toFixed(1)}%)`;
  return `${d > 0 ? '+' : ''}${d}${pct}`;
}

const VERDICT_TEXT: Record<CheckVerdict, string> = { accepted: 'accepted', rejected: 'REJECTED', 'cannot-load': 'cannot load here', missing: 'MISSING' };
const num = (v: number | null) => (v === null ? '-' : String(v));
const ms = (v: number | null) => (v === null ? '-' : v.toFixed(1));
const round = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);

/** Exit code of a check: the verify gate (gateExitCode), with programs missing from OBJ as failures. */
export function checkExitCode(reports: readonly VerifyReport[], baselines: readonly VerifyReport[], rows: readonly CheckRow[]): number {
  if (baselines.some((r) => r.malformed)) return EXIT.BAD_INPUT;
  const gate = gateExitCode(reports);
  if (gate === EXIT.BAD_INPUT || gate === EXIT.NEGATIVE) return gate;
  if (rows.some((r) => r.verdict === 'missing')) return EXIT.NEGATIVE;
  return gate;
}

function logFileName(row: CheckRow): string {
  return `${basename(row.object)}.${row.section.replace(/[^A-Za-z0-9_.-]/g, '_')}.${row.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`;
}

function readable(file: string): void {
  if (!existsSync(file)) throw new K2Error('input', 'cannot read: no such file', { file });
  if (statSync(file).isDirectory()) throw new K2Error('input', 'is a directory', { file });
}

function printText(reports: VerifyReport[], baselines: (VerifyReport | null)[], rows: CheckRow[], logLines: number): void {
  const compare = baselines.some((b) => b !== null);
  const header = compare
    ? ['object', 'program', 'type', 'verdict', 'verified (A)', 'verified (B)', 'verified (B-A)', 'xlated (A)', 'xlated (B)', 'xlated (B-A)', 'load ms (A)', 'load ms (B)']
    : ['object', 'program', 'type', 'verdict', 'verified_insns', 'xlated_insns', 'load_ms'];
  const body = rows.map((r) => {
    const obj = basename(r.object);
    if (!compare) return [obj, r.name, r.type, VERDICT_TEXT[r.verdict], num(r.verifiedInsns), num(r.xlatedInsns), ms(r.loadMs)];
    const b = r.before ?? MISSING;
    const v = b.verdict === r.verdict ? VERDICT_TEXT[r.verdict] : `${VERDICT_TEXT[b.verdict]} -> ${VERDICT_TEXT[r.verdict]}`;
    return [obj, r.name, r.type, v, num(b.verifiedInsns), num(r.verifiedInsns), delta(b.verifiedInsns, r.verifiedInsns), num(b.xlatedInsns), num(r.xlatedInsns), delta(b.xlatedInsns, r.xlatedInsns), ms(b.loadMs), ms(r.loadMs)];
  });
  if (compare) process.stdout.write('A = --compare (before), B = OBJ (after)\n');
  if (body.length) process.stdout.write(table(header, body));
  reports.forEach((r, i) => {
    if (r.malformed) return; // reported on stderr
    if (r.objectError) process.stdout.write(`${r.file}: ${r.objectError}\n`);
    if (r.loader === 'legacy' && r.fixups[0]) process.stdout.write(`note: ${basename(r.file)}: ${r.fixups[0]}\n`);
    const b = baselines[i];
    if (b?.objectError && !b.malformed) process.stdout.write(`${b.file} (--compare): ${b.objectError}\n`);
  });
  const shown = new Set<string>();
  for (const r of rows) {
    if (r.verdict === 'rejected') {
      process.stdout.write(`\n${basename(r.object)}: ${r.section}/${r.name}: rejected: ${r.error}\n`);
      for (const l of lastLines(r.log, logLines)) process.stdout.write(`  | ${l}\n`);
      if (r.logFile) process.stdout.write(`  full verifier log: ${r.logFile}\n`);
    } else if (r.verdict === 'cannot-load' && r.error && !shown.has(r.error)) {
      shown.add(r.error);
      process.stdout.write(`\n${basename(r.object)}: ${r.section}/${r.name}: ${r.error}\n`);
    } else if (r.verdict === 'missing') {
      process.stdout.write(`\n${basename(r.object)}: ${r.section}/${r.name}: missing (the --compare object has it)\n`);
    }
  }
  const n = (v: CheckVerdict) => rows.filter((r) => r.verdict === v).length;
  process.stdout.write(`\n${n('accepted')} accepted, ${n('rejected')} rejected, ${n('cannot-load')} cannot load here${compare ? `, ${n('missing')} missing` : ''} (${reports.length} object${reports.length === 1 ? '' : 's'})\n`);
}

export function register(program: Command): void {
  program
    .command('check')
    .description('pre-deploy gate: verifier verdict, verified/xlated insns and load time of every program (veristat-style)')
    .argument('<OBJ...>', 'BPF ELF objects to check')
    .option('--compare <OTHER...>', 'baseline objects (one per OBJ, same order): before/after columns and deltas')
    .option('--json', 'print the result as JSON')
    .option('--loader <name>', 'libbpf (in-process, default), bpftool, or legacy (k2\'s loader for legacy "maps" objects)', 'libbpf')
    .option('--type <TYPE>', 'program type for sections no loader knows (a libbpf section name: xdp, socket, tc, kprobe, ...)')
    .option('--log-dir <DIR>', 'where to write the full verifier log of each rejected program (default: a new k2-check-* directory in the temp dir)')
    .option('--log-lines <N>', 'verifier-log lines to show per rejected program', '8')
    .addHelpText('after', HELP)
    .action(
      action(async (objs: string[], flags: CheckFlags) => {
        const loader = parseLoader(flags.loader);
        const logLines = Number(flags.logLines);
        if (!Number.isInteger(logLines) || logLines < 0) throw new K2Error('usage', `--log-lines must be a non-negative integer (got '${flags.logLines}')`);
        const compare = flags.compare ?? [];
        if (flags.compare && compare.length !== objs.length) {
          throw new K2Error('usage', `--compare needs one baseline per object (${objs.length} object${objs.length === 1 ? '' : 's'}, ${compare.length} baseline${compare.length === 1 ? '' : 's'}); put --compare after the objects`);
        }
        for (const f of [...objs, ...compare]) readable(f);
        await requireBpf(loader);
        const opts = { loader, progType: flags.type, timing: true };
        const reports: VerifyReport[] = [];
        const baselines: (VerifyReport | null)[] = [];
        const perObject: CheckRow[][] = [];
        for (let i = 0; i < objs.length; i++) {
          const after = await verifyObject(objs[i]!, opts);
          const before = flags.compare ? await verifyObject(compare[i]!, opts) : null;
          reports.push(after);
          baselines.push(before);
          perObject.push(checkRows(after, before));
        }
        const rows = perObject.flat();
        // Full logs of rejected programs, to files.
        const rejected = rows.filter((r) => r.verdict === 'rejected' && r.log);
        if (rejected.length) {
          let dir = flags.logDir;
          if (dir) mkdirSync(dir, { recursive: true });
          else dir = mkdtempSync(join(tmpdir(), 'k2-check-'));
          for (const r of rejected) {
            r.logFile = join(dir, logFileName(r));
            writeFileAtomic(r.logFile, Buffer.from(r.log));
          }
        }
        const all = [...reports, ...baselines.filter((b): b is VerifyReport => b !== null)];
        for (const r of all) if (r.malformed && !flags.json) process.stderr.write(`k2: ${r.file}: ${r.objectError ?? 'malformed BPF object'}\n`);
        const code = checkExitCode(reports, baselines.filter((b): b is VerifyReport => b !== null), rows);
        if (flags.json) {
          const count = (v: CheckVerdict) => rows.filter((r) => r.verdict === v).length;
          printJson({
            objects: reports.map((r, i) => ({
              file: r.file,
              compare: baselines[i]?.file ?? null,
              loader: r.loader,
              malformed: r.malformed,
              objectError: r.objectError,
              fixups: r.fixups,
              programs: perObject[i]!.map((x) => ({
                section: x.section, name: x.name, type: x.type, verdict: x.verdict, verifiedInsns: x.verifiedInsns, xlatedInsns: x.xlatedInsns,
                loadMs: round(x.loadMs), error: x.error, logFile: x.logFile, before: x.before && { ...x.before, loadMs: round(x.before.loadMs) },
              })),
            })),
            summary: { accepted: count('accepted'), rejected: count('rejected'), cannotLoad: count('cannot-load'), missing: count('missing') },
            exitCode: code,
          });
        } else {
          printText(reports, baselines, rows, logLines);
        }
        return code;
      }),
    );
}
