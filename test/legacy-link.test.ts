// The pure half of k2's legacy-maps loader (src/kernel/legacy-link.ts): map definitions and inner
// maps, the prog-array convention of the old loaders, program linking. No bpf() needed.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readObject } from '../src/ir/index.js';
import { CALL_PSEUDO, CLASS, JMP, LD_IMM64, PSEUDO, slotsOf } from '../src/isa/index.js';
import {
  dataMapName, kernelObjName, kernelVersionCode, legacyMaps, linkLegacyProgram, progArraySlot, type LegacyMap,
} from '../src/kernel/legacy-link.js';
import { K2Error } from '../src/util/errors.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const legacy = (n: string) => join(root, 'fixtures/legacy/build', n);
const fixture = (n: string) => join(root, 'fixtures/build', n);
const corpus = (n: string) => fileURLToPath(new URL(`../../shared/corpus/ebpf-samples/${n}`, import.meta.url));
const need = (f: string) => (existsSync(f) ? null : `${f} missing (make -C fixtures; corpus at ../shared/corpus)`);

test('bpf_map_def: inner_map_idx names the inner map by its index in section order', (t) => {
  const why = need(legacy('map_in_map.o'));
  if (why) return t.fail(why);
  const obj = readObject(legacy('map_in_map.o'));
  const maps = legacyMaps(obj);
  t.deepEqual(maps.map((m) => [m.def.name, m.layout]), [['decoy', 'bpf_map_def'], ['inner_action', 'bpf_map_def'], ['outer', 'bpf_map_def']]);
  const outer = maps.find((m) => m.def.name === 'outer')!;
  t.is(obj.maps[outer.inner!]!.name, 'inner_action');
  t.is(outer.innerProblem, null);
  t.is(maps.find((m) => m.def.name === 'decoy')!.inner, null, 'plain maps have no inner map');
});

test('samples/bpf test_map_in_map: every array/hash of maps finds its inner map', (t) => {
  const why = need(corpus('linux/test_map_in_map_kern.o'));
  if (why) return t.fail(why);
  const obj = readObject(corpus('linux/test_map_in_map_kern.o'));
  const outers = legacyMaps(obj).filter((m) => m.def.type === 12 || m.def.type === 13);
  t.true(outers.length >= 2);
  for (const m of outers) {
    t.is(m.innerProblem, null, m.def.name);
    t.false([12, 13].includes(obj.maps[m.inner!]!.type), `${m.def.name}: the inner map is not itself a map-in-map`);
  }
});

test('iproute2 struct bpf_elf_map (36 bytes): ids, and inner_id for map-in-map (Cilium)', (t) => {
  const why = need(corpus('cilium/bpf_xdp_dsr_linux.o'));
  if (why) return t.fail(why);
  const obj = readObject(corpus('cilium/bpf_xdp_dsr_linux.o'));
  const maps = legacyMaps(obj);
  t.true(maps.every((m) => m.layout === 'bpf_elf_map'));
  const outers = maps.filter((m) => m.def.type === 13);
  t.true(outers.length > 0);
  for (const m of outers) {
    if (m.inner === null) {
      t.regex(m.innerProblem ?? '', /inner_id|no map has id/, m.def.name);
      continue;
    }
    const inner = maps.find((x) => x.index === m.inner)!;
    t.not(inner.id, 0);
    t.false([12, 13].includes(inner.def.type));
  }
});

const lm = (index: number, name: string, type: number, layout: LegacyMap['layout'] = 'bpf_map_def', id: number | null = null): LegacyMap => ({
  def: { name, sym: index, section: 'maps', type, keySize: 4, valueSize: 4, maxEntries: 8, flags: 0, btf: layout === 'btf' }, index, layout, id, inner: null, innerProblem: null, numaNode: null,
});

test('prog-array slots: samples/bpf "socket/N" → the last prog array, iproute2 "ID/N" → the prog array with that id', (t) => {
  const maps = [lm(0, 'counts', 2), lm(1, 'first_jmp', 3), lm(2, 'jmp_table', 3)];
  t.like(progArraySlot('socket/3', maps), { map: 2, slot: 3 });
  t.like(progArraySlot('kprobe/12', maps), { map: 2, slot: 12 });
  t.like(progArraySlot('sk_skb/0', maps), { map: 2, slot: 0 });
  t.is(progArraySlot('socket', maps), null);
  t.is(progArraySlot('xdp/1', maps), null, 'bpf_load.c filled prog arrays only for socket/kprobe/sockops/sk_skb/sk_msg');
  t.is(progArraySlot('socket/3', [lm(0, 'counts', 2)]), null, 'no prog array, no slot');
  const elf = [lm(0, 'calls', 3, 'bpf_elf_map', 1), lm(1, 'other', 3, 'bpf_elf_map', 2)];
  t.like(progArraySlot('2/7', elf), { map: 1, slot: 7 });
  t.is(progArraySlot('3/7', elf), null, 'no prog array has id 3');
});

test('kern_version and object names', (t) => {
  t.is(kernelVersionCode('6.18.0-1-amd64'), (6 << 16) + (18 << 8));
  t.is(kernelVersionCode('4.19.300'), (4 << 16) + (19 << 8) + 255, 'the sublevel saturates at 255 (LINUX_VERSION_CODE)');
  t.is(kernelVersionCode('garbage'), 0);
  t.is(kernelObjName('raw_tracepoint/filler/sys_open_x'), 'raw_tracepoint_');
  t.is(dataMapName('xdp_maps', '.rodata'), 'xdp_maps.rodata');
  t.is(dataMapName('a_rather_long_object', '.bss'), 'a_rather.bss', 'libbpf: 15 - max(7, len(".bss")) characters of the object name');
  t.is(dataMapName('global_data', '.rodata.str1.1'), '.rodata.str1.1', 'custom sections keep their name');
  t.is(dataMapName('global_data', '.data.a_long_custom_name'), '.data.a_long_cu');
});

/** Output slot of every instruction of a linked program. */
const slotsOfInsns = (insns: { code: number }[]) => {
  const out: number[] = [];
  let s = 0;
  for (const i of insns) {
    out.push(s);
    s += slotsOf(i as never);
  }
  return { out, total: s };
};

test('linking calls.o: each program gets itself plus exactly the functions it reaches, calls retargeted', (t) => {
  const why = need(fixture('calls.o'));
  if (why) return t.fail(why);
  const obj = readObject(fixture('calls.o'));
  for (const prog of obj.programs) {
    const linked = linkLegacyProgram(obj, prog);
    t.is(linked.functions[0], `${prog.section}:0`, 'the program comes first');
    t.is(new Set(linked.functions).size, linked.functions.length, 'each function once');
    t.true(linked.functions.length > 1, `${prog.name} calls into .text`);
    const { out } = slotsOfInsns(linked.insns);
    // Function starts in output slots: after each other in link order.
    const starts = new Set<number>([0]);
    let calls = 0;
    linked.insns.forEach((insn, i) => {
      if (insn.code === (CLASS.JMP | JMP.CALL) && insn.src === CALL_PSEUDO) {
        calls++;
        const target = out[i]! + 1 + insn.imm;
        t.true(target > 0 && target < slotsOfInsns(linked.insns).total, `${prog.name}: call at ${i} lands inside the program`);
        starts.add(target);
      }
    });
    t.true(calls > 0);
    t.is(starts.size, linked.functions.length, `${prog.name}: every linked function is a call target (none unreachable)`);
    t.deepEqual(linked.loads.filter((l) => linked.insns[l.at]!.code !== LD_IMM64), [], 'map loads are ld_imm64');
  }
  const [a, b] = obj.programs.map((p) => linkLegacyProgram(obj, p));
  t.notDeepEqual(a!.functions.slice(1).sort(), b!.functions.slice(1).sort(), 'the two programs reach different .text functions');
});

test('linking lists map and global-data loads with their offsets', (t) => {
  const why = need(legacy('xdp_maps.o'));
  if (why) return t.fail(why);
  const obj = readObject(legacy('xdp_maps.o'));
  const linked = linkLegacyProgram(obj, obj.programs[0]!);
  const maps = new Set(linked.loads.filter((l) => l.ref.kind === 'map').map((l) => obj.maps[l.ref.index]!.name));
  t.deepEqual([...maps].sort(), ['limits', 'proto_count', 'src_count']);
  const data = linked.loads.filter((l) => l.ref.kind === 'data').map((l) => obj.data[l.ref.index]!.name);
  t.deepEqual([...new Set(data)].sort(), ['.bss', '.rodata']);
  for (const l of linked.loads) t.is(linked.insns[l.at]!.src, 0, 'patched by the loader, not here');
  t.false(linked.insns.some((i) => i.code === LD_IMM64 && i.src === PSEUDO.FUNC));
});

test('linking refuses what the legacy loader does not do: calls to undefined functions, CO-RE', (t) => {
  for (const f of [corpus('falco/probe.o'), fixture('core.o')]) {
    const why = need(f);
    if (why) return t.fail(why);
  }
  const falco = readObject(corpus('falco/probe.o'));
  const filler = falco.programs.find((p) => p.section === 'raw_tracepoint/filler/sys_single')!;
  const e1 = t.throws(() => linkLegacyProgram(falco, filler));
  t.true(e1 instanceof K2Error && e1.kind === 'unsupported');
  t.regex(e1!.message, /call .* to 'memset' outside the object's code/);
  const core = readObject(fixture('core.o'));
  const e2 = t.throws(() => linkLegacyProgram(core, core.programs.find((p) => core.code.find((s) => s.name === p.section)!.insns.some((i) => i.core?.length))!));
  t.regex(e2!.message, /CO-RE relocation/);
});
