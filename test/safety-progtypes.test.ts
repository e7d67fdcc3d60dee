// The safety model against the kernel on fixtures/progtypes: one or more programs per program type
// and per modelled verifier rule (BTF-typed tracing, kprobes and uprobes, tracepoints, perf_event,
// sockets and cgroups, .kconfig externs, CO-RE, global functions, map/helper compatibility), each
// judged by the running kernel and by the model. Programs this machine cannot load (fentry/fexit/
// lsm/iter trampolines: EPERM) are "cannot judge here": they are listed and not counted.
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bpfAvailable, verifyObject } from '../src/kernel/index.js';
import { readObjectBytes } from '../src/ir/index.js';
import { checkObject } from '../src/safety/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'fixtures/progtypes/build');

interface Row { file: string; section: string; name: string; type: string; kernel: 'accepted' | 'rejected' | 'cannot-load'; kernelWhy: string | null; k2: boolean; k2Why: string | null }

let rows: Row[] | null = null;
async function judged(): Promise<Row[]> {
  if (rows) return rows;
  const out: Row[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.o')).sort()) {
    const bytes = readFileSync(join(dir, f));
    const obj = readObjectBytes(bytes, f);
    const model = checkObject(obj);
    const report = await verifyObject(bytes, { name: f });
    for (const p of obj.programs) {
      const m = model.find((x) => x.section === p.section && x.name === p.name)!;
      const k = report.programs.find((x) => x.section === p.section && x.name === p.name);
      out.push({ file: f, section: p.section, name: p.name, type: p.progType, kernel: k?.verdict ?? 'cannot-load', kernelWhy: k?.error ?? 'not in the kernel report', k2: m.safe, k2Why: m.reason });
    }
  }
  rows = out;
  return out;
}

test.before(async (t) => {
  if (!existsSync(dir) || !readdirSync(dir).some((f) => f.endsWith('.o'))) t.fail('fixtures/progtypes are not built: run make -C fixtures');
  const avail = await bpfAvailable();
  if (!avail.ok) t.fail(`bpf() is not available here: ${avail.reason}`);
});

test.serial('the model accepts no fixture program the kernel rejects', async (t) => {
  const r = await judged();
  const rejected = r.filter((x) => x.kernel === 'rejected');
  t.true(rejected.length >= 1, 'the fixtures include programs the kernel rejects');
  t.deepEqual(rejected.filter((x) => x.k2).map((x) => `${x.file} ${x.section}/${x.name}: kernel: ${x.kernelWhy}`), []);
});

test.serial('the model accepts every fixture program the kernel accepts', async (t) => {
  const r = await judged();
  const accepted = r.filter((x) => x.kernel === 'accepted');
  t.true(accepted.length >= 40, `only ${accepted.length} fixture programs loaded`);
  const byType = new Map<string, { accepted: number; modelAccepts: number; rejected: number; cannot: number }>();
  for (const x of r) {
    const s = byType.get(x.type) ?? { accepted: 0, modelAccepts: 0, rejected: 0, cannot: 0 };
    if (x.kernel === 'accepted') { s.accepted++; if (x.k2) s.modelAccepts++; }
    else if (x.kernel === 'rejected') s.rejected++;
    else s.cannot++;
    byType.set(x.type, s);
  }
  for (const [type, s] of [...byType].sort()) {
    t.log(`${type.padEnd(18)} kernel accepts ${s.accepted}, model accepts ${s.modelAccepts}; kernel rejects ${s.rejected}; cannot judge here ${s.cannot}`);
  }
  for (const x of r.filter((y) => y.kernel === 'cannot-load')) t.log(`cannot judge here: ${x.file} ${x.section}/${x.name} (model: ${x.k2 ? 'safe' : x.k2Why})`);
  t.deepEqual(accepted.filter((x) => !x.k2).map((x) => `${x.file} ${x.section}/${x.name}: ${x.k2Why}`), []);
});

test.serial('rejections are for the kernel\'s reason (the rule the fixture is about)', async (t) => {
  const r = await judged();
  // Each negative fixture breaks one rule; the model must name the same one.
  const expect: Record<string, RegExp> = {
    sysctl_tcp_mem: /zero-sized read/,
    stack_above_frame: /stack .*off=0 size=8/,
    null_check_reg: /invalid mem access 'map_value_or_null'/,
    null_check_jmp32: /invalid mem access 'map_value_or_null'/,
    devmap_value_write: /write into map forbidden/,
    perf_output_hash: /cannot pass map_type 1 into func bpf_perf_event_output/,
    tail_call_hash: /expected prog array map for tail call|map_type 1 into func bpf_tail_call/,
    ringbuf_leak: /Unreleased reference/,
    helper_not_for_type: /cannot use helper bpf_skb_load_bytes#26/,
    btf_ptr_arg_size: /size 4 must be 8/,
    btf_arg_misaligned: /offset 4 is not multiple of 8/,
    btf_arg_past_last: /doesn't have 5-th argument/,
    btf_walk_write: /only read is supported/,
    btf_walk_negative: /invalid negative access: off=-8/,
    btf_walk_past_struct: /access beyond struct task_struct/,
    btf_ptr_partial: /cannot access ptr member real_parent/,
    btf_nullable_arg: /invalid mem access '.*_or_null/,
    sysctl_write_field: /invalid bpf_context access off=0 size=4/,
    sysctl_return_2: /should have been in \[0, 1\]/,
    sockopt_unchecked: /invalid access to packet, off=0 size=1/,
    perf_regs_narrow: /invalid bpf_context access off=8 size=4/,
    zero_size_at_fp: /invalid write to stack R1 off=0 size=0/,
    zero_size_past_packet: /invalid access to packet, off=4 size=0/,
    pkt_to_ringbuf_output: /helper access to the packet is not allowed/,
    global_void_arg: /size cannot be determined/,
    global_nonnull_maybe_null: /expected to be non-NULL|not nullable/,
    global_mem_too_small: /stack .*off=-4 size=16/,
    global_ctx_mismatch: /expects pointer to ctx|not an unmodified ctx pointer/,
    global_void_return: /doesn't return scalar/,
    k2_cwnd_event: /no write support to tcp_sock at off \d+/,
    kfunc_leak: /Unreleased reference/,
    kfunc_release_unreferenced: /expects refcounted|must be referenced/,
    kfunc_not_allowed: /calling kernel function bpf_cpumask_create is not allowed/,
  };
  for (const x of r.filter((y) => y.kernel === 'rejected')) {
    const re = expect[x.name];
    t.truthy(re, `no expectation for rejected fixture ${x.section}/${x.name} (kernel: ${x.kernelWhy})`);
    if (re) {
      t.regex(x.kernelWhy ?? '', re, `${x.name}: the kernel's reason`);
      t.regex(x.k2Why ?? '', re, `${x.name}: the model's reason`);
    }
  }
});
