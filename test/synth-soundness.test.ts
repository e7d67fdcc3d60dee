// Soundness of the optimizer's rewrites, independent of the checker that proved them: every
// accepted step of every section (each a snapshot of the section) is replayed in the interpreter
// against the original program on generated packets, contexts and map contents, and must behave
// identically. The gate is the safety model, as in `k2 opt`.
import test from 'ava';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { corpusDir, fixtureObjects } from './helpers/paths.js';
import { optimizeSection, DEFAULT_SYNTH, type RewriteStep } from '../src/synth/index.js';
import { programCode, readObject, type BpfObject } from '../src/ir/index.js';
import { checkLinked, checkObject, linkProgram } from '../src/safety/index.js';
import { shutdownZ3 } from '../src/smt/index.js';
import { interpDiffers } from '../src/smt/soundness.js';

test.after.always(async () => {
  await shutdownZ3();
});

async function optimizeAll(obj: BpfObject, budgetMs: number): Promise<{ obj: BpfObject; steps: { secIndex: number; step: RewriteStep }[] }> {
  const safe = new Map(checkObject(obj).map((v) => [`${v.section}/${v.name}`, v.safe]));
  const steps: { secIndex: number; step: RewriteStep }[] = [];
  let cur = obj;
  for (let i = 0; i < cur.code.length; i++) {
    const name = cur.code[i]!.name;
    const users = cur.programs.filter((p) => safe.get(`${p.section}/${p.name}`) && programCode(cur, p).some((s) => s.name === name));
    if (!users.length) continue;
    const gate = (c: BpfObject): boolean => users.every((p) => { try { return checkLinked(linkProgram(c, p)).safe; } catch { return false; } });
    const r = await optimizeSection(cur, i, gate, { ...DEFAULT_SYNTH, budgetMs, timeoutMs: 4000, search: { ...DEFAULT_SYNTH.search, iterations: 200 } });
    for (const step of r.steps) steps.push({ secIndex: i, step });
    cur = r.obj;
  }
  return { obj: cur, steps };
}

// ld_ind windows; map-value atomics; a subsumed bounds check and hoisted constants; null checks of the context
const CORPUS = ['new_linux/sockex2_kern.o', 'linux/xdp_monitor_kern.o', 'cilium-examples/xdp_bpf_bpfel.o', 'cilium-examples/tcprtt_sockops_bpf_bpfel.o'];
const kindsSeen = new Set<string>();
// jmp32.o: a global's address re-loaded while a register holds it, copies; socket_filter.o: tails
// merged across a fall-through after moving constants up
for (const name of ['redundant.o', 'xdp_parser.o', 'tc_classifier.o', 'calls.o', 'atomics.o', 'cgroup_skb.o', 'jmp32.o', 'socket_filter.o', ...CORPUS]) {
  test.serial(`every accepted rewrite of ${name} runs identically in the interpreter`, async (t) => {
    const f = CORPUS.includes(name) ? join(corpusDir, name) : fixtureObjects().find((p) => p.endsWith(`/${name}`));
    if (!f || !existsSync(f)) return t.fail(`${name} missing (fixtures: make -C fixtures; corpus: ../shared/corpus)`);
    const orig = readObject(f);
    const { obj, steps } = await optimizeAll(orig, 2500);
    t.true(steps.length > 0, 'something was rewritten');
    for (const s of steps) kindsSeen.add(s.step.kind);
    let runs = 0;
    // each step's snapshot in place of its section (earlier sections already final, later ones original)
    let base = orig;
    const bySection = new Map<number, RewriteStep[]>();
    for (const s of steps) bySection.set(s.secIndex, [...(bySection.get(s.secIndex) ?? []), s.step]);
    for (let i = 0; i < orig.code.length; i++) {
      for (const step of bySection.get(i) ?? []) {
        const snap: BpfObject = { ...base, code: base.code.map((s, k) => (k === i ? step.after : s)) };
        for (const p of orig.programs.filter((q) => programCode(orig, q).some((s) => s.name === orig.code[i]!.name))) {
          const d = interpDiffers(orig, snap, p, 24, 17);
          if (d === null) continue; // a program type the interpreter cannot run
          t.false(d, `${name} ${orig.code[i]!.name}: step ${step.kind} at ${step.start} changes ${p.name}`);
          runs += 24;
        }
      }
      base = { ...base, code: base.code.map((s, k) => (k === i ? obj.code[i]! : s)) };
    }
    t.log(`${steps.length} steps, ${runs} interpreter runs per side`);
    t.true(runs > 0);
  });
}

// superblock windows (side exits) depend on what the stochastic search finds within the budget;
// their proofs and moves are unit-tested in synth-window and synth-moves
test.serial('the replayed rewrites include every region rewrite kind', (t) => {
  for (const k of ['const-hoist', 'bounds-merge', 'null-check', 'window', 'dead-store', 'store-imm', 'redundant-load', 'copy-prop', 'tail-merge']) t.true(kindsSeen.has(k), `${k} among ${[...kindsSeen].join(', ')}`);
  t.log(`kinds replayed: ${[...kindsSeen].sort().join(', ')}`);
});
