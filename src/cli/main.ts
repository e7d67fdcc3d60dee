// The `k2` command line. Each command lives in its own module with a `register(program)` function.
import { Command } from 'commander';
import { EXIT_CODES_HELP } from './common.js';
import { commands } from './commands.js';

/** Runs one command. The caller exits the process afterwards (Z3's worker threads keep it alive). */
export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('k2')
    .description('k2: a superoptimizing compiler for eBPF objects')
    .version('0.1.0')
    .addHelpText('after', EXIT_CODES_HELP)
    .showHelpAfterError()
    .enablePositionalOptions()
    .exitOverride((err) => {
      // commander's own usage errors: exit code 2 like any bad usage; --help/--version exit 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  for (const register of commands) register(program);
  await program.parseAsync(argv);
}
