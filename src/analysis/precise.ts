// Byte-level stack liveness with what calls do to memory: a helper's pointer arguments are read or
// written as far as its memory effects say (constant sizes, the map's key/value size, found through
// the `ld_imm64` r1 holds), a bpf-to-bpf call reads what its callee reads. The optimizer and the
// cache's re-proof use the same analysis, so a dead store one removes the other sees dead too.
import { LD_IMM64 } from '../isa/index.js';
import type { BpfObject, CodeSection, IrInsn } from '../ir/types.js';
import { helperMemory, type MapSizes } from './calls.js';
import { constantsIn, type ConstRegs } from './consts.js';
import type { CalleeReads } from './defuse.js';
import { ldImm64Sources } from './sources.js';
import { stackLiveness, type StackLiveness } from './stack.js';

/** The key and value sizes of the map an `ld_imm64` loads (by its relocation), if it loads one. */
export function objectMapSizes(obj: BpfObject): (insn: IrInsn) => MapSizes | undefined {
  return (insn) => {
    if (insn.code !== LD_IMM64 || !insn.reloc) return undefined;
    const sym = obj.elf.symbols[insn.reloc.sym];
    let m = obj.maps.find((d) => d.sym === insn.reloc!.sym);
    if (!m && sym && (sym.info & 0xf) === 3 /* STT_SECTION */) {
      const sec = obj.elf.sections[sym.shndx]?.name;
      m = obj.maps.find((d) => d.section === sec && Number(obj.elf.symbols[d.sym]?.value ?? -1n) === insn.imm);
    }
    return m ? { keySize: m.keySize, valueSize: m.valueSize } : undefined;
  };
}

/** stackLiveness with helpers' memory effects and callees' reads (`consts`: constantsIn(sec), if computed already). */
export function preciseStackLiveness(sec: CodeSection, live: Uint16Array, callee: CalleeReads | undefined, mapOf: (insn: IrInsn) => MapSizes | undefined, consts: ConstRegs[] = constantsIn(sec)): StackLiveness {
  const sources = ldImm64Sources(sec);
  return stackLiveness(sec, live, callee, (i) => {
    const k = sources[i]![1];
    return helperMemory(sec.insns[i]!.imm, consts[i]!, k === undefined ? undefined : mapOf(sec.insns[k]!));
  });
}
