// "Rejected" vs "cannot load here" from a failed BPF_PROG_LOAD (classifyLoadError), on errno/log pairs
// captured on this machine's kernel (6.18, lockdown on, fentry/fexit/lsm EPERM), and the pure
// parts of `k2 check` (rows, deltas, exit codes). No bpf() needed.
import test from 'ava';
import { classifyLoadError, type VerifyReport, type ProgramVerdict } from '../src/kernel/index.js';
import { classifyFailure } from '../src/kernel/fixups.js';
import { checkExitCode, checkRows, delta } from '../src/cli/check.js';
import { gateExitCode } from '../src/cli/verify.js';

const STATS = (n: number) => `processed ${n} insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n`;

// Captured: [what, errno, type, verifier log (tail)] → expected verdict and a reason pattern.
const CAPTURED: [string, number, string, string, 'rejected' | 'cannot-load', RegExp][] = [
  // The verifier refused the code: its log ends in the reason.
  ['packet read before the bounds check (ebpf-samples build/packet_overflow.o)', 13, 'xdp',
    'invalid access to packet, off=0 size=4, R2(id=0,off=0,r=0)\nR2 offset is outside of the packet\n' + STATS(5), 'rejected', /^verifier: invalid access to packet.*outside of the packet/],
  ['helper not allowed for the type (build/wronghelper.o)', 22, 'xdp',
    '7: (85) call bpf_sock_map_update#53\nprogram of this type cannot use helper bpf_sock_map_update#53\n' + STATS(7), 'rejected', /cannot use helper bpf_sock_map_update/],
  ['modified ctx pointer (build/ctxoffset.o)', 13, 'sock_ops',
    '8: (85) call bpf_sock_map_update#53\ndereference of modified ctx ptr R1 off=8 disallowed\n' + STATS(8), 'rejected', /dereference of modified ctx ptr/],
  ['tail call through a non-prog-array map (build/tail_call_bad.o; no newline before the stats)', 22, 'xdp',
    '2: (b7) r3 = 0                        ; R3=0\n3: (85) call bpf_tail_call#12\nexpected prog array map for tail call' + STATS(3), 'rejected', /^verifier: expected prog array map for tail call$/],
  ['r0 unset at exit', 13, 'socket_filter', '0: R1=ctx() R10=fp0\n0: (95) exit\nR0 !read_ok\n' + STATS(1), 'rejected', /R0 !read_ok/],
  ['unreachable instruction', 22, 'socket_filter', 'unreachable insn 2\n' + STATS(0), 'rejected', /unreachable insn 2/],
  ['a kernel function the type may not call (kfunc bpf_task_acquire from a socket filter)', 13, 'socket_filter',
    '0: R1=ctx() R10=fp0\n0: (85) call bpf_task_acquire#65329\ncalling kernel function bpf_task_acquire is not allowed\n' + STATS(1), 'rejected', /calling kernel function bpf_task_acquire is not allowed/],
  ['more than 1M instructions', 7, 'socket_filter', '', 'rejected', /E2BIG, no verifier log/],
  // Never judged on its code here.
  ['fentry: trampolines not permitted here (cilium-ebpf-testdata fentry_fexit-el.elf)', 1, 'tracing', '', 'cannot-load', /EPERM.*trampolines/],
  ['lsm/file_open: EPERM', 1, 'lsm', '', 'cannot-load', /EPERM/],
  ['tp_btf with an attach target that does not exist: EINVAL without a log', 22, 'tracing', '', 'cannot-load', /trampolines\/attach targets/],
  ['tp_btf attached to a FUNC instead of a btf_trace typedef', 22, 'tracing', 'attach_btf_id 75670 is not a typedef\n' + STATS(0), 'cannot-load', /attach target missing/],
  ['a kfunc whose BTF id this kernel lacks', 22, 'sched_cls', 'kernel btf_id 9999999 is not a function\n' + STATS(0), 'cannot-load', /kfunc/],
  ['CO-RE relocation that matches no type of this kernel (btf__relocs-el.elf)', 22, 'socket_filter',
    '3: <invalid CO-RE relocation>\nfailed to resolve CO-RE relocation <byte_off> [8] struct s._1 (0:0 @ offset 0)\n' + STATS(4), 'cannot-load', /CO-RE relocation does not match/],
  ['struct_ops without its kernel support (struct_ops-el.elf)', 524, 'struct_ops', STATS(0), 'cannot-load', /ENOTSUPP/],
  ['bpf_probe_write_user under lockdown (linux/test_probe_write_user_kern.o)', 22, 'kprobe',
    '3: (85) call bpf_probe_write_user#36\nprogram of this type cannot use helper bpf_probe_write_user#36\n' + STATS(4), 'cannot-load', /lockdown forbids bpf_probe_write_user/],
];

for (const [what, errno, type, log, verdict, reason] of CAPTURED) {
  test(`classifyLoadError: ${what} → ${verdict}`, (t) => {
    const c = classifyLoadError({ errno, log, type });
    t.is(c.verdict, verdict);
    t.regex(c.error, reason);
    if (verdict === 'cannot-load') t.regex(c.error, /^cannot load here: /);
  });
}

test('classifyLoadError: only the end of the log speaks (a source line echoing a message is not the reason)', (t) => {
  const log = '; // kernel btf_id 1 is not a function, says this comment @ x.c:3\n0: (b7) r0 = 0\n1: (95) exit\nR0 !read_ok\n' + STATS(2);
  t.is(classifyLoadError({ errno: 13, log, type: 'xdp' }).verdict, 'rejected');
  // bpf_probe_write_user outside the tracing family is the program's fault, not lockdown's.
  const xdp = classifyLoadError({ errno: 22, log: 'program of this type cannot use helper bpf_probe_write_user#36\n' + STATS(4), type: 'xdp' });
  t.is(xdp.verdict, 'rejected');
});

test('classifyFailure (libbpf) delegates to classifyLoadError once the kernel was asked', (t) => {
  const msgs = (name: string, what: string) => [`libbpf: prog '${name}': BPF program load failed: ${what}`, `libbpf: prog '${name}': failed to load: -1`];
  const eperm = classifyFailure({ name: 'trace_on_entry', type: 'tracing', errno: 1, log: '', messages: msgs('trace_on_entry', 'Operation not permitted') });
  t.is(eperm.verdict, 'cannot-load');
  const e2big = classifyFailure({ name: 'big', type: 'xdp', errno: 7, log: '', messages: msgs('big', 'Argument list too long') });
  t.is(e2big.verdict, 'rejected');
  t.regex(e2big.error, /kernel refused the program: BPF program load failed: Argument list too long \(E2BIG, no verifier log\)/);
  // libbpf stopped before the kernel: extern kfunc missing from the kernel's BTF
  const ksym = classifyFailure({ name: 'call_kfunc', type: 'sched_cls', errno: 22, log: '', messages: ["libbpf: extern (func ksym) 'bpf_testmod_test_mod_kfunc': not found in kernel or module BTFs", "libbpf: failed to load object 'kfunc_kmod_el'"] });
  t.is(ksym.verdict, 'cannot-load');
  t.regex(ksym.error, /unresolved extern/);
});

// ---------------------------------------------------------------------------------------------
// k2 check: rows, deltas, exit codes.

const prog = (name: string, verdict: ProgramVerdict['verdict'], verified: number | null = null, section = 'xdp'): ProgramVerdict => ({
  section, name, type: 'xdp', verdict, accepted: verdict === 'accepted', verifiedInsns: verified, xlatedInsns: verified, jitedBytes: null,
  error: verdict === 'accepted' ? null : `${verdict} because`, log: verdict === 'rejected' ? 'R0 !read_ok\n' : '', fixups: [], loadMs: 1,
});
const report = (programs: ProgramVerdict[], extra: Partial<VerifyReport> = {}): VerifyReport => ({ file: 'x.o', loader: 'libbpf', malformed: false, objectError: null, fixups: [], programs, ...extra });

test('gate exit codes: 0 all accepted, 1 any rejected, 7 cannot load here and nothing rejected, 2 malformed', (t) => {
  t.is(gateExitCode([report([prog('a', 'accepted'), prog('b', 'accepted')])]), 0);
  t.is(gateExitCode([report([prog('a', 'accepted'), prog('b', 'rejected')])]), 1);
  t.is(gateExitCode([report([prog('a', 'accepted'), prog('b', 'cannot-load')])]), 7);
  t.is(gateExitCode([report([prog('a', 'cannot-load'), prog('b', 'rejected')])]), 1, 'a rejection wins over cannot-load');
  t.is(gateExitCode([report([]), report([prog('a', 'accepted')])]), 7, 'an object without programs could not be checked');
  t.is(gateExitCode([report([], { objectError: 'cannot load here: x' })]), 7);
  t.is(gateExitCode([report([], { malformed: true }), report([prog('b', 'rejected')])]), 2);
});

test('check rows pair programs by section and name; programs only the baseline has are missing', (t) => {
  const after = report([prog('a', 'accepted', 90), prog('b', 'rejected', 5), prog('new', 'accepted', 1)]);
  const before = report([prog('b', 'accepted', 40), prog('a', 'accepted', 100), prog('gone', 'accepted', 7)]);
  const rows = checkRows(after, before);
  t.deepEqual(rows.map((r) => [r.name, r.verdict, r.before?.verdict, r.verifiedInsns, r.before?.verifiedInsns]), [
    ['a', 'accepted', 'accepted', 90, 100],
    ['b', 'rejected', 'accepted', 5, 40],
    ['new', 'accepted', 'missing', 1, null],
    ['gone', 'missing', 'accepted', null, 7],
  ]);
  t.is(checkExitCode([after], [before], rows), 1);
  const ok = report([prog('a', 'accepted', 90)]);
  const okRows = checkRows(ok, report([prog('a', 'accepted', 100), prog('gone', 'accepted', 3)]));
  t.is(checkExitCode([ok], [], okRows), 1, 'a program missing from the object to deploy fails the gate');
  t.is(checkExitCode([ok], [], checkRows(ok, report([prog('a', 'accepted', 100)]))), 0);
  t.is(checkExitCode([ok], [report([], { malformed: true })], checkRows(ok, null)), 2, 'a malformed baseline is bad input');
  t.deepEqual(checkRows(ok, null).map((r) => r.before), [null], 'no baseline: no before column');
});

test('deltas read after - before, with a percentage', (t) => {
  t.is(delta(100, 90), '-10 (-10.0%)');
  t.is(delta(40, 50), '+10 (+25.0%)');
  t.is(delta(7, 7), '0');
  t.is(delta(null, 7), '-');
  t.is(delta(0, 3), '+3');
});
