import type { Command } from 'commander';
import { optimizeFile } from '../driver/optimize.js';
import { action, printJson, table } from './common.js';

export function register(program: Command): void {
  program
    .command('opt')
    .description('superoptimize every code section of a BPF object')
    .argument('<in>', 'input BPF object (clang -target bpf output)')
    .requiredOption('-o, --output <out>', 'output object')
    .option('--json', 'print a JSON report')
    .option('--budget-ms <ms>', 'search time per section', '20000')
    .option('--iterations <n>', 'MCMC iterations per window and round', '300')
    .option('--timeout-ms <ms>', 'SMT timeout per equivalence query', '2000')
    .option('--seed <n>', 'search seed (runs are reproducible)', '1')
    .option('--no-tail-merge', 'keep duplicated block tails (tail merging saves slots; a merged path runs one more goto)')
    .option('--no-kernel', 'do not load the result into the kernel verifier (then the safety model alone decides)')
    .addHelpText('after', `
Every rewrite is proven equivalent (Z3 or the term normal form; tail merges by pairing both
control-flow graphs; timeout or unknown = rejected) and checked by k2's model of the verifier;
where bpf() works, the output's programs are loaded into the real verifier, and any section whose
programs would not load keeps its original code. When code changes, DWARF (.debug_*)
is dropped. Exit codes: 0 ok, 2 bad input, 6 cannot write output, 70 internal error.`)
    .action(action(async (input: string, o: { output: string; json?: boolean; budgetMs: string; iterations: string; timeoutMs: string; seed: string; kernel: boolean; tailMerge: boolean }) => {
      const tty = process.stderr.isTTY && !o.json;
      const report = await optimizeFile(input, o.output, {
        kernel: o.kernel,
        synth: { budgetMs: Number(o.budgetMs), timeoutMs: Number(o.timeoutMs), tailMerge: o.tailMerge, search: { iterations: Number(o.iterations), beta: 1, seed: Number(o.seed) } },
        onProgress: tty ? (m) => process.stderr.write(`\r\x1b[K${m}`) : undefined,
      });
      if (tty) process.stderr.write('\r\x1b[K');
      if (o.json) return printJson(report);
      process.stdout.write(table(['section', 'slots', 'after', 'status', 'rewrites', 'ms'], report.sections.map((s) => [s.name, s.slotsBefore, s.slotsAfter, s.status + (s.reason ? ` (${s.reason})` : ''), s.rewrites, s.ms])));
      const pct = report.slotsBefore ? ((100 * (report.slotsBefore - report.slotsAfter)) / report.slotsBefore).toFixed(1) : '0';
      process.stdout.write(`${report.slotsBefore} → ${report.slotsAfter} slots (-${pct}%) in ${report.ms} ms${report.kernelChecked ? ', kernel-verified' : ', model-checked only (no bpf())'}\n`);
    }));
}
