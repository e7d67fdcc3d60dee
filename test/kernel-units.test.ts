// Pure parts of the kernel layer: section-name rules, verdict classification, log parsing, the
// defensive ELF scan and the byte patches. No bpf() needed.
import test from 'ava';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  classifyFailure, classifyOpenFailure, legacySectionType, processedInsns, sectionProgType, verifierComplaint, fixedMaxEntries,
} from '../src/kernel/fixups.js';
import { scanElf, isolatePrograms, prepareObject } from '../src/kernel/elfscan.js';
import { parseStderr } from '../src/kernel/bpftool-loader.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/build/${name}`, import.meta.url));
const corpus = (name: string) => fileURLToPath(new URL(`../../shared/corpus/ebpf-samples/${name}`, import.meta.url));

test('libbpf 1.1 section names give their program types, unknown ones give null', (t) => {
  t.is(sectionProgType('xdp'), 'xdp');
  t.is(sectionProgType('kprobe/sys_write'), 'kprobe');
  t.is(sectionProgType('kprobe'), 'kprobe');
  t.is(sectionProgType('tracepoint/syscalls/sys_enter_openat'), 'tracepoint');
  t.is(sectionProgType('cgroup_skb/ingress'), 'cgroup_skb');
  t.is(sectionProgType('tc'), 'sched_cls');
  t.is(sectionProgType('fentry/tcp_connect'), 'tracing');
  t.is(sectionProgType('kprobeX'), null, 'a "+" definition needs an exact name or a slash');
  t.is(sectionProgType('xdp_prog'), null);
  t.is(sectionProgType('socket1'), null);
  t.is(sectionProgType('tc/tail'), null);
});

test('legacy section prefixes map to a libbpf 1.1 section of the same type (longest prefix wins)', (t) => {
  t.deepEqual(legacySectionType('socket1'), { prefix: 'socket', canonical: 'socket' });
  t.deepEqual(legacySectionType('xdp_prog'), { prefix: 'xdp', canonical: 'xdp' });
  t.deepEqual(legacySectionType('cgroup/sock1'), { prefix: 'cgroup/sock', canonical: 'cgroup/sock' });
  t.deepEqual(legacySectionType('cgroup/sock_release2'), { prefix: 'cgroup/sock_release', canonical: 'cgroup/sock_release' });
  t.deepEqual(legacySectionType('tc/tail'), { prefix: 'tc/', canonical: 'tc' });
  t.is(legacySectionType('tc_mark'), null, 'only tc/... is a cilium/ebpf convention');
  t.is(legacySectionType('filter'), null);
  t.is(legacySectionType('test'), null);
});

test('max_entries 0 is fixed only for map types that need a positive size', (t) => {
  t.is(fixedMaxEntries('hash'), 64);
  t.is(fixedMaxEntries('ringbuf'), 4096);
  t.is(fixedMaxEntries('perf_event_array'), null);
  t.is(fixedMaxEntries('sk_storage'), null);
});

const REJECT_LOG = `func#0 @0
0: R1=ctx() R10=fp0
0: (61) r1 = *(u32 *)(r1 +0)          ; R1=pkt(r=0)
1: (71) r0 = *(u8 *)(r1 +10)
invalid access to packet, off=10 size=1, R1(id=0,off=10,r=0)
R1 offset is outside of the packet
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
`;

test('the verifier complaint is the text after the last traced instruction, without statistics', (t) => {
  t.is(verifierComplaint(REJECT_LOG), 'invalid access to packet, off=10 size=1, R1(id=0,off=10,r=0); R1 offset is outside of the packet');
  t.is(processedInsns(REJECT_LOG), 2);
  t.is(processedInsns('no stats here'), null);
  t.is(verifierComplaint('5: (85) call bpf_tail_call#12\nexpected prog array map for tail callprocessed 3 insns (limit 1000000)\n'), 'expected prog array map for tail call');
});

test('a kernel refusal with a verifier log is "rejected", libbpf refusals before the kernel are "cannot load here"', (t) => {
  const refused = ["libbpf: prog 'p': BPF program load failed: Permission denied", "libbpf: prog 'p': failed to load: -13"];
  const r = classifyFailure({ name: 'p', type: 'xdp', errno: 13, log: REJECT_LOG, messages: refused });
  t.is(r.verdict, 'rejected');
  t.regex(r.error, /^verifier: invalid access to packet/);

  const missing = classifyFailure({ name: 'p', type: 'unknown', errno: 22, log: '', messages: ["libbpf: prog 'p': missing BPF prog type, check ELF section name 'foo'"] });
  t.is(missing.verdict, 'cannot-load');
  t.regex(missing.error, /program type/);

  const map = classifyFailure({ name: 'p', type: 'xdp', errno: 22, log: '', messages: ["libbpf: map 'z': failed to create: Invalid argument(-22)"] });
  t.is(map.verdict, 'cannot-load');
  t.regex(map.error, /map setup failed.*'z'/);

  const eperm = classifyFailure({ name: 'p', type: 'tracing', errno: 1, log: '', messages: ["libbpf: prog 'p': BPF program load failed: Operation not permitted"] });
  t.is(eperm.verdict, 'cannot-load');
  t.regex(eperm.error, /trampolines/);

  const core = classifyFailure({ name: 'p', type: 'kprobe', errno: 22, log: '3: (85) call unknown#195896080\ninvalid func unknown#195896080\n', messages: ["libbpf: prog 'p': BPF program load failed: Invalid argument"] });
  t.is(core.verdict, 'cannot-load');
  t.regex(core.error, /CO-RE/);
});

test('open failures: legacy maps is "cannot load here", ELF damage is malformed input', (t) => {
  const legacy = classifyOpenFailure(95, ["libbpf: elf: legacy map definitions in 'maps' section are not supported by libbpf v1.0+"]);
  t.false(legacy.malformed);
  t.regex(legacy.error, /^cannot load here: legacy maps section/);
  const bad = classifyOpenFailure(4001, ["libbpf: elf: failed to get section name string at offset 524289 from x: offset out of range"]);
  t.true(bad.malformed);
});

test('the ELF scan refuses truncated and foreign files without throwing', (t) => {
  t.false(scanElf(new Uint8Array(10)).ok);
  t.false(scanElf(new Uint8Array(64)).ok);
  const path = fixture('xdp_parser.o');
  if (!existsSync(path)) return t.fail(`fixture missing: ${path} (run make -C fixtures)`);
  const good = readFileSync(path);
  const s = scanElf(good);
  t.true(s.ok);
  if (s.ok) t.deepEqual(s.scan.programs.map((p) => [p.section, p.name]), [['xdp', 'xdp_parser']]);
  for (const cut of [100, 1000, good.length - 1]) {
    const r = scanElf(good.subarray(0, cut));
    t.false(r.ok, `truncated at ${cut} must not scan`);
  }
  const wrongMachine = new Uint8Array(good);
  wrongMachine[18] = 62; // x86-64
  const r = scanElf(wrongMachine);
  t.false(r.ok);
  if (!r.ok) t.regex(r.reason, /not a BPF object/);
});

test('isolatePrograms leaves exactly the chosen program visible', (t) => {
  const path = fixture('tc_classifier.o');
  if (!existsSync(path)) return t.fail(`fixture missing: ${path}`);
  const bytes = readFileSync(path);
  const s = scanElf(bytes);
  if (!s.ok) return t.fail(s.reason);
  t.true(s.scan.programs.length >= 3);
  for (const keep of s.scan.programs) {
    const iso = scanElf(isolatePrograms(bytes, s.scan, [keep]));
    if (!iso.ok) return t.fail(iso.reason);
    t.deepEqual(iso.scan.programs.map((p) => p.name), [keep.name]);
  }
});

test('old-clang NOTYPE entry symbols become programs spanning their section', (t) => {
  const path = corpus('linux/tcbpf1_kern.o');
  if (!existsSync(path)) return t.fail(`corpus missing: ${path}`);
  const bytes = readFileSync(path);
  const s = scanElf(bytes);
  if (!s.ok) return t.fail(s.reason);
  t.is(s.scan.programs.length, 0, 'libbpf 1.1 sees no program in this object');
  const prep = prepareObject(bytes, s.scan);
  const again = scanElf(prep.bytes);
  if (!again.ok) return t.fail(again.reason);
  t.is(again.scan.programs.length, 5);
  t.true(prep.notes.some((n) => /NOTYPE/.test(n)));
});

test('bpftool stderr parsing recovers each program\'s verifier log and errno', (t) => {
  const stderr = [
    "libbpf: prog 'xdp_oob': BPF program load failed: Permission denied",
    "libbpf: prog 'xdp_oob': -- BEGIN PROG LOAD LOG --",
    '1: (71) r0 = *(u8 *)(r1 +10)',
    'invalid access to packet, off=10 size=1, R1(id=0,off=10,r=0)',
    '-- END PROG LOAD LOG --',
    "libbpf: prog 'xdp_oob': failed to load: -13",
    'Error: failed to load object file',
  ].join('\n');
  const p = parseStderr(stderr);
  t.is(p.errnos.get('xdp_oob'), 13);
  t.regex(p.logs.get('xdp_oob')!, /invalid access to packet/);
  t.false(p.messages.some((m) => m.includes('r0 = *')), 'log lines are not messages');
  t.true(p.messages.some((m) => m.startsWith('Error: ')));
});
