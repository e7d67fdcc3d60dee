// `k2 safety OBJ [--json]`: k2's static prediction of the kernel verifier's verdict per program.
import type { Command } from 'commander';
import { readObject } from '../ir/index.js';
import { checkObject } from '../safety/index.js';
import { EXIT } from '../util/errors.js';
import { action, printJson, table } from './common.js';

export function register(program: Command): void {
  program
    .command('safety')
    .description('predict, without the kernel, whether the verifier accepts each program (fast static check)')
    .argument('<obj>', 'BPF object file')
    .option('--json', 'print {"programs":[{"section","name","safe","reason","insn"}]}')
    .addHelpText('after', `
k2 models the Linux 6.x verifier (register types, scalar bounds, stack, context, packet, map
values, helpers, bpf-to-bpf calls, bounded loops). When it is unsure it says unsafe: "safe" is
meant to imply that the kernel accepts the program. "insn" is the instruction index in the section
the reason is about (a callee's section is named in the reason).
Exit codes: 0 all programs safe, 1 some program unsafe, 2 bad input.`)
    .action(action((file: string, opts: { json?: boolean }) => {
      const obj = readObject(file);
      const programs = checkObject(obj);
      if (opts.json) printJson({ programs });
      else {
        process.stdout.write(table(['SECTION', 'NAME', 'SAFE', 'INSN', 'REASON'],
          programs.map((p) => [p.section, p.name, p.safe ? 'yes' : 'no', p.insn ?? '-', p.reason ?? ''])));
      }
      return programs.every((p) => p.safe) ? EXIT.OK : EXIT.NEGATIVE;
    }));
}
