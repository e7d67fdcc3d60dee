import type { Command } from 'commander';
import { readObject } from '../ir/index.js';
import { checkObjects, type CheckOptions } from '../smt/index.js';
import { EXIT, K2Error } from '../util/errors.js';
import { action, printJson, table } from './common.js';

interface Opts {
  section?: string;
  json?: boolean;
  timeout?: string;
  ret32?: boolean;
  no?: string[];
}

const SPEEDUPS = ['mem-types', 'map-types', 'offsets', 'modular', 'cache', 'fast-paths'];

export function register(program: Command): void {
  program
    .command('equiv')
    .description('prove two BPF objects equivalent (same return value, packet, context writes, map writes and helper effects for every input)')
    .argument('<a>', 'first BPF object')
    .argument('<b>', 'second BPF object')
    .option('--section <s>', 'compare only the program(s) of this section')
    .option('--json', 'print {"equivalent":true|false|null, "counterexample":{…}|null, "ms":N, "programs":[…]}')
    .option('--timeout <ms>', 'solver timeout per query in milliseconds', '30000')
    .option('--ret32', 'compare only the low 32 bits of r0 (what the kernel uses for packet programs)')
    .option('--no <speedup...>', `disable speed-ups (for ablation): ${SPEEDUPS.join(', ')}`)
    .addHelpText('after', `
Programs are matched by name. Loops are unrolled while their bound is a constant; programs with more
than 4096 paths, unmodelled helpers or instructions are reported unknown (null), never equal.
Exit codes: 0 equivalent, 1 different (a counterexample is printed), 4 unknown (timeout/unsupported),
2 bad input.`)
    .action(action(async (a: string, b: string, opts: Opts) => {
      const off = new Set(opts.no ?? []);
      for (const s of off) if (!SPEEDUPS.includes(s)) throw new K2Error('usage', `unknown speed-up ${s} (known: ${SPEEDUPS.join(', ')})`);
      const timeoutMs = Number(opts.timeout ?? 30000);
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new K2Error('usage', `bad --timeout ${opts.timeout}`);
      const objA = readObject(a);
      const objB = readObject(b);
      const o: CheckOptions & { section?: string } = {
        timeoutMs,
        retBits: opts.ret32 ? 32 : 64,
        memTypes: !off.has('mem-types'),
        mapTypes: !off.has('map-types'),
        offsets: !off.has('offsets'),
        modular: !off.has('modular'),
        cache: !off.has('cache'),
        fastPaths: !off.has('fast-paths'),
        ...(opts.section !== undefined ? { section: opts.section } : {}),
      };
      const r = await checkObjects(objA, objB, o);
      if (opts.json) {
        printJson({
          equivalent: r.equivalent,
          counterexample: r.counterexample,
          ms: r.ms,
          ...(r.reason ? { reason: r.reason } : {}),
          programs: r.programs.map((p) => ({ section: p.section, name: p.name, equivalent: p.equivalent, via: p.via, ms: p.ms, ...(p.reason ? { reason: p.reason } : {}) })),
        });
      } else {
        process.stdout.write(table(['section', 'program', 'equivalent', 'how', 'ms'],
          r.programs.map((p) => [p.section, p.name, p.equivalent === null ? `unknown (${p.reason ?? ''})` : String(p.equivalent), p.via, Math.round(p.ms)])));
        if (r.counterexample) process.stdout.write(`counterexample: ${JSON.stringify(r.counterexample.difference)}\n`);
      }
      return r.equivalent === true ? EXIT.OK : r.equivalent === false ? EXIT.NEGATIVE : EXIT.UNKNOWN;
    }));
}
