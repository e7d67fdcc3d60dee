// Hand-made objects for tests: instructions of your choosing in a real ELF (maps, BTF, symbols).
import { readObject, type BpfObject, type IrInsn } from '../../src/ir/index.js';
import { fixtureObjects } from './paths.js';

/** An XDP object whose one section is `insns` (ELF, maps and BTF from fixtures/redundant.o). */
export function handMade(insns: IrInsn[]): BpfObject {
  const obj = readObject(fixtureObjects().find((f) => f.endsWith('redundant.o'))!);
  const sec = obj.code[0]!;
  const first = sec.insns[0]!;
  // the ELF's other code symbols (LBB…) keep a place: the last instruction
  const rest = sec.insns.slice(1).flatMap((i) => i.labels ?? []);
  const code = insns.map((i, k) => (k === 0 ? { ...i, labels: first.labels, funcInfo: first.funcInfo, lines: first.lines } : { ...i }));
  code[code.length - 1]!.labels = rest;
  return { ...obj, code: [{ ...sec, insns: code }] };
}
