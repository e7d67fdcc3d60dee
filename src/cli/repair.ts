// `k2 repair IN.o -o OUT.o`: make programs the kernel verifier wrongly rejects load, provably the
// same programs (src/repair).
import type { Command } from 'commander';
import { action, printJson, table, writeFileAtomic, EXIT_CODES_HELP } from './common.js';
import { EXIT, K2Error } from '../util/errors.js';
import { readObject, writeObject } from '../ir/index.js';
import { repairObject, type ProgramRepair, type RepairResult, type SourceLine } from '../repair/index.js';
import { requireBpf } from './verify.js';

const HELP = `
Loads every program of IN into the kernel. For each one the verifier rejects, k2 reads the
verifier log (the failing instruction, the register states, the reason) and searches for an
equivalent program the verifier accepts: code whose effect is nil on every real execution but that
hands the verifier the fact it was missing, or an inlined call. Candidates, by failure:

  R0 outside the return range at exit     r0 &= 2^k-1 / clamps before the exit (the value is
                                          proven in range already); inline the global function
  the call stack of N frames is too deep  inline the call that pushes the extra frame (its stack
                                          moves below the caller's; r6-r9 saved around it)
  Rn !read_ok                             rn = 0 at the entry (rn's initial value is proven never
                                          to be observed)
  packet access outside the checked range re-check the range on the register used (the failing
                                          branch, proven dead, leaves with r0 = 0)
  unbounded / negative / out-of-range     a bound check on the variable offset added to the
  map value or memory access, pointer     pointer (proven never to fail), or a clamp
  arithmetic with an unbounded register
  helper size argument unbounded          a bound right before the call (a u32 size: wN = wN first;
                                          the helper never sees the upper half)

Each candidate goes through k2's verifier model (a cheap filter when it agrees on the rejection),
the kernel (it must get further), then the proof: the SMT checker shows the candidate equivalent to
IN on every input — same return value, packet, context and map writes, helper effects and faults —
with every context field free (not the test-run values). When the whole program is beyond the
checker (a helper with a variable size, more than 8 frames), the step is proven on its own: the
condition that makes the inserted code nil holds at its position on every execution, or the caller
of an inlined call returns the same for every argument. Timeout or unknown is never a repair. A
program that is really unsafe stays rejected: the candidate the kernel would accept changes
behaviour, and the report gives the input on which IN faults (from the checker's counterexample).

Report per program (--json, --report FILE.json): before (verdict, reason, failing instruction and
source line), repaired, changes (what was inserted, where: section, index and source line from the
BTF line info, and its proof), proof (equivalent: OUT's program proven equal to IN's as a whole;
stepwise: each step proven), kernel verdict and verified_insns after, unsafe (reason, input), time.
OUT keeps the input code of programs that could not be repaired.

Exit status: 0 every rejected program repaired (or none rejected); 1 some program is still rejected
(OUT is written with the programs that could be repaired); 2 bad input or usage; 3 bpf()
unavailable (root or CAP_BPF needed); 6 cannot write OUT or the report; 70 internal error.
${EXIT_CODES_HELP}`;

interface Flags {
  output: string;
  report?: string;
  json?: boolean;
  timeoutMs?: string;
  budgetMs?: string;
  type?: string;
  verbose?: boolean;
}

const num = (v: string | undefined, name: string, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new K2Error('usage', `${name} must be an integer >= ${min} (got '${v}')`);
  return n;
};

const at = (w: SourceLine | null): string => (w ? `${w.file}:${w.line}` : '-');

/** The JSON report: everything but the object. */
export function reportJson(file: string, output: string, r: RepairResult): unknown {
  return { file, output, rejected: r.rejected, repaired: r.repaired, remaining: r.remaining, ms: r.ms, programs: r.programs };
}

function printText(file: string, output: string, r: RepairResult): void {
  const rows = r.programs.map((p: ProgramRepair) => [
    p.section, p.name, p.type,
    p.before.verdict === 'accepted' ? 'accepted' : p.before.verdict === 'rejected' ? 'REJECTED' : 'cannot load',
    p.before.verdict !== 'rejected' ? '-' : p.repaired ? 'yes' : 'NO',
    p.proof ?? '-',
    p.after ? (p.after.verdict === 'accepted' ? 'accepted' : p.after.verdict) : '-',
    p.after?.verifiedInsns ?? '-',
    p.before.verdict === 'rejected' ? (p.ms / 1000).toFixed(1) : '-',
  ]);
  process.stdout.write(`${file} -> ${output}\n`);
  process.stdout.write(table(['section', 'program', 'type', 'before', 'repaired', 'proof', 'after', 'verified_insns', 's'], rows));
  for (const p of r.programs) {
    if (p.before.verdict !== 'rejected') continue;
    process.stdout.write(`\n${p.section}/${p.name}: ${p.before.reason} (${at(p.before.where)}${p.before.where ? `: ${p.before.where.text}` : ''})\n`);
    for (const c of p.changes) {
      process.stdout.write(`  ${c.kind} at ${c.section}:${c.index ?? '?'} (${at(c.where)}): ${c.summary}\n`);
      for (const i of c.insns.slice(0, 12)) process.stdout.write(`    + ${i}\n`);
      if (c.insns.length > 12) process.stdout.write(`    + ... ${c.insns.length - 12} more\n`);
      for (const a of c.also ?? []) process.stdout.write(`    (at ${a.section}:${a.index}: ${a.insns.join('; ')})\n`);
      process.stdout.write(`    proof (${c.proof.method}): ${c.proof.detail}\n`);
    }
    if (p.repaired && p.equivalence && p.proof === 'stepwise') process.stdout.write(`  whole program: ${p.equivalence.reason ?? 'not proven as a whole'} (each step proven)\n`);
    if (!p.repaired) process.stdout.write(`  not repaired: ${p.remaining}\n`);
    if (p.unsafe) {
      const which = p.unsafe.kernelAccepts ? 'the repair the kernel would accept' : 'the best repair found';
      process.stdout.write(p.unsafe.faults
        ? `  UNSAFE: the program faults on some input; ${which} (${p.unsafe.candidate}) changes what it does there.\n`
        : `  REALLY REJECTED: ${which} (${p.unsafe.candidate}) changes the program (${p.unsafe.refuted}).\n`);
      process.stdout.write(`  input: ${p.unsafe.input}\n`);
    }
  }
  process.stdout.write(`\n${r.rejected} rejected, ${r.repaired} repaired, ${r.remaining} still rejected (${(r.ms / 1000).toFixed(1)} s)\n`);
}

export function register(program: Command): void {
  program
    .command('repair')
    .description('make programs the verifier wrongly rejects load: inserted bounds, checks or inlined calls, each proven not to change the program')
    .argument('<IN>', 'BPF ELF object (clang -target bpf -c)')
    .requiredOption('-o, --output <OUT>', 'where to write the repaired object')
    .option('--report <FILE>', 'write the JSON report to FILE')
    .option('--json', 'print the JSON report on stdout')
    .option('--timeout-ms <N>', 'solver timeout per proof query (default 20000)')
    .option('--budget-ms <N>', 'time per rejected program; no candidate is started after it (default 120000)')
    .option('--type <TYPE>', 'program type for sections libbpf does not know (as k2 verify --type)')
    .option('--verbose', 'one line per candidate, proof and kernel verdict on stderr')
    .addHelpText('after', HELP)
    .action(action(async (input: string, f: Flags) => {
      const timeoutMs = num(f.timeoutMs, '--timeout-ms', 1);
      const budgetMs = num(f.budgetMs, '--budget-ms', 0);
      const obj = readObject(input);
      await requireBpf('libbpf');
      const r = await repairObject(obj, {
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(budgetMs !== undefined ? { budgetMs } : {}),
        ...(f.type ? { progType: f.type } : {}),
        ...(f.verbose ? { onEvent: (l: string) => process.stderr.write(`${l}\n`) } : {}),
      });
      writeObject(r.obj, f.output);
      const json = reportJson(input, f.output, r);
      if (f.report) writeFileAtomic(f.report, new TextEncoder().encode(JSON.stringify(json, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n'));
      if (f.json) printJson(json);
      else printText(input, f.output, r);
      return r.remaining === 0 ? EXIT.OK : EXIT.NEGATIVE;
    }));
}
