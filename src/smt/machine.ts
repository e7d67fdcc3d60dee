// Symbolic execution of loop-free (or bounded) BPF code into terms: every path of a program or a
// window, with its path condition and its final state. Exact BPF semantics as the kernel defines
// them (32-bit ops zero-extend, x/0 = 0, x%0 = x, masked shifts, sdiv/smod, movsx, bswap, jmp32,
// atomics), memory as byte-granular regions, helpers per `helpers.ts`.
//
// Pointers are ordinary 64-bit terms `base + offset` where `base` is a variable standing for the
// region's kernel address (shared by both programs). Region bases are assumed to be kernel
// addresses (in [2^64-2^48, 2^64-2^40)), so two pointers into one region compare like their offsets
// and a pointer is never 0. With memory-type concretization each access goes to its region's own
// byte array; without it all regions live in one flat array indexed by address, and the solver
// reasons about aliasing from the bases' disjointness.
import { CLASS, JMP, LD_IMM64, MODE, SRC_X, aluOp, imm64, jmpOp, memMode, opClass, sizeBytes, srcBit } from '../isa/index.js';
import type { IrInsn } from '../ir/types.js';
import { Terms, mask, type Term } from './term.js';
import { ctxLayout, type CtxLayout } from './ctxmodel.js';
import { helperName } from './helpers.js';
import {
  BASE_HI, BASE_LO, FALLTHROUGH, MAP_TYPE, MAX_PKT, NeedFlat, TEST_RUN_MAX_PKT, State, Unsupported, before, mergeable, placeKey,
  type CodeEnv, type MachineOptions, type MapInfo, type Mem, type PathEnd, type Region, type WorkItem,
} from './machine-types.js';
import { skbDerivedFields } from './machine-skb.js';
import { alu, atomic } from './machine-alu.js';
import { call, fork } from './machine-helpers.js';
import { decideByRanges, learnFacts, type Iv } from './ranges.js';

export * from './machine-types.js';

/** The symbolic machine: shared by both programs of a query (same terms, same input variables). */
export class Machine {
  readonly T: Terms;
  readonly opts: MachineOptions;
  readonly env: CodeEnv;
  readonly ctx: CtxLayout;
  readonly flat: boolean;
  /** Facts every input satisfies (region bases, packet length, window preconditions). */
  readonly assumptions: Term[] = [];
  private regionByBase = new Map<number, Region>();
  private regionList: Region[] = [];
  private mapByVar = new Map<number, MapInfo>();
  readonly pktLen: Term;
  readonly ctxBase: Term;
  /** data - data_meta (bytes of metadata; -1 when data_meta = data + 1), or null without data_meta. */
  readonly metaLen: Term | null;
  /** The test-run model's facts about the inputs (fixed context fields, no metadata, a page-sized packet). */
  readonly testRun: Term[] = [];
  /** Path conditions where the model cannot say what the kernel does (a query whose inputs may reach one is not "equal"). */
  readonly havoc: Term[] = [];
  private labelCache = new Map<string, Map<string, number>>();

  constructor(T: Terms, env: CodeEnv, opts: MachineOptions) {
    this.T = T;
    this.env = env;
    this.opts = opts;
    this.flat = !opts.memTypes;
    this.ctx = ctxLayout(env.progType);
    this.pktLen = T.var('pkt_len', 64);
    this.assumptions.push(T.ule(this.pktLen, T.bv(MAX_PKT, 64)));
    this.ctxBase = this.baseVar('ctx');
    this.addRegion({ kind: 'ctx', mem: 'ctx', base: this.ctxBase, lo: 0n, hi: this.ctx.size === null ? null : BigInt(this.ctx.size), writable: true });
    // data_meta = data - meta_len (meta_len -1: data_meta = data + 1, no metadata support): the
    // metadata bytes are packet bytes at negative offsets, valid down to -meta_len
    this.metaLen = this.ctx.meta ? T.var('meta_len', 64) : null;
    const pktLo = this.metaLen ? T.ite(T.slt(this.metaLen, T.bv(0n, 64)), T.bv(0n, 64), T.neg(this.metaLen)) : undefined;
    this.addRegion({ kind: 'pkt', mem: 'pkt', base: this.baseVar('pkt'), lo: 0n, ...(pktLo ? { loTerm: pktLo } : {}), hi: 'len', writable: true });
    const ctxByte = (off: number): Term =>
      this.flat ? T.select(T.avar('mem:flat', 64, 8), T.add(this.ctxBase, T.bv(off, 64))) : T.select(T.avar('mem:ctx', 64, 8), T.bv(off, 64));
    const u32 = (off: number): Term => T.concat(ctxByte(off + 3), ctxByte(off + 2), ctxByte(off + 1), ctxByte(off));
    // What the kernel guarantees on every run (the production model: proofs hold for these contexts).
    for (const off of this.ctx.nonZeroU32) this.assumptions.push(T.neq(u32(off), T.bv(0n, 32)));
    for (const [off, max] of this.ctx.bounds ?? []) this.assumptions.push(T.ule(u32(off), T.bv(max, 32)));
    if (this.ctx.lenField !== undefined) this.assumptions.push(T.ule(this.pktLen, T.zext(u32(this.ctx.lenField), 32)));
    if (this.metaLen && this.ctx.meta) {
      const ok = T.ule(this.metaLen, T.bv(BigInt(this.ctx.meta.maxLen), 64));
      this.assumptions.push(this.ctx.meta.invalid ? T.bor(ok, T.eq(this.metaLen, T.bv(-1n, 64))) : ok);
    }
    // What BPF_PROG_TEST_RUN gives (src/interp/ctx.ts): only assumed with `ctx: 'test-run'`, else a
    // preference for counterexamples the interpreter can replay.
    for (const [off, v] of this.ctx.fixed) {
      const val = typeof v === 'number' ? T.bv(v, 8) : T.extract(8 * v.lenByte + 7, 8 * v.lenByte, this.pktLen);
      this.testRun.push(T.eq(ctxByte(off), val));
    }
    if (this.metaLen) this.testRun.push(T.eq(this.metaLen, T.bv(0n, 64)));
    this.testRun.push(T.ule(this.pktLen, T.bv(TEST_RUN_MAX_PKT, 64)));
    // whole programs only: windows keep these context bytes free (a superset of inputs, still sound)
    if (this.ctx.name === '__sk_buff' && env.whole) skbDerivedFields(this, ctxByte, this.testRun);
    if (opts.ctx === 'test-run') this.assumptions.push(...this.testRun);
    for (const m of env.maps) {
      if (m.data || this.arrayLike(m)) {
        this.addRegion({ kind: 'mapval', mem: `mv:${m.name}`, base: this.baseVar(`mv:${m.name}`), lo: 0n, hi: BigInt(m.maxEntries * m.valueSize), writable: !m.readonly, map: m });
      }
      this.mapByVar.set(T.var(`map:${m.name}`, 64).id, m);
    }
  }

  /** For random inputs: the value of a context byte the test run fixes (see CtxLayout.fixed). */
  fixedByte(name: string, idx: bigint, env: { get(name: string, w: number): bigint }): bigint | undefined {
    let off: bigint;
    if (name === 'mem:ctx') off = idx;
    else if (name === 'mem:flat') off = idx - env.get('base:ctx', 64);
    else return undefined;
    if (off < 0n || off >= 256n) return undefined;
    const f = this.ctx.fixed.get(Number(off));
    if (f !== undefined) return typeof f === 'number' ? BigInt(f) : (env.get('pkt_len', 64) >> BigInt(8 * f.lenByte)) & 0xffn;
    for (const z of this.ctx.nonZeroU32) if (Number(off) >= z && Number(off) < z + 4) return Number(off) === z ? 1n : 0n;
    return undefined;
  }

  // ---------------------------------------------------------------- regions
  baseVar(name: string): Term {
    const b = this.T.var(`base:${name}`, 64);
    return b;
  }
  private addRegion(r: Region): Region {
    this.regionByBase.set(r.base.id, r);
    this.regionList.push(r);
    const T = this.T;
    this.assumptions.push(T.ule(T.bv(BASE_LO, 64), r.base), T.ult(r.base, T.bv(BASE_HI, 64)));
    if (this.flat) {
      // Disjointness from every region made so far (flat memory: aliasing is the solver's job).
      for (const o of this.regionList) {
        if (o === r) continue;
        this.assumptions.push(this.disjoint(r, o));
      }
    }
    return r;
  }
  private span(r: Region): [Term, Term] {
    const T = this.T;
    const lo = T.add(r.base, r.loTerm ?? T.bv(r.lo, 64));
    const hi = r.hi === 'len' ? T.add(r.base, this.pktLen) : T.add(r.base, T.bv(r.hi ?? 1n << 32n, 64));
    return [lo, hi];
  }
  private disjoint(a: Region, b: Region): Term {
    const T = this.T;
    const [alo, ahi] = this.span(a), [blo, bhi] = this.span(b);
    const apart = T.bor(T.ule(ahi, blo), T.ule(bhi, alo));
    if (a.kind === 'hashval' && b.kind === 'hashval' && a.map === b.map) return T.bor(T.eq(a.key!, b.key!), apart);
    return apart;
  }
  stackRegion(depth: number): Region {
    const base = this.baseVar(`fp${depth}`);
    const hit = this.regionByBase.get(base.id);
    if (hit) return hit;
    return this.addRegion({ kind: 'stack', mem: `stack${depth}`, base, lo: -512n, hi: 0n, writable: true, depth });
  }
  regionOfMap(m: MapInfo): Region {
    const r = this.regionByBase.get(this.baseVar(`mv:${m.name}`).id);
    if (!r) throw new Unsupported(`map ${m.name} has no value region`);
    return r;
  }
  /** The value region of hash map `m` at `key` (one per distinct key term). */
  hashRegion(m: MapInfo, key: Term): Region {
    const T = this.T;
    const base = T.select(T.avar(`vb:${m.name}`, key.w, 64), key);
    const hit = this.regionByBase.get(base.id);
    if (hit) return hit;
    return this.addRegion({ kind: 'hashval', mem: `hv:${m.name}`, base, lo: 0n, hi: BigInt(m.valueSize), writable: true, map: m, key });
  }
  /** A region standing for memory a window precondition points to (no known size). */
  opaqueRegion(name: string, size: number | null): Region {
    const base = this.baseVar(`w:${name}`);
    const hit = this.regionByBase.get(base.id);
    if (hit) return hit;
    return this.addRegion({ kind: 'opaque', mem: `w:${name}`, base, lo: 0n, hi: size === null ? null : BigInt(size), writable: true });
  }
  regions(): readonly Region[] {
    return this.regionList;
  }
  mapPointer(m: MapInfo): Term {
    return this.T.var(`map:${m.name}`, 64);
  }
  mapOfPointer(t: Term): MapInfo | null {
    return this.mapByVar.get(t.id) ?? null;
  }
  arrayLike(m: MapInfo): boolean {
    return m.data || (this.opts.mapTypes && (m.type === MAP_TYPE.ARRAY || m.type === MAP_TYPE.PERCPU_ARRAY));
  }

  /** (region, offset) of a pointer term, or null. Sees through sums and ite of pointers into one region. */
  resolve(t: Term): { region: Region; off: Term } | null {
    const T = this.T;
    const direct = this.regionByBase.get(t.id);
    if (direct) return { region: direct, off: T.bv(0n, 64) };
    if (t.op === 'add') {
      for (const x of t.a) {
        if (x.op === 'const') continue;
        const r = this.resolve(x);
        if (r) return { region: r.region, off: T.add(r.off, ...t.a.filter((y) => y !== x)) };
      }
    } else if (t.op === 'ite' && t.s === 1) {
      const a = this.resolve(t.a[1]!), b = this.resolve(t.a[2]!);
      if (a && b && a.region === b.region) return { region: a.region, off: T.ite(t.a[0]!, a.off, b.off) };
    }
    return null;
  }

  // ---------------------------------------------------------------- memories
  private memIndexWidth(region: Region): number {
    return region.kind === 'hashval' ? region.key!.w + 32 : 64;
  }
  memOf(st: State, id: string, iw = 64): Mem {
    let m = st.mems.get(id);
    if (!m) {
      const stackInit = this.env.whole && id.startsWith('stack') && !this.flat;
      m = { arr: this.T.avar(`mem:${id}`, iw, 8), bytes: this.opts.offsets ? new Map() : null, init: stackInit ? new Map() : null, iw };
      st.mems.set(id, m);
    }
    return m;
  }
  private toArrayMode(m: Mem): void {
    if (!m.bytes) return;
    let arr = m.arr;
    for (const [k, v] of [...m.bytes].sort((a, b) => (a[0] < b[0] ? -1 : 1))) arr = this.T.store(arr, this.T.bv(k, m.iw), v);
    m.arr = arr;
    m.bytes = null;
    m.init = null;
  }
  /** The byte of memory `m` at index `idx` (no side effects). */
  peek(m: Mem, idx: Term): Term {
    const T = this.T;
    if (m.bytes) {
      if (idx.op === 'const') return m.bytes.get(idx.v) ?? T.select(m.arr, idx);
      let arr = m.arr;
      for (const [k, v] of m.bytes) arr = T.store(arr, T.bv(k, m.iw), v);
      return T.select(arr, idx);
    }
    return T.select(m.arr, idx);
  }
  /** Index terms written in memory `m` (constant overlay keys and array store indices). */
  writtenIndices(m: Mem): Term[] {
    const out: Term[] = [];
    if (m.bytes) for (const k of m.bytes.keys()) out.push(this.T.bv(k, m.iw));
    const stack = [m.arr];
    const seen = new Set<number>();
    while (stack.length) {
      const t = stack.pop()!;
      if (seen.has(t.id)) continue;
      seen.add(t.id);
      if (t.op === 'store') {
        out.push(t.a[1]!);
        stack.push(t.a[0]!);
      } else if (t.op === 'ite') stack.push(t.a[1]!, t.a[2]!);
    }
    return out;
  }

  /** Where an access of `n` bytes at `addr` goes: memory id, index terms, fault condition. */
  private locate(st: State, addr: Term, n: number, write: boolean): { mem: Mem; idx: Term[]; fault: Term; region: Region | null; off: Term | null } {
    const T = this.T;
    const r = this.resolve(addr);
    if (!r && !this.flat) throw new NeedFlat('access through a pointer of unknown region');
    let fault: Term = T.F;
    if (r) {
      fault = this.boundsFault(st, r.region, r.off, n);
      if (write && !r.region.writable) fault = T.T;
    } else if (this.env.whole) {
      // A whole program can only access its regions: an address in none of them faults (as in the
      // interpreter and the verifier). Windows may use pointers to memory the query knows nothing of.
      const inside: Term[] = [];
      for (const g of this.regionList) {
        if (g.hi === null) continue;
        const off = T.sub(addr, g.base);
        const hi = g.hi === 'len' ? this.pktLen : T.bv(g.hi, 64);
        inside.push(T.band(T.sle(g.loTerm ?? T.bv(g.lo, 64), off), T.sle(T.add(off, T.bv(BigInt(n), 64)), hi), T.slt(off, T.add(off, T.bv(BigInt(n), 64)))));
      }
      fault = T.bnot(T.bor(...inside));
    }
    if (this.flat) {
      const mem = this.memOf(st, 'flat');
      const idx: Term[] = [];
      for (let i = 0; i < n; i++) idx.push(T.add(addr, T.bv(i, 64)));
      return { mem, idx, fault, region: r?.region ?? null, off: r?.off ?? null };
    }
    const region = r!.region;
    const iw = this.memIndexWidth(region);
    const mem = this.memOf(st, region.mem, iw);
    const idx: Term[] = [];
    for (let i = 0; i < n; i++) {
      const o = T.add(r!.off, T.bv(i, 64));
      idx.push(region.kind === 'hashval' ? T.concat(region.key!, T.extract(31, 0, o)) : o);
    }
    return { mem, idx, fault, region, off: r!.off };
  }

  private boundsFault(st: State, region: Region, off: Term, n: number): Term {
    const T = this.T;
    if (region.hi === null) return T.F;
    const nn = BigInt(n);
    if (off.op === 'const') {
      const o = BigInt.asIntN(64, off.v);
      let low: Term = T.F;
      if (o < region.lo) {
        if (!region.loTerm) return T.T;
        low = T.slt(T.bv(o, 64), region.loTerm); // metadata below the packet data
      }
      if (region.hi === 'len') {
        if (o + nn <= st.lenMin) return low;
        if (o + nn > MAX_PKT) return T.T;
        return T.bor(low, T.slt(this.pktLen, T.bv(o + nn, 64)));
      }
      return T.bor(low, T.bool(o + nn > region.hi));
    }
    const end = T.add(off, T.bv(nn, 64));
    const hi = region.hi === 'len' ? this.pktLen : T.bv(region.hi, 64);
    return T.bor(T.slt(off, region.loTerm ?? T.bv(region.lo, 64)), T.slt(hi, end), T.slt(end, off));
  }

  /** Reads `n` bytes (little-endian) at `addr`; null when the path faulted (already recorded). */
  load(st: State, addr: Term, n: number, ends: PathEnd[], what = 'load'): Term | null {
    const T = this.T;
    const loc = this.locate(st, addr, n, false);
    if (!this.guard(st, loc.fault, ends, `out-of-bounds ${what} of ${n} bytes`)) return null;
    if (loc.mem.init) {
      const unwritten: Term[] = [];
      for (const idx of loc.idx) unwritten.push(idx.op === 'const' ? T.bnot(loc.mem.init.get(idx.v) ?? T.F) : T.T);
      if (!this.guard(st, T.bor(...unwritten), ends, 'read of uninitialised stack')) return null;
    }
    const bytes: Term[] = [];
    for (let i = 0; i < n; i++) {
      const idx = loc.idx[i]!;
      if (loc.mem.bytes && idx.op !== 'const') this.toArrayMode(loc.mem);
      bytes.push(this.peek(loc.mem, idx));
    }
    return T.concat(...bytes.reverse());
  }

  /** Writes the low `n` bytes of `val` at `addr`; false when the path faulted. */
  store(st: State, addr: Term, n: number, val: Term, ends: PathEnd[]): boolean {
    const T = this.T;
    const loc = this.locate(st, addr, n, true);
    // Different keys may select one LPM element: writes through LPM values are not modelled.
    if (loc.region?.map?.type === MAP_TYPE.LPM_TRIE) throw new Unsupported('store to an LPM trie value');
    if (!this.guard(st, loc.fault, ends, `out-of-bounds store of ${n} bytes`)) return false;
    for (let i = 0; i < n; i++) {
      const idx = loc.idx[i]!;
      const b = T.extract(8 * i + 7, 8 * i, val);
      if (loc.mem.bytes && idx.op !== 'const') this.toArrayMode(loc.mem);
      if (loc.mem.bytes) loc.mem.bytes.set(idx.v, b);
      else loc.mem.arr = T.store(loc.mem.arr, idx, b);
      loc.mem.init?.set(idx.v, T.T);
    }
    return true;
  }

  /** Splits off a fault path when `cond` may hold; false when the path certainly faults. */
  guard(st: State, cond: Term, ends: PathEnd[], reason: string): boolean {
    const T = this.T;
    if (cond === T.F) return true;
    if (cond === T.T) {
      this.endPath(st, T.T, ends, reason);
      return false;
    }
    ends.push({ pc: T.band(st.pc, cond), kind: 'fault', state: st, reason });
    st.pc = T.band(st.pc, T.bnot(cond));
    return true;
  }
  endPath(st: State, cond: Term, ends: PathEnd[], reason: string): void {
    ends.push({ pc: this.T.band(st.pc, cond), kind: 'fault', state: st, reason });
  }

  // ---------------------------------------------------------------- initial states
  /** Entry state of a whole program: r1 = ctx, r10 = frame pointer, other registers 0. */
  entryState(): State {
    const T = this.T;
    const regs: Term[] = [];
    for (let i = 0; i <= 10; i++) regs.push(T.bv(0n, 64));
    regs[1] = this.ctxBase;
    regs[10] = this.stackRegion(0).base;
    return new State(regs, T.T);
  }

  // ---------------------------------------------------------------- execution
  private joinCache = new Map<string, Uint8Array>();
  /** Instructions with two or more predecessors (where merging states pays off). */
  joins(section: string): Uint8Array {
    let j = this.joinCache.get(section);
    if (!j) {
      const insns = this.env.sections.get(section) ?? [];
      const lab = this.labels(section);
      const preds = new Uint8Array(insns.length + 1);
      insns.forEach((i, k) => {
        const c = opClass(i.code);
        const isJ = c === CLASS.JMP || c === CLASS.JMP32;
        const op = jmpOp(i.code);
        if (isJ && op !== JMP.CALL && op !== JMP.EXIT && i.target !== undefined) {
          const t = lab.get(i.target);
          if (t !== undefined && preds[t]! < 2) preds[t]!++;
        }
        if (!(isJ && (op === JMP.JA || op === JMP.EXIT)) && preds[k + 1]! < 2) preds[k + 1]!++;
      });
      j = preds.map((n) => (n >= 2 ? 1 : 0));
      this.joinCache.set(section, j);
    }
    return j;
  }

  labels(section: string): Map<string, number> {
    let m = this.labelCache.get(section);
    if (!m) {
      m = new Map();
      const insns = this.env.sections.get(section);
      if (!insns) throw new Unsupported(`code section ${section} is not available`);
      insns.forEach((insn, i) => insn.labels?.forEach((l) => m!.set(l, i)));
      m.set('$end', insns.length);
      this.labelCache.set(section, m);
    }
    return m;
  }

  /**
   * All paths from (section, index) in state `init`. States meeting at a jump target (same place,
   * same call stack, same effect-trace shape) are merged into one with ite-valued registers and
   * memory, so diamonds of branches do not multiply paths.
   */
  run(section: string, index: number, init: State): PathEnd[] {
    const ends: PathEnd[] = [];
    let work: WorkItem[] = [{ st: init, sec: section, idx: index }];
    while (work.length) {
      let bi = 0;
      for (let i = 1; i < work.length; i++) if (before(work[i]!, work[bi]!)) bi = i;
      const item = work[bi]!;
      work.splice(bi, 1);
      if (this.opts.merge !== false && this.joins(item.sec)[item.idx] && item.st.splitAt !== item.idx) {
        const k = placeKey(item);
        const same = work.filter((w) => w.st.splitAt !== w.idx && placeKey(w) === k && mergeable(w.st, item.st));
        if (same.length) {
          work = work.filter((w) => !same.includes(w));
          for (const o of same) item.st = this.merge(item.st, o.st);
        }
      }
      this.step(item.st, item.sec, item.idx, ends, work);
      if (ends.length + work.length > this.opts.maxPaths) throw new Unsupported(`more than ${this.opts.maxPaths} paths`);
    }
    // every path went where the model cannot follow (havoc): an end no input takes keeps the observables well-formed
    if (ends.length === 0) ends.push({ pc: this.T.F, kind: 'fault', state: init, reason: 'no path the model follows' });
    return ends;
  }

  /** One state for "a or b" (their path conditions are disjoint). */
  merge(a: State, b: State): State {
    const T = this.T;
    const c = a.pc;
    const ite = (x: Term, y: Term): Term => T.ite(c, x, y);
    const s = new State(a.regs.map((r, i) => ite(r, b.regs[i]!)), T.bor(a.pc, b.pc));
    for (const id of new Set([...a.mems.keys(), ...b.mems.keys()])) {
      const ma = a.mems.get(id) ?? this.freshMem(a, id, b.mems.get(id)!.iw);
      const mb = b.mems.get(id) ?? this.freshMem(b, id, ma.iw);
      let m: Mem;
      if (ma.bytes && mb.bytes && ma.arr === mb.arr) {
        const bytes = new Map<bigint, Term>();
        for (const k of new Set([...ma.bytes.keys(), ...mb.bytes.keys()])) {
          const idx = T.bv(k, ma.iw);
          bytes.set(k, ite(this.peek(ma, idx), this.peek(mb, idx)));
        }
        m = { arr: ma.arr, bytes, init: null, iw: ma.iw };
      } else {
        const ca = { ...ma, bytes: ma.bytes ? new Map(ma.bytes) : null }, cb = { ...mb, bytes: mb.bytes ? new Map(mb.bytes) : null };
        this.toArrayMode(ca);
        this.toArrayMode(cb);
        m = { arr: ite(ca.arr, cb.arr), bytes: null, init: null, iw: ma.iw };
      }
      if (ma.init && mb.init) {
        const init = new Map<bigint, Term>();
        for (const k of new Set([...ma.init.keys(), ...mb.init.keys()])) init.set(k, ite(ma.init.get(k) ?? T.F, mb.init.get(k) ?? T.F));
        m.init = init;
      }
      s.mems.set(id, m);
    }
    for (const name of new Set([...a.present.keys(), ...b.present.keys()])) {
      const pa = a.present.get(name), pb = b.present.get(name);
      const root = T.avar(`present:${name}`, (pa ?? pb)!.iw, 1);
      s.present.set(name, ite(pa ?? root, pb ?? root));
    }
    s.effects = a.effects.map((e, k) => e.map((x, j) => ite(x, b.effects[k]![j]!)));
    s.sources = new Map(a.sources);
    s.frames = a.frames.map((f, k) => ({ ...f, saved: f.saved.map((x, j) => ite(x, b.frames[k]!.saved[j]!)) }));
    s.lenMin = a.lenMin < b.lenMin ? a.lenMin : b.lenMin;
    s.steps = Math.max(a.steps, b.steps);
    s.back = a.back;
    // facts that hold on either path: the hull of the bounds both have
    const facts = new Map<number, Iv>();
    for (const [k, x] of a.facts) {
      const y = b.facts.get(k);
      if (y) facts.set(k, { ulo: x.ulo < y.ulo ? x.ulo : y.ulo, uhi: x.uhi > y.uhi ? x.uhi : y.uhi, slo: x.slo < y.slo ? x.slo : y.slo, shi: x.shi > y.shi ? x.shi : y.shi });
    }
    s.facts = facts;
    return s;
  }

  private freshMem(st: State, id: string, iw: number): Mem {
    const probe = new State(st.regs, st.pc);
    return this.memOf(probe, id, iw);
  }

  private step(st0: State, sec0: string, idx0: number, ends: PathEnd[], work: WorkItem[]): void {
    const T = this.T;
    let st = st0;
    let sec = sec0;
    let idx = idx0;
    let insns = this.env.sections.get(sec)!;
    let first = true;
    st.splitAt = -1;
    let joins = this.joins(sec);
    for (;;) {
      // a join point: let the scheduler merge states there
      if (!first && this.opts.merge !== false && joins[idx]) {
        work.push({ st, sec, idx });
        return;
      }
      first = false;
      if (++st.steps > this.opts.maxSteps) throw new Unsupported(`a path is longer than ${this.opts.maxSteps} instructions (loop?)`);
      if ((st.steps & 255) === 0 && this.opts.deadline !== undefined && performance.now() > this.opts.deadline) throw new Unsupported('encoding time budget exhausted');
      if (idx >= insns.length) {
        if (!this.env.whole && st.frames.length === 0) {
          ends.push({ pc: st.pc, kind: 'leave', label: FALLTHROUGH, state: st });
        } else this.endPath(st, T.T, ends, 'fell off the end of the code');
        return;
      }
      const insn = insns[idx]!;
      const cls = opClass(insn.code);
      if (cls === CLASS.ALU || cls === CLASS.ALU64) {
        alu(this, st, insn);
        idx++;
        continue;
      }
      if (cls === CLASS.JMP || cls === CLASS.JMP32) {
        const op = jmpOp(insn.code);
        if (op === JMP.EXIT) {
          const f = st.frames.pop();
          if (!f) {
            ends.push({ pc: st.pc, kind: 'exit', state: st });
            return;
          }
          for (let i = 0; i < 5; i++) st.regs[6 + i] = f.saved[i]!;
          sec = f.section;
          insns = this.env.sections.get(sec)!;
          joins = this.joins(sec);
          idx = f.ret;
          continue;
        }
        if (op === JMP.CALL) {
          if (insn.src === 1) {
            if (!insn.callee) throw new Unsupported('bpf-to-bpf call without a callee');
            // the verifier stops at 8 frames (MAX_CALL_FRAMES); the semantics do not, and a program it
            // rejects for depth (the input of a call-depth repair) is still compared
            const maxFrames = this.opts.maxFrames ?? 64;
            if (st.frames.length + 1 >= maxFrames) throw new Unsupported(`call depth exceeds ${maxFrames} frames`);
            if (!this.env.whole) throw new Unsupported('bpf-to-bpf call inside a window');
            st.frames.push({ section: sec, ret: idx + 1, saved: st.regs.slice(6, 11) });
            const depth = st.frames.length;
            const fr = this.stackRegion(depth);
            st.mems.delete(fr.mem);
            st.regs[10] = fr.base;
            sec = insn.callee.section;
            insns = this.env.sections.get(sec) ?? (() => { throw new Unsupported(`code section ${sec} is not available`); })();
            joins = this.joins(sec);
            idx = this.labels(sec).get(insn.callee.label) ?? (() => { throw new Unsupported(`undefined label ${insn.callee!.label}`); })();
            continue;
          }
          if (insn.src !== 0) throw new Unsupported('kfunc calls are not modelled');
          if (this.splitPointers(st, [1, 2, 3, 4, 5], sec, idx, work)) return;
          const next = call(this, st, insn.imm, ends);
          if (!next || next.length === 0) return;
          if (next.length > 1) {
            for (const s of next) work.push({ st: s, sec, idx: idx + 1 });
            return;
          }
          st = next[0]!;
          idx++;
          continue;
        }
        let target: number | null = null;
        let leaveLabel: string | null = null;
        if (insn.target !== undefined) {
          const t = this.labels(sec).get(insn.target);
          if (t === undefined || (t === insns.length && !this.env.whole)) {
            if (this.env.whole) throw new Unsupported(`undefined label ${insn.target}`);
            leaveLabel = insn.target;
          } else target = t;
        } else if (op === JMP.JA && insn.off === 0) {
          idx++; // `ja +0` without a label: a nop
          continue;
        } else throw new Unsupported('jump without a label');
        const backward = target !== null && target <= idx;
        const go = (s: State): void => {
          if (backward) s.back++;
          if (leaveLabel !== null) {
            if (s.frames.length) throw new Unsupported('jump out of a window inside a call');
            ends.push({ pc: s.pc, kind: 'leave', label: leaveLabel, state: s });
          } else work.push({ st: s, sec, idx: target! });
        };
        if (op === JMP.JA) {
          if (leaveLabel !== null) return go(st);
          if (backward) st.back++;
          idx = target!;
          continue;
        }
        let cond = this.condition(insn, st);
        if (cond !== T.T && cond !== T.F) {
          // a condition the path's earlier branches already decide does not fork
          const d = decideByRanges(T, st.facts, cond);
          if (d !== null) cond = T.bool(d);
        }
        if (cond === T.T) {
          if (leaveLabel !== null) return go(st);
          if (backward) st.back++;
          idx = target!;
          continue;
        }
        if (cond === T.F) {
          idx++;
          continue;
        }
        const taken = st.clone();
        taken.pc = T.band(st.pc, cond);
        this.learn(taken, cond);
        taken.facts = learnFacts(st.facts, cond);
        st.pc = T.band(st.pc, T.bnot(cond));
        this.learn(st, T.bnot(cond));
        st.facts = learnFacts(st.facts, T.bnot(cond));
        go(taken);
        if (this.opts.merge !== false) {
          work.push({ st, sec, idx: idx + 1 });
          return;
        }
        idx++;
        continue;
      }
      if (insn.code === LD_IMM64) {
        st.regs[insn.dst] = this.ldImm64(insn, sec);
        idx++;
        continue;
      }
      if (cls === CLASS.LD) {
        if (!this.ldAbs(st, insn, ends)) return;
        idx++;
        continue;
      }
      if (cls === CLASS.LDX) {
        if (this.splitPointers(st, [insn.src], sec, idx, work)) return;
        const n = sizeBytes(insn.code);
        const addr = T.add(st.regs[insn.src]!, T.bv(BigInt(insn.off), 64));
        const c = this.ctxAccess(st, addr, n, false, ends);
        if (c === 'fault') return;
        const v = c ?? this.load(st, addr, n, ends);
        if (v === null) return;
        st.regs[insn.dst] = memMode(insn.code) === MODE.MEMSX ? T.sext(v, 64 - 8 * n) : T.resize(v, 64);
        idx++;
        continue;
      }
      if (cls === CLASS.ST || cls === CLASS.STX) {
        if (this.splitPointers(st, [insn.dst], sec, idx, work)) return;
        const n = sizeBytes(insn.code);
        const addr = T.add(st.regs[insn.dst]!, T.bv(BigInt(insn.off), 64));
        if (cls === CLASS.STX && memMode(insn.code) === MODE.ATOMIC) {
          if (this.isCtx(addr)) return this.endPath(st, T.T, ends, 'atomic operation on the context');
          if (!atomic(this, st, insn, addr, n, ends)) return;
          idx++;
          continue;
        }
        let val = cls === CLASS.ST ? T.bv(BigInt(insn.imm), 64) : st.regs[insn.src]!;
        if (this.ctxAccess(st, addr, n, true, ends) === 'fault') return;
        const narrow = this.narrowCtxStore(st, addr, n, val, cls === CLASS.ST, ends);
        if (narrow === null) return;
        if (narrow) val = narrow.val;
        if (!this.store(st, addr, narrow ? narrow.bytes : n, val, ends)) return;
        idx++;
        continue;
      }
      throw new Unsupported(`opcode 0x${insn.code.toString(16)}`);
    }
  }

  /**
   * ld_abs / ld_ind (skb programs): a big-endian load at an offset from skb->data, as
   * bpf_skb_load_helper_{8,16,32} (net/core/filter.c) does it: from the linear part, else from the
   * paged part up to skb->len (skb_copy_bits; bytes the model reads from `mem:frag`), negative
   * offsets relative to the network / MAC header (SKF_NET_OFF, SKF_LL_OFF: not modelled, havoc),
   * anything else makes the program return 0. False when the path ended.
   */
  private ldAbs(st: State, insn: IrInsn, ends: PathEnd[]): boolean {
    const T = this.T;
    if (!this.ctx.packet) throw new Unsupported('ld_abs/ld_ind without packet data');
    const n = sizeBytes(insn.code);
    let off: Term = T.bv(BigInt(insn.imm), 64);
    if (memMode(insn.code) === MODE.IND) off = T.sext(T.add(T.extract(31, 0, st.regs[insn.src]!), T.bv(BigInt(insn.imm), 32)), 32);
    const end = T.add(off, T.bv(n, 64));
    const nonNeg = T.sle(T.bv(0n, 64), off);
    const linear = off.op === 'const' && BigInt.asIntN(64, off.v) >= 0n && BigInt.asIntN(64, off.v) + BigInt(n) <= st.lenMin ? T.T : T.band(nonNeg, T.sle(end, this.pktLen));
    const skbLen = this.ctx.lenField !== undefined ? T.zext(this.initialCtxU32(this.ctx.lenField), 32) : this.pktLen;
    const ok = linear === T.T ? T.T : T.band(nonNeg, T.sle(end, skbLen));
    const skf = T.band(T.bnot(nonNeg), T.sle(T.bv(-0x200000n, 64), off));
    if (skf !== T.F) {
      this.havoc.push(T.band(st.pc, skf));
      st.pc = T.band(st.pc, T.bnot(skf));
    }
    if (ok !== T.T) {
      const bad = st.clone();
      bad.pc = T.band(st.pc, T.bnot(ok));
      bad.regs[0] = T.bv(0n, 64);
      if (bad.pc !== T.F) ends.push({ pc: bad.pc, kind: 'exit', state: bad });
      st.pc = T.band(st.pc, ok);
      if (st.pc === T.F) return false;
    }
    const bytes: Term[] = [];
    for (let i = 0; i < n; i++) bytes.push(this.packetByte(st, T.add(off, T.bv(i, 64)), linear === T.T));
    st.regs[0] = T.zext(T.concat(...bytes), 64 - 8 * n); // network order: first byte most significant
    return true;
  }

  /**
   * The packet byte at offset `o` from data (o >= 0) as helpers and ld_abs read it: from the linear
   * part (the program's packet memory) below data_end, else from the paged part (`mem:frag`, input
   * bytes only the paged readers see). `linear`: o is known to be below data_end.
   */
  packetByte(st: State, o: Term, linear = false): Term {
    const T = this.T;
    const pkt = this.regionByBase.get(this.baseVar('pkt').id)!;
    const mem = this.flat ? this.memOf(st, 'flat') : this.memOf(st, 'pkt');
    const idxT = this.flat ? T.add(pkt.base, o) : o;
    if (mem.bytes && idxT.op !== 'const') this.toArrayMode(mem);
    const head = this.peek(mem, idxT);
    return linear ? head : T.ite(T.slt(o, this.pktLen), head, T.select(T.avar('mem:frag', 64, 8), o));
  }

  /** Has this path written the packet (in flat mode: any memory)? */
  packetWritten(st: State): boolean {
    const m = st.mems.get(this.flat ? 'flat' : 'pkt');
    return m ? this.writtenIndices(m).length > 0 : false;
  }

  /** Writes byte `b` at `addr` where `cond` holds (the old byte stays otherwise); false when the path faulted. */
  storeByteIf(st: State, addr: Term, b: Term, cond: Term, ends: PathEnd[]): boolean {
    const T = this.T;
    if (cond === T.F) return true;
    const loc = this.locate(st, addr, 1, true);
    if (loc.region?.map?.type === MAP_TYPE.LPM_TRIE) throw new Unsupported('store to an LPM trie value');
    if (!this.guard(st, T.band(loc.fault, cond), ends, 'out-of-bounds store of 1 bytes')) return false;
    const idx = loc.idx[0]!;
    if (loc.mem.bytes && idx.op !== 'const') this.toArrayMode(loc.mem);
    const v = cond === T.T ? b : T.ite(cond, b, this.peek(loc.mem, idx));
    if (loc.mem.bytes) loc.mem.bytes.set(idx.v, v);
    else loc.mem.arr = T.store(loc.mem.arr, idx, v);
    if (loc.mem.init && idx.op === 'const') loc.mem.init.set(idx.v, cond === T.T ? T.T : T.bor(cond, loc.mem.init.get(idx.v) ?? T.F));
    return true;
  }

  /** A u32 of the context as the program found it (fields the program cannot write). */
  initialCtxU32(off: number): Term {
    const T = this.T;
    const b = (k: number): Term => (this.flat ? T.select(T.avar('mem:flat', 64, 8), T.add(this.ctxBase, T.bv(off + k, 64))) : T.select(T.avar('mem:ctx', 64, 8), T.bv(off + k, 64)));
    return T.concat(b(3), b(2), b(1), b(0));
  }

  /**
   * A register used as a pointer that holds "p if c else q" (after a merge) where p and q are not
   * one region's pointers: split the state on c and run the instruction again in both (so context
   * fields, map pointers and regions resolve exactly). True when the state was split.
   */
  private splitPointers(st: State, regs: number[], sec: string, idx: number, work: WorkItem[]): boolean {
    const T = this.T;
    for (const r of regs) {
      const v = st.regs[r]!;
      const it = v.op === 'ite' ? v : v.op === 'add' ? v.a.find((x) => x.op === 'ite' && x.s === 1) : undefined;
      if (!it || it.s !== 1) continue;
      if (this.resolve(v)) continue;
      const [c, x, y] = it.a as [Term, Term, Term];
      const pointerish = (t: Term): boolean => this.resolve(t) !== null || this.mapOfPointer(t) !== null || t.op === 'ite';
      if (!pointerish(x) && !pointerish(y)) continue;
      const subst = (b: Term): Term => (v === it ? b : T.add(...v.a.map((z) => (z === it ? b : z))));
      const [yes, no] = fork(this, st, c);
      if (yes) {
        yes.regs[r] = subst(x);
        yes.splitAt = idx;
        work.push({ st: yes, sec, idx });
      }
      if (no) {
        no.regs[r] = subst(y);
        no.splitAt = idx;
        work.push({ st: no, sec, idx });
      }
      return true;
    }
    return false;
  }

  private ldImm64(insn: IrInsn, sec: string): Term {
    const T = this.T;
    if (insn.reloc) {
      const r = this.env.resolveReloc(insn, sec);
      if (r.kind === 'error') throw new Unsupported(r.message);
      const m = this.env.maps[r.map]!;
      if (r.kind === 'map') return this.mapPointer(m);
      return T.add(this.regionOfMap(m).base, T.bv(BigInt(r.offset), 64));
    }
    if (insn.src !== 0) throw new Unsupported(`ld_imm64 with src_reg ${insn.src} and no relocation`);
    return T.bv(imm64(insn), 64);
  }

  isCtx(addr: Term): boolean {
    return this.resolve(addr)?.region.kind === 'ctx';
  }

  /**
   * Context accesses: 'fault' when the access is invalid (path ended), a pointer term for the
   * packet pointer fields, null for plain context bytes (or not the context at all).
   */
  private ctxAccess(st: State, addr: Term, n: number, write: boolean, ends: PathEnd[]): Term | 'fault' | null {
    const r = this.resolve(addr);
    if (!r || r.region.kind !== 'ctx') return null;
    if (r.off.op !== 'const') throw new Unsupported('context access at a variable offset');
    const off = Number(BigInt.asIntN(64, r.off.v));
    if (write) {
      const why = this.ctx.store(off, n);
      if (why) {
        this.endPath(st, this.T.T, ends, why);
        return 'fault';
      }
      return null;
    }
    const c = this.ctx.load(off, n);
    if (c.kind === 'fault') {
      this.endPath(st, this.T.T, ends, c.reason);
      return 'fault';
    }
    if (c.kind === 'bytes') return null;
    const pkt = this.baseVar('pkt');
    if (c.field === 'data_meta' && this.metaLen) return this.T.sub(pkt, this.metaLen);
    return c.field === 'data_end' ? this.T.add(pkt, this.pktLen) : pkt;
  }

  /**
   * Context stores the kernel narrows (CtxLayout.narrowStores: 16-bit fields of __sk_buff, a
   * queue_mapping store skipped for values >= 0xffff): the bytes written and the value; false for
   * an ordinary store, null when the path ended.
   */
  private narrowCtxStore(st: State, addr: Term, n: number, val: Term, imm: boolean, ends: PathEnd[]): { bytes: number; val: Term } | false | null {
    const T = this.T;
    const r = this.resolve(addr);
    if (!r || r.region.kind !== 'ctx' || r.off.op !== 'const' || !this.ctx.narrowStores) return false;
    const w = this.ctx.narrowStores.get(Number(BigInt.asIntN(64, r.off.v)));
    if (!w) return false;
    if (n !== 4) throw new Unsupported(`${n}-byte store to a ${8 * w.bytes}-bit context field`);
    if (w.skipAtLeast === undefined) return { bytes: w.bytes, val };
    // ST compares its (signed) immediate, STX the 64-bit register, unsigned (bpf_convert_ctx_access)
    const skip = imm ? T.sle(T.bv(w.skipAtLeast, 64), val) : T.ule(T.bv(w.skipAtLeast, 64), val);
    const old = this.load(st, addr, w.bytes, ends);
    if (old === null) return null;
    return { bytes: w.bytes, val: T.ite(skip, T.zext(old, 64 - 8 * w.bytes), val) };
  }

  /** Branch condition of a conditional jump. */
  condition(insn: IrInsn, st: State): Term {
    const T = this.T;
    const is32 = opClass(insn.code) === CLASS.JMP32;
    let a = st.regs[insn.dst]!;
    let b = srcBit(insn.code) === SRC_X ? st.regs[insn.src]! : T.bv(BigInt(insn.imm), 64);
    const op = jmpOp(insn.code);
    if (!is32) {
      // Pointers into one region compare like their offsets; a pointer is never 0 (kernel address).
      const ra = this.resolve(a), rb = this.resolve(b);
      if (ra && rb && ra.region === rb.region && op !== JMP.JSET) {
        a = ra.off;
        b = rb.off;
        return this.cmp(op, a, b, true);
      }
      const isZero = (t: Term): boolean => t.op === 'const' && t.v === 0n;
      if ((ra && isZero(b)) || (rb && isZero(a))) {
        // p vs 0 with p in [BASE_LO, BASE_HI): p != 0, p >u 0, p <s 0.
        const pa = ra !== null;
        switch (op) {
          case JMP.JEQ: return T.F;
          case JMP.JNE: return T.T;
          case JMP.JGT: case JMP.JGE: return T.bool(pa);
          case JMP.JLT: case JMP.JLE: return T.bool(!pa);
          case JMP.JSGT: case JMP.JSGE: return T.bool(!pa);
          case JMP.JSLT: case JMP.JSLE: return T.bool(pa);
        }
      }
    } else {
      a = T.extract(31, 0, a);
      b = T.extract(31, 0, b);
    }
    return this.cmp(op, a, b, false);
  }

  private cmp(op: number, a: Term, b: Term, offsets: boolean): Term {
    const T = this.T;
    // Offsets within a region: unsigned and signed comparisons agree (no wrap-around).
    const ult = offsets ? (x: Term, y: Term) => T.slt(x, y) : (x: Term, y: Term) => T.ult(x, y);
    const ule = offsets ? (x: Term, y: Term) => T.sle(x, y) : (x: Term, y: Term) => T.ule(x, y);
    switch (op) {
      case JMP.JEQ: return T.eq(a, b);
      case JMP.JNE: return T.neq(a, b);
      case JMP.JGT: return ult(b, a);
      case JMP.JGE: return ule(b, a);
      case JMP.JLT: return ult(a, b);
      case JMP.JLE: return ule(a, b);
      case JMP.JSGT: return T.slt(b, a);
      case JMP.JSGE: return T.sle(b, a);
      case JMP.JSLT: return T.slt(a, b);
      case JMP.JSLE: return T.sle(a, b);
      case JMP.JSET: return T.neq(T.and(a, b), T.bv(0n, a.w));
    }
    throw new Unsupported(`jump operation 0x${op.toString(16)}`);
  }

  /** Remembers lower bounds on the packet length from a branch taken (like the verifier's range). */
  private learn(st: State, cond: Term): void {
    const T = this.T;
    const len = this.pktLen;
    const atoms = cond.op === 'band' ? cond.a : [cond];
    for (const c of atoms) {
      // Comparisons with constants are normalised to `c < len` (lower bound) or its negation.
      if (c.op === 'slt' && c.a[1] === len && c.a[0]!.op === 'const') {
        const k = BigInt.asIntN(64, c.a[0]!.v) + 1n;
        if (k > st.lenMin) st.lenMin = k;
      }
    }
    void T;
  }

}

export { helperName, mask };
