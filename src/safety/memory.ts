// Memory access (check_mem_access and friends): loads, stores and atomics through every pointer
// type, stack slots and spills, packet ranges, map values, sized memory, the context (rules in
// ctx.ts), ld_imm64 and the legacy LD_ABS/LD_IND packet loads.
import { ATOMIC, CLASS, MODE, SIZE, memMode, memSize, opClass } from '../isa/index.js';
import {
  S64_MIN, UNKNOWN, constValue, isConst, scalarConst, scalarURange, tnumAdd, tnumConst, tnumIsAligned, unknownOfSize, zext32,
} from './scalar.js';
import { MEM_FLAG, NOT_INIT, RT, RT_NAME, SB, UNKNOWN_REG, ZERO_REG, cur, isPtr, ptrReg, scalarReg, type Reg, type Slot, type State } from './state.js';
import { vmlinux } from './kbtf.js';
import { sockReadable } from './ctx.js';
import { BTF_FLAG, loadedPtr, structAccess, tcpCaWrite } from './btfaccess.js';
import { BPF_MAX_VAR_OFF, sizeBytes, type Env } from './env.js';
import { readReg, writeReg } from './regs.js';
import type { SafetyInsn } from './program.js';

export function ldx(env: Env, st: State, insn: SafetyInsn): void {
  const mode = memMode(insn.code);
  if ((mode !== MODE.MEM && mode !== MODE.MEMSX) || insn.imm !== 0) env.fail('BPF_LDX uses reserved fields');
  const ptr = readReg(env, st, insn.src);
  if (insn.dst === 10) env.fail('frame pointer is read only');
  const size = sizeBytes(insn.code);
  let v = access(env, st, insn.src, ptr, insn.off, size, 'read', null);
  if (mode === MODE.MEMSX) {
    if (isPtr(v)) env.fail('sign-extending load of a pointer');
    v = UNKNOWN_REG;
  }
  writeReg(env, st, insn.dst, v);
}

export function store(env: Env, st: State, insn: SafetyInsn): void {
  const cls = opClass(insn.code);
  const mode = memMode(insn.code);
  const size = sizeBytes(insn.code);
  if (cls === CLASS.ST) {
    if (mode !== MODE.MEM || insn.src !== 0) env.fail('BPF_ST uses reserved fields');
    const ptr = readReg(env, st, insn.dst);
    if (ptr.t === RT.CTX) env.fail(`BPF_ST stores into R${insn.dst} ctx is not allowed`);
    access(env, st, insn.dst, ptr, insn.off, size, 'write', scalarReg(scalarConst(BigInt(insn.imm))));
    return;
  }
  if (mode === MODE.ATOMIC) return atomic(env, st, insn, size);
  if (mode !== MODE.MEM || insn.imm !== 0) env.fail('BPF_STX uses reserved fields');
  const val = readReg(env, st, insn.src);
  const ptr = readReg(env, st, insn.dst);
  access(env, st, insn.dst, ptr, insn.off, size, 'write', val);
  // Stack bytes recorded as zero depend on the stored value being exactly zero.
  if (ptr.t === RT.STACK && val.t === RT.SCALAR && isConst(val.s) && constValue(val.s) === 0n && (size !== 8 || !val.id)) env.markPrecise(st, insn.src);
}

function atomic(env: Env, st: State, insn: SafetyInsn, size: number): void {
  if (size !== 4 && size !== 8) env.fail('invalid atomic operand size');
  const ok = [ATOMIC.ADD, ATOMIC.OR, ATOMIC.AND, ATOMIC.XOR].flatMap((a) => [a, a | ATOMIC.FETCH]);
  ok.push(ATOMIC.XCHG, ATOMIC.CMPXCHG);
  if (!ok.includes(insn.imm)) env.fail(`BPF_ATOMIC uses invalid atomic opcode 0x${insn.imm.toString(16)}`);
  readReg(env, st, insn.src); // any value, pointers included (allow_ptr_leaks)
  const ptr = readReg(env, st, insn.dst);
  if (insn.imm === ATOMIC.CMPXCHG) {
    readReg(env, st, 0);
  }
  // Pointer operands are allowed for privileged programs (allow_ptr_leaks); the result is unknown.
  if (ptr.t !== RT.STACK && ptr.t !== RT.MAP_VALUE && ptr.t !== RT.MEM) env.fail(`BPF_ATOMIC stores into R${insn.dst} ${RT_NAME[ptr.t]} is not allowed`);
  // check_atomic → check_mem_access(..., strict_alignment_once = true): atomics are always strictly
  // aligned, whatever the program's alignment mode (check_generic_ptr_alignment)
  if (ptr.t !== RT.STACK && !tnumIsAligned(tnumAdd(ptr.s.t, tnumConst(BigInt(ptr.off + insn.off))), size)) {
    const t = ptr.s.t;
    const varOff = t.m === 0n ? `${BigInt.asIntN(64, t.v)}` : `(0x${t.v.toString(16)}; 0x${t.m.toString(16)})`;
    env.fail(`misaligned ${ptr.t === RT.MAP_VALUE ? 'value ' : ''}access off ${varOff}+${ptr.off}+${insn.off} size ${size}`);
  }
  access(env, st, insn.dst, ptr, insn.off, size, 'read', null);
  access(env, st, insn.dst, ptr, insn.off, size, 'write', UNKNOWN_REG);
  const fetched = scalarReg(size === 8 ? UNKNOWN : zext32(UNKNOWN));
  if (insn.imm === ATOMIC.CMPXCHG) writeReg(env, st, 0, fetched);
  else if (insn.imm & ATOMIC.FETCH) writeReg(env, st, insn.src, fetched);
}

/** check_mem_access: returns the loaded value for reads. */
export function access(env: Env, st: State, regno: number, ptr: Reg, off: number, size: number, kind: 'read' | 'write', val: Reg | null): Reg {
  const write = kind === 'write';
  // Privileged programs may store pointers anywhere they may store scalars (allow_ptr_leaks): the
  // bytes become an unknown value there; only the stack keeps them as a spilled pointer.
  if (ptr.nul) env.fail(`R${regno} invalid mem access '${RT_NAME[ptr.t]}_or_null'`);
  switch (ptr.t) {
    case RT.STACK: return stackAccess(env, st, regno, ptr, off, size, write, val);
    case RT.CTX: {
      if (ptr.off !== 0) env.fail(`dereference of modified ctx ptr R${regno} off=${ptr.off} disallowed`);
      if (!isConst(ptr.s) || constValue(ptr.s) !== 0n) env.fail(`variable ctx access R${regno} disallowed`);
      const a = env.ctx.access(off, size, write);
      if (!a.ok) env.fail(a.why);
      if (write) return NOT_INIT;
      switch (a.field) {
        case 'pkt': return ptrReg(RT.PKT);
        case 'pkt_meta': return ptrReg(RT.PKT_META);
        case 'pkt_end': return ptrReg(RT.PKT_END);
        case 'btf': return ptrReg(RT.BTF_ID, { btf: a.btfId, flags: a.flags, nul: a.nullable, id: a.nullable ? env.newId() : 0 });
        case 'sock': return ptrReg(SOCK_RT[a.sock], { nul: a.nullable, id: a.nullable ? env.newId() : 0 });
        default: return scalarReg(unknownOfSize(size));
      }
    }
    case RT.BTF_ID: return btfAccess(env, regno, ptr, off, size, write);
    case RT.SOCKET: case RT.SOCK_COMMON: case RT.TCP_SOCK: {
      // check_sock_access: reads of the probed fields of struct bpf_sock / bpf_tcp_sock.
      if (write) env.fail(`R${regno} cannot write into ${RT_NAME[ptr.t]}`);
      const kind = ptr.t === RT.SOCKET ? 'sock' : ptr.t === RT.SOCK_COMMON ? 'sock_common' : 'tcp_sock';
      if (ptr.off !== 0 || !isConst(ptr.s) || constValue(ptr.s) !== 0n || !sockReadable(kind, off, size)) env.fail(`R${regno} invalid ${kind} access off=${off} size=${size}`);
      return scalarReg(unknownOfSize(size));
    }
    case RT.PKT:
    case RT.PKT_META: {
      if (!(write ? env.ctx.pktWrite : env.ctx.pktRead)) env.fail(write ? `cannot write into packet` : `cannot read packet directly in ${env.prog.progType}`);
      pktRange(env, regno, ptr, off, size);
      return write ? NOT_INIT : scalarReg(unknownOfSize(size));
    }
    case RT.MAP_VALUE: {
      if (write && ptr.map!.rdonly) env.fail(`write into map forbidden, value_size=${ptr.map!.valueSize} off=${off} size=${size}`);
      regionRange(env, regno, ptr, off, size, ptr.map!.valueSize, 'map value');
      if (write) return NOT_INIT;
      // Loads at a known offset of a frozen read-only map give its contents (bpf_map_direct_read).
      const fz = ptr.map!.frozen;
      if (fz && isConst(ptr.s)) {
        const o = Number(BigInt.asIntN(64, constValue(ptr.s))) + ptr.off + off;
        if (o >= 0 && o + size <= fz.length) {
          let v = 0n;
          for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(fz[o + i]!);
          return scalarReg(scalarConst(v));
        }
      }
      return scalarReg(unknownOfSize(size));
    }
    case RT.MEM: {
      if (write && ptr.flags & MEM_FLAG.RDONLY) env.fail(`R${regno} cannot write into rdonly_mem`);
      regionRange(env, regno, ptr, off, size, ptr.range, 'memory');
      return write ? NOT_INIT : scalarReg(unknownOfSize(size));
    }
    default:
      env.fail(`R${regno} invalid mem access '${RT_NAME[ptr.t]}'`);
  }
}

/** check_ptr_to_btf_access: reads of kernel structs through BTF-typed pointers (exception-safe loads). */
function btfAccess(env: Env, regno: number, ptr: Reg, off: number, size: number, write: boolean): Reg {
  const btf = vmlinux();
  if (!btf) env.fail('no kernel BTF to check a BTF-typed pointer access against');
  const name = btf.types[ptr.btf]?.name ?? '?';
  const o = off + ptr.off;
  if (!env.prog.gpl) env.fail(`Cannot access kernel 'struct ${name}' from non-GPL compatible program`);
  if (o < 0) env.fail(`R${regno} is ptr_${name} invalid negative access: off=${o}`);
  if (!isConst(ptr.s) || constValue(ptr.s) !== 0n) env.fail(`R${regno} is ptr_${name} invalid variable offset: off=${o}`);
  if (ptr.flags & BTF_FLAG.USER) env.fail(`R${regno} is ptr_${name} access user memory: off=${o}`);
  if (ptr.flags & BTF_FLAG.PERCPU) env.fail(`R${regno} is ptr_${name} access percpu memory: off=${o}`);
  // Writes go through per-program-type callbacks: TCP congestion control may write a few tcp_sock fields.
  if (write) {
    const k = env.ctx.kind;
    if (k.type !== 'struct_ops' || !k.target.startsWith('tcp_congestion_ops.')) env.fail(`R${regno} writing into kernel struct ${name}: only read is supported`);
    const why = tcpCaWrite(btf, ptr.btf, o, size);
    if (why) env.fail(why);
    return NOT_INIT;
  }
  const w = structAccess(btf, ptr.btf, o, size);
  switch (w.kind) {
    case 'error': return env.fail(w.why);
    case 'scalar': return scalarReg(unknownOfSize(size));
    case 'mem': return ptrReg(RT.MEM, { range: 0, flags: MEM_FLAG.RDONLY | MEM_FLAG.UNTRUSTED });
    case 'ptr': {
      const d = loadedPtr(btf, ptr.flags, ptr.btf, w);
      return ptrReg(RT.BTF_ID, { btf: w.btfId, flags: d.flags, nul: d.nullable, id: d.nullable ? env.newId() : 0 });
    }
  }
}

const SOCK_RT = { sock: RT.SOCKET, sock_common: RT.SOCK_COMMON, tcp_sock: RT.TCP_SOCK } as const;

function pktRange(env: Env, regno: number, ptr: Reg, off: number, size: number): void {
  if (ptr.s.smin < 0n) env.fail(`R${regno} min value is negative, either use unsigned index or do a if (index >=0) check.`);
  const o = off + ptr.off;
  if (o < 0 || size < 0 || o + size > ptr.range) env.fail(`invalid access to packet, off=${o} size=${size}, R${regno}(id=${ptr.id},off=${ptr.off},r=${ptr.range})`);
}

/** check_mem_region_access for map values and sized memory. */
function regionRange(env: Env, regno: number, ptr: Reg, off: number, size: number, memSize: number, what: string): void {
  const o = BigInt(off + ptr.off);
  const s = ptr.s;
  if (s.smin < 0n && (s.smin === S64_MIN || s.smin + o < 0n)) env.fail(`R${regno} min value is negative, either use unsigned index or do a if (index >=0) check.`);
  if (s.smin + o < 0n || s.smin + o + BigInt(size) > BigInt(memSize)) env.fail(`invalid access to ${what}, size=${memSize} off=${s.smin + o} size=${size}`);
  if (s.umax >= BigInt(BPF_MAX_VAR_OFF)) env.fail(`R${regno} unbounded memory access`);
  if (s.umax + o + BigInt(size) > BigInt(memSize)) env.fail(`invalid access to ${what}, size=${memSize} off=${s.umax + o} size=${size}`);
}

export function stackOffset(env: Env, regno: number, ptr: Reg, off: number, size: number, strictAlign: boolean): number {
  if (!isConst(ptr.s)) env.fail(`variable stack access R${regno} is not modelled`);
  const o = Number(BigInt.asIntN(64, constValue(ptr.s))) + ptr.off + off;
  if (strictAlign && !tnumIsAligned(tnumAdd(ptr.s.t, tnumConst(BigInt(ptr.off + off))), size)) env.fail(`misaligned stack access off ${o} size ${size}`);
  if (o < -512 || o + size > 0 || size < 0) env.fail(`invalid stack off=${o} size=${size}`);
  return o;
}

function stackAccess(env: Env, st: State, regno: number, ptr: Reg, off: number, size: number, write: boolean, val: Reg | null): Reg {
  const o = stackOffset(env, regno, ptr, off, size, true);
  const frame = st.frames[ptr.frame];
  if (!frame) env.fail('stack pointer into a returned frame');
  env.noteDepth(st, ptr.frame, o);
  const k = (-o - 1) >> 3;
  const at = (o + 512) & 7;
  env.noteSlot(ptr.frame, k);
  if (write) {
    if (val && isPtr(val) && size !== 8) env.fail('invalid size of register spill');
    if (size === 8 && val && (isPtr(val) || val.t === RT.SCALAR)) {
      if (val.t === RT.SCALAR && isConst(val.s) && constValue(val.s) === 0n && !val.id) {
        frame.stack[k] = { b: [2, 2, 2, 2, 2, 2, 2, 2], spill: null };
      }
      else frame.stack[k] = { b: [3, 3, 3, 3, 3, 3, 3, 3], spill: val };
      return NOT_INIT;
    }
    const old = frame.stack[k];
    const b = old ? old.b.map((x) => (x === SB.SPILL ? SB.MISC : x)) : [0, 0, 0, 0, 0, 0, 0, 0];
    const zero = !val || (val.t === RT.SCALAR && isConst(val.s) && constValue(val.s) === 0n);
    for (let i = at; i < at + size; i++) b[i] = zero && val ? SB.ZERO : SB.MISC;
    frame.stack[k] = { b, spill: null };
    return NOT_INIT;
  }
  const sl = frame.stack[k];
  env.markStackRead(ptr.frame, k);
  // Privileged programs may read stack bytes never written (allow_uninit_stack): unknown values.
  if (!sl) return scalarReg(unknownOfSize(size));
  let spills = 0, zeros = 0;
  for (let i = at; i < at + size; i++) {
    const b = sl.b[i]!;
    if (b === SB.SPILL) spills++;
    if (b === SB.ZERO) zeros++;
  }
  if (spills && sl.spill && isPtr(sl.spill)) {
    if (size !== 8 || spills !== 8) env.fail('invalid size of register fill');
    return sl.spill;
  }
  if (spills === 8 && size === 8 && sl.spill) return sl.spill;
  if (zeros === size) return ZERO_REG;
  return scalarReg(unknownOfSize(size));
}

/** check_helper_mem_access: `maxSize` bytes (and `minSize`) at `reg` must be accessible. */
export function helperMem(env: Env, st: State, r: number, reg: Reg, maxSize: bigint, minSize: bigint, kind: 'read' | 'write'): void {
  const write = kind === 'write';
  if (reg.nul) env.fail(`R${r} type=${RT_NAME[reg.t]}_or_null expected=fp, pkt, map_value, mem`);
  const n = Number(maxSize);
  void minSize;
  switch (reg.t) {
    case RT.STACK: {
      const o = stackOffset(env, r, reg, 0, n, false);
      // check_stack_access_within_bounds: even a zero-sized access must start inside the stack.
      if (o > -1) env.fail(`invalid ${write ? 'write to' : 'read from'} stack R${r} off=${o} size=${n}`);
      if (n === 0) return;
      const frame = st.frames[reg.frame];
      if (!frame) env.fail('stack pointer into a returned frame');
      env.noteDepth(st, reg.frame, o);
      // Privileged programs may pass uninitialised stack to helpers (allow_uninit_stack).
      if (!write) for (let k = (-o - 1) >> 3; k >= (-(o + n - 1) - 1) >> 3; k--) env.markStackRead(reg.frame, k);
      return;
    }
    case RT.PKT:
    case RT.PKT_META:
      if (!(write ? env.ctx.pktWrite : env.ctx.pktRead)) env.fail(write ? 'cannot write into packet' : 'cannot read packet');
      pktRange(env, r, reg, 0, n);
      return;
    case RT.MAP_VALUE:
      if (write && reg.map!.rdonly) env.fail('write into map forbidden');
      regionRange(env, r, reg, 0, n, reg.map!.valueSize, 'map value');
      return;
    case RT.MEM:
      if (reg.flags & MEM_FLAG.UNTRUSTED) env.fail(`R${r} type=untrusted_mem expected=fp, pkt, pkt_meta, map_value, mem`);
      if (write && reg.flags & MEM_FLAG.RDONLY) env.fail(`R${r} cannot write into rdonly_mem`);
      regionRange(env, r, reg, 0, n, reg.range, 'memory');
      return;
    default:
      env.fail(`R${r} type=${RT_NAME[reg.t]} expected=fp, pkt, pkt_meta, map_value, mem`);
  }
}

export function markStackMisc(env: Env, st: State, reg: Reg, n: number): void {
  if (n <= 0) return;
  const frame = st.frames[reg.frame]!;
  const o = Number(BigInt.asIntN(64, constValue(reg.s))) + reg.off;
  for (let i = o; i < o + n; i++) {
    const k = (-i - 1) >> 3;
    const old: Slot | undefined = frame.stack[k];
    const b = old ? old.b.map((x) => (x === SB.SPILL ? SB.MISC : x)) : [0, 0, 0, 0, 0, 0, 0, 0];
    b[(i + 512) & 7] = SB.MISC;
    frame.stack[k] = { b, spill: null };
  }
}

export function ldImm64(env: Env, st: State, insn: SafetyInsn): void {
  if (insn.dst > 10) env.fail(`R${insn.dst} is invalid`);
  const ld = insn.ld ?? { kind: 'const', value: 0n };
  if (insn.coreVal && insn.coreVal.lo !== insn.coreVal.hi) { writeReg(env, st, insn.dst, scalarReg(scalarURange(insn.coreVal.lo, insn.coreVal.hi))); return; }
  switch (ld.kind) {
    case 'const': writeReg(env, st, insn.dst, scalarReg(scalarConst(ld.value))); return;
    case 'map': writeReg(env, st, insn.dst, ptrReg(RT.MAP_PTR, { map: ld.map })); return;
    case 'func': {
      const fn = env.fnAt[ld.start];
      if (fn === undefined || fn < 0 || env.prog.funcs[fn]!.start !== ld.start) env.fail('callback is not a function');
      writeReg(env, st, insn.dst, ptrReg(RT.FUNC, { off: ld.start }));
      return;
    }
    case 'value':
      if (ld.off < 0 || ld.off >= ld.map.valueSize) env.fail(`invalid access to map value pointer, value_size=${ld.map.valueSize} off=${ld.off}`);
      writeReg(env, st, insn.dst, ptrReg(RT.MAP_VALUE, { map: ld.map, off: ld.off }));
      return;
    // The address of a kernel function libbpf found: read-only memory of size 0, never NULL (check_ld_imm).
    case 'kfunc_addr': writeReg(env, st, insn.dst, ptrReg(RT.MEM, { range: 0, flags: MEM_FLAG.RDONLY })); return;
    case 'funcref': env.fail('callback function pointers are not modelled here');
    case 'unsupported': env.fail(ld.why);
  }
}

export function ldAbs(env: Env, st: State, insn: SafetyInsn): void {
  const mode = memMode(insn.code);
  if (mode !== MODE.ABS && mode !== MODE.IND) env.fail('unknown load');
  if (insn.dst !== 0 || insn.off !== 0 || memSize(insn.code) === SIZE.DW || (mode === MODE.ABS && insn.src !== 0)) env.fail('BPF_LD_[ABS|IND] uses reserved fields');
  if (!env.ctx.ldAbs) env.fail('BPF_LD_[ABS|IND] instructions not allowed for this program type');
  if (st.frames.length > 1) env.fail('BPF_LD_[ABS|IND] in a subprogram is not modelled');
  if (st.refs.length) env.fail('BPF_LD_[ABS|IND] cannot be mixed with socket references');
  const r6 = readReg(env, st, 6);
  if (r6.t !== RT.CTX || r6.off !== 0) env.fail('at the time of BPF_LD_ABS|IND R6 != pointer to skb');
  if (mode === MODE.IND) {
    const s = readReg(env, st, insn.src);
    if (isPtr(s)) env.fail(`R${insn.src} leaks addr`);
  }
  const regs = cur(st).regs;
  for (let r = 1; r <= 5; r++) regs[r] = NOT_INIT;
  regs[0] = scalarReg(unknownOfSize(sizeBytes(insn.code)));
}
