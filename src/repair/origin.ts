// A stable identity for the instructions of the object being repaired, so that a failure can be
// recognised again after code was inserted before it (indices shift; the tag travels with the
// instruction through the spreads the IR edits make). Inserted and inlined copies have none.
import type { BpfObject, IrInsn } from '../ir/types.js';

const ORIGIN = Symbol('k2.repair.origin');
type Tagged = IrInsn & { [ORIGIN]?: string };

/** A copy of `obj` whose every instruction carries "section:index" of the input. */
export function tagOrigins(obj: BpfObject): BpfObject {
  return {
    ...obj,
    code: obj.code.map((s) => ({ ...s, insns: s.insns.map((i, k) => ({ ...i, [ORIGIN]: `${s.name}:${k}` }) as Tagged) })),
  };
}

/** "section:index" of the input instruction `i` came from, or null for inserted code. */
export const originOf = (i: IrInsn): string | null => (i as Tagged)[ORIGIN] ?? null;

/** `i` without its origin (for copies that are new code). */
export function stripOrigin(i: IrInsn): IrInsn {
  const c = { ...i } as Tagged;
  delete c[ORIGIN];
  return c;
}
