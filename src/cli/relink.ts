import type { Command } from 'commander';
import { relinkFile } from '../driver/index.js';
import { action, printJson } from './common.js';

export function register(program: Command): void {
  program
    .command('relink')
    .description('read an object into k2\'s IR and write it back (a test of the relinker)')
    .argument('<in>', 'input BPF object')
    .requiredOption('-o, --output <out>', 'output object')
    .option('--insert-nops', 'insert `ja +0` before every instruction (exercises offset/relocation/BTF.ext rewriting)')
    .option('--json', 'print a JSON report')
    .addHelpText('after', `
Jump offsets, call immediates, relocation offsets, symbol values/sizes and BTF.ext insn_offs are
recomputed. When code changed, DWARF (.debug_*) is dropped (libbpf ignores it; line info for the
verifier lives in .BTF.ext). The output is written to a temporary file and renamed into place.
Exit codes: 0 ok, 2 bad input, 6 cannot write output.`)
    .action(action((input: string, opts: { output: string; insertNops?: boolean; json?: boolean }) => {
      const report = relinkFile(input, opts.output, { insertNops: opts.insertNops });
      if (opts.json) printJson(report);
    }));
}
