// `k2 difftest ORIG.o OPT.o`: two objects side by side in the kernel on generated inputs.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { action, EXIT_CODES_HELP } from './common.js';
import { K2Error } from '../util/errors.js';
import { diffObjects } from '../testgen/diff.js';
import { requireBpf } from './verify.js';
import { positiveInt, printDiffReport } from './check-semantics.js';

const HELP = `
Loads both objects and runs every packet program of ORIG (matched by name in OPT) in the kernel
with BPF_PROG_TEST_RUN on the same generated inputs and map contents, comparing the return value,
the output packet and context, and every map. A program OPT lacks or the verifier rejects in OPT
counts as a mismatch. Maps are compared at the end of each session of 8 inputs. When the objects
read the clock, map values that differ only in nearby ktime-like 8-byte values are not mismatches;
when they use get_prandom_u32, differing inputs are counted as nondetInputs instead. Same JSON as
check-semantics ("a" is ORIG, "b" is OPT).

Exit status: 0 no mismatches; 1 mismatches; 2 bad input; 3 bpf() unavailable.
${EXIT_CODES_HELP}`;

export function register(program: Command): void {
  program
    .command('difftest')
    .description('run an original and an optimized object side by side in the kernel on generated inputs')
    .argument('<ORIG>', 'original BPF object')
    .argument('<OPT>', 'optimized BPF object')
    .option('--inputs <N>', 'inputs per program', '2000')
    .option('--seed <S>', 'seed of the input generator', '1')
    .option('--prog <NAME...>', 'only these programs')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', HELP)
    .action(
      action(async (orig: string, opt: string, flags: { inputs: string; seed: string; json?: boolean; prog?: string[] }) => {
        const inputs = positiveInt(flags.inputs, '--inputs');
        const seed = positiveInt(flags.seed, '--seed', 0);
        for (const f of [orig, opt]) if (!existsSync(f)) throw new K2Error('input', 'cannot read: no such file', { file: f });
        await requireBpf('libbpf');
        const r = await diffObjects(orig, opt, { inputs, seed, ...(flags.prog ? { programs: flags.prog } : {}) });
        return printDiffReport(r, flags.json, 'orig', 'opt');
      }),
    );
}
