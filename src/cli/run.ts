// `k2 run OBJ --prog NAME`: run one program in the kernel with BPF_PROG_TEST_RUN.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { action, printJson, EXIT_CODES_HELP } from './common.js';
import { EXIT, K2Error } from '../util/errors.js';
import { openLoaded } from '../kernel/index.js';
import { parseLoader, requireBpf } from './verify.js';

interface RunFlags {
  prog: string;
  data?: string;
  dataHex?: string;
  ctx?: string;
  repeat?: string;
  dataSizeOut?: string;
  json?: boolean;
  loader: string;
  type?: string;
}

const HELP = `
Loads OBJ (nothing is pinned; everything is released on exit), runs program NAME once (or
--repeat N times) on the given packet/context with BPF_PROG_TEST_RUN, and prints the return
value, the kernel-measured average duration and the output packet:
  {"retval": N, "durationNs": N, "dataOut": "hex"}    (plus "ctxOut": "hex" with --ctx)
Packet programs (xdp, tc, socket) need at least a 14-byte Ethernet header as data.

Exit status for run: 0 the program ran; 1 the program was rejected by the verifier; 7 the
program cannot load on this host (attach target, kfunc or kernel feature missing, trampolines not
permitted); 2 bad input (unreadable object or data, unknown program, the kernel refused the run
input); 3 bpf() unavailable (needs root or CAP_BPF).
${EXIT_CODES_HELP}`;

function readBytes(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new K2Error('input', `cannot read ${what}: ${(e as Error).message}`, { file: path });
  }
}

export function parseHex(hex: string): Uint8Array {
  const clean = hex.replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new K2Error('usage', `--data-hex must be an even number of hex digits (got '${hex.slice(0, 40)}')`);
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) throw new K2Error('usage', `${flag} must be a positive integer (got '${v}')`);
  return n;
}

export function register(program: Command): void {
  program
    .command('run')
    .description('run one program of a BPF object in the kernel (BPF_PROG_TEST_RUN)')
    .argument('<OBJ>', 'BPF ELF object')
    .requiredOption('--prog <NAME>', 'program (function) name')
    .option('--data <FILE>', 'input packet (data_in) from a file')
    .option('--data-hex <HEX>', 'input packet (data_in) as hex digits')
    .option('--ctx <FILE>', 'input context (ctx_in) from a file; ctx_out is printed')
    .option('--repeat <N>', 'run N times; duration is the average (default: once)')
    .option('--data-size-out <N>', 'size of the output packet buffer (default: input size + 4096)')
    .option('--json', 'print the result as JSON')
    .option('--loader <name>', 'libbpf (in-process, default), bpftool, or legacy (k2\'s loader for legacy "maps" objects)', 'libbpf')
    .option('--type <TYPE>', 'program type for sections libbpf does not know (xdp, socket, tc, ...)')
    .addHelpText('after', HELP)
    .action(
      action(async (obj: string, flags: RunFlags) => {
        const loader = parseLoader(flags.loader);
        if (flags.data && flags.dataHex) throw new K2Error('usage', 'give either --data or --data-hex, not both');
        const repeat = flags.repeat !== undefined ? positiveInt(flags.repeat, '--repeat') : undefined;
        const dataSizeOut = flags.dataSizeOut ? positiveInt(flags.dataSizeOut, '--data-size-out') : undefined;
        const dataIn = flags.data ? readBytes(flags.data, 'data') : flags.dataHex ? parseHex(flags.dataHex) : new Uint8Array(0);
        const ctxIn = flags.ctx ? readBytes(flags.ctx, 'ctx') : undefined;
        const bytes = readBytes(obj, 'object');
        await requireBpf(loader);
        const loaded = await openLoaded(bytes, { loader, progType: flags.type, name: obj });
        try {
          const v = loaded.programs.find((p) => p.name === flags.prog);
          if (!v) throw new K2Error('input', `no program named '${flags.prog}' (programs: ${loaded.programs.map((p) => p.name).join(', ') || 'none'})`, { file: obj });
          if (v.verdict === 'rejected') {
            process.stderr.write(`k2: ${obj}: program '${v.name}' was rejected by the verifier: ${v.error}\n`);
            return EXIT.NEGATIVE;
          }
          if (v.verdict === 'cannot-load') {
            process.stderr.write(`k2: ${obj}: program '${v.name}': ${v.error}\n`);
            return EXIT.UNCHECKED;
          }
          const r = await loaded.testRun(flags.prog, { dataIn, ctxIn, repeat, dataSizeOut });
          if (flags.json) {
            printJson({ retval: r.retval, durationNs: r.durationNs, dataOut: hex(r.dataOut), ...(r.ctxOut ? { ctxOut: hex(r.ctxOut) } : {}) });
          } else {
            process.stdout.write(`retval      ${r.retval} (0x${r.retval.toString(16)})\n`);
            process.stdout.write(`duration    ${r.durationNs} ns${repeat && repeat > 1 ? ` (average of ${repeat} runs)` : ''}\n`);
            process.stdout.write(`data_out    ${hex(r.dataOut) || '(empty)'}\n`);
            if (r.ctxOut) process.stdout.write(`ctx_out     ${hex(r.ctxOut)}\n`);
          }
          return EXIT.OK;
        } finally {
          await loaded.close();
        }
      }),
    );
}
