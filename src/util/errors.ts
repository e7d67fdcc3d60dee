// One error class for everything k2 reports to a user. The CLI prints `message` as one line
// and exits with the code of `kind`.

export const EXIT = {
  OK: 0,
  NEGATIVE: 1, // a check answered "no": rejected, different, mismatches found
  BAD_INPUT: 2, // usage error or an input file k2 cannot use
  NO_BPF: 3, // bpf() unavailable (needs root / CAP_BPF)
  UNKNOWN: 4, // solver could not decide (timeout/unknown)
  NO_TOOL: 5, // a required external tool (clang, bpftool, llvm-objdump) is missing
  IO: 6, // could not write an output file
  UNCHECKED: 7, // nothing was answered "no", but something could not be checked on this host (attach target, kfunc, test_run unsupported…)
  INTERNAL: 70, // a bug in k2
} as const;

export type ErrorKind = 'usage' | 'input' | 'unsupported' | 'tool' | 'bpf' | 'io' | 'internal';

const exitByKind: Record<ErrorKind, number> = {
  usage: EXIT.BAD_INPUT,
  input: EXIT.BAD_INPUT,
  unsupported: EXIT.BAD_INPUT,
  tool: EXIT.NO_TOOL,
  bpf: EXIT.NO_BPF,
  io: EXIT.IO,
  internal: EXIT.INTERNAL,
};

export interface Where {
  file?: string;
  section?: string;
  offset?: number; // byte offset within the section
  insn?: number; // instruction (slot) index within the section
}

export class K2Error extends Error {
  readonly kind: ErrorKind;
  readonly where: Where;
  readonly cause_: string;
  constructor(kind: ErrorKind, cause: string, where: Where = {}) {
    super(formatWhere(where) + cause);
    this.name = 'K2Error';
    this.kind = kind;
    this.where = where;
    this.cause_ = cause;
  }
  get exitCode(): number {
    return exitByKind[this.kind];
  }
  /** The same error, located in `file` (when not located already). */
  inFile(file: string): K2Error {
    if (this.where.file) return this;
    return new K2Error(this.kind, this.cause_, { ...this.where, file });
  }
}

function formatWhere(w: Where): string {
  const parts: string[] = [];
  if (w.file) parts.push(w.file);
  if (w.section !== undefined) parts.push(`section ${w.section}`);
  if (w.offset !== undefined) parts.push(`offset ${w.offset}`);
  else if (w.insn !== undefined) parts.push(`insn ${w.insn}`);
  return parts.length ? parts.join(': ') + ': ' : '';
}

export const inputError = (cause: string, where: Where = {}): K2Error => new K2Error('input', cause, where);
