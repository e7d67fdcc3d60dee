// Where registers' values come from across the CFG: which `ld_imm64` a register holds (e.g. the
// map a helper call's r1 points to), through 64-bit register copies.
import { ALU, CLASS, LD_IMM64, SRC_X } from '../isa/index.js';
import type { CodeSection } from '../ir/types.js';
import { forwardRegs } from './dataflow.js';
import { defUse } from './defuse.js';

/**
 * Per instruction, per register: the index of the `ld_imm64` whose value the register holds on
 * every path (copied by 64-bit moves), e.g. the map a helper's r1 points to.
 */
export function ldImm64Sources(sec: CodeSection): (number | undefined)[][] {
  const none: (number | undefined)[] = new Array(11).fill(undefined);
  return forwardRegs<number | undefined>(sec, none, (i, before) => {
    const insn = sec.insns[i]!;
    const out = [...before];
    const { def } = defUse(insn);
    for (let r = 0; r <= 10; r++) if (def & (1 << r)) out[r] = undefined;
    if (insn.code === LD_IMM64) out[insn.dst] = i;
    else if (insn.code === (CLASS.ALU64 | ALU.MOV | SRC_X) && insn.off === 0) out[insn.dst] = before[insn.src];
    return out;
  }, (a, b) => (a === b ? a : undefined));
}
