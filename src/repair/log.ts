// Reading a verifier log (log level 2, as k2's loaders request it): which instruction the kernel
// refused, why, and what it knew about the registers just before it. Pure functions on text.
//
// The log prints, per processed instruction, `N: (op) text ; <registers it changed>`, full states
// at branch targets and pruning points (`N: R1=ctx() R10=fp0`, `from X to Y: ...`) and, after the
// last instruction of the failing path, the complaint. Register states look like
// `R1=map_value(map=hist,ks=4,vs=128,off=8,smin=...)`, `R2=fp-4`, `R3=pkt_end()`, `R0=17`.

/** What the verifier knew about one register. */
export interface RegView {
  /** 'scalar', 'ctx', 'fp', 'pkt', 'pkt_end', 'map_value', 'map_ptr', 'ringbuf_mem', 'mem', 'const', ... */
  type: string;
  /** The `key=value` fields inside the parentheses (off, r, vs, sz, smin, umax, id, ...). */
  fields: Record<string, string>;
  /** Frame-pointer offset (`fp-8` → -8) for type 'fp'. */
  fpOff?: number;
  /** The value of a known constant (type 'const'). */
  value?: bigint;
  text: string;
}

export type FailureKind =
  /** `At program exit the register R0 has ... should have been in [lo, hi]`. */
  | { kind: 'retval'; lo: bigint; hi: bigint }
  /** `the call stack of N frames is too deep`. */
  | { kind: 'call-depth'; frames: number }
  /** `R8 !read_ok`: a register read before any write on some path. */
  | { kind: 'uninit'; reg: number }
  /** A packet access the verifier cannot bound (`R1 offset is outside of the packet`). */
  | { kind: 'packet'; reg: number | null }
  /** A memory access or helper memory argument out of the range the verifier can prove. */
  | { kind: 'bounds'; reg: number | null; valueSize?: number; off?: number; size?: number }
  /** `math between map_value pointer and register with unbounded min value is not allowed`. */
  | { kind: 'ptr-math'; ptrType: string }
  | { kind: 'other' };

export interface VerifierFailure {
  /** Index (in the kernel's linked program, slots) of the last instruction processed; null if none. */
  insn: number | null;
  /** Its opcode as the log printed it. */
  opcode: number | null;
  /** Its text as the log printed it. */
  insnText: string;
  /** The complaint (the lines after the last instruction, without statistics), one line. */
  reason: string;
  failure: FailureKind;
  /** Registers of the current frame just before the failing instruction (best effort). */
  regs: Map<number, RegView>;
  /** Call frame of the failing instruction (0 = the program's entry function). */
  frame: number;
  /** Every instruction line of the log in order: index and opcode (to check a layout against). */
  seen: { insn: number; opcode: number }[];
}

const INSN_LINE = /^(\d+): \(([0-9a-f]{2})\) (.*)$/;
const STATE_LINE = /^(\d+): (?:frame(\d+): )?(R\d.*)$/;
const FROM_LINE = /^from \d+ to (\d+): (?:frame(\d+): )?(R\d.*)$/;
const CALLEE_FRAME = /^ frame(\d+): (R\d.*)$/;
const STAT = /^(processed \d+ insns|verification time|stack depth|max_states_per_insn|Live regs|func#\d+ @\d+|mark_precise|last_idx|regs=|parent |caller:|callee:|Func#\d+|Validating|returning from callee)/;

/** Splits `a=f(x,y) b=2 c` at spaces outside parentheses. */
function tokens(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ' ' && depth === 0) {
      if (cur) out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

/** Parses one register value (`map_value(map=m,vs=8)`, `fp-8`, `17`, `scalar()`...). */
export function parseRegView(text: string): RegView {
  const fp = /^fp(-?\d+)$/.exec(text);
  if (fp) return { type: 'fp', fields: {}, fpOff: Number(fp[1]), text };
  if (/^-?\d+$/.test(text) || /^0x[0-9a-f]+$/.test(text)) return { type: 'const', fields: {}, value: BigInt(text), text };
  const m = /^([a-z_]+)\((.*)\)$/.exec(text);
  if (!m) return { type: text, fields: {}, text };
  const fields: Record<string, string> = {};
  let depth = 0;
  let cur = '';
  const flush = () => {
    const eq = cur.indexOf('=');
    if (eq > 0) fields[cur.slice(0, eq)] = cur.slice(eq + 1);
    cur = '';
  };
  for (const ch of m[2]!) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) flush();
    else cur += ch;
  }
  flush();
  // `smin=umin=smin32=umin32=1`: every name in a chain gets the value
  for (const [k, v] of Object.entries(fields)) {
    const parts = `${k}=${v}`.split('=');
    const value = parts[parts.length - 1]!;
    for (const p of parts.slice(0, -1)) fields[p] = value;
  }
  let type = m[1]!;
  // scalar(...) with a constant var_off is still a scalar; map_value_or_null and friends keep their name
  if (type === 'inv') type = 'scalar';
  return { type, fields, text };
}

/** Register updates in a state text (`R1=ctx() R2_w=fp-4 fp-8=mmmm????`). */
function regsIn(text: string): [number, RegView][] {
  const out: [number, RegView][] = [];
  for (const t of tokens(text)) {
    const m = /^R(\d+)(?:_[a-zA-Z]+)?=(.*)$/.exec(t);
    if (m) out.push([Number(m[1]), parseRegView(m[2]!)]);
  }
  return out;
}

/** What kind of failure the complaint describes. */
export function classifyReason(reason: string): FailureKind {
  let m = /At program exit the register R0 has .* should have been in \[(-?\d+), (-?\d+)\]/.exec(reason);
  if (m) return { kind: 'retval', lo: BigInt(m[1]!), hi: BigInt(m[2]!) };
  m = /the call stack of (\d+) frames is too deep/.exec(reason);
  if (m) return { kind: 'call-depth', frames: Number(m[1]) };
  m = /R(\d+) !read_ok/.exec(reason);
  if (m) return { kind: 'uninit', reg: Number(m[1]) };
  m = /math between (\w+) pointer and register with unbounded min value/.exec(reason);
  if (m) return { kind: 'ptr-math', ptrType: m[1]! };
  if (/invalid access to packet|offset is outside of the packet/.test(reason)) {
    const r = /R(\d+) offset is outside of the packet/.exec(reason) ?? /R(\d+)\(id=/.exec(reason);
    return { kind: 'packet', reg: r ? Number(r[1]) : null };
  }
  const reg = /R(\d+) (?:unbounded memory access|min value is negative|max value is outside of the allowed memory range|min value is outside of the allowed memory range|unbounded indirect variable offset)/.exec(reason);
  const mv = /invalid access to (?:map value|memory), (?:value_size|mem_size)=(\d+) off=(-?\d+) size=(\d+)/.exec(reason);
  if (reg || mv) {
    return {
      kind: 'bounds', reg: reg ? Number(reg[1]) : null,
      ...(mv ? { valueSize: Number(mv[1]), off: Number(mv[2]), size: Number(mv[3]) } : {}),
    };
  }
  return { kind: 'other' };
}

/** The failure a verifier log ends with; null when the log has no instruction trace. */
export function parseVerifierLog(log: string): VerifierFailure | null {
  const lines = log.split('\n');
  let regs = new Map<number, RegView>();
  let frame = 0;
  let last: { insn: number; opcode: number; text: string; regs: Map<number, RegView>; frame: number; line: number } | null = null;
  const seen: { insn: number; opcode: number }[] = [];
  let calleeNext = false;
  const reset = (text: string, f: number) => {
    regs = new Map(regsIn(text));
    frame = f;
  };
  lines.forEach((line, k) => {
    const ins = INSN_LINE.exec(line);
    if (ins) {
      const idx = Number(ins[1]);
      const opcode = parseInt(ins[2]!, 16);
      let text = ins[3]!;
      let after: string | null = null;
      let nextState: { text: string; frame: number } | null = null;
      const semi = text.indexOf(' ; ');
      if (semi >= 0) {
        after = text.slice(semi + 3);
        text = text.slice(0, semi);
      }
      // "if w8 >= w7 goto pc+2 5: R1=ctx() ...": a jump followed by the state at its next instruction
      const st = /^(.*?) (\d+): (?:frame(\d+): )?(R\d.*)$/.exec(text);
      if (st) {
        text = st[1]!;
        nextState = { text: st[4]!, frame: Number(st[3] ?? 0) };
      }
      seen.push({ insn: idx, opcode });
      last = { insn: idx, opcode, text: text.trim(), regs: new Map(regs), frame, line: k };
      if (after) {
        const f = /^frame(\d+): (.*)$/.exec(after);
        for (const [r, v] of regsIn(f ? f[2]! : after)) regs.set(r, v);
      }
      if (nextState) reset(nextState.text, nextState.frame);
      calleeNext = false;
      return;
    }
    if (line === 'callee:') {
      calleeNext = true;
      return;
    }
    const cf = CALLEE_FRAME.exec(line);
    if (cf && calleeNext) {
      reset(cf[2]!, Number(cf[1]));
      calleeNext = false;
      return;
    }
    const s = STATE_LINE.exec(line) ?? FROM_LINE.exec(line);
    if (s) reset(s[3]!, Number(s[2] ?? 0));
  });
  if (!last) return null;
  const l: { insn: number; opcode: number; text: string; regs: Map<number, RegView>; frame: number; line: number } = last;
  const complaint = lines.slice(l.line + 1).map((x) => x.trim().replace(/(.)processed \d+ insns .*$/, '$1')).filter((x) => x !== '' && !STAT.test(x) && !x.startsWith(';') && !/^(frame\d+: )?R\d+(_\w+)?=/.test(x));
  const reason = complaint.join('; ');
  return { insn: l.insn, opcode: l.opcode, insnText: l.text, reason, failure: classifyReason(reason), regs: l.regs, frame: l.frame, seen };
}

/** Bytes a pointer register can reach from its current position, when the log says (null: unknown). */
export function bytesFrom(v: RegView): number | null {
  const off = Number(v.fields.off ?? 0);
  switch (v.type) {
    case 'fp':
      return v.fpOff !== undefined && v.fpOff < 0 ? -v.fpOff : null;
    case 'map_value':
      return v.fields.vs !== undefined ? Number(v.fields.vs) - off : null;
    case 'ringbuf_mem':
    case 'mem':
    case 'rdonly_mem':
      return v.fields.sz !== undefined ? Number(v.fields.sz) - off : null;
    case 'pkt':
      return v.fields.r !== undefined ? Number(v.fields.r) - off : null;
    default:
      return null;
  }
}
