// The interpreter core: registers as pairs of 32-bit halves (lo, hi), memory as numbered regions,
// a switch over the precompiled code of `compile.ts`. Exact BPF semantics, the kernel's where the
// ISA leaves a choice (division by zero, shift masking, ld_abs failure = return 0).
//
// A pointer is the 64-bit value hi:lo with hi = REGION_HI + region and lo = REGION_LO + offset, so
// pointer arithmetic and comparisons inside one region behave like the kernel's, and every access is
// checked against its region's bounds [start, end).
import { CLASS, JMP, ALU, MODE, ATOMIC } from '../isa/opcodes.js';
import { STRIDE, OP, locate, type Unit } from './compile.js';
import type { MapState } from './maps.js';
import type { Effect } from './outcome.js';

export const REGION_HI = -65536; // 0xffff0000 as int32: pointers look like kernel addresses
export const REGION_LO = 0x10000000;
export const STACK_SIZE = 512;
export const MAX_CALL_FRAMES = 8;
export const MAX_TAIL_CALLS = 33;

/** Region flags. */
export const F = { WRITE: 1, STACK: 2, CTX: 4, NOACCESS: 8, PACKET: 16 } as const;

/** A run stopped by an access or operation the kernel would not allow. */
export class InterpFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InterpFault';
  }
}

/** Unmodelled helper or instruction: the interpreter cannot say what the kernel does. */
export class Unmodelled extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Unmodelled';
  }
}

/** Context loads/stores and legacy packet loads, per program type (see ctx.ts). */
export interface CtxModel {
  /** Loads `size` bytes at `off` of the context; sets m.rlo/m.rhi. */
  load(m: Machine, off: number, size: number): void;
  /** Stores the low `size` bytes of (lo, hi) at `off` of the context. */
  store(m: Machine, off: number, size: number, lo: number, hi: number): void;
  /** ld_abs/ld_ind: the big-endian value at packet offset `off`, or null (the program then returns 0). */
  ldAbs(m: Machine, off: number, size: number): number | null;
}

export type HelperFn = (m: Machine) => void;

const TWO32 = 4294967296;

export class Machine {
  readonly unit: Unit;
  readonly code: Int32Array;
  maps: MapState[];
  helpers: (HelperFn | undefined)[];
  readonly lo = new Int32Array(11);
  readonly hi = new Int32Array(11);
  /** Result registers of pointer/value computations. */
  rlo = 0;
  rhi = 0;

  // Regions.
  rBuf: Uint8Array[] = [];
  rView: DataView[] = [];
  rStart: number[] = [];
  rEnd: number[] = [];
  rFlags: number[] = [];
  rInit: (Uint8Array | null)[] = [];
  rName: string[] = [];
  nRegions = 0;
  private valueRegions = new Map<Uint8Array, number>();
  private readonly saved = new Int32Array(MAX_CALL_FRAMES * 10);
  private readonly retPc = new Int32Array(MAX_CALL_FRAMES);
  private stackRegions: number[] = [];
  ctxRegion = -1;
  ctx: CtxModel | null = null;

  // Run state.
  effects: Effect[] = [];
  /** Results of nondeterministic helpers in this run (see Outcome.nondet). */
  nondet: bigint[] = [];
  cpu = 0;
  /** Set by bpf_tail_call when it transfers control. */
  pendingJump = -1;
  tailCalls = 0;
  steps = 0;
  /** Call depth (frame index) of the instruction running a helper. */
  depth = 0;
  pc = 0;
  /** Extra state helpers keep between calls of one run (e.g. seeded PRNG, clock). */
  prng = 1;
  clock = 0n;
  /** Results to give helper calls instead of computing them: `h<id>#<n>` = the n-th call of helper id (counterexample replay). */
  helperResults: Map<string, bigint> | null = null;
  helperCalls = new Map<number, number>();
  /** Context of the run for helpers (helpers.ts HelperContext / HelperState). */
  hc: unknown = null;
  hs: unknown = null;
  /** How to treat reads of stack bytes never written: a fault (default), or zeros. */
  uninitStack: 'fault' | 'zero' = 'fault';

  constructor(unit: Unit, maps: MapState[], helpers: (HelperFn | undefined)[]) {
    this.unit = unit;
    this.code = unit.code;
    this.maps = maps;
    this.helpers = helpers;
  }

  fault(message: string): never {
    throw new InterpFault(message);
  }

  /**
   * Forgets the regions of the previous run. Map objects are regions 0..maps-1 and the stack frames
   * the next MAX_CALL_FRAMES regions; both are kept from run to run.
   */
  resetRegions(): void {
    const fixed = this.maps.length + MAX_CALL_FRAMES;
    if (this.nRegions < fixed) {
      this.nRegions = 0;
      const empty = new Uint8Array(0);
      for (const m of this.maps) this.addRegion(`map ${m.spec.name}`, empty, F.NOACCESS);
      for (let d = 0; d < MAX_CALL_FRAMES; d++) {
        this.stackRegions[d] = this.addRegion(d === 0 ? 'stack' : `stack#${d}`, new Uint8Array(STACK_SIZE), F.WRITE | F.STACK);
      }
    }
    this.nRegions = fixed;
    this.valueRegions.clear();
    this.ctxRegion = -1;
  }

  /** Runs with other map states (same specs) from now on. */
  setMaps(maps: MapState[]): void {
    if (maps.length !== this.maps.length) throw new Error('setMaps: different number of maps');
    this.maps = maps;
  }

  addRegion(name: string, buf: Uint8Array, flags: number, start = 0, end = buf.length): number {
    const id = this.nRegions++;
    if (id >= 65536) this.fault('too many memory regions');
    let view = viewCache.get(buf);
    if (!view) viewCache.set(buf, (view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)));
    // Slots past nRegions are stale from earlier runs and overwritten in place.
    this.rBuf[id] = buf;
    this.rView[id] = view;
    this.rStart[id] = start;
    this.rEnd[id] = end;
    this.rFlags[id] = flags;
    this.rInit[id] = flags & F.STACK ? new Uint8Array(buf.length) : null;
    this.rName[id] = name;
    return id;
  }

  /** The region of a map value buffer (stable within a run). */
  valueRegion(buf: Uint8Array, mapIndex: number): number {
    let r = this.valueRegions.get(buf);
    if (r === undefined) {
      const spec = this.maps[mapIndex]!.spec;
      r = this.addRegion(`value of ${spec.name}`, buf, spec.readonly ? 0 : F.WRITE);
      this.valueRegions.set(buf, r);
    }
    return r;
  }

  /** Sets rlo/rhi to the pointer (region, offset). */
  ptr(region: number, offset: number): void {
    this.rlo = (REGION_LO + offset) | 0;
    this.rhi = REGION_HI + region;
  }

  setReg(r: number, lo: number, hi: number): void {
    this.lo[r] = lo;
    this.hi[r] = hi;
  }

  reg(r: number): bigint {
    return (BigInt(this.hi[r]! >>> 0) << 32n) | BigInt(this.lo[r]! >>> 0);
  }

  setRegBig(r: number, v: bigint): void {
    this.lo[r] = Number(BigInt.asUintN(32, v));
    this.hi[r] = Number(BigInt.asUintN(32, v >> 32n));
  }

  /** Region index of the pointer in register r when it points to a map object, else -1. */
  mapOf(r: number): number {
    const reg = this.hi[r]! - REGION_HI;
    if (reg < 0 || reg >= this.maps.length || this.lo[r] !== REGION_LO) return -1;
    return reg;
  }

  /** Region of the address (lo,hi), checked for an access of `size` bytes; sets `this.ar`. Returns the offset. */
  ar = 0;
  resolve(lo: number, hi: number, size: number, write: boolean): number {
    const r = hi - REGION_HI;
    if (r < 0 || r >= this.nRegions) this.fault(`${write ? 'store' : 'load'} of ${size} bytes at non-pointer 0x${hex64(lo, hi)}`);
    const o = (lo >>> 0) - REGION_LO;
    const flags = this.rFlags[r]!;
    if (flags & F.NOACCESS) this.fault(`${write ? 'store to' : 'load from'} ${this.rName[r]}`);
    if (o < this.rStart[r]! || o + size > this.rEnd[r]!) {
      this.fault(`out-of-bounds ${write ? 'store' : 'load'} of ${size} bytes at ${this.describe(r, o)}`);
    }
    if (write && !(flags & F.WRITE)) this.fault(`store to read-only ${this.describe(r, o)}`);
    this.ar = r;
    return o;
  }

  describe(r: number, o: number): string {
    if (this.rFlags[r]! & F.STACK) return `${this.rName[r]}${o - STACK_SIZE >= 0 ? '+' : ''}${o - STACK_SIZE}`;
    return `${this.rName[r]}+${o - this.rStart[r]!}`;
  }

  /** Copies `len` bytes from memory at (lo,hi) (for helper arguments). */
  readBytes(lo: number, hi: number, len: number): Uint8Array {
    if (len === 0) return new Uint8Array(0);
    const o = this.resolve(lo, hi, len, false);
    const r = this.ar;
    if (this.rFlags[r]! & F.CTX) this.fault('helper reads context memory');
    const init = this.rInit[r];
    if (init) this.checkInit(init, r, o, len);
    return this.rBuf[r]!.slice(o, o + len);
  }

  writeBytes(lo: number, hi: number, data: Uint8Array): void {
    if (data.length === 0) return;
    const o = this.resolve(lo, hi, data.length, true);
    const r = this.ar;
    if (this.rFlags[r]! & F.CTX) this.fault('helper writes context memory');
    this.rBuf[r]!.set(data, o);
    const init = this.rInit[r];
    if (init) init.fill(1, o, o + data.length);
  }

  private checkInit(init: Uint8Array, r: number, o: number, len: number): void {
    for (let i = 0; i < len; i++) {
      if (init[o + i] === 0) {
        if (this.uninitStack === 'zero') continue;
        this.fault(`read of uninitialised stack at ${this.describe(r, o + i)}`);
      }
    }
  }

  /** Frame pointer of call depth d (allocating or clearing its stack region). */
  private enterFrame(d: number): void {
    const r = this.stackRegions[d]!;
    this.rInit[r]!.fill(0);
    if (this.uninitStack === 'zero') this.rBuf[r]!.fill(0);
    this.lo[10] = REGION_LO + STACK_SIZE;
    this.hi[10] = REGION_HI + r;
  }

  /**
   * Runs from instruction `entry` until the entry function exits. Throws InterpFault / Unmodelled;
   * `this.pc` is the faulting instruction.
   */
  exec(entry: number, maxSteps: number, base = 0): void {
    const code = this.code;
    const lo = this.lo;
    const hi = this.hi;
    const nested = base > 0;
    const saved = nested ? new Int32Array(MAX_CALL_FRAMES * 10) : this.saved;
    const retPc = nested ? new Int32Array(MAX_CALL_FRAMES) : this.retPc;
    let depth = 0;
    let pc = entry;
    let budget = maxSteps;
    this.enterFrame(base);
    try {
      for (;;) {
        if (--budget < 0) this.fault(`step limit of ${maxSteps} instructions reached`);
        const b = pc * STRIDE;
        const op = code[b]!;
        const d = code[b + 1]!;
        const cls = op & 7;
        if (cls === CLASS.ALU64 && op < 0x100) {
          let blo: number, bhi: number;
          if (op & 8) {
            const s = code[b + 2]!;
            blo = lo[s]!;
            bhi = hi[s]!;
          } else {
            blo = code[b + 4]!;
            bhi = blo >> 31;
          }
          this.alu64(op & 0xf0, d, blo, bhi, code[b + 3]!, code[b + 4]!);
          pc++;
          continue;
        }
        if (cls === CLASS.ALU && op < 0x100) {
          const bv = op & 8 ? lo[code[b + 2]!]! : code[b + 4]!;
          this.alu32(op, d, bv, code[b + 3]!, code[b + 4]!);
          pc++;
          continue;
        }
        if ((cls === CLASS.JMP || cls === CLASS.JMP32) && op < 0x100) {
          const jop = op & 0xf0;
          if (jop === JMP.JA) {
            pc = code[b + 5]!;
            continue;
          }
          if (jop === JMP.EXIT) {
            if (depth === 0) break;
            depth--;
            const sb = depth * 10;
            for (let i = 0; i < 5; i++) {
              lo[6 + i] = saved[sb + 2 * i]!;
              hi[6 + i] = saved[sb + 2 * i + 1]!;
            }
            pc = retPc[depth]!;
            continue;
          }
          if (jop === JMP.CALL) {
            this.pc = pc;
            this.depth = base + depth;
            const id = code[b + 4]!;
            const fn = this.helpers[id];
            if (!fn) throw new Unmodelled(`helper ${id}${HELPER_NAMES[id] ? ` (${HELPER_NAMES[id]})` : ''} is not modelled`);
            fn(this);
            if (this.helperResults) {
              const n = this.helperCalls.get(id) ?? 0;
              this.helperCalls.set(id, n + 1);
              const v = this.helperResults.get(`h${id}#${n}`);
              if (v !== undefined) this.setRegBig(0, v);
            }
            if (this.pendingJump >= 0) {
              pc = this.pendingJump;
              this.pendingJump = -1;
              depth = 0;
              this.enterFrame(base);
              continue;
            }
            pc++;
            continue;
          }
          let taken: boolean;
          if (cls === CLASS.JMP) {
            let blo: number, bhi: number;
            if (op & 8) {
              const s = code[b + 2]!;
              blo = lo[s]!;
              bhi = hi[s]!;
            } else {
              blo = code[b + 4]!;
              bhi = blo >> 31;
            }
            taken = cmp64(jop, lo[d]!, hi[d]!, blo, bhi);
          } else {
            const bv = op & 8 ? lo[code[b + 2]!]! : code[b + 4]!;
            taken = cmp32(jop, lo[d]!, bv);
          }
          pc = taken ? code[b + 5]! : pc + 1;
          continue;
        }
        switch (op) {
          case OP.CALL_LOCAL: {
            if (base + depth + 1 >= MAX_CALL_FRAMES) { this.pc = pc; this.fault('call depth exceeds 8 frames'); }
            const sb = depth * 10;
            for (let i = 0; i < 5; i++) {
              saved[sb + 2 * i] = lo[6 + i]!;
              saved[sb + 2 * i + 1] = hi[6 + i]!;
            }
            retPc[depth] = pc + 1;
            depth++;
            this.enterFrame(base + depth);
            pc = code[b + 5]!;
            continue;
          }
          case 0x18: // ld_imm64 constant
            lo[d] = code[b + 4]!;
            hi[d] = code[b + 5]!;
            break;
          case OP.LDDW_MAP:
            this.ptr(code[b + 5]!, 0);
            lo[d] = this.rlo;
            hi[d] = this.rhi;
            break;
          case OP.LDDW_VALUE: {
            this.pc = pc;
            const mi = code[b + 5]!;
            const buf = this.maps[mi]!.lookup(ZERO_KEY, this.cpu);
            if (!buf) this.fault('global data map has no element 0');
            this.ptr(this.valueRegion(buf, mi), code[b + 4]!);
            lo[d] = this.rlo;
            hi[d] = this.rhi;
            break;
          }
          case OP.LDDW_FUNC:
            lo[d] = code[b + 5]!;
            hi[d] = FUNC_HI;
            break;
          case OP.BAD:
            this.pc = pc;
            if (this.unit.messages[code[b + 5]!]!.startsWith('fell off')) this.fault(this.unit.messages[code[b + 5]!]!);
            throw new Unmodelled(this.unit.messages[code[b + 5]!]!);
          default:
            this.pc = pc;
            this.mem(op, d, code[b + 2]!, code[b + 3]!, code[b + 4]!);
            if (this.pendingJump === -2) {
              // ld_abs/ld_ind failed: the program returns 0.
              this.pendingJump = -1;
              lo[0] = 0;
              hi[0] = 0;
              depth = 0;
              this.steps = maxSteps - budget;
              return;
            }
        }
        pc++;
      }
    } catch (e) {
      this.pc = pc;
      this.steps = maxSteps - budget;
      throw e;
    }
    this.pc = pc;
    this.steps = maxSteps - budget;
  }

  alu64(aop: number, d: number, blo: number, bhi: number, off: number, imm: number): void {
    const lo = this.lo;
    const hi = this.hi;
    const alo = lo[d]!;
    const ahi = hi[d]!;
    switch (aop) {
      case ALU.ADD: {
        const l = (alo >>> 0) + (blo >>> 0);
        lo[d] = l;
        hi[d] = ahi + bhi + (l >= TWO32 ? 1 : 0);
        return;
      }
      case ALU.SUB: {
        const l = (alo >>> 0) - (blo >>> 0);
        lo[d] = l;
        hi[d] = ahi - bhi - (l < 0 ? 1 : 0);
        return;
      }
      case ALU.MUL:
        mul64(alo, ahi, blo, bhi);
        lo[d] = RLO;
        hi[d] = RHI;
        return;
      case ALU.DIV:
      case ALU.MOD: {
        const isDiv = aop === ALU.DIV;
        if (blo === 0 && bhi === 0) {
          if (isDiv) lo[d] = hi[d] = 0;
          return; // mod by zero leaves dst unchanged
        }
        if (off === 0 && ahi === 0 && bhi === 0) {
          const x = alo >>> 0;
          const y = blo >>> 0;
          lo[d] = isDiv ? Math.floor(x / y) : x % y;
          return;
        }
        const a = (BigInt(ahi >>> 0) << 32n) | BigInt(alo >>> 0);
        const bb = (BigInt(bhi >>> 0) << 32n) | BigInt(blo >>> 0);
        let r: bigint;
        if (off === 0) r = isDiv ? a / bb : a % bb;
        else {
          const sa = BigInt.asIntN(64, a);
          const sb = BigInt.asIntN(64, bb);
          if (sb === -1n) r = isDiv ? -sa : 0n; // LLONG_MIN / -1 wraps to LLONG_MIN
          else r = isDiv ? sa / sb : sa % sb;
        }
        r = BigInt.asUintN(64, r);
        lo[d] = Number(r & 0xffffffffn);
        hi[d] = Number(r >> 32n);
        return;
      }
      case ALU.OR:
        lo[d] = alo | blo;
        hi[d] = ahi | bhi;
        return;
      case ALU.AND:
        lo[d] = alo & blo;
        hi[d] = ahi & bhi;
        return;
      case ALU.XOR:
        lo[d] = alo ^ blo;
        hi[d] = ahi ^ bhi;
        return;
      case ALU.LSH: {
        const n = blo & 63;
        if (n === 0) return;
        if (n < 32) {
          hi[d] = (ahi << n) | (alo >>> (32 - n));
          lo[d] = alo << n;
        } else {
          hi[d] = alo << (n - 32);
          lo[d] = 0;
        }
        return;
      }
      case ALU.RSH: {
        const n = blo & 63;
        if (n === 0) return;
        if (n < 32) {
          lo[d] = (alo >>> n) | (ahi << (32 - n));
          hi[d] = ahi >>> n;
        } else {
          lo[d] = ahi >>> (n - 32);
          hi[d] = 0;
        }
        return;
      }
      case ALU.ARSH: {
        const n = blo & 63;
        if (n === 0) return;
        if (n < 32) {
          lo[d] = (alo >>> n) | (ahi << (32 - n));
          hi[d] = ahi >> n;
        } else {
          lo[d] = ahi >> (n - 32);
          hi[d] = ahi >> 31;
        }
        return;
      }
      case ALU.NEG: {
        const l = -(alo >>> 0);
        lo[d] = l;
        hi[d] = -ahi - (l < 0 ? 1 : 0);
        return;
      }
      case ALU.MOV:
        if (off === 0) {
          lo[d] = blo;
          hi[d] = bhi;
        } else if (off === 8) {
          lo[d] = (blo << 24) >> 24;
          hi[d] = lo[d]! >> 31;
        } else if (off === 16) {
          lo[d] = (blo << 16) >> 16;
          hi[d] = lo[d]! >> 31;
        } else {
          lo[d] = blo;
          hi[d] = blo >> 31;
        }
        return;
      case ALU.END: // BPF_ALU64 | BPF_END: unconditional byte swap
        bswap(alo, ahi, imm);
        lo[d] = RLO;
        hi[d] = RHI;
        return;
      default:
        throw new Unmodelled(`ALU64 operation 0x${aop.toString(16)}`);
    }
  }

  alu32(op: number, d: number, b: number, off: number, imm: number): void {
    const lo = this.lo;
    const hi = this.hi;
    const a = lo[d]!;
    let r: number;
    switch (op & 0xf0) {
      case ALU.ADD: r = a + b; break;
      case ALU.SUB: r = a - b; break;
      case ALU.MUL: r = Math.imul(a, b); break;
      case ALU.DIV:
        if (b === 0) r = 0;
        else if (off === 0) r = Math.floor((a >>> 0) / (b >>> 0));
        else r = b === -1 ? -a : Math.trunc(a / b);
        break;
      case ALU.MOD:
        if (b === 0) r = a;
        else if (off === 0) r = (a >>> 0) % (b >>> 0);
        else r = b === -1 ? 0 : a % b;
        break;
      case ALU.OR: r = a | b; break;
      case ALU.AND: r = a & b; break;
      case ALU.XOR: r = a ^ b; break;
      case ALU.LSH: r = a << (b & 31); break;
      case ALU.RSH: r = a >>> (b & 31); break;
      case ALU.ARSH: r = a >> (b & 31); break;
      case ALU.NEG: r = -a; break;
      case ALU.MOV: r = off === 8 ? (b << 24) >> 24 : off === 16 ? (b << 16) >> 16 : b; break;
      case ALU.END:
        if (op & 8) {
          // to big endian: byte swap
          bswap(a, hi[d]!, imm);
          lo[d] = RLO;
          hi[d] = RHI;
        } else if (imm === 16) {
          lo[d] = a & 0xffff;
          hi[d] = 0;
        } else if (imm === 32) {
          hi[d] = 0;
        } // to little endian, 64: no change
        return;
      default:
        throw new Unmodelled(`ALU operation 0x${op.toString(16)}`);
    }
    lo[d] = r;
    hi[d] = 0;
  }

  /** Loads, stores, atomics, ld_abs/ld_ind. */
  private mem(op: number, d: number, s: number, off: number, imm: number): void {
    const lo = this.lo;
    const hi = this.hi;
    const cls = op & 7;
    const mode = op & 0xe0;
    const size = SIZE_BYTES[(op >> 3) & 3]!;
    if (cls === CLASS.LD) {
      if (mode !== MODE.ABS && mode !== MODE.IND) throw new Unmodelled(`opcode 0x${op.toString(16)}`);
      if (!this.ctx) this.fault('ld_abs/ld_ind without a packet context');
      const at = mode === MODE.ABS ? imm : (lo[s]! + imm) | 0;
      const v = this.ctx.ldAbs(this, at, size);
      if (v === null) {
        this.pendingJump = -2;
        return;
      }
      lo[0] = v;
      hi[0] = 0;
      return;
    }
    const base = cls === CLASS.LDX ? s : d;
    let alo = (lo[base]! >>> 0) + off;
    let ahi = hi[base]!;
    if (alo < 0) {
      alo += TWO32;
      ahi = (ahi - 1) | 0;
    } else if (alo >= TWO32) {
      alo -= TWO32;
      ahi = (ahi + 1) | 0;
    }
    const write = cls !== CLASS.LDX;
    const o = this.resolve(alo | 0, ahi, size, write);
    const r = this.ar;
    const flags = this.rFlags[r]!;
    if (flags & F.CTX) {
      if (cls === CLASS.LDX) {
        this.ctx!.load(this, o, size);
        lo[d] = this.rlo;
        hi[d] = this.rhi;
        if (mode === MODE.MEMSX) signExtend(lo, hi, d, size);
      } else if (mode === MODE.ATOMIC) {
        this.fault('atomic operation on the context');
      } else if (cls === CLASS.ST) {
        this.ctx!.store(this, o, size, imm, imm >> 31);
      } else {
        this.ctx!.store(this, o, size, lo[s]!, hi[s]!);
      }
      return;
    }
    const v = this.rView[r]!;
    const init = this.rInit[r];
    if (cls === CLASS.LDX) {
      if (init) this.checkInit(init, r, o, size);
      loadInto(v, o, size, lo, hi, d);
      if (mode === MODE.MEMSX) signExtend(lo, hi, d, size);
      return;
    }
    if (init) init.fill(1, o, o + size);
    if (cls === CLASS.ST) {
      storeFrom(v, o, size, imm, imm >> 31);
      return;
    }
    if (mode === MODE.MEM) {
      storeFrom(v, o, size, lo[s]!, hi[s]!);
      return;
    }
    if (mode !== MODE.ATOMIC) throw new Unmodelled(`opcode 0x${op.toString(16)}`);
    // Atomics (BPF_W or BPF_DW).
    if (init) this.checkInit(init, r, o, size);
    const olo = v.getInt32(o, true);
    const ohi = size === 8 ? v.getInt32(o + 4, true) : 0;
    const slo = lo[s]!;
    const shi = size === 8 ? hi[s]! : 0;
    let nlo: number, nhi: number;
    switch (imm & ~ATOMIC.FETCH) {
      case ATOMIC.ADD: {
        const l = (olo >>> 0) + (slo >>> 0);
        nlo = l | 0;
        nhi = (ohi + shi + (l >= TWO32 ? 1 : 0)) | 0;
        break;
      }
      case ATOMIC.OR: nlo = olo | slo; nhi = ohi | shi; break;
      case ATOMIC.AND: nlo = olo & slo; nhi = ohi & shi; break;
      case ATOMIC.XOR: nlo = olo ^ slo; nhi = ohi ^ shi; break;
      case ATOMIC.XCHG & ~ATOMIC.FETCH: nlo = slo; nhi = shi; break;
      case ATOMIC.CMPXCHG & ~ATOMIC.FETCH: {
        const eq = size === 8 ? lo[0] === olo && hi[0] === ohi : lo[0] === olo;
        nlo = eq ? slo : olo;
        nhi = eq ? shi : ohi;
        v.setInt32(o, nlo, true);
        if (size === 8) v.setInt32(o + 4, nhi, true);
        lo[0] = olo;
        hi[0] = ohi;
        return;
      }
      default:
        throw new Unmodelled(`atomic operation 0x${imm.toString(16)}`);
    }
    v.setInt32(o, nlo, true);
    if (size === 8) v.setInt32(o + 4, nhi, true);
    if (imm & ATOMIC.FETCH) {
      lo[s] = olo;
      hi[s] = ohi;
    }
  }

  where(pc: number): { section: string; insn: number } {
    return locate(this.unit, pc);
  }
}

/** High half of a code pointer made by ld_imm64 of a function (callbacks of bpf_loop). */
export const FUNC_HI = -131072;

const ZERO_KEY = new Uint8Array(4);
/** DataViews of region buffers (map values and packet pages recur from run to run). */
const viewCache = new WeakMap<Uint8Array, DataView>();
const SIZE_BYTES = [4, 2, 1, 8];

let RLO = 0;
let RHI = 0;

function mul64(alo: number, ahi: number, blo: number, bhi: number): void {
  const a0 = alo & 0xffff;
  const a1 = alo >>> 16;
  const b0 = blo & 0xffff;
  const b1 = blo >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33
  const low = a0 * b0 + (mid % 65536) * 65536; // < 2^33
  const lowLo = low % TWO32;
  const high = a1 * b1 + Math.floor(mid / 65536) + (low - lowLo) / TWO32;
  RLO = lowLo | 0;
  RHI = (high + Math.imul(alo, bhi) + Math.imul(ahi, blo)) | 0;
}

const bswap16 = (x: number): number => ((x & 0xff) << 8) | ((x >>> 8) & 0xff);
const bswap32 = (x: number): number => ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);

function bswap(alo: number, ahi: number, width: number): void {
  if (width === 16) {
    RLO = bswap16(alo);
    RHI = 0;
  } else if (width === 32) {
    RLO = bswap32(alo);
    RHI = 0;
  } else {
    RLO = bswap32(ahi);
    RHI = bswap32(alo);
  }
}

function cmp64(jop: number, alo: number, ahi: number, blo: number, bhi: number): boolean {
  switch (jop) {
    case JMP.JEQ: return alo === blo && ahi === bhi;
    case JMP.JNE: return alo !== blo || ahi !== bhi;
    case JMP.JSET: return (alo & blo) !== 0 || (ahi & bhi) !== 0;
    case JMP.JGT: return ahi !== bhi ? ahi >>> 0 > bhi >>> 0 : alo >>> 0 > blo >>> 0;
    case JMP.JGE: return ahi !== bhi ? ahi >>> 0 > bhi >>> 0 : alo >>> 0 >= blo >>> 0;
    case JMP.JLT: return ahi !== bhi ? ahi >>> 0 < bhi >>> 0 : alo >>> 0 < blo >>> 0;
    case JMP.JLE: return ahi !== bhi ? ahi >>> 0 < bhi >>> 0 : alo >>> 0 <= blo >>> 0;
    case JMP.JSGT: return ahi !== bhi ? ahi > bhi : alo >>> 0 > blo >>> 0;
    case JMP.JSGE: return ahi !== bhi ? ahi > bhi : alo >>> 0 >= blo >>> 0;
    case JMP.JSLT: return ahi !== bhi ? ahi < bhi : alo >>> 0 < blo >>> 0;
    case JMP.JSLE: return ahi !== bhi ? ahi < bhi : alo >>> 0 <= blo >>> 0;
    default: throw new Unmodelled(`jump operation 0x${jop.toString(16)}`);
  }
}

function cmp32(jop: number, a: number, b: number): boolean {
  switch (jop) {
    case JMP.JEQ: return a === b;
    case JMP.JNE: return a !== b;
    case JMP.JSET: return (a & b) !== 0;
    case JMP.JGT: return a >>> 0 > b >>> 0;
    case JMP.JGE: return a >>> 0 >= b >>> 0;
    case JMP.JLT: return a >>> 0 < b >>> 0;
    case JMP.JLE: return a >>> 0 <= b >>> 0;
    case JMP.JSGT: return a > b;
    case JMP.JSGE: return a >= b;
    case JMP.JSLT: return a < b;
    case JMP.JSLE: return a <= b;
    default: throw new Unmodelled(`jump operation 0x${jop.toString(16)}`);
  }
}

function loadInto(v: DataView, o: number, size: number, lo: Int32Array, hi: Int32Array, d: number): void {
  switch (size) {
    case 1: lo[d] = v.getUint8(o); hi[d] = 0; return;
    case 2: lo[d] = v.getUint16(o, true); hi[d] = 0; return;
    case 4: lo[d] = v.getInt32(o, true); hi[d] = 0; return;
    default: lo[d] = v.getInt32(o, true); hi[d] = v.getInt32(o + 4, true);
  }
}

function storeFrom(v: DataView, o: number, size: number, lo: number, hi: number): void {
  switch (size) {
    case 1: v.setUint8(o, lo & 0xff); return;
    case 2: v.setUint16(o, lo & 0xffff, true); return;
    case 4: v.setInt32(o, lo, true); return;
    default: v.setInt32(o, lo, true); v.setInt32(o + 4, hi, true);
  }
}

function signExtend(lo: Int32Array, hi: Int32Array, d: number, size: number): void {
  if (size === 1) lo[d] = (lo[d]! << 24) >> 24;
  else if (size === 2) lo[d] = (lo[d]! << 16) >> 16;
  hi[d] = lo[d]! >> 31;
}

export const hex64 = (lo: number, hi: number): string => (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');

/** Helper names by id (include/uapi/linux/bpf.h), for messages. */
export const HELPER_NAMES: Record<number, string> = {
  1: 'map_lookup_elem', 2: 'map_update_elem', 3: 'map_delete_elem', 4: 'probe_read', 5: 'ktime_get_ns', 6: 'trace_printk',
  7: 'get_prandom_u32', 8: 'get_smp_processor_id', 9: 'skb_store_bytes', 10: 'l3_csum_replace', 11: 'l4_csum_replace',
  12: 'tail_call', 13: 'clone_redirect', 14: 'get_current_pid_tgid', 15: 'get_current_uid_gid', 16: 'get_current_comm',
  17: 'get_cgroup_classid', 18: 'skb_vlan_push', 19: 'skb_vlan_pop', 20: 'skb_get_tunnel_key', 21: 'skb_set_tunnel_key',
  22: 'perf_event_read', 23: 'redirect', 24: 'get_route_realm', 25: 'perf_event_output', 26: 'skb_load_bytes',
  27: 'get_stackid', 28: 'csum_diff', 29: 'skb_get_tunnel_opt', 30: 'skb_set_tunnel_opt', 31: 'skb_change_proto',
  32: 'skb_change_type', 33: 'skb_under_cgroup', 34: 'get_hash_recalc', 35: 'get_current_task', 36: 'probe_write_user',
  37: 'current_task_under_cgroup', 38: 'skb_change_tail', 39: 'skb_pull_data', 40: 'csum_update', 41: 'set_hash_invalid',
  42: 'get_numa_node_id', 43: 'skb_change_head', 44: 'xdp_adjust_head', 45: 'probe_read_str', 46: 'get_socket_cookie',
  47: 'get_socket_uid', 48: 'set_hash', 49: 'setsockopt', 50: 'skb_adjust_room', 51: 'redirect_map', 52: 'sk_redirect_map',
  53: 'sock_map_update', 54: 'xdp_adjust_meta', 55: 'perf_event_read_value', 56: 'perf_prog_read_value', 57: 'getsockopt',
  58: 'override_return', 59: 'sock_ops_cb_flags_set', 60: 'msg_redirect_map', 61: 'msg_apply_bytes', 62: 'msg_cork_bytes',
  63: 'msg_pull_data', 64: 'bind', 65: 'xdp_adjust_tail', 66: 'skb_get_xfrm_state', 67: 'get_stack', 68: 'skb_load_bytes_relative',
  69: 'fib_lookup', 70: 'sock_hash_update', 79: 'skb_cgroup_id', 80: 'get_current_cgroup_id', 81: 'get_local_storage',
  84: 'sk_lookup_tcp', 85: 'sk_lookup_udp', 86: 'sk_release', 87: 'map_push_elem', 88: 'map_pop_elem', 89: 'map_peek_elem',
  93: 'spin_lock', 94: 'spin_unlock', 95: 'sk_fullsock', 96: 'tcp_sock', 97: 'skb_ecn_set_ce', 112: 'probe_read_user',
  113: 'probe_read_kernel', 114: 'probe_read_user_str', 115: 'probe_read_kernel_str', 125: 'ktime_get_boot_ns',
  130: 'ringbuf_output', 131: 'ringbuf_reserve', 132: 'ringbuf_submit', 133: 'ringbuf_discard', 134: 'ringbuf_query',
  135: 'csum_level', 151: 'skb_cgroup_classid', 152: 'redirect_neigh', 153: 'per_cpu_ptr', 154: 'this_cpu_ptr', 155: 'redirect_peer', 160: 'ktime_get_coarse_ns', 164: 'for_each_map_elem', 165: 'snprintf', 181: 'loop', 182: 'strncmp',
  188: 'xdp_get_buff_len', 189: 'xdp_load_bytes', 190: 'xdp_store_bytes', 195: 'map_lookup_percpu_elem',
};
