// CO-RE relocations as the loader applies them, for runs that are compared with the kernel
// (check-semantics): libbpf patches each relocated instruction with a value computed against the
// running kernel's BTF. Where k2's resolver (src/safety/core.ts) knows that value exactly, the
// instruction is patched the same way; otherwise it becomes "unmodelled" (the program is listed as
// untestable when a run reaches it) — never run with clang's placeholder value.
import type { BpfObject, IrInsn } from '../ir/types.js';
import { CLASS, LD_IMM64, opClass } from '../isa/opcodes.js';
import { coreValue, patchedMemOffset } from '../safety/index.js';

const KIND_NAMES = [
  'field byte offset', 'field byte size', 'field exists', 'field signed', 'field lshift', 'field rshift',
  'local type id', 'target type id', 'type exists', 'type size', 'enum value exists', 'enum value', 'type matches',
];

/** The instruction as the loader would patch it, or why k2 cannot tell. */
export function coreRelocated(obj: BpfObject, insn: IrInsn): { insn: IrInsn } | { why: string } {
  const relos = insn.core ?? [];
  const kind = KIND_NAMES[relos[0]?.kind ?? -1] ?? `kind ${relos[0]?.kind}`;
  const cv = coreValue(obj.btf ?? null, relos);
  const no = (detail: string): { why: string } => ({
    why: `CO-RE relocation (${kind}) resolved by the loader against this kernel's BTF: k2 cannot tell its value exactly${detail ? ` (${detail})` : ''}`,
  });
  if (!cv.resolves) return no(cv.why);
  if (cv.lo !== cv.hi) return no('');
  const v = cv.lo;
  const cls = opClass(insn.code);
  if (cls === CLASS.LDX || cls === CLASS.STX || cls === CLASS.ST) {
    const off = patchedMemOffset(insn.off, cv);
    return off === null ? no('a load or store whose field moved or changed size') : { insn: { ...insn, off } };
  }
  if (insn.code === LD_IMM64) return { insn: { ...insn, imm: Number(BigInt.asIntN(32, v)), imm2: Number(BigInt.asIntN(32, v >> 32n)) } };
  if (cls === CLASS.ALU || cls === CLASS.ALU64) {
    if (v > 0x7fffffffn || v < -0x80000000n) return no('value out of the 32-bit immediate range');
    return { insn: { ...insn, imm: Number(v) } };
  }
  return no('relocated instruction of an unexpected class');
}
