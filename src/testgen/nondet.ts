// Byte-level differences between two runs, and the record of which outputs of a program turned out
// nondeterministic (they differed between two runs of the same program on the same input and map
// state: clock, random numbers, pointers, CPU ids...).

/** Offsets where `a` and `b` differ; null when their lengths differ (the whole field differs). */
export function diffOffsets(a: Uint8Array, b: Uint8Array): number[] | null {
  if (a.length !== b.length) return null;
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

/** "0-7,12,20-23" for a set of byte offsets. */
export function rangesText(offsets: Iterable<number>): string {
  const xs = [...new Set(offsets)].sort((x, y) => x - y);
  const parts: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++;
    parts.push(i === j ? `${xs[i]}` : `${xs[i]}-${xs[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** One output that differed between two runs of the original on the same input. */
export interface NondetField {
  /** "ret", "status", "packet", "packet length", "ctx", "map NAME value", "map NAME keys". */
  field: string;
  /** Byte ranges within the field ("0-7"), or null: the whole field. */
  bytes: string | null;
  /** Inputs on which it differed. */
  inputs: number;
}

/** The nondeterministic outputs of one program, growing as inputs run. */
export class NondetFields {
  private readonly fields = new Map<string, { offsets: Set<number> | null; inputs: number; last: number }>();

  /** Records that `field` (at `offsets`, or all of it when null) differed between two runs on input `input`. */
  add(field: string, offsets: readonly number[] | null, input: number): void {
    let f = this.fields.get(field);
    if (!f) this.fields.set(field, (f = { offsets: new Set(), inputs: 0, last: -1 }));
    if (offsets === null) f.offsets = null;
    else if (f.offsets) for (const o of offsets) f.offsets.add(o);
    if (f.last !== input) {
      f.inputs++;
      f.last = input;
    }
  }

  /** Whether a difference in `field` at `offsets` (null: all of it) lies inside what was seen nondeterministic. */
  covers(field: string, offsets: readonly number[] | null): boolean {
    const f = this.fields.get(field);
    if (!f) return false;
    if (f.offsets === null) return true;
    if (offsets === null) return false;
    return offsets.every((o) => f.offsets!.has(o));
  }

  get size(): number {
    return this.fields.size;
  }

  list(): NondetField[] {
    return [...this.fields].map(([field, f]) => ({ field, bytes: f.offsets === null ? null : rangesText(f.offsets), inputs: f.inputs }));
  }
}

/** `offsets` without those in `mask` (null mask: nothing removed). */
export function without(offsets: readonly number[], mask: readonly number[] | null): number[] {
  if (!mask || mask.length === 0) return [...offsets];
  const m = new Set(mask);
  return offsets.filter((o) => !m.has(o));
}
