// `k2 cc ARGS…` / `k2-clang ARGS…`: a drop-in for `clang -target bpf`.
import type { Command } from 'commander';
import { classifyClangArgs, runClang } from '../toolchain/index.js';
import { relinkFile } from '../driver/index.js';
import { optimizeFile } from '../driver/optimize.js';
import { loadConfig } from '../config/index.js';
import { K2Error } from '../util/errors.js';

/**
 * Runs clang with exactly `args`; when they produce BPF object files, each goes through k2's
 * pipeline. A failure there keeps clang's object untouched and prints a warning: a build is never
 * broken by k2. Returns the exit code.
 */
export async function cc(args: string[]): Promise<number> {
  const inv = classifyClangArgs(args);
  const code = await runClang(args);
  if (code !== 0 || !inv.bpfObject) return code;
  const { config } = loadConfig();
  for (const out of inv.outputs) {
    try {
      if (!config.optimize) relinkFile(out, out);
      else {
        const r = await optimizeFile(out, out, { kernel: config.kernel, synth: { budgetMs: config.budgetMs, timeoutMs: config.timeoutMs, tailMerge: config.tailMerge, search: { iterations: config.iterations, beta: 1, seed: 1 } } });
        for (const s of r.sections) if (s.status === 'reverted') process.stderr.write(`k2: warning: ${out}: section ${s.name} kept as clang wrote it: ${s.reason}\n`);
      }
    } catch (e) {
      const msg = e instanceof K2Error ? e.message : `internal error: ${(e as Error).message}`;
      process.stderr.write(`k2: warning: ${msg}; kept clang's output\n`);
    }
  }
  return 0;
}

export function register(program: Command): void {
  program
    .command('cc')
    .description('drop-in for `clang -target bpf`: runs clang, then optimizes the BPF objects it writes')
    .argument('[clang-args...]', 'arguments passed to clang unchanged')
    .allowUnknownOption()
    .helpOption(false)
    .passThroughOptions()
    .addHelpText('after', `
Every argument goes to clang unchanged (set K2_CLANG to choose the clang binary). When they compile
to BPF object files (-target bpf / --target=bpf*, -c), each object is optimized by k2 after clang
succeeds (settings: k2.config.json, see k2.config.example.json; K2_OPT=0 relinks only); on any k2 failure clang's object is kept and a warning printed. Other invocations (-E, -S,
-emit-llvm, other targets, --version) are passed through with clang's exit code.
Exit codes: clang's own; 5 if clang is missing.`)
    .action(async (clangArgs: string[]) => {
      try {
        process.exitCode = await cc(clangArgs);
      } catch (e) {
        process.stderr.write(`k2: ${(e as Error).message}\n`);
        process.exitCode = e instanceof K2Error ? e.exitCode : 70;
      }
    });
}
