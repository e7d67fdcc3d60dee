// Canonical forms of window queries and a cache of their answers. Two queries that differ only in
// register names or in dead ALU instructions get the same key: registers are renamed in order of
// first use (when neither window calls or exits, where register numbers are fixed by the ABI) and
// ALU/ld_imm64 instructions whose result is never read are dropped (they have no other effect).
import { CLASS, JMP, LD_IMM64, SRC_X, jmpOp, memMode, MODE, opClass, srcBit, aluOp, ALU, ATOMIC } from '../isa/index.js';
import type { IrInsn } from '../ir/types.js';
import type { CheckOptions, EquivResult, RegFact, WindowPost, WindowPre } from './types.js';

/** Registers an instruction reads and writes (r10 included). */
export function regUse(i: IrInsn): { use: number[]; def: number[] } {
  const cls = opClass(i.code);
  const x = srcBit(i.code) === SRC_X;
  switch (cls) {
    case CLASS.ALU:
    case CLASS.ALU64: {
      const op = aluOp(i.code);
      if (op === ALU.MOV) return { use: x ? [i.src] : [], def: [i.dst] };
      if (op === ALU.NEG || op === ALU.END) return { use: [i.dst], def: [i.dst] };
      return { use: x ? [i.dst, i.src] : [i.dst], def: [i.dst] };
    }
    case CLASS.JMP:
    case CLASS.JMP32: {
      const op = jmpOp(i.code);
      if (op === JMP.JA) return { use: [], def: [] };
      if (op === JMP.EXIT) return { use: [0], def: [] };
      if (op === JMP.CALL) return { use: [1, 2, 3, 4, 5], def: [0] };
      return { use: x ? [i.dst, i.src] : [i.dst], def: [] };
    }
    case CLASS.LD:
      if (i.code === LD_IMM64) return { use: [], def: [i.dst] };
      return { use: memMode(i.code) === MODE.IND ? [i.src] : [], def: [0] };
    case CLASS.LDX:
      return { use: [i.src], def: [i.dst] };
    case CLASS.ST:
      return { use: [i.dst], def: [] };
    case CLASS.STX:
      if (memMode(i.code) === MODE.ATOMIC) {
        if (i.imm === ATOMIC.CMPXCHG) return { use: [i.dst, i.src, 0], def: [0] };
        return { use: [i.dst, i.src], def: i.imm & ATOMIC.FETCH ? [i.src] : [] };
      }
      return { use: [i.dst, i.src], def: [] };
  }
  return { use: [], def: [] };
}

const isPlainJump = (i: IrInsn): boolean => {
  const c = opClass(i.code);
  return (c === CLASS.JMP || c === CLASS.JMP32) && jmpOp(i.code) !== JMP.CALL && jmpOp(i.code) !== JMP.EXIT;
};
const pureDef = (i: IrInsn): boolean => {
  const c = opClass(i.code);
  return c === CLASS.ALU || c === CLASS.ALU64 || (i.code === LD_IMM64 && !i.reloc);
};

/** Drops dead pure instructions of a straight-line window (`live` = registers used afterwards). */
export function deadCodeFree(w: IrInsn[], live: number[]): IrInsn[] {
  if (w.some((i) => isPlainJump(i) && !(jmpOp(i.code) === JMP.JA && i.target === undefined)) || w.some((i) => i.labels?.length)) return w;
  const liveSet = new Set(live);
  liveSet.add(10);
  const keep: IrInsn[] = [];
  for (let k = w.length - 1; k >= 0; k--) {
    const i = w[k]!;
    const { use, def } = regUse(i);
    if (pureDef(i) && def.every((d) => !liveSet.has(d))) continue;
    for (const d of def) liveSet.delete(d);
    for (const u of use) liveSet.add(u);
    keep.push(i);
  }
  return keep.reverse();
}

export interface Canonical {
  a: IrInsn[];
  b: IrInsn[];
  pre: WindowPre;
  post: WindowPost;
  /** canonical register → original register */
  back: Map<number, number>;
}

/** Canonical form of a window query (see the file comment). */
export function canonicalWindow(a: IrInsn[], b: IrInsn[], pre: WindowPre, post: WindowPost): Canonical {
  const live = post.regs ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const da = deadCodeFree(a, live);
  const db = deadCodeFree(b, live);
  const fixed = [...da, ...db].some((i) => {
    const c = opClass(i.code);
    return ((c === CLASS.JMP || c === CLASS.JMP32) && (jmpOp(i.code) === JMP.CALL || jmpOp(i.code) === JMP.EXIT)) || c === CLASS.LD && i.code !== LD_IMM64 ||
      (opClass(i.code) === CLASS.STX && memMode(i.code) === MODE.ATOMIC && i.imm === ATOMIC.CMPXCHG);
  });
  const ren = new Map<number, number>();
  ren.set(10, 10);
  if (fixed) for (let r = 0; r <= 9; r++) ren.set(r, r);
  else {
    let next = 0;
    for (const i of [...da, ...db]) {
      const { use, def } = regUse(i);
      for (const r of [...use, ...def]) if (!ren.has(r)) ren.set(r, next++);
    }
  }
  const mapReg = (r: number): number => ren.get(r) ?? r;
  const renInsn = (i: IrInsn): IrInsn => {
    const c = opClass(i.code);
    const usesSrc = srcBit(i.code) === SRC_X || c === CLASS.LDX || c === CLASS.STX || (c === CLASS.LD && memMode(i.code) === MODE.IND);
    return { ...i, dst: mapReg(i.dst), src: usesSrc ? mapReg(i.src) : i.src };
  };
  const regs: Partial<Record<number, RegFact>> = {};
  for (const [r, f] of Object.entries(pre.regs ?? {})) {
    const n = ren.get(Number(r));
    if (n !== undefined && f) regs[n] = f;
  }
  const postRegs = live.filter((r) => ren.has(r)).map(mapReg).sort((x, y) => x - y);
  const back = new Map<number, number>();
  for (const [o, n] of ren) back.set(n, o);
  // Packet length facts hold whichever register carried them.
  let minLen = pre.packetMinLen ?? -1;
  for (const f of Object.values(pre.regs ?? {})) if (f?.kind === 'packet' && f.minLen !== undefined) minLen = Math.max(minLen, f.minLen);
  const cpre: WindowPre = { ...pre, regs };
  if (minLen >= 0) cpre.packetMinLen = minLen;
  return {
    a: da.map(renInsn),
    b: db.map(renInsn),
    pre: cpre,
    post: { ...post, regs: postRegs },
    back,
  };
}

const insnKey = (i: IrInsn): string =>
  `${i.code},${i.dst},${i.src},${i.off},${i.imm},${i.imm2 ?? ''},${i.target ?? ''},${i.labels?.join('+') ?? ''},${i.reloc ? i.reloc.sym : ''}`;

const json = (v: unknown): string => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x));

export function windowKey(a: IrInsn[], b: IrInsn[], pre: WindowPre, post: WindowPost, o: CheckOptions): string {
  return [
    a.map(insnKey).join(';'),
    b.map(insnKey).join(';'),
    json(pre),
    json(post),
    o.object?.file ?? '',
    o.progType ?? '',
    o.retBits ?? 64,
    o.memTypes ?? true,
    o.mapTypes ?? true,
    o.offsets ?? true,
    o.ctx ?? 'production',
    o.maxFrames ?? 64,
  ].join('|');
}

/** A bounded map of answers (oldest evicted first). */
export class EquivCache {
  private m = new Map<string, EquivResult>();
  hits = 0;
  misses = 0;
  constructor(readonly limit: number) {}
  get(k: string): EquivResult | undefined {
    const v = this.m.get(k);
    if (v) this.hits++;
    else this.misses++;
    return v;
  }
  set(k: string, v: EquivResult): void {
    if (this.m.size >= this.limit) this.m.delete(this.m.keys().next().value as string);
    this.m.set(k, v);
  }
  clear(): void {
    this.m.clear();
    this.hits = this.misses = 0;
  }
  get size(): number {
    return this.m.size;
  }
}

export const windowCache = new EquivCache(200000);
