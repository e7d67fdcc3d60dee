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
the output packet and context, and the maps. A program OPT lacks or the verifier rejects in OPT
counts as a mismatch.

Nondeterminism: ORIG is loaded twice and run twice on every input from the same map state; the
outputs that differ between those two runs (clock, random numbers, CPU ids, pointers) are
nondeterministic. They are listed per program (field and byte ranges, e.g. "packet bytes 0-7",
"map NAME value bytes 0-7") and a difference of OPT there is not a mismatch (NONDET counts such
inputs); every other byte is compared.

Maps: inputs come in sessions of 8; maps of up to 4096 entries are reset before and compared after
every session; bigger maps keep their contents across sessions and are compared after the first
and the last session (the mismatch then names the inputs it appeared after), read a chunk at a
time (BPF_MAP_LOOKUP_BATCH), so memory stays bounded whatever their size.

Programs that cannot be tested are listed with the reason, the others still tested: program types
without a packet test run, programs the kernel does not load here, programs BPF_PROG_TEST_RUN
refuses (e.g. SEC("xdp/cpumap") and SEC("xdp/devmap"), EINVAL). Inputs the kernel refuses for
ORIG are skipped (REFUSED).

JSON (ORIG is "a", OPT is "b"): {"file","tested":bool,"programs":[{"section","name","type",
"inputs","mismatches","nondetInputs","refusedInputs","nondeterministic":[{"field","bytes","inputs"}],
"firstMismatch","mismatchList":[{"input","packet","ctx","field","bytes","after","a","b"}]}],
"untestable":[{"section","name","type","why"}]}

Exit status: 0 some program tested and no mismatch; 1 mismatches; 2 bad input; 3 bpf()
unavailable; 7 no program could be tested here.
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
