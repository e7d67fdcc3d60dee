// Where registers' values come from across the CFG: which `ld_imm64` a register holds (e.g. the
// map a helper call's r1 points to), through 64-bit register copies.
import { ALU, CLASS, LD_IMM64, SRC_X } from '../isa/index.js';
import type { CodeSection, IrInsn } from '../ir/types.js';
import { forwardRegs } from './dataflow.js';
import { defUse } from './defuse.js';

/**
 * Per instruction, per register: `valueOf` the `ld_imm64` whose value the register holds on every
 * path into the instruction (copied by 64-bit moves); undefined where paths disagree.
 */
function heldLdImm64<T>(sec: CodeSection, valueOf: (i: number) => T | undefined): (T | undefined)[][] {
  const none: (T | undefined)[] = new Array(11).fill(undefined);
  return forwardRegs<T | undefined>(sec, none, (i, before) => {
    const insn = sec.insns[i]!;
    const out = [...before];
    const { def } = defUse(insn);
    for (let r = 0; r <= 10; r++) if (def & (1 << r)) out[r] = undefined;
    if (insn.code === LD_IMM64) out[insn.dst] = valueOf(i);
    else if (insn.code === (CLASS.ALU64 | ALU.MOV | SRC_X) && insn.off === 0) out[insn.dst] = before[insn.src];
    return out;
  }, (a, b) => (a === b ? a : undefined));
}

/** Per instruction, per register: the index of the `ld_imm64` it holds (e.g. the map a helper's r1 points to). */
export const ldImm64Sources = (sec: CodeSection): (number | undefined)[][] => heldLdImm64(sec, (i) => i);

/** What an `ld_imm64` loads, as a key: equal keys load equal values (same relocation, same addend). */
export function ldImm64Key(insn: IrInsn): string | undefined {
  // CO-RE relocations patch the immediate at load time: two equal-looking loads may differ
  // (a relocated load is pinned only so that windows keep it; its value is fixed once loaded)
  if (insn.code !== LD_IMM64 || insn.core?.length || (insn.pinned && insn.pinned !== 'relocation')) return undefined;
  const r = insn.reloc ? `${insn.reloc.sym}/${insn.reloc.type}` : '-';
  const c = insn.callee ? `${insn.callee.section}/${insn.callee.label}` : '-';
  return `${insn.src}:${insn.imm}:${insn.imm2 ?? 0}:${r}:${c}`;
}

/**
 * Per instruction, per register: the key (`ldImm64Key`) of the `ld_imm64` value the register holds
 * on every path into the instruction, whichever instruction loaded it.
 */
export const heldImm64 = (sec: CodeSection): (string | undefined)[][] => heldLdImm64(sec, (i) => ldImm64Key(sec.insns[i]!));

/**
 * `ld_imm64` instructions (2 slots) whose value a register already holds on every path:
 * (index, that register) — the load becomes `dst = reg` (1 slot), or goes if it is `dst` itself.
 */
export function heldImm64Loads(sec: CodeSection, held = heldImm64(sec)): [number, number][] {
  const out: [number, number][] = [];
  sec.insns.forEach((insn, i) => {
    const k = ldImm64Key(insn);
    if (k === undefined) return;
    const regs = held[i]!;
    if (regs[insn.dst] === k) return void out.push([i, insn.dst]);
    const r = regs.findIndex((v, r) => v === k && r < 10);
    if (r >= 0) out.push([i, r]);
  });
  return out;
}
