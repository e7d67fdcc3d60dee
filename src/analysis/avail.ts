// Available loads across the CFG: which registers hold, on every path into an instruction, the
// value of a memory location they were loaded from (same base register, unchanged since; no store
// that may overlap, no call since). A load into a register that already holds its value is
// redundant (redundant-load elimination across blocks). Overlapping accesses of different widths
// are dependent: a store kills every fact whose bytes it may touch.
import { CLASS, JMP, LD_IMM64, MODE, jmpOp, memMode, opClass, sizeBytes } from '../isa/index.js';
import type { CodeSection, IrInsn } from '../ir/types.js';
import { defUse } from './defuse.js';
import { forwardRegs } from './dataflow.js';
import type { StackLiveness } from './stack.js';

/** `dst` holds the value loaded by `code` (an LDX opcode) from `base + off`. */
export interface LoadFact {
  dst: number;
  base: number;
  off: number;
  code: number;
}

const key = (f: LoadFact): string => `${f.dst}:${f.base}:${f.off}:${f.code}`;

/** Per instruction: the facts available on every path into it (keys → facts). */
export type Avail = Map<string, LoadFact>;

const isCall = (i: IrInsn): boolean => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.CALL;

function transfer(insn: IrInsn, before: Avail, fp: (number | undefined)[], escaped: boolean): Avail {
  const out = new Map(before);
  const cls = opClass(insn.code);
  const kill = (p: (f: LoadFact) => boolean): void => {
    for (const [k, f] of out) if (p(f)) out.delete(k);
  };
  const span = (f: LoadFact): [number, number] | null => {
    const k = fp[f.base];
    return k === undefined ? null : [k + f.off, k + f.off + sizeBytes(f.code)];
  };
  if (insn.core?.length && (cls === CLASS.ST || cls === CLASS.STX)) kill(() => true); // CO-RE: offset patched at load time
  else if (cls === CLASS.ST || cls === CLASS.STX) {
    const k = fp[insn.dst];
    if (k !== undefined && !escaped) {
      // a store into the frame: facts on overlapping frame bytes go; other memory cannot change
      const lo = k + insn.off, hi = lo + sizeBytes(insn.code);
      kill((f) => {
        const s = span(f);
        return s !== null && s[0] < hi && lo < s[1];
      });
    } else if (k !== undefined) kill(() => true);
    else kill((f) => escaped || span(f) === null); // frame bytes only change through frame addresses
  }
  if (isCall(insn)) {
    // a call may write any memory but an untouched frame (stack addresses passed to it: all goes)
    const stackArgs = [1, 2, 3, 4, 5].some((r) => fp[r] !== undefined);
    kill((f) => escaped || stackArgs || span(f) === null);
  }
  const { def } = defUse(insn);
  kill((f) => (def & (1 << f.dst)) !== 0 || (def & (1 << f.base)) !== 0);
  if (cls === CLASS.LDX && memMode(insn.code) === MODE.MEM && insn.dst !== insn.src && !insn.core?.length) {
    const f = { dst: insn.dst, base: insn.src, off: insn.off, code: insn.code };
    out.set(key(f), f);
  }
  return out;
}

/** Available load facts before each instruction (register stack addresses from the stack analysis). */
export function availableLoads(sec: CodeSection, stack: StackLiveness): Avail[] {
  // forwardRegs works per register; facts are one value: keep them in slot 0.
  const states = forwardRegs<Avail | null>(
    sec,
    [new Map()],
    (i, before) => [transfer(sec.insns[i]!, before[0] ?? new Map(), stack.ptrs[i]!, stack.escaped)],
    (a, b) => {
      if (!a || !b) return a ?? b;
      if (a === b) return a;
      const out: Avail = new Map();
      for (const [k, f] of a) if (b.has(k)) out.set(k, f);
      // same contents as `a`: keep `a` itself, so the fixpoint sees no change
      return out.size === a.size ? a : out;
    },
  );
  return states.map((s) => s[0] ?? new Map());
}

/** Loads whose destination already holds the loaded value on every path (removable). */
export function redundantLoads(sec: CodeSection, avail: Avail[]): number[] {
  const out: number[] = [];
  sec.insns.forEach((insn, i) => {
    if (opClass(insn.code) !== CLASS.LDX || memMode(insn.code) !== MODE.MEM || insn.pinned || insn.code === LD_IMM64) return;
    if (avail[i]!.has(key({ dst: insn.dst, base: insn.src, off: insn.off, code: insn.code }))) out.push(i);
  });
  return out;
}

/** Loads whose value another register already holds on every path: (index, that register). */
export function heldLoads(sec: CodeSection, avail: Avail[]): [number, number][] {
  const out: [number, number][] = [];
  sec.insns.forEach((insn, i) => {
    if (opClass(insn.code) !== CLASS.LDX || memMode(insn.code) !== MODE.MEM || insn.pinned) return;
    for (const f of avail[i]!.values()) {
      if (f.base === insn.src && f.off === insn.off && f.code === insn.code && f.dst !== insn.dst) {
        out.push([i, f.dst]);
        return;
      }
    }
  });
  return out;
}
