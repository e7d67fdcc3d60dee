// `k2 check-semantics OBJ`: the interpreter against the kernel (BPF_PROG_TEST_RUN) on generated inputs.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { action, printJson, table, EXIT_CODES_HELP } from './common.js';
import { EXIT, K2Error } from '../util/errors.js';
import { checkSemantics, type DiffReport } from '../testgen/diff.js';
import { requireBpf } from './verify.js';

const HELP = `
Runs every program of OBJ that BPF_PROG_TEST_RUN can run with a packet (xdp, tc, socket filter,
cgroup_skb, lwt) in k2's interpreter and in the kernel, on the same generated inputs (Ethernet,
VLAN, IPv4, IPv6, TCP, UDP, ICMP, ARP, truncated and random packets; random __sk_buff fields) and
the same map contents, and compares the return value, the output packet and context, and every
map. The kernel is the reference. Inputs come in sessions of 8 that share map state.
Outcomes that differ only in bytes holding a ktime/prandom result are not mismatches (counted as
nondetInputs); inputs on which the interpreter finds undefined behaviour (reading uninitialised
stack) are not compared (undefinedInputs).

JSON: {"programs":[{"section","name","type","inputs","mismatches","undefinedInputs","nondetInputs",
"firstMismatch":{input,packet,ctx,field,a:kernel,b:interpreter}|null}], "untestable":[{"name","why"}]}

Exit status: 0 no mismatches; 1 mismatches; 2 bad input or an interpreter limitation;
3 bpf() unavailable.
${EXIT_CODES_HELP}`;

export function positiveInt(v: string, flag: string, min = 1): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > 0x7fffffff) throw new K2Error('usage', `${flag} must be an integer >= ${min} (got '${v}')`);
  return n;
}

export function printDiffReport(r: DiffReport, json: boolean | undefined, refName: string, otherName: string): number {
  const bad = r.programs.reduce((n, p) => n + p.mismatches, 0);
  if (json) {
    printJson({ programs: r.programs, untestable: r.untestable });
  } else {
    const rows = r.programs.map((p) => [p.section, p.name, p.type, p.inputs, p.mismatches, p.undefinedInputs ?? 0, p.nondetInputs ?? 0]);
    process.stdout.write(table(['SECTION', 'PROGRAM', 'TYPE', 'INPUTS', 'MISMATCHES', 'UNDEFINED', 'NONDET'], rows));
    for (const p of r.programs) {
      if (!p.firstMismatch) continue;
      const m = p.firstMismatch;
      process.stdout.write(`\n${p.name}: first mismatch on input ${m.input} (${m.field})\n  packet ${m.packet}\n`);
      if (m.ctx) process.stdout.write(`  ctx    ${m.ctx}\n`);
      process.stdout.write(`  ${refName}: ${JSON.stringify(m.a)}\n  ${otherName}: ${JSON.stringify(m.b)}\n`);
    }
    for (const u of r.untestable) process.stdout.write(`not tested: ${u.section} ${u.name} (${u.type}): ${u.why}\n`);
  }
  return bad > 0 ? EXIT.NEGATIVE : EXIT.OK;
}

export function register(program: Command): void {
  program
    .command('check-semantics')
    .description("compare k2's interpreter with the kernel (BPF_PROG_TEST_RUN) on generated inputs")
    .argument('<OBJ>', 'BPF ELF object')
    .option('--inputs <N>', 'inputs per program', '2000')
    .option('--seed <S>', 'seed of the input generator', '1')
    .option('--prog <NAME...>', 'only these programs')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', HELP)
    .action(
      action(async (obj: string, flags: { inputs: string; seed: string; json?: boolean; prog?: string[] }) => {
        const inputs = positiveInt(flags.inputs, '--inputs');
        const seed = positiveInt(flags.seed, '--seed', 0);
        if (!existsSync(obj)) throw new K2Error('input', 'cannot read: no such file', { file: obj });
        await requireBpf('libbpf');
        const r = await checkSemantics(obj, { inputs, seed, ...(flags.prog ? { programs: flags.prog } : {}) });
        return printDiffReport(r, flags.json, 'kernel', 'interpreter');
      }),
    );
}
