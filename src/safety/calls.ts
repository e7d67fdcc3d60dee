// Calls and exits: bpf-to-bpf calls (static ones in a new frame, global ones checked against their
// BTF signature), helper calls (prototypes and map compatibility in helpers.ts), callbacks of
// bpf_loop and bpf_for_each_map_elem, and the checks at program, function and callback exit.
import { CALL_HELPER, CALL_KFUNC, CALL_PSEUDO, CLASS, SRC_X, opClass, srcBit } from '../isa/index.js';
import { constValue, isConst, scalarConst } from './scalar.js';
import { NOT_INIT, RT, RT_NAME, UNKNOWN_REG, cloneState, cur, isSockType, mapAllRegs, newFrame, ptrReg, type Reg, type State } from './state.js';
import { helperFor, mapAllowedFor, type ArgKind } from './helpers.js';
import { BPF_MAX_VAR_SIZ, MAX_CALL_FRAMES, type Env, type Step } from './env.js';
import { readReg } from './regs.js';
import { helperMem, markStackMisc } from './memory.js';
import { MAP_TYPE, type GlobalArg, type MapInfo, type SafetyInsn } from './program.js';
import { KIND, findType, vmlinux } from './kbtf.js';
import { KF, kfuncFor, structMatches } from './kfuncs.js';
import { ctxNames } from './globals.js';
import { BTF_FLAG } from './btfaccess.js';

export const HELPER_LOOP = 181; // bpf_loop(nr_loops, callback_fn, callback_ctx, flags)
export const HELPER_FOR_EACH = 164; // bpf_for_each_map_elem(map, callback_fn, callback_ctx, flags)
/** Helpers that call a callback (maybe many times); they come back to the helper call after each. */
export const isCallbackHelper = (imm: number): boolean => imm === HELPER_LOOP || imm === HELPER_FOR_EACH;
/** Maps with a for-each iterator (map_for_each_callback). */
const FOR_EACH_MAPS: number[] = [MAP_TYPE.HASH, MAP_TYPE.PERCPU_HASH, MAP_TYPE.LRU_HASH, MAP_TYPE.LRU_PERCPU_HASH, MAP_TYPE.ARRAY, MAP_TYPE.PERCPU_ARRAY];
/** A read-only region the size of a map's key (PTR_TO_MAP_KEY), one per map. */
const KEY_REGIONS = new WeakMap<MapInfo, MapInfo>();
const keyRegion = (m: MapInfo): MapInfo => {
  let k = KEY_REGIONS.get(m);
  if (!k) { k = { uid: -m.uid, name: `key of ${m.name}`, type: MAP_TYPE.ARRAY, keySize: 4, valueSize: m.keySize, maxEntries: 1, inner: null, rdonly: true }; KEY_REGIONS.set(m, k); }
  return k;
};

const isNullConst = (r: Reg): boolean => r.t === RT.SCALAR && isConst(r.s) && constValue(r.s) === 0n;

/** The kernel's BTF id of struct `name`. */
function kernelStruct(env: Env, name: string): number {
  const b = vmlinux();
  const t = b && findType(b, KIND.STRUCT, name);
  if (!t) env.fail(`struct ${name} not in the kernel's BTF`);
  return t.id;
}

/** ARG_PTR_TO_BTF_ID for kernel struct `name`: a pointer to it that is not untrusted, at offset 0. */
function btfArg(env: Env, r: number, reg: Reg, name: string): void {
  const id = kernelStruct(env, name);
  if (reg.t !== RT.BTF_ID || reg.nul || reg.flags & (BTF_FLAG.UNTRUSTED | BTF_FLAG.USER | BTF_FLAG.PERCPU)) {
    env.fail(`R${r} type=${RT_NAME[reg.t]}${reg.nul ? '_or_null' : ''} expected=ptr_${name}`);
  }
  if (reg.btf !== id) env.fail(`R${r} is of type ${vmlinux()?.types[reg.btf]?.name ?? '?'} but ${name} is expected`);
  if (reg.off !== 0 || !isConst(reg.s) || constValue(reg.s) !== 0n) env.fail(`R${r} must have zero offset`);
}

/** ARG_PTR_TO_CONST_STR: a NUL-terminated string at a known offset of a frozen read-only map. */
function constStr(env: Env, r: number, reg: Reg): void {
  if (reg.t !== RT.MAP_VALUE || reg.nul || !reg.map!.rdonly) env.fail(`R${r} does not point to a readonly map'`);
  const fz = reg.map!.frozen;
  if (!fz) env.fail(`R${r} does not point to a frozen map with known contents`);
  if (!isConst(reg.s)) env.fail(`R${r} is not a constant address'`);
  const off = Number(BigInt.asIntN(64, constValue(reg.s))) + reg.off;
  if (off < 0 || off >= fz.length || fz.indexOf(0, off) < 0) env.fail('string is not zero-terminated');
}

/** BPF_CALL: bpf-to-bpf calls, helper calls and callback-calling helpers. */
export function call(env: Env, st: State, insn: SafetyInsn, pc: number): Step {
  if (opClass(insn.code) !== CLASS.JMP || srcBit(insn.code) === SRC_X) env.fail('BPF_CALL uses reserved fields');
  if (insn.src === CALL_PSEUDO && insn.kfunc) { kfuncCall(env, st, insn); return { next: pc + 1 }; }
  if (insn.src === CALL_PSEUDO) return pseudoCall(env, st, insn, pc);
  if (insn.src === CALL_KFUNC) env.fail('kernel function calls by BTF id are not modelled');
  if (insn.src === CALL_HELPER && isCallbackHelper(insn.imm) && insn.off === 0 && insn.dst === 0) return loopCall(env, st, insn, pc);
  if (insn.off !== 0 || insn.src !== CALL_HELPER || insn.dst !== 0) env.fail('BPF_CALL uses reserved fields');
  helperCall(env, st, insn);
  return { next: pc + 1 };
}

/** A call of a kernel function (check_kfunc_call), for the kfuncs kfuncs.ts models. */
function kfuncCall(env: Env, st: State, insn: SafetyInsn): void {
  const name = insn.kfunc!.name;
  if (!env.prog.gpl) env.fail('cannot call kernel function from non-GPL compatible program');
  const kf = kfuncFor(name, env.ctx.kind, ctxNames(env.prog.progType));
  if (typeof kf === 'string') env.fail(kf);
  const btf = vmlinux()!;
  const regs = cur(st).regs;
  let releaseRef = 0;
  kf.args.forEach((a, i) => {
    const r = i + 1;
    const reg = readReg(env, st, r);
    switch (a.kind) {
      case 'scalar':
        if (reg.t !== RT.SCALAR) env.fail(`R${r} is not a scalar`);
        if (a.constant) {
          env.markPrecise(st, r);
          if (!isConst(reg.s)) env.fail(`R${r} must be a known constant`);
        }
        break;
      case 'ctx':
        if (reg.t !== RT.CTX || reg.off !== 0 || !isConst(reg.s) || constValue(reg.s) !== 0n) env.fail(`arg#${i} expected pointer to ctx, but got ${RT_NAME[reg.t]}`);
        break;
      case 'mem': {
        const sreg = readReg(env, st, a.sizeArg + 1);
        if (sreg.t !== RT.SCALAR) env.fail(`R${a.sizeArg + 1} is not a scalar size`);
        env.markPrecise(st, a.sizeArg + 1);
        const sz = sreg.s;
        if (sz.smin < 0n || sz.umax >= BPF_MAX_VAR_SIZ) env.fail(`R${a.sizeArg + 1} unbounded memory access`);
        if (a.nullable && isNullConst(reg)) break;
        // check_kfunc_mem_size_reg: the memory is read and written.
        helperMem(env, st, r, reg, sz.umax, sz.umin, 'read');
        helperMem(env, st, r, reg, sz.umax, sz.umin, 'write');
        if (reg.t === RT.STACK) markStackMisc(env, st, reg, Number(sz.umax));
        break;
      }
      case 'size': break;
      case 'btf': {
        if (reg.t !== RT.BTF_ID || reg.nul) env.fail(`arg#${i} pointer type STRUCT ${a.name} must point to scalar, or struct with scalar (R${r} ${RT_NAME[reg.t]}${reg.nul ? '_or_null' : ''})`);
        if (!structMatches(btf, reg.btf, a.btfId)) env.fail(`kernel function ${name} args#${i} expected pointer to STRUCT ${a.name}`);
        if (reg.off !== 0 || !isConst(reg.s) || constValue(reg.s) !== 0n) env.fail(`R${r} must have zero offset when passed to a kernel function`);
        if (kf.flags & KF.RELEASE) {
          if (!reg.ref) env.fail(`R${r} must be referenced when passed to release function`);
          releaseRef = reg.ref;
        } else if (!reg.ref && !(reg.flags & (BTF_FLAG.TRUSTED | BTF_FLAG.RCU))) {
          env.fail(`R${r} must be referenced or trusted`);
        }
        break;
      }
    }
  });
  if (releaseRef) {
    if (!st.refs.includes(releaseRef)) env.fail('release of an unacquired reference');
    st.refs = st.refs.filter((x) => x !== releaseRef);
    mapAllRegs(st, (q) => (q.ref === releaseRef ? NOT_INIT : undefined));
  }
  for (let r = 1; r <= 5; r++) regs[r] = NOT_INIT;
  switch (kf.ret.kind) {
    case 'void': regs[0] = NOT_INIT; break;
    case 'scalar': regs[0] = UNKNOWN_REG; break;
    case 'btf': {
      const id = kf.flags & (KF.RET_NULL | KF.ACQUIRE) ? env.newId() : 0;
      if (kf.flags & KF.ACQUIRE) st.refs = [...st.refs, id];
      regs[0] = ptrReg(RT.BTF_ID, { btf: kf.ret.btfId, flags: BTF_FLAG.TRUSTED, nul: (kf.flags & KF.RET_NULL) !== 0, id, ref: kf.flags & KF.ACQUIRE ? id : 0 });
      break;
    }
  }
}

/** BPF_EXIT: from a callback, a callee, or the program (or a global function verified on its own). */
export function exitInsn(env: Env, st: State, insn: SafetyInsn, pc: number): Step {
  if (opClass(insn.code) !== CLASS.JMP || srcBit(insn.code) === SRC_X || insn.imm !== 0 || insn.src !== 0 || insn.dst !== 0 || insn.off !== 0) env.fail('BPF_EXIT uses reserved fields');
  return exit(env, st, pc);
}

function pseudoCall(env: Env, st: State, insn: SafetyInsn, pc: number): Step {
  if (insn.off !== 0 || insn.dst !== 0) env.fail('BPF_CALL uses reserved fields');
  const fn = env.fnAt[insn.tgt];
  if (fn === undefined || fn < 0 || env.prog.funcs[fn]!.start !== insn.tgt) env.fail('call to a non-function');
  const callerFn = cur(st).fn;
  env.noteCall(callerFn, fn);
  const f = env.prog.funcs[fn]!;
  if (f.global) {
    globalCall(env, st, f.global, fn);
    return { next: pc + 1 };
  }
  if (st.frames.length >= MAX_CALL_FRAMES) env.fail(`the call stack of ${st.frames.length + 1} frames is too deep`);
  const caller = cur(st);
  const frame = newFrame(fn, pc, st.frames.length);
  for (let r = 1; r <= 5; r++) frame.regs[r] = caller.regs[r]!;
  st.frames.push(frame);
  return { next: insn.tgt };
}

function globalCall(env: Env, st: State, args: GlobalArg[], fn: number): void {
  const regs = cur(st).regs;
  args.forEach((a, k) => {
    const r = k + 1;
    if (r > 5) env.fail('global function with more than 5 arguments');
    const reg = readReg(env, st, r);
    switch (a.kind) {
      case 'scalar': if (reg.t !== RT.SCALAR) env.fail(`R${r} is not a scalar`); break;
      case 'ctx':
        if (reg.t !== RT.CTX || reg.off !== 0 || !isConst(reg.s) || constValue(reg.s) !== 0n) env.fail(`R${r} is not an unmodified ctx pointer`);
        break;
      case 'mem': {
        if (reg.t === RT.SCALAR && isConst(reg.s) && constValue(reg.s) === 0n && a.nullable) { env.markPrecise(st, r); break; }
        if (reg.nul && !a.nullable) env.fail(`R${r} may be NULL but the argument is not nullable`);
        // A pointer that may be NULL is checked as if it were not (check_mem_reg).
        const p = reg.nul ? { ...reg, nul: false } : reg;
        helperMem(env, st, r, p, BigInt(a.size), BigInt(a.size), 'read');
        helperMem(env, st, r, p, BigInt(a.size), BigInt(a.size), 'write');
        // check_mem_reg checks the argument as BPF_WRITE too: check_stack_range_initialized
        // clobbers the caller's bytes there (zero and spilled slots become unknown, STACK_MISC) —
        // the function may write through the pointer
        if (p.t === RT.STACK && a.size > 0) {
          if (isConst(p.s)) markStackMisc(env, st, p, a.size);
          else {
            // every byte a variable offset may reach
            const lo = p.s.smin, hi = p.s.smax;
            markStackMisc(env, st, { ...p, s: scalarConst(lo) }, Number(hi - lo) + a.size);
          }
        }
        break;
      }
      case 'unsupported': env.fail(`global function argument: ${a.why}`);
    }
  });
  if (env.changesPkt(fn)) clearPkt(st);
  for (let r = 1; r <= 5; r++) regs[r] = NOT_INIT;
  regs[0] = UNKNOWN_REG;
}

export function clearPkt(st: State): void {
  mapAllRegs(st, (q) => (q.t === RT.PKT || q.t === RT.PKT_META || q.t === RT.PKT_END ? NOT_INIT : undefined));
}

function exit(env: Env, st: State, _pc: number): Step {
  const frame = cur(st);
  if (frame.cb) {
    // bpf_loop callback: R0 in [0, 1]; then back to the helper call with the caller's registers as they were.
    const r0 = frame.regs[0]!;
    if (r0.t === RT.NOT_INIT) env.fail('R0 !read_ok');
    if (r0.t !== RT.SCALAR) env.fail(`At callback return the register R0 is not a known value (${RT_NAME[r0.t]})`);
    env.markPrecise(st, 0);
    if (r0.s.smin < 0n || r0.s.smax > 1n) env.fail(`At callback return the register R0 has smin=${r0.s.smin} smax=${r0.s.smax} should have been in [0, 1]`);
    const depthNo = st.frames.length - 1;
    st.frames.pop();
    let escaped = false;
    mapAllRegs(st, (q) => { if (q.t === RT.STACK && q.frame >= depthNo) escaped = true; return undefined; });
    if (escaped) env.fail('pointer to a returned stack frame escapes');
    env.noteCallbackExit();
    return { next: frame.callsite };
  }
  if (st.frames.length > 1) {
    const r0 = frame.regs[0]!;
    const depthNo = st.frames.length - 1;
    if (r0.t === RT.STACK && r0.frame >= depthNo) env.fail('cannot return stack pointer to the caller');
    st.frames.pop();
    let escaped = false;
    mapAllRegs(st, (q) => { if (q.t === RT.STACK && q.frame >= depthNo) escaped = true; return undefined; });
    if (escaped) env.fail('pointer to a returned stack frame escapes');
    const caller = cur(st);
    caller.regs[0] = r0;
    for (let r = 1; r <= 5; r++) caller.regs[r] = NOT_INIT;
    return { next: frame.callsite + 1 };
  }
  const r0 = frame.regs[0]!;
  if (st.refs.length) env.fail(`Unreleased reference id=${st.refs[0]}`);
  const fnInfo = env.prog.funcs[frame.fn]!;
  // Programs for void attach targets (LSM hooks, struct_ops members) return nothing (check_return_code).
  if (env.ctx.retVoid && !(fnInfo.global && frame.fn !== 0)) return { end: true };
  if (r0.t === RT.NOT_INIT) env.fail('R0 !read_ok');
  const fn = env.prog.funcs[frame.fn]!;
  const globalFn = !!fn.global && frame.fn !== 0;
  const range = globalFn ? null : env.ctx.ret;
  // Privileged programs may return a pointer when the type has no return range; global
  // functions and ranged types need a scalar.
  if (r0.t !== RT.SCALAR && (globalFn || range || !env.ctx.retPtr)) env.fail(`At program exit the register R0 is not a scalar value (${RT_NAME[r0.t]})`);
  if (range) env.markPrecise(st, 0);
  // Some types check only the 32-bit subregister (LSM hooks returning int or bool).
  const [lo, hi] = range && env.ctx.ret32 ? [r0.s.s32min, r0.s.s32max] : [r0.s.smin, r0.s.smax];
  if (range && (lo < range[0] || hi > range[1])) {
    env.fail(`At program exit the register R0 has smin=${lo} smax=${hi} should have been in [${range[0]}, ${range[1]}]`);
  }
  return { end: true };
}

/**
 * bpf_loop: either the loop is over (R0 = unknown, R1-R5 clobbered) or the callback runs once
 * more in a new frame with R1 = index, R2 = callback_ctx, and comes back to this call.
 */
function loopCall(env: Env, st: State, insn: SafetyInsn, pc: number): Step {
  const h = helperFor(insn.imm, env.ctx.kind, env.prog.gpl);
  if (typeof h === 'string') env.fail(h);
  const forEach = insn.imm === HELPER_FOR_EACH;
  const regs = cur(st).regs;
  const r1 = readReg(env, st, 1);
  if (forEach) {
    if (r1.t !== RT.MAP_PTR || r1.nul || r1.off !== 0) env.fail(`R1 type=${RT_NAME[r1.t]} expected=map_ptr`);
    if (!FOR_EACH_MAPS.includes(r1.map!.type)) env.fail(`cannot pass map_type ${r1.map!.type} into func bpf_for_each_map_elem#164`);
  }
  const fnReg = readReg(env, st, 2);
  const ctx = readReg(env, st, 3);
  readReg(env, st, 4);
  if (fnReg.t !== RT.FUNC) env.fail(`R2 type=${RT_NAME[fnReg.t]} expected=func`);
  const fn = env.fnAt[fnReg.off]!;
  const f = env.prog.funcs[fn]!;
  if (f.global) env.fail('global callback functions are not modelled');
  if (ctx.t === RT.SCALAR) {
    if (!isConst(ctx.s) || constValue(ctx.s) !== 0n) env.fail('R3 type=scalar expected=fp');
    env.markPrecise(st, 3);
  } else if (ctx.t !== RT.STACK || ctx.nul) env.fail(`R3 type=${RT_NAME[ctx.t]} expected=fp`);
  if (st.frames.length >= MAX_CALL_FRAMES) env.fail(`the call stack of ${st.frames.length + 1} frames is too deep`);
  env.noteCall(cur(st).fn, fn);
  // The callback path.
  const other = cloneState(st);
  const frame = newFrame(fn, pc, other.frames.length);
  frame.cb = true;
  if (forEach) {
    // callback(map, key, value, ctx): the key is read-only memory of key_size, the value a map value.
    const m = r1.map!;
    frame.regs[1] = r1;
    frame.regs[2] = ptrReg(RT.MAP_VALUE, { map: keyRegion(m) });
    frame.regs[3] = ptrReg(RT.MAP_VALUE, { map: m });
    frame.regs[4] = ctx;
  } else {
    frame.regs[1] = UNKNOWN_REG;
    frame.regs[2] = ctx;
  }
  other.frames.push(frame);
  // The path after the loop.
  for (let r = 1; r <= 5; r++) regs[r] = NOT_INIT;
  regs[0] = UNKNOWN_REG;
  if (h.pktData) clearPkt(st);
  return { fork: [{ state: st, pc: pc + 1}, { state: other, pc: f.start, cb: true }] };
}

function helperCall(env: Env, st: State, insn: SafetyInsn): void {
  const h = helperFor(insn.imm, env.ctx.kind, env.prog.gpl);
  if (typeof h === 'string') env.fail(h);
  const regs = cur(st).regs;
  let map: Reg | null = null;
  let allocSize = 0;
  const stackWrites: [Reg, number][] = [];
  let releaseRef = 0;
  let sockArg: Reg | null = null;
  const args = h.args;
  for (let k = 0; k < args.length; k++) {
    const r = k + 1;
    const kind: ArgKind = args[k]!;
    const reg = readReg(env, st, r);
    // check_func_arg: packet pointers only go to helpers with pkt_access (probed per program type).
    if (kind !== 'anything' && (reg.t === RT.PKT || reg.t === RT.PKT_META) && !env.ctx.pktHelpers.has(insn.imm)) env.fail('helper access to the packet is not allowed');
    switch (kind) {
      case 'anything': break;
      case 'map':
        if (reg.t !== RT.MAP_PTR || reg.nul || reg.off !== 0) env.fail(`R${r} type=${RT_NAME[reg.t]} expected=map_ptr`);
        if (!mapAllowedFor(h, reg.map!.type)) env.fail(`cannot pass map_type ${reg.map!.type} into func bpf_${h.name}#${h.id}`);
        map = reg;
        break;
      case 'ctx_or_null':
      case 'ctx':
        if (kind === 'ctx_or_null' && reg.t === RT.SCALAR && isConst(reg.s) && constValue(reg.s) === 0n) { env.markPrecise(st, r); break; }
        if (reg.t !== RT.CTX) env.fail(`R${r} type=${RT_NAME[reg.t]} expected=ctx`);
        if (reg.off !== 0 || !isConst(reg.s) || constValue(reg.s) !== 0n) env.fail(`dereference of modified ctx ptr R${r} off=${reg.off} disallowed`);
        break;
      case 'key':
      case 'value':
      case 'value_or_null':
      case 'uninit_value': {
        if (kind === 'value_or_null' && isNullConst(reg)) { env.markPrecise(st, r); break; }
        if (!map) env.fail('map argument missing');
        const m = map.map!;
        const n = BigInt(kind === 'key' ? m.keySize : m.valueSize);
        if (kind === 'value_or_null' && reg.nul) env.fail(`R${r} type=${RT_NAME[reg.t]}_or_null expected=map_value_or_null (not modelled)`);
        const w = kind === 'uninit_value' ? 'write' : 'read';
        helperMem(env, st, r, reg, n, n, w);
        if (w === 'write' && reg.t === RT.STACK) stackWrites.push([reg, Number(n)]);
        break;
      }
      case 'mem':
      case 'mem_rw':
      case 'mem_or_null':
      case 'uninit_mem': {
        const sizeKind = args[k + 1];
        const sreg = readReg(env, st, r + 1);
        if (sreg.t !== RT.SCALAR) env.fail(`R${r + 1} type=${RT_NAME[sreg.t]} expected=scalar`);
        env.markPrecise(st, r + 1);
        const s = sreg.s;
        if (s.smin < 0n) env.fail(`R${r + 1} min value is negative, either use unsigned or 'var &= const'`);
        if (s.umax >= BPF_MAX_VAR_SIZ) env.fail(`R${r + 1} unbounded memory access, use 'var &= const' or 'if (var < const)'`);
        if (sizeKind === 'size' && s.umin === 0n) env.fail(`R${r + 1} invalid zero-sized read`);
        if (sizeKind !== 'size' && sizeKind !== 'size_or_zero') env.fail('helper prototype without a size argument');
        if (kind === 'mem_or_null' && reg.t === RT.SCALAR && isConst(reg.s) && constValue(reg.s) === 0n) {
          env.markPrecise(st, r);
          if (!(isConst(s) && constValue(s) === 0n)) env.fail(`R${r} NULL memory with a non-zero size`);
        } else {
          // Read (and for mem_rw also written) or written: the memory must allow it.
          if (kind !== 'uninit_mem') helperMem(env, st, r, reg, s.umax, s.umin, 'read');
          if (kind === 'uninit_mem' || kind === 'mem_rw') {
            helperMem(env, st, r, reg, s.umax, s.umin, 'write');
            if (reg.t === RT.STACK) stackWrites.push([reg, Number(s.umax)]);
          }
        }
        k++; // the size argument is consumed
        break;
      }
      case 'size':
      case 'size_or_zero':
        env.fail('size argument without memory');
      case 'alloc_size':
        env.markPrecise(st, r);
        if (reg.t !== RT.SCALAR || !isConst(reg.s)) env.fail(`R${r} is not a known constant`);
        allocSize = Number(constValue(reg.s));
        break;
      case 'long_out': {
        // ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED: 8 writable, aligned bytes.
        helperMem(env, st, r, reg, 8n, 8n, 'write');
        if (!isConst(reg.s) || (Number(BigInt.asIntN(64, constValue(reg.s))) + reg.off) % 8 !== 0) env.fail(`R${r} misaligned access to an 8-byte output argument`);
        if (reg.t === RT.STACK) stackWrites.push([reg, 8]);
        break;
      }
      case 'const_str': constStr(env, r, reg); break;
      case 'btf_task_or_null':
        if (isNullConst(reg)) { env.markPrecise(st, r); break; }
        btfArg(env, r, reg.t === RT.BTF_ID && reg.nul ? { ...reg, nul: false } : reg, 'task_struct');
        break;
      case 'btf_task': btfArg(env, r, reg, 'task_struct'); break;
      case 'btf_seq_file': btfArg(env, r, reg, 'seq_file'); break;
      case 'sock_or_null':
        if (isNullConst(reg)) { env.markPrecise(st, r); break; }
        if (reg.t !== RT.SOCKET || reg.nul || reg.off !== 0) env.fail(`R${r} type=${RT_NAME[reg.t]}${reg.nul ? '_or_null' : ''} expected=sock_or_null`);
        break;
      case 'sock_common':
      case 'btf_sock_common':
        if (!isSockType(reg.t) || reg.nul) env.fail(`R${r} type=${RT_NAME[reg.t]}${reg.nul ? '_or_null' : ''} expected=sock_common, sock, tcp_sock`);
        if (kind === 'sock_common') sockArg = reg;
        break;
      case 'sock_release':
        if (!isSockType(reg.t) || reg.nul || !reg.ref) env.fail(`R${r} must be referenced when passed to release function`);
        if (reg.off !== 0) env.fail(`R${r} must have zero offset when passed to release func`);
        releaseRef = reg.ref;
        break;
      case 'ringbuf_mem':
        if (reg.t !== RT.MEM || reg.nul || !reg.ref) env.fail(`R${r} type=${RT_NAME[reg.t]} expected=ringbuf_mem`);
        if (reg.off !== 0 || !isConst(reg.s) || constValue(reg.s) !== 0n) env.fail(`R${r} must have zero offset when passed to release func`);
        releaseRef = reg.ref;
        break;
    }
  }
  if (h.name === 'tail_call') {
    if (st.refs.length) env.fail('tail_call would lead to reference leak');
    if (st.frames.length > 1) env.fail('tail_call from a subprogram is not modelled');
  }
  for (const [p, n] of stackWrites) markStackMisc(env, st, p, n);
  if (releaseRef) {
    if (!st.refs.includes(releaseRef)) env.fail('release of an unacquired reference');
    st.refs = st.refs.filter((x) => x !== releaseRef);
    mapAllRegs(st, (q) => (q.ref === releaseRef ? NOT_INIT : undefined));
  }
  for (let r = 1; r <= 5; r++) regs[r] = NOT_INIT;
  switch (h.ret) {
    case 'integer': regs[0] = UNKNOWN_REG; break;
    case 'void': regs[0] = NOT_INIT; break;
    case 'map_value_or_null': {
      const m = map!.map!;
      const id = env.newId();
      if (m.type === MAP_TYPE.ARRAY_OF_MAPS || m.type === MAP_TYPE.HASH_OF_MAPS) {
        if (!m.inner) env.fail('map-in-map without an inner map definition');
        regs[0] = ptrReg(RT.MAP_PTR, { map: m.inner, nul: true, id });
      } else if (m.type === MAP_TYPE.SOCKMAP || m.type === MAP_TYPE.SOCKHASH) {
        // Socket maps give a referenced socket (is_acquire_function).
        st.refs = [...st.refs, id];
        regs[0] = ptrReg(RT.SOCKET, { nul: true, id, ref: id });
      } else regs[0] = ptrReg(RT.MAP_VALUE, { map: m, nul: true, id });
      break;
    }
    case 'map_value': regs[0] = ptrReg(RT.MAP_VALUE, { map: map!.map! }); break;
    case 'ringbuf_mem_or_null': {
      const id = env.newId();
      st.refs = [...st.refs, id];
      regs[0] = ptrReg(RT.MEM, { range: allocSize, nul: true, id, ref: id });
      break;
    }
    case 'btf_task_trusted': regs[0] = ptrReg(RT.BTF_ID, { btf: kernelStruct(env, 'task_struct'), flags: BTF_FLAG.TRUSTED }); break;
    case 'btf_pt_regs': regs[0] = ptrReg(RT.BTF_ID, { btf: kernelStruct(env, 'pt_regs') }); break;
    case 'sock_or_null_acquire':
    case 'sock_common_or_null_acquire': {
      const id = env.newId();
      st.refs = [...st.refs, id];
      regs[0] = ptrReg(h.ret === 'sock_or_null_acquire' ? RT.SOCKET : RT.SOCK_COMMON, { nul: true, id, ref: id });
      break;
    }
    // Casts keep the argument's reference: releasing either releases both (is_ptr_cast_function).
    case 'sock_or_null_cast': regs[0] = ptrReg(RT.SOCKET, { nul: true, id: env.newId(), ref: sockArg!.ref }); break;
    case 'tcp_sock_or_null_cast': regs[0] = ptrReg(RT.TCP_SOCK, { nul: true, id: env.newId(), ref: sockArg!.ref }); break;
  }
  if (h.pktData) clearPkt(st);
}
