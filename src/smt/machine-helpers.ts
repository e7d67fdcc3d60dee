// Helper calls in the symbolic machine (machine.ts): sources, effects, map lookup/update/delete over
// the symbolic map state, tail calls, ring buffers (see helpers.ts for which helper is which).
import { show, type Term } from './term.js';
import type { Machine } from './machine.js';
import { HELPERS, MAX_VAR_SIZE, argBits, type MemArg } from './helpers.js';
import { ERR, MAP_TYPE, NotAMap, Unsupported, type MapInfo, type PathEnd, type State } from './machine-types.js';

/** Executes a helper call; returns the continuing states (first = `st`), or null if none. */
export function call(M: Machine, st0: State, id: number, ends: PathEnd[], nulChecked = false): State[] | null {
  let st = st0;
  const T = M.T;
  const spec = HELPERS[id];
  if (!spec) throw new Unsupported(`helper ${id} is not modelled`);
  const regs = st.regs;
  void regs;
  switch (spec.kind) {
    case 'source': {
      const n = st.sources.get(id) ?? 0;
      st.sources.set(id, n + 1);
      const v = T.var(`h${id}#${n}`, spec.retBits ?? 64);
      regs[0] = T.resize(v, 64);
      return [st];
    }
    case 'lookup':
    case 'update':
    case 'delete':
      try {
        return spec.kind === 'lookup' ? mapLookup(M, st, ends) : spec.kind === 'update' ? mapUpdate(M, st, ends) : mapDelete(M, st, ends);
      } catch (e) {
        if (!(e instanceof NotAMap)) throw e;
        M.endPath(st, T.T, ends, e.message);
        return null;
      }
    case 'tail_call': {
      const k = st.effects.length;
      st.effects = [...st.effects, [T.bv(BigInt(id), 64), regs[1]!, regs[2]!, argTerm(M, st, id, 3)]];
      const taken = T.var(`tail#${k}`, 0);
      const t = st.clone();
      t.pc = T.band(st.pc, taken);
      ends.push({ pc: t.pc, kind: 'tail', state: t });
      st.pc = T.band(st.pc, T.bnot(taken));
      regs[0] = T.var(`ret#${k}`, 64);
      return [st];
    }
    case 'skb_load_bytes': {
      // a pure read of the packet (net/core/filter.c): skb_header_pointer(skb, offset, len) from
      // the linear part or the paged one up to skb->len; on failure the buffer is zeroed, -EFAULT
      if (!M.ctx.packet) throw new Unsupported(`${spec.name} without packet data`);
      const off = argTerm(M, st, id, 2), len = argTerm(M, st, id, 4);
      const skbLen = M.ctx.lenField !== undefined ? T.zext(M.initialCtxU32(M.ctx.lenField), 32) : M.pktLen;
      const ok = T.band(T.ule(off, T.bv(0x7fffffffn, 64)), T.ule(T.add(off, len), skbLen));
      const byte = (i: number): Term => T.ite(ok, M.packetByte(st, T.add(off, T.bv(i, 64))), T.bv(0n, 8));
      if (!writeBytes(M, st, regs[3]!, len, byte, null, ends, spec.name)) return null;
      st.regs[0] = T.ite(ok, T.bv(0n, 64), T.bv(ERR(14), 64));
      return [st];
    }
    case 'effect': {
      const k = st.effects.length;
      if (spec.external !== undefined && M.resolve(regs[spec.external]!)) throw new Unsupported(`${spec.name} from the program's own memory`);
      if (spec.readsPacket && M.packetWritten(st)) throw new Unsupported(`${spec.name} after the program wrote the packet`);
      const rec: Term[] = [T.bv(BigInt(id), 64)];
      for (let i = 1; i <= spec.args; i++) rec.push(argTerm(M, st, id, i));
      for (const r of spec.reads ?? []) {
        const size = memArgSize(M, st, r, spec.name, id);
        if (size === 0) {
          if (id === 6) {
            // trace_printk with an empty format: -EINVAL, nothing printed
            st.regs[0] = T.bv(ERR(22), 64);
            return [st];
          }
          continue;
        }
        const bytes = helperLoad(M, st, regs[r.ptr]!, size, ends, `${spec.name} read`);
        if (bytes === null) return null;
        const bs: Term[] = [];
        for (let i = 0; i < size; i++) bs.push(T.extract(8 * i + 7, 8 * i, bytes));
        if (id === 6 && !nulChecked) {
          // a format without a NUL is refused (-EINVAL) and prints nothing
          const [ok, bad] = fork(M, st, T.bor(...bs.map((b) => T.eq(b, T.bv(0n, 8)))));
          if (bad) bad.regs[0] = T.bv(ERR(22), 64);
          if (!ok) return bad ? [bad] : null;
          st = ok;
          if (bad) {
            const rest = call(M, st, id, ends, true);
            return rest ? [...rest, bad] : [bad];
          }
        }
        for (const b of bs) rec.push(T.zext(b, 56));
      }
      const pw = spec.packetWrite;
      let pwBytes: Term | null = null;
      if (pw) {
        // the bytes being replaced are part of the call's identity (the result depends on them)
        const size = memArgSize(M, st, { ptr: pw.off, size: pw.size }, spec.name, id);
        const at = T.add(M.baseVar('pkt'), T.resize(T.extract(31, 0, regs[pw.off]!), 64));
        const inside = T.band(T.ule(T.bv(BigInt(size), 64), M.pktLen), T.ule(T.resize(T.extract(31, 0, regs[pw.off]!), 64), T.sub(M.pktLen, T.bv(BigInt(size), 64))));
        const [yes, no] = fork(M, st, inside);
        if (no) ends.push({ pc: no.pc, kind: 'fault', state: no, reason: `${spec.name} beyond the packet` });
        if (!yes) return null;
        st = yes;
        const old = M.load(st, at, size, ends, `${spec.name} packet read`);
        if (old === null) return null;
        for (let i = 0; i < size; i++) rec.push(T.zext(T.extract(8 * i + 7, 8 * i, old), 56));
        if (pw.copyFrom !== undefined) pwBytes = M.load(st, st.regs[pw.copyFrom]!, size, ends, `${spec.name} read`);
        else {
          const fresh: Term[] = [];
          for (let i = size - 1; i >= 0; i--) fresh.push(T.var(`out#${k}.${i}`, 8));
          pwBytes = T.concat(...fresh);
        }
        if (pwBytes === null) return null;
        if (!M.store(st, at, size, pwBytes, ends)) return null;
      }
      st.effects = [...st.effects, rec];
      for (const wr of spec.writes ?? []) {
        // the bytes written: fresh values per trace position, shared by both programs (a string
        // copy writes those of them the source decides, also shared)
        const size = typeof wr.size === 'number' ? T.bv(BigInt(wr.size), 64) : argTerm(M, st, id, wr.size.arg);
        const also = spec.str ? (i: number): Term => T.var(`wr#${k}.${i}`, 0) : null;
        if (!writeBytes(M, st, regs[wr.ptr]!, size, (i) => T.var(`out#${k}.${i}`, 8), also, ends, spec.name)) return null;
      }
      st.regs[0] = T.var(`ret#${k}`, 64);
      return [st];
    }
    case 'ringbuf_reserve': {
      const k = st.effects.length;
      const size = regs[2]!;
      if (size.op !== 'const' || size.v > 1n << 20n) throw new Unsupported('ringbuf_reserve with a variable size');
      st.effects = [...st.effects, [T.bv(BigInt(id), 64), regs[1]!, regs[2]!, regs[3]!]];
      const [yes, no] = fork(M, st, T.var(`rbok#${k}`, 0));
      if (yes) yes.regs[0] = M.opaqueRegion(`rb#${k}`, Number(size.v)).base;
      if (no) no.regs[0] = T.bv(0n, 64);
      return [yes, no].filter((x): x is State => x !== null);
    }
    case 'ringbuf_finish': {
      const r = M.resolve(regs[1]!);
      if (!r || r.region.kind !== 'opaque' || !r.region.mem.startsWith('w:rb#') || r.off !== T.bv(0n, 64)) {
        throw new Unsupported(`${spec.name} of a pointer that is not a reserved sample ${process.env.K2_SMT_DEBUG ? show(regs[1]!) : ""}`);
      }
      const rec: Term[] = [T.bv(BigInt(id), 64), regs[2]!];
      if (id === 132) {
        const data = M.load(st, regs[1]!, Number(r.region.hi), ends, 'ringbuf sample read');
        if (data === null) return null;
        for (let i = 0; i < Number(r.region.hi); i++) rec.push(T.zext(T.extract(8 * i + 7, 8 * i, data), 56));
      }
      st.effects = [...st.effects, rec];
      regs[0] = T.bv(0n, 64);
      return [st];
    }
  }
}

/** Memory a helper reads: like a load, but the context is off limits (as in the interpreter). */
export function helperLoad(M: Machine, st: State, addr: Term, n: number, ends: PathEnd[], what: string): Term | null {
  if (M.isCtx(addr)) {
    M.endPath(st, M.T.T, ends, 'helper reads context memory');
    return null;
  }
  return M.load(st, addr, n, ends, what);
}

/** Argument `arg` of helper `id` as the helper sees it (a u32 parameter: the low 32 bits, zero-extended). */
export function argTerm(M: Machine, st: State, id: number, arg: number): Term {
  const v = st.regs[arg]!;
  return argBits(id, arg) === 32 ? M.T.zext(M.T.extract(31, 0, v), 32) : v;
}

/** A constant size argument (reads need one). */
export function memArgSize(M: Machine, st: State, a: MemArg, name: string, id = -1): number {
  if (typeof a.size === 'number') return a.size;
  const s = argTerm(M, st, id, a.size.arg);
  if (s.op !== 'const') throw new Unsupported(`${name} reading a variable number of bytes`);
  if (s.v > BigInt(MAX_VAR_SIZE)) throw new Unsupported(`${name} of ${s.v} bytes`);
  return Number(s.v);
}

/**
 * A helper writes `size` bytes at `ptr` (byte i = `byte(i)`, only where `also(i)` holds when given).
 * A variable size is bounded by the destination: bytes up to the end of its region (stack frame,
 * map value, ...) are written conditionally (i < size), a larger size is a fault (the verifier
 * checks the size against the buffer). False when the path ended.
 */
export function writeBytes(M: Machine, st: State, ptr: Term, size: Term, byte: (i: number) => Term, also: ((i: number) => Term) | null, ends: PathEnd[], what: string): boolean {
  const T = M.T;
  if (size.op === 'const') {
    if (size.v > BigInt(MAX_VAR_SIZE)) throw new Unsupported(`${what} of ${size.v} bytes`);
    const n = Number(size.v);
    if (n > 0 && M.isCtx(ptr)) {
      M.endPath(st, T.T, ends, 'helper writes context memory');
      return false;
    }
    for (let i = 0; i < n; i++) {
      const at = T.add(ptr, T.bv(i, 64));
      if (!(also ? M.storeByteIf(st, at, byte(i), also(i), ends) : M.store(st, at, 1, byte(i), ends))) return false;
    }
    return true;
  }
  const r = M.resolve(ptr);
  if (!r || r.off.op !== 'const' || typeof r.region.hi !== 'bigint' || r.region.kind === 'ctx') throw new Unsupported(`${what} with a variable size into memory of unknown extent`);
  const off = BigInt.asIntN(64, r.off.v);
  const avail = off < r.region.lo ? 0n : r.region.hi - off > 0n ? r.region.hi - off : 0n;
  // more bytes than the buffer has: out of bounds
  if (!M.guard(st, T.ult(T.bv(avail, 64), size), ends, `${what} beyond its buffer`)) return false;
  const n = avail > BigInt(MAX_VAR_SIZE) ? MAX_VAR_SIZE : Number(avail);
  if (BigInt(n) < avail) {
    // sizes beyond what is modelled: the model cannot say
    const big = T.band(st.pc, T.ult(T.bv(BigInt(n), 64), size));
    M.havoc.push(big);
    st.pc = T.band(st.pc, T.bnot(big));
  }
  for (let i = 0; i < n; i++) {
    const cond = T.band(T.ult(T.bv(BigInt(i), 64), size), also ? also(i) : T.T);
    if (!M.storeByteIf(st, T.add(ptr, T.bv(i, 64)), byte(i), cond, ends)) return false;
  }
  return true;
}

export function mapArg(M: Machine, st: State, reg: number, what: string): MapInfo {
  const m = M.mapOfPointer(st.regs[reg]!);
  // like the interpreter (and the verifier): anything but a map pointer is a fault
  if (!m) throw new NotAMap(`${what}: argument ${reg} is not a map`);
  // LPM tries: a lookup is a consistent function of the key (values are then read-only, see store)
  if (m.type === MAP_TYPE.LPM_TRIE && what === 'map_lookup_elem') return m;
  if (m.type !== MAP_TYPE.HASH && m.type !== MAP_TYPE.ARRAY && m.type !== MAP_TYPE.PERCPU_ARRAY && m.type !== MAP_TYPE.PERCPU_HASH &&
    m.type !== MAP_TYPE.LRU_HASH && m.type !== MAP_TYPE.LRU_PERCPU_HASH && !m.data) {
    throw new Unsupported(`${what} on map ${m.name} of type ${m.type}`);
  }
  return m;
}

export function presenceOf(M: Machine, st: State, m: MapInfo, keyW: number): Term {
  return st.present.get(m.name) ?? M.T.avar(`present:${m.name}`, keyW, 1);
}

/** Forks on `cond`: returns [state where cond holds, state where it does not] (either may be null). */
export function fork(M: Machine, st: State, cond: Term): [State | null, State | null] {
  const T = M.T;
  if (cond === T.T) return [st, null];
  if (cond === T.F) return [null, st];
  const yes = st.clone();
  yes.pc = T.band(st.pc, cond);
  st.pc = T.band(st.pc, T.bnot(cond));
  return [yes, st];
}

export function mapLookup(M: Machine, st: State, ends: PathEnd[]): State[] | null {
  const T = M.T;
  const m = mapArg(M, st, 1, 'map_lookup_elem');
  const key = helperLoad(M, st, st.regs[2]!, m.keySize, ends, 'map key read');
  if (key === null) return null;
  if (M.arrayLike(m)) {
    const i = T.resize(key, 64);
    const [yes, no] = fork(M, st, T.ult(i, T.bv(BigInt(m.maxEntries), 64)));
    if (yes) yes.regs[0] = T.add(M.regionOfMap(m).base, T.mul(i, T.bv(BigInt(m.valueSize), 64)));
    if (no) no.regs[0] = T.bv(0n, 64);
    return [yes, no].filter((s): s is State => s !== null);
  }
  const pres = T.select(presenceOf(M, st, m, key.w), key);
  const [yes, no] = fork(M, st, T.eq(pres, T.bv(1n, 1)));
  if (yes) yes.regs[0] = M.hashRegion(m, key).base;
  if (no) no.regs[0] = T.bv(0n, 64);
  return [yes, no].filter((s): s is State => s !== null);
}

export function mapUpdate(M: Machine, st: State, ends: PathEnd[]): State[] | null {
  const T = M.T;
  const m = mapArg(M, st, 1, 'map_update_elem');
  const key = helperLoad(M, st, st.regs[2]!, m.keySize, ends, 'map key read');
  if (key === null) return null;
  const val = helperLoad(M, st, st.regs[3]!, m.valueSize, ends, 'map value read');
  if (val === null) return null;
  const flags = st.regs[4]!;
  const out: State[] = [];
  const fail = (s: State | null, errno: number): State | null => {
    if (s) {
      s.regs[0] = T.bv(ERR(errno), 64);
      out.push(s);
    }
    return null;
  };
  let [bad, rest] = fork(M, st, T.ult(T.bv(2n, 64), flags));
  fail(bad, 22);
  if (!rest) return out;
  if (M.arrayLike(m)) {
    const i = T.resize(key, 64);
    let [big, ok] = fork(M, rest, T.ule(T.bv(BigInt(m.maxEntries), 64), i));
    fail(big, 7);
    if (!ok) return out;
    let [noexist, go] = fork(M, ok, T.eq(flags, T.bv(1n, 64)));
    fail(noexist, 17);
    if (!go) return out;
    const addr = T.add(M.regionOfMap(m).base, T.mul(i, T.bv(BigInt(m.valueSize), 64)));
    if (!M.store(go, addr, m.valueSize, val, ends)) return out;
    go.regs[0] = T.bv(0n, 64);
    out.push(go);
    return out;
  }
  const present = presenceOf(M, rest, m, key.w);
  const exists = T.eq(T.select(present, key), T.bv(1n, 1));
  let [e1, r1] = fork(M, rest, T.band(T.eq(flags, T.bv(1n, 64)), exists));
  fail(e1, 17);
  if (!r1) return out;
  let [e2, go] = fork(M, r1, T.band(T.eq(flags, T.bv(2n, 64)), T.bnot(exists)));
  fail(e2, 2);
  if (!go) return out;
  go.present.set(m.name, T.store(present, key, T.bv(1n, 1)));
  if (!M.store(go, M.hashRegion(m, key).base, m.valueSize, val, ends)) return out;
  go.regs[0] = T.bv(0n, 64);
  out.push(go);
  return out;
}

export function mapDelete(M: Machine, st: State, ends: PathEnd[]): State[] | null {
  const T = M.T;
  const m = mapArg(M, st, 1, 'map_delete_elem');
  const key = helperLoad(M, st, st.regs[2]!, m.keySize, ends, 'map key read');
  if (key === null) return null;
  if (M.arrayLike(m)) {
    st.regs[0] = T.bv(ERR(22), 64);
    return [st];
  }
  const present = presenceOf(M, st, m, key.w);
  const [yes, no] = fork(M, st, T.eq(T.select(present, key), T.bv(1n, 1)));
  if (yes) {
    yes.present.set(m.name, T.store(present, key, T.bv(0n, 1)));
    yes.regs[0] = T.bv(0n, 64);
  }
  if (no) no.regs[0] = T.bv(ERR(2), 64);
  return [yes, no].filter((s): s is State => s !== null);
}
