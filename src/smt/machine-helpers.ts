// Helper calls in the symbolic machine (machine.ts): sources, effects, map lookup/update/delete over
// the symbolic map state, tail calls, ring buffers (see helpers.ts for which helper is which).
import { show, type Term } from './term.js';
import type { Machine } from './machine.js';
import { HELPERS, type MemArg } from './helpers.js';
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
      st.effects = [...st.effects, [T.bv(BigInt(id), 64), regs[1]!, regs[2]!, regs[3]!]];
      const taken = T.var(`tail#${k}`, 0);
      const t = st.clone();
      t.pc = T.band(st.pc, taken);
      ends.push({ pc: t.pc, kind: 'tail', state: t });
      st.pc = T.band(st.pc, T.bnot(taken));
      regs[0] = T.var(`ret#${k}`, 64);
      return [st];
    }
    case 'effect': {
      const k = st.effects.length;
      const rec: Term[] = [T.bv(BigInt(id), 64)];
      for (let i = 1; i <= spec.args; i++) rec.push(regs[i]!);
      for (const r of spec.reads ?? []) {
        const size = memArgSize(M, st, r, spec.name);
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
        const size = memArgSize(M, st, { ptr: pw.off, size: pw.size }, spec.name);
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
        const size = memArgSize(M, st, wr, spec.name);
        if (size > 0 && M.isCtx(regs[wr.ptr]!)) {
          M.endPath(st, T.T, ends, 'helper writes context memory');
          return null;
        }
        for (let i = 0; i < size; i++) {
          if (!M.store(st, T.add(regs[wr.ptr]!, T.bv(i, 64)), 1, T.var(`out#${k}.${i}`, 8), ends)) return null;
        }
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

export function memArgSize(M: Machine, st: State, a: MemArg, name: string): number {
  if (typeof a.size === 'number') return a.size;
  const s = st.regs[a.size.arg]!;
  if (s.op !== 'const') throw new Unsupported(`${name} with a variable size`);
  if (s.v > 4096n) throw new Unsupported(`${name} of ${s.v} bytes`);
  return Number(s.v);
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
