// Whole-object jobs that chain the stages: read → IR → (transform) → write. Used by `k2 relink`,
// `k2 cc` / `k2-clang` and the build hook.
import { readObject, writeObject, insertNops, type BpfObject } from '../ir/index.js';

export interface RelinkOptions {
  insertNops?: boolean;
}

export interface RelinkReport {
  file: string;
  output: string;
  sections: { name: string; slotsBefore: number; slotsAfter: number }[];
}

const slots = (obj: BpfObject, name: string): number =>
  obj.code.find((s) => s.name === name)!.insns.reduce((n, i) => n + (i.imm2 === undefined ? 1 : 2), 0);

/** Reads `input`, optionally transforms every code section, writes `output` atomically. */
export function relinkFile(input: string, output: string, opts: RelinkOptions = {}): RelinkReport {
  const obj = readObject(input);
  const out: BpfObject = opts.insertNops ? { ...obj, code: obj.code.map(insertNops) } : obj;
  writeObject(out, output);
  return {
    file: input,
    output,
    sections: obj.code.map((s) => ({ name: s.name, slotsBefore: slots(obj, s.name), slotsAfter: slots(out, s.name) })),
  };
}
