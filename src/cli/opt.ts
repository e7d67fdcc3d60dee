// `k2 opt IN -o OUT`: superoptimize every code section, gate each, write the object and a report.
import type { Command } from 'commander';
import { optimizeObject, type Effort, type Objective, type OptimizeReport } from '../driver/optimize.js';
import { readObject, writeObject, type BpfObject } from '../ir/index.js';
import { slotsOf } from '../isa/index.js';
import { repairLine, repairStage, type RepairSummary } from '../repair/index.js';
import { EXIT } from '../util/errors.js';
import { K2Error } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { action, printJson, table, EXIT_CODES_HELP } from './common.js';

const OBJECTIVES: Objective[] = ['size', 'latency', 'verifier'];
const EFFORTS: Effort[] = ['build', 'thorough'];

function num(v: string | undefined, flag: string, min: number, integer = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new K2Error('usage', `${flag} must be ${integer ? 'an integer' : 'a number'} ≥ ${min} (got '${v}')`);
  return n;
}

const pct = (a: number, b: number): string => (a ? `${((100 * (a - b)) / a).toFixed(1)}%` : '0.0%');

const objectSlots = (obj: BpfObject): number => obj.code.reduce((n, sec) => n + sec.insns.reduce((m, i) => m + slotsOf(i), 0), 0);

function summary(r: OptimizeReport & { repair?: RepairSummary; inputSlots?: number }): string {
  const rows = r.sections.map((s) => [
    s.name, s.before.slots, s.after.slots, s.status + (s.reason ? ` (${s.reason})` : ''),
    `${s.before.latencyNs}→${s.after.latencyNs}`,
    s.before.verifiedInsns === null ? '–' : `${s.before.verifiedInsns}→${s.after.verifiedInsns}${s.after.verifiedBy === 'model' ? ' (model)' : ''}`,
    s.difftest ? `${s.difftest.mismatches}/${s.difftest.inputs}` : '–', (s.ms / 1000).toFixed(1),
  ]);
  const head = table(['section', 'slots', 'after', 'status', 'latency ns', 'verified insns', 'difftest', 's'], rows);
  const checked = r.kernelChecked ? 'kernel-verified' : 'model-checked only (no kernel check)';
  const repaired = r.repair ? repairLine(r.repair) : null;
  const from = r.inputSlots !== undefined && r.inputSlots !== r.slotsBefore ? `input ${r.inputSlots} slots, after repair ` : '';
  return `${head}${repaired ? `${repaired}\n` : ''}${from}${r.slotsBefore} → ${r.slotsAfter} slots (-${pct(r.slotsBefore, r.slotsAfter)}), latency ${r.before.latencyNs} → ${r.after.latencyNs} ns (model), objective ${r.objective}, ${(r.ms / 1000).toFixed(1)} s, ${checked}\n`;
}

export function register(program: Command): void {
  program
    .command('opt')
    .description('superoptimize every code section of a BPF object')
    .argument('<in>', 'input BPF object (clang -target bpf output)')
    .requiredOption('-o, --output <out>', 'output object')
    .option('--objective <what>', 'size (slots), latency (the measured per-opcode cost table), or verifier (verified_insns)', 'size')
    .option('--time <seconds>', 'search budget for the whole object (default: 60 with --effort thorough, 1.5 with build)')
    .option('--budget-ms <ms>', 'alias of --time, in milliseconds')
    .option('--jobs <n>', 'worker threads, each with its own Z3 (default: the number of cores)')
    .option('--seed <n>', 'search seed: with the same seed and settings the output is the same, whatever --jobs', '1')
    .option('--effort <profile>', 'build (fast: the enumerated rewrites and the cache, a short search, no SMT solver) or thorough', 'thorough')
    .option('--no-kernel', 'no kernel verifier and no difftest (then the safety model alone decides)')
    .option('--allow-verifier-growth', 'with --objective size: keep rewrites that make verified_insns grow by more than 10%')
    .option('--keep-rejected <dir>', 'save each candidate the final gate refused (object + verifier log) for a bug report')
    .option('--difftest-inputs <n>', 'generated inputs per program in the final difftest (0: none)')
    .option('--no-cache', 'do not read or write the proven-rewrite cache')
    .option('--report <file>', 'write the JSON report to FILE')
    .option('--json', 'print the JSON report')
    .option('--iterations <n>', 'MCMC iterations per window and round')
    .option('--timeout-ms <ms>', 'SMT timeout per equivalence query (0: no solver, only identical normal forms prove)')
    .option('--no-tail-merge', 'keep duplicated block tails (tail merging saves slots; a merged path runs one more goto)')
    .option('--repair', 'first repair programs the kernel verifier rejects (as k2 repair; needs bpf()), then optimize')
    .addHelpText('after', `
Every rewrite is proven equivalent (Z3 or the term normal form; tail merges by pairing both
control-flow graphs; timeout or unknown = rejected) and checked by k2's model of the verifier.
Then each changed section passes a final gate on the whole object: the safety model, the kernel
verifier on the programs that run it (where bpf() works), verified_insns not growing by more
than 10%, and a kernel difftest (original vs optimized, generated inputs) for programs that can be
test-run. If the gate refuses, the section keeps the longest accepted prefix of its rewrites
(found by bisection), the refused rewrite is blacklisted and the search goes on while --time
lasts. A difftest mismatch is reported as a k2 bug with its input.
Windows are searched in parallel (--jobs worker threads) in batches of a fixed size, each seeded
from its own content, and applied in window order; sections smallest first, each from the
original object. The result does not depend on --jobs, only on --seed and the settings, as long
as the searches finish within --time (a search cut short by the clock depends on the machine's
speed). With --effort thorough a Z3 resource limit, not the clock, decides each query.
Proven rewrites are cached in $K2_CACHE_DIR (else $XDG_CACHE_HOME/k2, else ~/.cache/k2) under
rewrites/; a cached rewrite is proven again on the window before use.
The report (--json, --report) has per section: before/after {slots, insns, latencyNs,
verifiedInsns}, status optimized|unchanged|fallback, reason, proven, kernel, difftest, ms.
When code changes, DWARF (.debug_*) is dropped.
--repair: programs the kernel rejects are first repaired as by \`k2 repair\` (each repair proven
equivalent to the input, then confirmed by the kernel); the optimizer then starts from the
repaired object and keeps every program it accepts accepted. The report gets "repair" (per
rejected program: before, changes, proof, after). Without bpf() repair is skipped with a warning.
Exit status with --repair: 1 when some program is still rejected (OUT is written all the same).
${EXIT_CODES_HELP}`)
    .action(action(async (input: string, o: {
      output: string; objective: string; time?: string; budgetMs?: string; jobs?: string; seed: string; effort: string; kernel: boolean;
      allowVerifierGrowth?: boolean; keepRejected?: string; difftestInputs?: string; cache: boolean; report?: string; json?: boolean;
      iterations?: string; timeoutMs?: string; tailMerge: boolean; repair?: boolean;
    }) => {
      if (!OBJECTIVES.includes(o.objective as Objective)) throw new K2Error('usage', `--objective must be one of ${OBJECTIVES.join(', ')} (got '${o.objective}')`);
      if (!EFFORTS.includes(o.effort as Effort)) throw new K2Error('usage', `--effort must be build or thorough (got '${o.effort}')`);
      if (o.allowVerifierGrowth && o.objective !== 'size') throw new K2Error('usage', '--allow-verifier-growth goes with --objective size only');
      const time = num(o.time, '--time', 0);
      const budgetMs = num(o.budgetMs, '--budget-ms', 0);
      const iterations = num(o.iterations, '--iterations', 0, true);
      const timeoutMs = num(o.timeoutMs, '--timeout-ms', 0);
      const seed = num(o.seed, '--seed', 0, true)!;
      const tty = process.stderr.isTTY && !o.json && !process.env.K2_PROGRESS;
      const t0 = Date.now();
      const progress = process.env.K2_PROGRESS ? (m: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${m}\n`) : tty ? (m: string) => process.stderr.write(`\r\x1b[K${m}`) : undefined;
      let obj = readObject(input);
      const inputSlots = objectSlots(obj);
      let repair: RepairSummary | undefined;
      if (o.repair) {
        ({ obj, repair } = await repairStage(obj, { onEvent: (m) => progress?.(`repair: ${m}`) }));
        if (repair.status === 'skipped') process.stderr.write(`${tty ? '\r\x1b[K' : ''}k2: warning: ${input}: ${repair.reason}\n`);
      }
      const { obj: out, report: optimized } = await optimizeObject(obj, {
        objective: o.objective as Objective,
        effort: o.effort as Effort,
        timeSec: time ?? (budgetMs !== undefined ? budgetMs / 1000 : undefined),
        jobs: num(o.jobs, '--jobs', 1, true),
        seed,
        kernel: o.kernel,
        allowVerifierGrowth: !!o.allowVerifierGrowth,
        keepRejected: o.keepRejected ?? null,
        difftestInputs: num(o.difftestInputs, '--difftest-inputs', 0, true),
        cache: o.cache,
        synth: {
          tailMerge: o.tailMerge,
          ...(timeoutMs !== undefined ? { timeoutMs } : {}),
          ...(iterations !== undefined ? { search: { iterations, beta: 1, seed } } : {}),
        },
        // K2_PROGRESS=1: one timestamped line per step (logs, CI); a TTY gets one updating line
        onProgress: progress,
      });
      writeObject(out, o.output);
      const report = { ...optimized, output: o.output, ...(repair ? { repair, inputSlots } : {}) };
      if (tty) process.stderr.write('\r\x1b[K');
      if (o.report) writeFileAtomic(o.report, new TextEncoder().encode(JSON.stringify(report, null, 2) + '\n'));
      const code = repair && repair.remaining > 0 ? EXIT.NEGATIVE : EXIT.OK;
      if (o.json) {
        printJson(report);
        return code;
      }
      process.stdout.write(summary(report));
      return code;
    }));
}
