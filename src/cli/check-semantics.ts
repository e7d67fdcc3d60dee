// `k2 check-semantics OBJ`: the interpreter against the kernel (BPF_PROG_TEST_RUN) on generated inputs.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { action, printJson, table, EXIT_CODES_HELP } from './common.js';
import { EXIT, K2Error } from '../util/errors.js';
import { checkSemantics, type DiffReport, type Mismatch } from '../testgen/diff.js';
import { requireBpf } from './verify.js';

const HELP = `
Runs every program of OBJ that BPF_PROG_TEST_RUN can run with a packet (xdp, tc, socket filter,
cgroup_skb, lwt) in k2's interpreter and in the kernel, on the same generated inputs (Ethernet,
VLAN, IPv4, IPv6, TCP, UDP, ICMP, ARP, truncated and random packets; random __sk_buff fields) and
the same map contents, and compares the return value, the output packet and context, and the maps.
The kernel is the reference. Inputs come in sessions of 8 that share map state; maps are compared
key by key where the interpreter touched them after every input, and whole after every session
(maps of more than 4096 entries: after the first and the last session, read a chunk at a time).
fib_lookup and get_hash_recalc get this host's answers (small probe programs run the helper in the
kernel with the same arguments). CO-RE relocated instructions and .kconfig externs run with the
values the kernel loader patched in (the instructions it loaded, mapped back onto the object's);
where that code cannot be mapped, with k2's own CO-RE values when it knows them exactly. Outcomes
that differ only in bytes holding a ktime/prandom result, or after the program read the clock or
random numbers, are not mismatches (NONDET); inputs on which the interpreter finds undefined
behaviour (reading uninitialised stack) are not compared (UNDEFINED); inputs the kernel refuses to
run are skipped (REFUSED; the first, when no input ran yet, is replaced by a well-formed IPv4/UDP
packet, which tells a program the kernel never runs from one bad input). Programs that cannot be
tested are listed with the reason: types without a packet test run, programs the kernel does not
load or test-run here (with its errno), helpers or contexts k2's interpreter does not model.

JSON: {"file","tested":bool,"programs":[{"section","name","type","inputs","mismatches",
"undefinedInputs","nondetInputs","refusedInputs","firstMismatch":{input,packet,ctx,field,a:kernel,
b:interpreter}|null}], "untestable":[{"section","name","type","why"}]}

Exit status: 0 some program tested and no mismatch; 1 mismatches; 2 bad input; 3 bpf()
unavailable; 7 no program could be tested here.
${EXIT_CODES_HELP}`;

export function positiveInt(v: string, flag: string, min = 1): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > 0x7fffffff) throw new K2Error('usage', `${flag} must be an integer >= ${min} (got '${v}')`);
  return n;
}

/** Whether some program of the report had inputs compared. */
export const anyTested = (r: DiffReport): boolean => r.programs.some((p) => p.inputs > 0);

/** Exit status of a report: 1 mismatches; 7 nothing could be tested; 0 some program tested, no mismatch. */
export function diffExit(r: DiffReport): number {
  if (r.programs.some((p) => p.mismatches > 0)) return EXIT.NEGATIVE;
  return anyTested(r) ? EXIT.OK : EXIT.UNCHECKED;
}

function describeMismatch(m: Mismatch, refName: string, otherName: string): string {
  const where = m.after ? `after inputs ${m.after[0]}..${m.after[1]}` : m.input < 0 ? 'loading' : `on input ${m.input}`;
  let out = `  ${m.field}${m.bytes ? ` bytes ${m.bytes}` : ''} differs ${where}
`;
  if (m.packet) out += `    packet ${m.packet}
`;
  if (m.ctx) out += `    ctx    ${m.ctx}
`;
  out += `    ${refName}: ${JSON.stringify(m.a)}
    ${otherName}: ${JSON.stringify(m.b)}
`;
  return out;
}

export function printDiffReport(r: DiffReport, json: boolean | undefined, refName: string, otherName: string): number {
  if (json) {
    printJson({ file: r.file, tested: anyTested(r), programs: r.programs, untestable: r.untestable });
    return diffExit(r);
  }
  const rows = r.programs.map((p) => [p.section, p.name, p.type, p.inputs, p.mismatches, p.nondetInputs ?? 0, p.undefinedInputs ?? 0, p.refusedInputs ?? 0]);
  if (rows.length) process.stdout.write(table(['SECTION', 'PROGRAM', 'TYPE', 'INPUTS', 'MISMATCHES', 'NONDET', 'UNDEFINED', 'REFUSED'], rows));
  for (const p of r.programs) {
    if (p.nondeterministic?.length) {
      const fields = p.nondeterministic.map((f) => `${f.field}${f.bytes ? ` bytes ${f.bytes}` : ''} (${f.inputs} input${f.inputs === 1 ? '' : 's'})`);
      process.stdout.write(`\n${p.name}: nondeterministic in ${refName} (differs between two runs on the same input): ${fields.join(', ')}\n`);
    }
    const list = p.mismatchList ?? (p.firstMismatch ? [p.firstMismatch] : []);
    if (!list.length) continue;
    process.stdout.write(`\n${p.name}: ${p.mismatches} input${p.mismatches === 1 ? '' : 's'} with a mismatch${list.length < p.mismatches ? `, first ${list.length}` : ''}:\n`);
    for (const m of list) process.stdout.write(describeMismatch(m, refName, otherName));
  }
  if (r.untestable.length) process.stdout.write('\n');
  for (const u of r.untestable) process.stdout.write(`not tested: ${u.section} ${u.name} (${u.type}): ${u.why}\n`);
  if (!anyTested(r)) process.stderr.write(`k2: ${r.file}: no program could be tested here\n`);
  return diffExit(r);
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
