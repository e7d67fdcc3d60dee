// Enumerated rewrites (the frequent ones, tried before the stochastic search): deleting one
// instruction, one ALU instruction, one (byte-swapped) load, two copies merged into one of twice
// the width, load-op-store on memory as one atomic, and byte-copy/constant-store runs rebuilt with
// the widest accesses. Each is only a candidate: the tests filter, the checker decides.
import { ALU, ATOMIC, CLASS, JMP, MODE, SIZE, SRC_K, SRC_X, REG_FP, aluOp, jmpOp, memMode, opClass, sizeBytes, srcBit } from '../isa/index.js';
import type { Insn } from '../isa/index.js';
import type { Pool } from './moves.js';

const isMem = (i: Insn, cls: number): boolean => opClass(i.code) === cls && memMode(i.code) === MODE.MEM;
const isAlu = (i: Insn): boolean => opClass(i.code) === CLASS.ALU || opClass(i.code) === CLASS.ALU64;
const SIZE_OF: Record<number, number> = { 1: SIZE.B, 2: SIZE.H, 4: SIZE.W, 8: SIZE.DW };

/** Candidates that delete exactly one instruction: cheap, and they find dead code at once. */
export function deletions(window: readonly Insn[]): Insn[][] {
  return window.map((_, k) => window.filter((__, j) => j !== k));
}

const SINGLE_OPS = [ALU.MOV, ALU.ADD, ALU.SUB, ALU.MUL, ALU.OR, ALU.AND, ALU.LSH, ALU.RSH, ALU.XOR, ALU.ARSH, ALU.NEG];
export const SHIFTS = [1, 2, 3, 4, 8, 16, 24, 31, 32, 48, 56, 63];

/** Every one-instruction ALU rewrite over the pool (complete for windows that collapse to one ALU op). */
export function* singles(pool: Pool): Generator<Insn[]> {
  for (const cls of [CLASS.ALU, CLASS.ALU64]) {
    for (const op of SINGLE_OPS) {
      const shift = op === ALU.LSH || op === ALU.RSH || op === ALU.ARSH;
      for (const dst of pool.regs) {
        if (op === ALU.NEG) { yield [{ code: cls | op, dst, src: 0, off: 0, imm: 0 }]; continue; }
        for (const src of pool.regs) yield [{ code: cls | op | SRC_X, dst, src, off: 0, imm: 0 }];
        const imms = shift ? SHIFTS.filter((k) => k < (cls === CLASS.ALU ? 32 : 64)) : pool.imms;
        for (const imm of imms) yield [{ code: cls | op | SRC_K, dst, src: 0, off: 0, imm }];
      }
    }
  }
}

/** The base registers a window loads from while they hold their entry value, each with the offsets it reads. */
export function loadBases(window: readonly Insn[]): Map<number, number[]> {
  const out = new Map<number, Set<number>>();
  const written = new Set<number>();
  for (const i of window) {
    if (opClass(i.code) === CLASS.LDX && !written.has(i.src)) {
      if (!out.has(i.src)) out.set(i.src, new Set());
      out.get(i.src)!.add(i.off);
    }
    if (opClass(i.code) === CLASS.LDX || isAlu(i) || i.code === 0x18) written.add(i.dst);
  }
  return new Map([...out].map(([r, offs]) => [r, [...offs].sort((a, b) => a - b)]));
}

/**
 * One load (optionally byte-swapped to big-endian) from a base the window reads: the rewrites that
 * merge byte loads combined with shifts and ors into one wider load (K2's load-width merges), and
 * narrower loads replacing a load and a mask (memory exchange).
 */
export function* loadSingles(window: readonly Insn[], pool: Pool): Generator<Insn[]> {
  for (const [base, offs] of loadBases(window)) {
    for (const off of offs) {
      for (const [size, bits] of [[SIZE.H, 16], [SIZE.W, 32], [SIZE.DW, 64], [SIZE.B, 8]] as const) {
        for (const dst of pool.regs) {
          const ld: Insn = { code: CLASS.LDX | MODE.MEM | size, dst, src: base, off, imm: 0 };
          yield [ld];
          if (bits > 8) yield [ld, { code: CLASS.ALU | ALU.END | SRC_X, dst, src: 0, off: 0, imm: bits }];
        }
      }
    }
  }
}

/**
 * Copies of neighbouring fields (`r = *(s *)(A + a); *(s *)(B + b) = r` twice, the second at
 * a + s, b + s) merged into one copy of twice the width. Whether the halves overlap, or the
 * register's final value matters, is for the tests and the checker to find out.
 */
export function* copyMerges(window: readonly Insn[]): Generator<Insn[]> {
  const pairs: { k: number; size: number; base: number; a: number; dstBase: number; b: number; reg: number }[] = [];
  for (let k = 0; k + 1 < window.length; k++) {
    const ld = window[k]!, st = window[k + 1]!;
    if (!isMem(ld, CLASS.LDX) || !isMem(st, CLASS.STX) || st.src !== ld.dst || ld.src === ld.dst) continue;
    pairs.push({ k, size: ld.code & 0x18, base: ld.src, a: ld.off, dstBase: st.dst, b: st.off, reg: ld.dst });
  }
  const bytes: Record<number, number> = { [SIZE.B]: 1, [SIZE.H]: 2, [SIZE.W]: 4 };
  const wider: Record<number, number> = { [SIZE.B]: SIZE.H, [SIZE.H]: SIZE.W, [SIZE.W]: SIZE.DW };
  for (const p of pairs) {
    for (const q of pairs) {
      const n = bytes[p.size];
      if (q.k <= p.k + 1 || n === undefined || q.size !== p.size || q.base !== p.base || q.dstBase !== p.dstBase) continue;
      const lo = q.a === p.a + n && q.b === p.b + n ? p : p.a === q.a + n && p.b === q.b + n ? q : null;
      if (!lo) continue;
      const w = wider[p.size]!;
      const merged: Insn[] = [
        { code: CLASS.LDX | MODE.MEM | w, dst: p.reg, src: p.base, off: lo.a, imm: 0 },
        { code: CLASS.STX | MODE.MEM | w, dst: p.dstBase, src: p.reg, off: lo.b, imm: 0 },
      ];
      const out: Insn[] = [];
      window.forEach((i, k) => {
        if (k === p.k) out.push(...merged);
        else if (k !== p.k + 1 && k !== q.k && k !== q.k + 1) out.push(i);
      });
      yield out;
    }
  }
}

const ATOMIC_OF: Record<number, number> = { [ALU.ADD]: ATOMIC.ADD, [ALU.OR]: ATOMIC.OR, [ALU.AND]: ATOMIC.AND, [ALU.XOR]: ATOMIC.XOR };

/** Registers an instruction reads or writes (r10 included). */
function touches(i: Insn): Set<number> {
  const s = new Set<number>([i.dst]);
  const c = opClass(i.code);
  if (c === CLASS.LDX || c === CLASS.STX || (isAlu(i) && srcBit(i.code) === SRC_X)) s.add(i.src);
  return s;
}

/**
 * `x = *(s *)(B + o); x op= y; *(s *)(B + o) = x` (s = u32 or u64; op add/or/and/xor) as one
 * `lock *(s *)(B + o) op= y` — equivalent when x is dead afterwards (single-threaded semantics
 * in the proof; the atomic is stronger). An immediate operand needs a register holding it: one
 * the precondition fixes (`consts`), else x itself set first (`x = imm; lock ... += x`).
 * Instructions between the three must not touch x, B, y or memory.
 */
export function* atomicForms(window: readonly Insn[], consts: ReadonlyMap<number, bigint>): Generator<Insn[]> {
  for (let a = 0; a < window.length; a++) {
    const ld = window[a]!;
    if (!isMem(ld, CLASS.LDX) || ld.dst === ld.src) continue;
    const size = ld.code & 0x18;
    if (size !== SIZE.W && size !== SIZE.DW) continue;
    const x = ld.dst, base = ld.src;
    let opAt = -1;
    for (let k = a + 1; k < window.length; k++) {
      const i = window[k]!;
      if (opAt < 0 && isAlu(i) && i.dst === x && ATOMIC_OF[aluOp(i.code)] !== undefined && !(srcBit(i.code) === SRC_X && i.src === x)) {
        if (size === SIZE.DW && opClass(i.code) !== CLASS.ALU64) break;
        opAt = k;
        continue;
      }
      if (opAt >= 0 && isMem(i, CLASS.STX) && i.dst === base && i.off === ld.off && (i.code & 0x18) === size && i.src === x) {
        const op = window[opAt]!;
        const y = srcBit(op.code) === SRC_X ? op.src : null;
        // nothing between may touch x, the base, the operand or memory
        const between = window.slice(a + 1, k).filter((_, j) => a + 1 + j !== opAt);
        const clash = between.some((b) => {
          const t = touches(b);
          return t.has(x) || t.has(base) || (y !== null && t.has(y)) || opClass(b.code) === CLASS.LDX || opClass(b.code) === CLASS.ST || opClass(b.code) === CLASS.STX;
        });
        if (clash) break;
        const lock = (src: number): Insn => ({ code: CLASS.STX | MODE.ATOMIC | size, dst: base, src, off: ld.off, imm: ATOMIC_OF[aluOp(op.code)]! });
        const rest = (mid: Insn[]): Insn[] => [...window.slice(0, a), ...mid, ...between, ...window.slice(k + 1)];
        if (y !== null) yield rest([lock(y)]);
        else {
          const want = BigInt.asUintN(size === SIZE.DW ? 64 : 32, BigInt(op.imm));
          const mask = size === SIZE.DW ? (1n << 64n) - 1n : 0xffff_ffffn;
          for (const [r, v] of consts) {
            if (r !== x && r !== base && r !== REG_FP && (v & mask) === want && !between.some((b) => touches(b).has(r))) yield rest([lock(r)]);
          }
          yield rest([{ code: CLASS.ALU64 | ALU.MOV | SRC_K, dst: x, src: 0, off: 0, imm: op.imm }, lock(x)]);
        }
        break;
      }
      // anything else touching x, the base or memory ends the pattern
      const t = touches(i);
      if (t.has(x) || t.has(base) || opClass(i.code) === CLASS.ST || opClass(i.code) === CLASS.STX) break;
    }
  }
}

// ---- byte-copy and constant-store runs ----

type Byte = { k: 'c'; v: number } | { k: 's'; reg: number; off: number } | { k: 'u' };
const UNK: Byte = { k: 'u' };
const C0: Byte = { k: 'c', v: 0 };
interface AbsReg { base: { reg: number; delta: number } | null; bytes: Byte[] }

/** Where the window's written bytes come from, when it only moves bytes (null otherwise). */
interface CopyEffect {
  /** Destination bytes by base register and offset from its entry value. */
  writes: Map<number, Map<number, Byte>>;
  /** Registers the window writes. */
  written: Set<number>;
}

function constBytes(v: bigint): Byte[] {
  return Array.from({ length: 8 }, (_, i) => ({ k: 'c', v: Number((BigInt.asUintN(64, v) >> BigInt(8 * i)) & 0xffn) }) as Byte);
}

/**
 * Abstract run of a window tracking each register byte's origin (a constant, or a byte of memory
 * at entry register + offset): loads, stores, moves, constant adds to addresses, shifts by whole
 * bytes, masks of whole bytes, ors with zero bytes. Loads after a store through another base are
 * refused (they might alias), as is anything else.
 */
function copyEffect(window: readonly Insn[], disjoint: (a: number, b: number) => boolean): CopyEffect | null {
  const regs: AbsReg[] = Array.from({ length: 11 }, (_, r) => ({ base: { reg: r, delta: 0 }, bytes: Array(8).fill(UNK) }));
  const writes = new Map<number, Map<number, Byte>>();
  const written = new Set<number>();
  for (const i of window) {
    const cls = opClass(i.code);
    if (cls === CLASS.LDX && memMode(i.code) === MODE.MEM) {
      const b = regs[i.src]!.base;
      if (!b) return null;
      const n = sizeBytes(i.code);
      for (const [wb, m] of writes) {
        if (wb !== b.reg) {
          if (!disjoint(wb, b.reg)) return null; // a store through another base may alias this load
          continue;
        }
        for (let k = 0; k < n; k++) if (m.has(b.delta + i.off + k)) return null;
      }
      const bytes: Byte[] = [];
      for (let k = 0; k < 8; k++) bytes.push(k < n ? { k: 's', reg: b.reg, off: b.delta + i.off + k } : C0);
      regs[i.dst] = { base: null, bytes };
      written.add(i.dst);
    } else if ((cls === CLASS.STX || cls === CLASS.ST) && memMode(i.code) === MODE.MEM) {
      const b = regs[i.dst]!.base;
      if (!b) return null;
      const n = sizeBytes(i.code);
      const src = cls === CLASS.ST ? constBytes(BigInt(i.imm)) : regs[i.src]!.bytes;
      let m = writes.get(b.reg);
      if (!m) writes.set(b.reg, (m = new Map()));
      for (let k = 0; k < n; k++) m.set(b.delta + i.off + k, src[k]!);
    } else if (isAlu(i)) {
      if (i.dst === REG_FP) return null;
      const op = aluOp(i.code);
      const x = srcBit(i.code) === SRC_X;
      const is64 = cls === CLASS.ALU64;
      const d = regs[i.dst]!;
      let out: AbsReg;
      if (op === ALU.MOV && i.off === 0) {
        out = x ? { ...regs[i.src]! } : { base: null, bytes: constBytes(is64 ? BigInt(i.imm) : BigInt(i.imm >>> 0)) };
        if (!is64) out = { base: null, bytes: [...out.bytes.slice(0, 4), C0, C0, C0, C0] };
      } else if (is64 && !x && (op === ALU.ADD || op === ALU.SUB) && d.base) {
        out = { base: { reg: d.base.reg, delta: d.base.delta + (op === ALU.ADD ? i.imm : -i.imm) }, bytes: Array(8).fill(UNK) };
      } else if (!x && (op === ALU.RSH || op === ALU.LSH) && i.imm % 8 === 0) {
        const w = is64 ? 8 : 4, s = (i.imm / 8) % w;
        const src = d.bytes.slice(0, w);
        const moved = op === ALU.RSH ? [...src.slice(s), ...Array(s).fill(C0)] : [...Array(s).fill(C0), ...src.slice(0, w - s)];
        out = { base: null, bytes: [...moved, ...Array(8 - w).fill(C0)] };
      } else if (!x && op === ALU.AND) {
        const w = is64 ? 8 : 4;
        const m = BigInt.asUintN(64, BigInt(is64 ? i.imm : i.imm >>> 0));
        const bytes: Byte[] = [];
        for (let k = 0; k < 8; k++) {
          const mb = Number((m >> BigInt(8 * k)) & 0xffn);
          if (k >= w || mb === 0) bytes.push(C0);
          else if (mb === 0xff) bytes.push(d.bytes[k]!);
          else return null;
        }
        out = { base: null, bytes };
      } else if (x && op === ALU.OR) {
        const s = regs[i.src]!;
        const w = is64 ? 8 : 4;
        const bytes: Byte[] = [];
        for (let k = 0; k < 8; k++) {
          const a = d.bytes[k]!, b = s.bytes[k]!;
          if (k >= w) bytes.push(C0);
          else if (a.k === 'c' && a.v === 0) bytes.push(b);
          else if (b.k === 'c' && b.v === 0) bytes.push(a);
          else return null;
        }
        out = { base: null, bytes };
      } else {
        // anything else: the register's value is unknown (fine unless it is stored or used as a base)
        out = { base: null, bytes: Array(8).fill(UNK) };
      }
      regs[i.dst] = out;
      written.add(i.dst);
    } else return null;
  }
  for (const m of writes.values()) for (const b of m.values()) if (b.k === 'u') return null;
  return { writes, written };
}

/** Widest access at `off` (≤ `left` bytes) keeping `aligned` offsets aligned. */
function chunk(off: number, left: number, aligned: boolean, max = 8): number {
  for (const w of [8, 4, 2, 1]) if (w <= left && w <= max && (!aligned || ((off % w) + w) % w === 0)) return w;
  return 1;
}

/**
 * A window that only copies bytes and stores constants, rebuilt with the widest loads and stores:
 * runs of destination bytes whose sources are consecutive bytes of one base (or constants) become
 * one access per 8/4/2/1 bytes. Stack offsets (base r10) stay aligned, as the verifier requires;
 * other memory is tried both unaligned and aligned (the safety model decides). `scratch` is a
 * register the window writes and nobody reads afterwards.
 */
export function* copyRuns(window: readonly Insn[], liveOut: readonly number[], disjoint: (a: number, b: number) => boolean): Generator<Insn[]> {
  const eff = copyEffect(window, disjoint);
  if (!eff) return;
  const live = new Set(liveOut);
  if ([...eff.written].some((r) => live.has(r))) return;
  const bases = new Set<number>(eff.writes.keys());
  for (const [d, m] of eff.writes) {
    for (const b of m.values()) {
      if (b.k !== 's') continue;
      bases.add(b.reg);
      // every source byte is read before any destination byte is written in the rebuilt code
      if (b.reg === d ? m.has(b.off) : !disjoint(b.reg, d)) return;
    }
  }
  const scratch = [...eff.written].find((r) => !bases.has(r));
  for (const alignAll of [false, true]) {
    const out: Insn[] = [];
    let ok = true;
    for (const [dst, m] of [...eff.writes].sort((a, b) => a[0] - b[0])) {
      const offs = [...m.keys()].sort((a, b) => a - b);
      let k = 0;
      while (k < offs.length && ok) {
        const d = offs[k]!, b = m.get(d)!;
        // the run starting here: consecutive destination bytes continuing the same source
        let len = 1;
        while (k + len < offs.length && offs[k + len] === d + len) {
          const nb = m.get(d + len)!;
          if (b.k === 'c' ? nb.k !== 'c' : nb.k !== 's' || b.k !== 's' || nb.reg !== b.reg || nb.off !== b.off + len) break;
          len++;
        }
        let p = 0;
        while (p < len) {
          const dAligned = dst === REG_FP || alignAll;
          if (b.k === 'c') {
            const w = chunk(d + p, len - p, dAligned);
            let v = 0n;
            for (let j = w - 1; j >= 0; j--) v = (v << 8n) | BigInt((m.get(d + p + j) as { v: number }).v);
            const imm = w === 8 ? BigInt.asIntN(64, v) : BigInt.asIntN(32, v);
            if (w === 8 && (imm < -(1n << 31n) || imm >= 1n << 31n)) {
              // not a sign-extended 32-bit immediate: two u32 stores
              for (const h of [0, 4]) {
                let u = 0n;
                for (let j = 3; j >= 0; j--) u = (u << 8n) | BigInt((m.get(d + p + h + j) as { v: number }).v);
                out.push({ code: CLASS.ST | MODE.MEM | SIZE.W, dst, src: 0, off: d + p + h, imm: Number(BigInt.asIntN(32, u)) });
              }
            } else out.push({ code: CLASS.ST | MODE.MEM | SIZE_OF[w]!, dst, src: 0, off: d + p, imm: Number(imm) });
            p += w;
          } else {
            if (scratch === undefined) { ok = false; break; }
            const s = b as { reg: number; off: number };
            const sAligned = s.reg === REG_FP || alignAll;
            let w = chunk(d + p, len - p, dAligned);
            while (w > 1 && sAligned && ((s.off + p) % w + w) % w !== 0) w /= 2;
            out.push({ code: CLASS.LDX | MODE.MEM | SIZE_OF[w]!, dst: scratch, src: s.reg, off: s.off + p, imm: 0 });
            out.push({ code: CLASS.STX | MODE.MEM | SIZE_OF[w]!, dst, src: scratch, off: d + p, imm: 0 });
            p += w;
          }
        }
        k += len;
      }
    }
    if (ok) yield out;
  }
}

// ---- a compared register that holds a constant becomes an immediate ----

const MIRROR: Record<number, number> = {
  [JMP.JEQ]: JMP.JEQ, [JMP.JNE]: JMP.JNE, [JMP.JSET]: JMP.JSET, [JMP.JGT]: JMP.JLT, [JMP.JLT]: JMP.JGT, [JMP.JGE]: JMP.JLE,
  [JMP.JLE]: JMP.JGE, [JMP.JSGT]: JMP.JSLT, [JMP.JSLT]: JMP.JSGT, [JMP.JSGE]: JMP.JSLE, [JMP.JSLE]: JMP.JSGE,
};

/** The immediate a compare needs for constant `c` (sign-extended 32 bits for 64-bit jumps), or null. */
function jumpImm(c: bigint, jmp32: boolean): number | null {
  if (jmp32) return Number(BigInt.asIntN(32, c));
  const s = BigInt.asIntN(64, c);
  return s >= -(1n << 31n) && s < 1n << 31n ? Number(s) : null;
}

/**
 * `rK = c; ...; if rA op rK goto L` (or `if rK op rA`, mirrored) as `if rA op c goto L`, with the
 * constant from a move in the window or from the precondition; with and without the move (which
 * is dead unless rK is read later: the tests and the checker tell).
 */
export function* jumpForms(window: readonly (Insn & { target?: string })[], consts: ReadonlyMap<number, bigint>): Generator<Insn[]> {
  const last = window[window.length - 1];
  if (!last || last.target === undefined) return;
  const cls = opClass(last.code);
  if (cls !== CLASS.JMP && cls !== CLASS.JMP32) return;
  const op = jmpOp(last.code);
  if (MIRROR[op] === undefined) return;
  const constOf = (r: number): { v: bigint; at: number } | null => {
    for (let k = window.length - 2; k >= 0; k--) {
      const i = window[k]!;
      if (i.dst !== r || !(isAlu(i) || opClass(i.code) === CLASS.LDX || i.code === 0x18)) continue;
      if (isAlu(i) && aluOp(i.code) === ALU.MOV && srcBit(i.code) === SRC_K && i.off === 0) {
        return { v: opClass(i.code) === CLASS.ALU64 ? BigInt.asUintN(64, BigInt(i.imm)) : BigInt(i.imm >>> 0), at: k };
      }
      return null;
    }
    const v = consts.get(r);
    return v === undefined ? null : { v, at: -1 };
  };
  // a compared register that is a copy of another (`rX = rY` in the window): compare rY
  for (const reg of srcBit(last.code) === SRC_X ? [last.dst, last.src] : [last.dst]) {
    for (let k = window.length - 2; k >= 0; k--) {
      const i = window[k]!;
      if (i.dst !== reg) { if (touches(i).has(reg) && opClass(i.code) !== CLASS.STX && opClass(i.code) !== CLASS.ST) break; continue; }
      if (opClass(i.code) !== CLASS.ALU64 || aluOp(i.code) !== ALU.MOV || srcBit(i.code) !== SRC_X || i.off !== 0 || i.src === REG_FP) break;
      // the source must keep its value until the jump
      if (window.slice(k + 1, -1).some((j) => j.dst === i.src && (isAlu(j) || opClass(j.code) === CLASS.LDX))) break;
      const jump = { ...last, ...(last.dst === reg ? { dst: i.src } : {}), ...(srcBit(last.code) === SRC_X && last.src === reg ? { src: i.src } : {}) };
      const body = window.slice(0, -1);
      yield [...body, jump];
      yield [...body.filter((_, j) => j !== k), jump];
      break;
    }
  }
  if (srcBit(last.code) !== SRC_X) return;
  for (const [reg, other, mirrored] of [[last.src, last.dst, false], [last.dst, last.src, true]] as const) {
    if (reg === REG_FP || (mirrored && other === REG_FP)) continue;
    const c = constOf(reg);
    if (!c) continue;
    const imm = jumpImm(c.v, cls === CLASS.JMP32);
    if (imm === null) continue;
    const jump = { ...last, code: cls | (mirrored ? MIRROR[op]! : op) | SRC_K, dst: other, src: 0, imm };
    const body = window.slice(0, -1);
    yield [...body, jump];
    if (c.at >= 0) yield [...body.filter((_, k) => k !== c.at), jump];
  }
}

// ---- ld_ind through an address computed just before: the offset folded into the immediate ----

/**
 * `rX = rY; rX += k; ...; r0 = ld_ind(rX + imm)` as `r0 = ld_ind(rY + imm + k)` (the sum is 32-bit
 * either way), with and without the two instructions computing rX (dead unless rX is read later).
 * rY must not change in between.
 */
export function* ldIndFolds(window: readonly Insn[]): Generator<Insn[]> {
  for (let k = 0; k < window.length; k++) {
    const ld = window[k]!;
    if (opClass(ld.code) !== CLASS.LD || memMode(ld.code) !== MODE.IND) continue;
    const x = ld.src;
    let add = -1, mov = -1;
    for (let j = k - 1; j >= 0; j--) {
      const i = window[j]!;
      if (i.dst !== x) continue;
      if (add < 0 && opClass(i.code) === CLASS.ALU64 && aluOp(i.code) === ALU.ADD && srcBit(i.code) === SRC_K) { add = j; continue; }
      if (add >= 0 && opClass(i.code) === CLASS.ALU64 && aluOp(i.code) === ALU.MOV && srcBit(i.code) === SRC_X && i.off === 0) mov = j;
      break;
    }
    if (add < 0 || mov < 0) continue;
    const y = window[mov]!.src;
    // y unchanged from the move to the load
    let changed = false;
    for (let j = mov + 1; j < k; j++) {
      const i = window[j]!;
      if (i.dst === y && (isAlu(i) || opClass(i.code) === CLASS.LDX || opClass(i.code) === CLASS.LD)) changed = true;
    }
    const imm = ld.imm + window[add]!.imm;
    if (changed || imm < -(2 ** 31) || imm >= 2 ** 31) continue;
    const out = window.map((i, j) => (j === k ? { ...ld, src: y, imm } : i));
    yield out.filter((_, j) => j !== add && j !== mov);
    yield out;
  }
}

// ---- a compare of a zero- or sign-extended low half as a 32-bit compare ----

const UNSIGNED_JMP = new Set<number>([JMP.JEQ, JMP.JNE, JMP.JGT, JMP.JGE, JMP.JLT, JMP.JLE, JMP.JSET]);
const SIGNED_JMP = new Set<number>([JMP.JEQ, JMP.JNE, JMP.JSGT, JMP.JSGE, JMP.JSLT, JMP.JSLE]);

/**
 * `x <<= 32; [x >>= 32 | x s>>= 32]; ...; if x op K goto L` as `if w(x) op K goto L` (jmp32), the
 * shifts dropped: after `x >>= 32` an unsigned compare (or ==, !=, &) of the low half, after
 * `x s>>= 32` a signed one, after `x <<= 32` alone only `== 0` / `!= 0`. Also `wX = wY` then a
 * 64-bit unsigned compare of x: a 32-bit compare of y. The shifted register must be dead
 * afterwards: the tests and the checker tell.
 */
export function* jump32Forms(window: readonly (Insn & { target?: string })[]): Generator<Insn[]> {
  const last = window[window.length - 1];
  if (!last || last.target === undefined || opClass(last.code) !== CLASS.JMP || srcBit(last.code) !== SRC_K) return;
  const op = jmpOp(last.code);
  const x = last.dst;
  const body = window.slice(0, -1);
  // the instructions defining x, from the last one back; others in between must not read x
  const defs: number[] = [];
  for (let k = body.length - 1; k >= 0 && defs.length < 2; k--) {
    const i = body[k]!;
    if (i.dst === x && isAlu(i)) { defs.push(k); continue; }
    if (touches(i).has(x)) break;
  }
  const at = (k: number | undefined): Insn | undefined => (k === undefined ? undefined : body[k]);
  const isShift = (i: Insn | undefined, a: number): boolean => !!i && opClass(i.code) === CLASS.ALU64 && aluOp(i.code) === a && srcBit(i.code) === SRC_K && i.imm === 32;
  const jmp32 = (dst: number): Insn => ({ ...last, code: CLASS.JMP32 | op | SRC_K, dst });
  const without = (...ks: number[]): Insn[] => body.filter((_, k) => !ks.includes(k));
  const [d0, d1] = defs;
  const i0 = at(d0), i1 = at(d1);
  if (isShift(i0, ALU.RSH) && isShift(i1, ALU.LSH) && UNSIGNED_JMP.has(op) && last.imm >= 0) yield [...without(d0!, d1!), jmp32(x)];
  if (isShift(i0, ALU.ARSH) && isShift(i1, ALU.LSH) && SIGNED_JMP.has(op)) yield [...without(d0!, d1!), jmp32(x)];
  if (isShift(i0, ALU.LSH) && (op === JMP.JEQ || op === JMP.JNE) && last.imm === 0) yield [...without(d0!), jmp32(x)];
  if (i0 && opClass(i0.code) === CLASS.ALU && aluOp(i0.code) === ALU.MOV && srcBit(i0.code) === SRC_X && i0.off === 0 && UNSIGNED_JMP.has(op) && last.imm >= 0) {
    yield [...without(d0!), jmp32(i0.src)];
  }
}

// ---- a stack address another register already holds ----

/**
 * `rX = r10; rX += k` where, at the window's entry, another register holds r10 + k (`stack`:
 * register → frame offset, from the precondition) and keeps it until there: `rX = rY`.
 */
export function* stackAddrCopies(window: readonly Insn[], stack: ReadonlyMap<number, number>): Generator<Insn[]> {
  for (let k = 0; k + 1 < window.length; k++) {
    const mov = window[k]!, add = window[k + 1]!;
    if (mov.code !== (CLASS.ALU64 | ALU.MOV | SRC_X) || mov.src !== REG_FP || mov.off !== 0) continue;
    if (add.code !== (CLASS.ALU64 | ALU.ADD | SRC_K) || add.dst !== mov.dst) continue;
    for (const [r, off] of stack) {
      if (off !== add.imm || r === mov.dst || r === REG_FP) continue;
      if (window.slice(0, k).some((i) => i.dst === r && (isAlu(i) || opClass(i.code) === CLASS.LDX || i.code === 0x18 || (opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.CALL)))) continue;
      yield [...window.slice(0, k), { code: CLASS.ALU64 | ALU.MOV | SRC_X, dst: mov.dst, src: r, off: 0, imm: 0 }, ...window.slice(k + 2)];
    }
  }
}
