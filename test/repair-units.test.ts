// k2 repair's pure parts: the verifier-log reader (on logs captured from this kernel, 6.18), the
// classification of rejection reasons, the libbpf layout, call inlining and the free-context
// rewrite used by the proofs.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readObject, objectBytes, findLabel } from '../src/ir/index.js';
import { classifyReason, parseVerifierLog, linkedLayout, funcAt, inlineCall, callDepth, frameDepth } from '../src/repair/index.js';
import { bytesFrom, parseRegView } from '../src/repair/log.js';
import { CLASS, JMP, REG_FP, opClass, jmpOp } from '../src/isa/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (name: string) => join(root, 'fixtures/repair/build', name);

// Captured from `k2 verify --json` on fixtures/repair/build/spill_narrow.O2.o (kernel 6.18).
const SPILL_LOG = `0: R1=ctx() R10=fp0
; __u32 slot = ctx->rx_queue_index; @ spill_narrow.c:9
0: (61) r1 = *(u32 *)(r1 +16)         ; R1=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))
1: (63) *(u32 *)(r10 -4) = r1         ; R1=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0 fp-8=mmmm????
2: (25) if r1 > 0xf goto pc+11        ; R1=scalar(smin=smin32=0,smax=umax=smax32=umax32=15,var_off=(0x0; 0xf))
3: (bf) r2 = r10                      ; R2=fp0 R10=fp0
4: (07) r2 += -4                      ; R2=fp-4
5: (18) r1 = 0xffff8881665a4800       ; R1=map_ptr(map=hist,ks=4,vs=128)
7: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1,map=hist,ks=4,vs=128)
8: (15) if r0 == 0x0 goto pc+5        ; R0=map_value(map=hist,ks=4,vs=128)
9: (61) r1 = *(u32 *)(r10 -4)         ; R1=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0 fp-8=mmmm????
10: (67) r1 <<= 3                     ; R1=scalar(smin=0,smax=umax=0x7fffffff8,smax32=0x7ffffff8,umax32=0xfffffff8,var_off=(0x0; 0x7fffffff8))
11: (0f) r0 += r1                     ; R0=map_value(map=hist,ks=4,vs=128,smin=0,smax=umax=0x7fffffff8,smax32=0x7ffffff8,umax32=0xfffffff8,var_off=(0x0; 0x7fffffff8)) R1=scalar(smin=0,smax=umax=0x7fffffff8,smax32=0x7ffffff8,umax32=0xfffffff8,var_off=(0x0; 0x7fffffff8))
12: (b7) r1 = 1                       ; R1=1
13: (db) lock *(u64 *)(r0 +0) += r1
R0 unbounded memory access, make sure to bounds check any such access
processed 13 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 0
`;

// uninit_infeasible.O2.o: a jump followed on the same line by the state at its target.
const UNINIT_LOG = `0: R1=ctx() R10=fp0
0: (61) r7 = *(u32 *)(r1 +12)         ; R1=ctx() R7=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))
1: (61) r8 = *(u32 *)(r1 +16)         ; R1=ctx() R8=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))
2: (3e) if w8 >= w7 goto pc+2 5: R1=ctx() R7=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R8=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0
5: (b4) w1 = 0                        ; R1=0
6: (63) *(u32 *)(r10 -4) = r1         ; R1=0 R10=fp0 fp-8=0000????
7: (bf) r2 = r10                      ; R2=fp0 R10=fp0
8: (07) r2 += -4                      ; R2=fp-4
9: (18) r1 = 0xffff88820d5f7c00       ; R1=map_ptr(map=stats,ks=4,vs=8)
11: (85) call bpf_map_lookup_elem#1   ; R0=map_value(map=stats,ks=4,vs=8)
12: (15) if r0 == 0x0 goto pc+2       ; R0=map_value(map=stats,ks=4,vs=8)
13: (3e) if w8 >= w7 goto pc+1        ; R7=scalar(smin=umin=umin32=1,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R8=scalar(smin=0,smax=umax=umax32=0xfffffffe,var_off=(0x0; 0xffffffff))
14: (7b) *(u64 *)(r0 +0) = r6
R6 !read_ok
processed 27 insns (limit 1000000) max_states_per_insn 1 total_states 2 peak_states 2 mark_read 0
`;

// call_depth.O2.o (tail): calls print caller/callee frames.
const DEPTH_LOG = `0: R1=ctx() R10=fp0
0: (61) r1 = *(u32 *)(r1 +12)         ; R1=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))
1: (85) call pc+2
caller:
 R10=fp0
callee:
 frame1: R1=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0
4: frame1: R1=scalar(smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff)) R10=fp0
4: (07) r1 += 8                       ; frame1: R1=scalar(smin=umin=8,smax=umax=0x100000007,var_off=(0x0; 0x1ffffffff))
5: (85) call pc+2
the call stack of 9 frames is too deep
processed 16 insns (limit 1000000) max_states_per_insn 1 total_states 2 peak_states 2 mark_read 0
`;

test('the log reader finds the failing instruction, the reason and the registers before it', (t) => {
  const f = parseVerifierLog(SPILL_LOG)!;
  t.is(f.insn, 13);
  t.is(f.opcode, 0xdb);
  t.is(f.reason, 'R0 unbounded memory access, make sure to bounds check any such access');
  t.deepEqual(f.failure, { kind: 'bounds', reg: 0 });
  const r0 = f.regs.get(0)!;
  t.is(r0.type, 'map_value');
  t.is(r0.fields.vs, '128');
  t.is(r0.fields.smax, '0x7fffffff8');
  t.is(bytesFrom(r0), 128);
  t.is(f.regs.get(1)!.type, 'const');
  t.is(f.regs.get(1)!.value, 1n);
  t.is(f.seen.length, 13); // 0..13 without 6, the second slot of the ld_imm64 at 5
  t.deepEqual(f.seen[5], { insn: 5, opcode: 0x18 });
});

test('the log reader takes the state printed after a jump on the same line', (t) => {
  const f = parseVerifierLog(UNINIT_LOG)!;
  t.is(f.insn, 14);
  t.deepEqual(f.failure, { kind: 'uninit', reg: 6 });
  t.false(f.regs.has(6));
  t.is(f.regs.get(0)!.type, 'map_value');
  t.is(f.regs.get(2)!.type, 'fp');
  t.is(f.regs.get(2)!.fpOff, -4);
  t.is(bytesFrom(f.regs.get(2)!), 4);
});

test('the log reader follows call frames', (t) => {
  const f = parseVerifierLog(DEPTH_LOG)!;
  t.is(f.insn, 5);
  t.deepEqual(f.failure, { kind: 'call-depth', frames: 9 });
  t.is(f.frame, 1);
  t.is(f.regs.get(1)!.fields.umin, '8');
});

test('rejection reasons are classified', (t) => {
  t.deepEqual(classifyReason('At program exit the register R0 has smin=0 smax=4294967295 should have been in [0, 3]'), { kind: 'retval', lo: 0n, hi: 3n });
  t.deepEqual(classifyReason('At program exit the register R0 has unknown scalar value should have been in [0, 1]'), { kind: 'retval', lo: 0n, hi: 1n });
  t.deepEqual(classifyReason("R2 min value is negative, either use unsigned or 'var &= const'"), { kind: 'bounds', reg: 2 });
  t.deepEqual(classifyReason('invalid access to map value, value_size=64 off=64 size=8; R0 max value is outside of the allowed memory range'), { kind: 'bounds', reg: 0, valueSize: 64, off: 64, size: 8 });
  t.deepEqual(classifyReason('invalid access to packet, off=0 size=4, R1(id=1,off=0,r=0); R1 offset is outside of the packet'), { kind: 'packet', reg: 1 });
  t.deepEqual(classifyReason('math between map_value pointer and register with unbounded min value is not allowed'), { kind: 'ptr-math', ptrType: 'map_value' });
  t.deepEqual(classifyReason('R1 type=ctx expected=fp'), { kind: 'other' });
  t.deepEqual(parseRegView('ringbuf_mem(ref_obj_id=2,off=4,sz=68)').fields, { ref_obj_id: '2', off: '4', sz: '68' });
  t.is(bytesFrom(parseRegView('ringbuf_mem(ref_obj_id=2,off=4,sz=68)')), 64);
  t.is(bytesFrom(parseRegView('pkt(id=1,off=2,r=6)')), 4);
});

const built = (name: string) => (t: { fail: (m: string) => void }) => {
  if (!existsSync(fixture(name))) {
    t.fail(`${fixture(name)} missing: run make -C fixtures`);
    return false;
  }
  return true;
};

test('the linked layout numbers instructions as libbpf does (depth first, ld_imm64 takes two slots)', (t) => {
  if (!built('call_depth.O2.o')(t)) return;
  const obj = readObject(fixture('call_depth.O2.o'));
  const prog = obj.programs[0]!;
  const l = linkedLayout(obj, prog);
  // deep (4 insns), then f8 at 4, f7 at 8, ... as the kernel log numbers them
  t.deepEqual(l.funcs.map((f) => f.linkedStart), [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]);
  t.deepEqual(l.funcs.map((f) => f.name), ['deep', 'f8', 'f7', 'f6', 'f5', 'f4', 'f3', 'f2', 'f1', 'f0']);
  t.is(callDepth(obj, l.funcs[0]!), 10);
  const spill = readObject(fixture('spill_narrow.O2.o'));
  const ls = linkedLayout(spill, spill.programs[0]!);
  t.is(ls.at[6], null); // second slot of the ld_imm64 at 5
  t.is(ls.at[7]!.index, 6);
});

test('inlining a call removes one frame and keeps the object writable', (t) => {
  if (!built('call_depth.O2.o')(t)) return;
  const obj = readObject(fixture('call_depth.O2.o'));
  const text = obj.code.find((s) => s.name === '.text')!;
  const f1 = text.symbols.find((s) => obj.elf.symbols[s.sym]!.name === 'f1')!;
  const at = findLabel(text, f1.start) + 1; // f1: r1 += 1; call f0; ...
  t.is(jmpOp(text.insns[at]!.code), JMP.CALL);
  const r = inlineCall(obj, '.text', at);
  if (!r.ok) return t.fail(r.why);
  const after = r.obj.code.find((s) => s.name === '.text')!;
  const f1After = funcAt(r.obj, '.text', findLabel(after, f1.start));
  const calls = after.insns.slice(f1After.start, f1After.end).filter((i) => opClass(i.code) === CLASS.JMP && jmpOp(i.code) === JMP.CALL);
  t.is(calls.length, 0);
  t.is(callDepth(r.obj, linkedLayout(r.obj, r.obj.programs[0]!).funcs[0]!), 9);
  t.notThrows(() => objectBytes(r.obj));
  t.is(frameDepth(after, f1After), 0);
});

test('frameDepth follows frame pointers copied and adjusted before a helper call', (t) => {
  if (!built('spill_narrow.O2.o')(t)) return;
  const obj = readObject(fixture('spill_narrow.O2.o'));
  const sec = obj.code.find((s) => s.name === 'xdp')!;
  t.is(frameDepth(sec, funcAt(obj, 'xdp', 0)), 8);
  t.true(sec.insns.some((i) => i.src === REG_FP));
});

