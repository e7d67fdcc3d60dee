// k2 repair never makes an unsafe program loadable: the truly unsafe fixtures (a packet read
// without a bounds check, a read past a map value, an unchecked index into global data) stay
// rejected, OUT keeps their code, and the report carries the verifier's reason and the input on
// which the input program faults (replayed in k2's interpreter where the interpreter can take it).
// Also the command line: exit codes, --json, --report, --help.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { readObject } from '../src/ir/index.js';
import { bpfAvailable, verifyObject } from '../src/kernel/index.js';
import { repairObject } from '../src/repair/index.js';
import { shutdownZ3 } from '../src/smt/index.js';
import { prepareObject, Runner } from '../src/interp/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = (name: string) => join(root, 'fixtures/repair/build', name);
const k2 = join(root, 'bin/k2.js');

const avail = await bpfAvailable('libbpf');
if (!avail.ok) console.error(`\n*** repair-cli: SKIPPING (needs bpf()): ${avail.reason} ***\n`);
const kernelTest = avail.ok ? test.serial : test.skip;
test.after.always(async () => shutdownZ3());

const UNSAFE = [
  { name: 'unsafe_pkt', reason: /R1 offset is outside of the packet/ },
  { name: 'unsafe_map', reason: /invalid access to map value, value_size=64 off=64 size=8/ },
  { name: 'unsafe_index', reason: /R2 unbounded memory access/ },
];

for (const u of UNSAFE) {
  for (const o of ['O1', 'O2']) {
    const file = `${u.name}.${o}.o`;
    kernelTest(`${file}: truly unsafe, stays rejected, the report gives the faulting input`, async (t) => {
      if (!existsSync(fixture(file))) return t.fail(`${fixture(file)} missing: run make -C fixtures`);
      const input = readObject(fixture(file));
      const r = await repairObject(input);
      const p = r.programs[0]!;
      t.is(p.before.verdict, 'rejected');
      t.regex(p.before.reason ?? '', u.reason);
      t.false(p.repaired);
      t.is(r.remaining, 1);
      t.deepEqual(p.changes, []);
      // OUT keeps the input code: the program is still rejected, for the same reason
      t.deepEqual(r.obj.code.map((s) => s.insns.length), input.code.map((s) => s.insns.length));
      t.is(p.after?.verdict, 'rejected');
      t.regex(p.after?.reason ?? '', u.reason);
      const f = p.unsafe;
      if (!f) return t.fail(`no unsafe finding: ${p.remaining}`);
      t.regex(f.reason, u.reason);
      t.true(f.faults);
      t.true(f.kernelAccepts);
      t.is(f.counterexample.difference.what, 'end');
      t.is(Number(f.counterexample.difference.a), 1, 'the input program should fault on the counterexample'); // 1 = fault
      t.is(Number(f.counterexample.difference.b), 0); // 0 = exit: the check the repair would add

      if (u.name === 'unsafe_index') {
        // counts[q] with 10 elements: any queue_mapping >= 10 writes past .bss
        t.true(BigInt(f.context['__sk_buff.queue_mapping'] ?? '0') >= 10n, f.input);
        return;
      }
      // xdp: replay the input in the interpreter: the input program faults on it
      const cex = f.counterexample;
      const packet = new Uint8Array(cex.packetLen ?? 0);
      if (cex.packet) packet.set(Buffer.from(cex.packet, 'hex').subarray(0, packet.length));
      const ctx = new Uint8Array(24);
      const rxq = f.context['xdp_md.rx_queue_index'];
      if (rxq !== undefined) new DataView(ctx.buffer).setUint32(16, Number(rxq), true);
      if (u.name === 'unsafe_pkt') t.true(packet.length < 14, f.input);
      if (u.name === 'unsafe_map') t.true(Number(rxq) >= 8, f.input);
      const prep = prepareObject(input);
      const out = new Runner(prep.unit).run(input.programs[0]!.name, 'xdp', { packet, ...(rxq !== undefined ? { ctx } : {}) }, prep.initialMaps());
      t.is(out.status, 'fault', `${f.input}: the interpreter does not fault`);
    });
  }
}

kernelTest('k2 repair: exit 0 and a repaired object for a safe fixture, with --report', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-repair-cli-'));
  try {
    const out = join(dir, 'out.o');
    const rep = join(dir, 'r.json');
    const r = await execa('node', [k2, 'repair', fixture('pkt_other_reg.O2.o'), '-o', out, '--report', rep], { reject: false });
    t.is(r.exitCode, 0, r.stderr);
    t.regex(r.stdout, /pkt_other_reg\s+xdp\s+REJECTED\s+yes\s+equivalent\s+accepted/);
    t.regex(r.stdout, /packet-check at xdp:\d+ \(pkt_other_reg\.c:12\)/);
    const v = await verifyObject(out);
    t.is(v.programs[0]!.verdict, 'accepted');
    const j = JSON.parse(readFileSync(rep, 'utf8'));
    t.is(j.repaired, 1);
    t.is(j.programs[0].changes[0].kind, 'packet-check');
    t.is(j.programs[0].changes[0].where.line, 12);
    t.is(j.programs[0].after.verdict, 'accepted');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('k2 repair: exit 1 for an unsafe program, OUT still written, --json has the input', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-repair-cli-'));
  try {
    const out = join(dir, 'out.o');
    const r = await execa('node', [k2, 'repair', fixture('unsafe_map.O2.o'), '-o', out, '--json'], { reject: false });
    t.is(r.exitCode, 1, r.stderr);
    t.true(existsSync(out));
    const j = JSON.parse(r.stdout);
    t.is(j.remaining, 1);
    t.regex(j.programs[0].unsafe.input, /xdp_md\.rx_queue_index = \d+.*fault in the input program/);
    const text = await execa('node', [k2, 'repair', fixture('unsafe_map.O2.o'), '-o', out], { reject: false });
    t.is(text.exitCode, 1);
    t.regex(text.stdout, /UNSAFE/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('k2 repair: bad input and usage exit 2, --help lists the exit codes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2-repair-cli-'));
  try {
    const junk = join(dir, 'junk.o');
    writeFileSync(junk, 'not an ELF object');
    const bad = await execa('node', [k2, 'repair', junk, '-o', join(dir, 'o.o')], { reject: false });
    t.is(bad.exitCode, 2);
    t.regex(bad.stderr, /^k2: .*junk\.o/m);
    const noOut = await execa('node', [k2, 'repair', fixture('pkt_other_reg.O2.o')], { reject: false });
    t.is(noOut.exitCode, 2);
    const badFlag = await execa('node', [k2, 'repair', fixture('pkt_other_reg.O2.o'), '-o', join(dir, 'o.o'), '--timeout-ms', 'x'], { reject: false });
    t.is(badFlag.exitCode, 2);
    const help = await execa('node', [k2, 'repair', '--help'], { reject: false });
    t.is(help.exitCode, 0);
    for (const s of ['--report', '--json', 'Exit status', 'still rejected', 'UNSAFE'.toLowerCase()]) t.true(help.stdout.toLowerCase().includes(s.toLowerCase()), s);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

kernelTest('mixed.O2.o: one accepted, one repaired, one unsafe in one section: exit 1, OUT has all three', async (t) => {
  if (!existsSync(fixture('mixed.O2.o'))) return t.fail('fixtures not built: run make -C fixtures');
  const dir = mkdtempSync(join(tmpdir(), 'k2-repair-cli-'));
  try {
    const out = join(dir, 'out.o');
    const r = await execa('node', [k2, 'repair', fixture('mixed.O2.o'), '-o', out, '--json'], { reject: false });
    t.is(r.exitCode, 1, r.stderr);
    const j = JSON.parse(r.stdout);
    const by = (n: string) => j.programs.find((p: { name: string }) => p.name === n);
    t.is(by('fine').before.verdict, 'accepted');
    t.true(by('checked_elsewhere').repaired);
    t.false(by('unchecked').repaired);
    t.true(by('unchecked').unsafe.faults);
    t.true(by('unchecked').unsafe.counterexample.packetLen < 21);
    const v = await verifyObject(out);
    const verdict = (n: string) => v.programs.find((p) => p.name === n)?.verdict;
    t.is(verdict('fine'), 'accepted');
    t.is(verdict('checked_elsewhere'), 'accepted');
    t.is(verdict('unchecked'), 'rejected');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
