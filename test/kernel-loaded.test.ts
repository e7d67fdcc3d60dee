// LoadedObject.mapFd and LoadedObject.loadedInsns for every loader, and the loader's code mapped back
// onto k2's IR (src/testgen/loaded.ts) so that check-semantics runs CO-RE relocations and .kconfig
// externs with the values the loader patched in. Cross-checks: the fd mapFd gives is the map the
// loaded ld_imm64 instructions name; LINUX_KERNEL_VERSION as libbpf filled it equals this kernel's
// release; the loader's CO-RE values equal k2's model wherever the model claims to know them.
// Needs root (bpf()), the built fixtures and ../shared/corpus.
import test from 'ava';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { readObject } from '../src/ir/index.js';
import { LD_IMM64, PSEUDO, slotsOf } from '../src/isa/index.js';
import { MapHandle, openLoaded, type LoadedObject, type LoaderKind } from '../src/kernel/index.js';
import { kernelVersionCode } from '../src/kernel/legacy-link.js';
import { checkSemantics, loaderMapping } from '../src/testgen/diff.js';
import { loaderPatches, POISONED } from '../src/testgen/loaded.js';
import { coreRelocated } from '../src/interp/core.js';

const root = new URL('..', import.meta.url).pathname;
const testdata = new URL('../../shared/corpus/cilium-ebpf-testdata', import.meta.url).pathname;
const samples = new URL('../../shared/corpus/ebpf-samples', import.meta.url).pathname;

/** Every ld_imm64 of a map (src MAP_FD / MAP_VALUE) in loaded code: its fd (imm). */
function mapFdsIn(insns: Uint8Array): Set<number> {
  const out = new Set<number>();
  const v = new DataView(insns.buffer, insns.byteOffset, insns.byteLength);
  for (let at = 0; at + 8 <= insns.length; at += 8) {
    if (v.getUint8(at) !== LD_IMM64) continue;
    const src = v.getUint8(at + 1) >> 4;
    if (src === PSEUDO.MAP_FD || src === PSEUDO.MAP_VALUE) out.add(v.getInt32(at + 4, true));
    at += 8;
  }
  return out;
}

const cases: { loader: LoaderKind; file: string }[] = [
  { loader: 'libbpf', file: join(root, 'fixtures/build/calls.o') },
  { loader: 'legacy', file: join(root, 'fixtures/legacy/build/xdp_maps.o') },
  { loader: 'bpftool', file: join(root, 'fixtures/build/calls.o') },
];

for (const c of cases) {
  test.serial(`${c.loader}: mapFd is the map the loaded code names and the loader reads`, async (t) => {
    if (!existsSync(c.file)) return t.fail(`${c.file} not built (make -C fixtures)`);
    const k: LoadedObject = await openLoaded(c.file, c.loader === 'bpftool' ? { loader: 'bpftool' } : {});
    try {
      t.is(k.loader, c.loader);
      const infos = (await k.maps()).filter((m) => m.type === 'array' && m.keySize === 4 && !m.name.includes('.'));
      t.true(infos.length > 0, 'an array map to write');
      const fds = new Map(infos.map((m) => [m.name, k.mapFd(m.name)]));
      t.is(new Set(fds.values()).size, fds.size, 'one fd per map');
      for (const info of infos) {
        // Written through the fd, read back through the loader's own path.
        const h = new MapHandle({ ...info, typeId: 2 }, fds.get(info.name)!);
        const v = new Uint8Array(info.valueSize).fill(0x3c);
        h.update(new Uint8Array([0, 0, 0, 0]), v);
        const seen = (await k.readMap(info.name)).find((e) => e.key.every((b) => b === 0));
        t.deepEqual(seen && Buffer.from(seen.value), Buffer.from(v), info.name);
      }
      const accepted = k.programs.filter((p) => p.accepted);
      t.true(accepted.length > 0);
      for (const p of accepted) {
        const insns = k.loadedInsns(p.name);
        if (c.loader === 'bpftool') {
          t.is(insns, null, 'bpftool does not say what it loaded');
          continue;
        }
        t.truthy(insns);
        t.is(insns!.length % 8, 0);
        // Every map the loaded code names is one of the object's maps, by the fd mapFd gives.
        const all = new Set<number>();
        for (const m of await k.maps()) all.add(k.mapFd(m.name));
        const named = mapFdsIn(insns!);
        t.true(named.size > 0, `${p.name} uses maps`);
        for (const fd of named) t.true(all.has(fd), `${p.name}: fd ${fd} is none of the object's maps`);
      }
      if (c.loader !== 'bpftool') {
        // The loaded code maps back onto the object's, called functions included.
        const obj = readObject(c.file);
        const m = await loaderMapping(obj, k, obj.programs);
        t.deepEqual([...m!.problems], []);
        t.is(m!.functions.size, accepted.length);
        if (c.loader === 'libbpf') t.true([...m!.functions.values()].some((n) => n > 1), 'some program calls a function');
      }
      t.throws(() => k.mapFd('no_such_map'), { message: /no map named/ });
    } finally {
      await k.close();
    }
  });
}

test.serial('.kconfig externs: the interpreter reads the values libbpf filled in (LINUX_KERNEL_VERSION = this kernel)', async (t) => {
  const f = join(testdata, 'kconfig-el.elf');
  if (!existsSync(f)) return t.fail(`corpus not found: ${f}`);
  const obj = readObject(f);
  const k = await openLoaded(f);
  try {
    const m = await loaderMapping(obj, k, obj.programs);
    t.truthy(m);
    t.deepEqual([...m!.problems], []);
    t.is(m!.patches.maps.length, 1);
    const kconfig = m!.patches.maps[0]!;
    t.regex(kconfig.spec.name, /\.kconfig$/);
    // The extern LINUX_KERNEL_VERSION: its ld_imm64 points at the offset libbpf gave it.
    const sec = obj.code.find((s) => s.name === 'socket')!;
    const at = sec.insns.findIndex((i) => i.reloc && obj.elf.symbols[i.reloc.sym]?.name === 'LINUX_KERNEL_VERSION');
    const ref = m!.patches.values.get('socket')?.get(at);
    t.truthy(ref, 'LINUX_KERNEL_VERSION resolved');
    const v = new DataView(kconfig.init.buffer, kconfig.init.byteOffset).getUint32(ref!.offset, true);
    t.is(v, kernelVersionCode(release()));
  } finally {
    await k.close();
  }
  const r = await checkSemantics(f, { inputs: 16, seed: 1 });
  t.deepEqual(r.untestable, []);
  t.is(r.programs[0]?.inputs, 16);
  t.is(r.programs[0]?.mismatches, 0);
});

test.serial("CO-RE: the loader's values agree with k2's model wherever the model knows them, and are used for the rest", async (t) => {
  const files = ['btf__relocs-el.elf', 'btf__relocs_enum-el.elf', 'btf__relocs_read-el.elf', 'errors-el.elf'].map((n) => join(testdata, n));
  let patched = 0;
  let agree = 0;
  let modelUnknown = 0;
  for (const f of files) {
    if (!existsSync(f)) return t.fail(`corpus not found: ${f}`);
    const obj = readObject(f);
    const k = await openLoaded(f);
    try {
      const m = await loaderMapping(obj, k, obj.programs);
      if (!m) continue;
      t.deepEqual([...m.problems], [], f);
      for (const [sec, insns] of m.patches.insns) {
        for (const [i, v] of insns) {
          if (typeof v === 'string') {
            t.is(v, POISONED);
            continue;
          }
          patched++;
          const insn = obj.code.find((s) => s.name === sec)!.insns[i]!;
          const model = coreRelocated(obj, insn);
          if (!('insn' in model)) {
            modelUnknown++;
            continue;
          }
          t.deepEqual(
            { code: model.insn.code, off: model.insn.off, imm: model.insn.imm, imm2: insn.code === LD_IMM64 ? model.insn.imm2 ?? 0 : 0 },
            v,
            `${f} ${sec} #${i}: model and loader disagree`,
          );
          agree++;
        }
      }
    } finally {
      await k.close();
    }
  }
  t.log(`${patched} CO-RE relocated instructions: ${agree} agree with k2's model, ${modelUnknown} the model cannot tell`);
  t.true(patched >= 40, `only ${patched} relocated instructions seen`);
  t.true(agree >= 30);
  // The programs with values only the loader knows are tested too.
  const r = await checkSemantics(files[0]!, { inputs: 16, seed: 1 });
  const tested = r.programs.filter((p) => p.inputs > 0).map((p) => p.name);
  t.true(tested.length >= 5, `tested: ${tested.join(', ')}; untestable: ${JSON.stringify(r.untestable)}`);
  for (const p of r.programs) t.is(p.mismatches, 0, `${p.name}: ${JSON.stringify(p.firstMismatch)}`);
});

test.serial('loaded code that does not line up with the object is not used', async (t) => {
  const f = join(samples, 'cilium-core/bpf_overlay.o');
  if (!existsSync(f)) return t.fail(`corpus not found: ${f}`);
  const obj = readObject(f);
  const k = await openLoaded(f, {});
  try {
    const prog = obj.programs.find((p) => p.name === 'tail_mcast_ep_delivery');
    if (!prog) return t.fail('tail_mcast_ep_delivery not in bpf_overlay.o');
    const insns = k.loadedInsns(prog.name)!;
    // A bpf_loop callback, found through its ld_imm64 (a relocation against .text), is appended too.
    const good = loaderPatches(obj, [{ prog, insns }], new Map());
    t.deepEqual([...good.problems], []);
    t.is(good.functions.get(prog.name), 2);
    // One opcode changed where the loader changes nothing: the mapping is refused.
    const sec = obj.code.find((s) => s.name === prog.section)!;
    const start = sec.insns.findIndex((i) => i.labels?.includes(prog.entry));
    let slot = 0;
    for (let i = start; i < start + 3; i++) slot += slotsOf(sec.insns[i]!);
    const bad = insns.slice();
    bad[slot * 8] = bad[slot * 8] === 0xb7 ? 0xbf : 0xb7;
    const r = loaderPatches(obj, [{ prog, insns: bad }], new Map());
    t.regex(r.problems.get(prog.name) ?? '', /opcode/);
    // Truncated: past the end.
    const short = loaderPatches(obj, [{ prog, insns: insns.slice(0, 64) }], new Map());
    t.regex(short.problems.get(prog.name) ?? '', /past the loaded program/);
  } finally {
    await k.close();
  }
});
