// Interpreter throughput: instructions per second on a hand-built ALU/memory loop and on the
// xdp_parser fixture (run with `node --import=tsx bench/interp.ts`).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareInsns, prepareObject, run, fromHex } from '../src/interp/index.js';
import { readObject } from '../src/ir/index.js';
import { ALU, CLASS, JMP, SIZE, MODE, SRC_K, SRC_X } from '../src/isa/index.js';
import type { IrInsn } from '../src/ir/types.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function measure(name: string, once: () => number, seconds = 2): number {
  for (let i = 0; i < 20; i++) once(); // warm-up
  // CPU time of this process (user + system), so that other load on the machine does not count.
  const cpu = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  let steps = 0;
  let runs = 0;
  const t0 = cpu();
  let el = 0;
  while (el < seconds) {
    steps += once();
    runs++;
    if ((runs & 63) === 0 || steps > 1e6) el = cpu() - t0;
  }
  el = cpu() - t0;
  const rate = steps / el;
  console.log(`${name}: ${(rate / 1e6).toFixed(1)} M insns per CPU-second (${runs} runs, ${(steps / runs).toFixed(0)} insns/run, ${((el / runs) * 1e6).toFixed(1)} µs CPU/run)`);
  return rate;
}

// r0 = 0; r1 = 100000; loop: r2 = r1; r2 *= 7; r2 ^= r0; r0 += r2; *(u64*)(fp-8) = r0; r3 = *(u64*)(fp-8); r1 -= 1; if r1 != 0 goto loop; exit
const i = (code: number, dst: number, src: number, off: number, imm: number, extra: Partial<IrInsn> = {}): IrInsn => ({ code, dst, src, off, imm, ...extra });
const loop: IrInsn[] = [
  i(CLASS.ALU64 | ALU.MOV | SRC_K, 0, 0, 0, 0),
  i(CLASS.ALU64 | ALU.MOV | SRC_K, 1, 0, 0, 100000),
  i(CLASS.ALU64 | ALU.MOV | SRC_X, 2, 1, 0, 0, { labels: ['loop'] }),
  i(CLASS.ALU64 | ALU.MUL | SRC_K, 2, 0, 0, 7),
  i(CLASS.ALU64 | ALU.XOR | SRC_X, 2, 0, 0, 0),
  i(CLASS.ALU64 | ALU.ADD | SRC_X, 0, 2, 0, 0),
  i(CLASS.STX | MODE.MEM | SIZE.DW, 10, 0, -8, 0),
  i(CLASS.LDX | MODE.MEM | SIZE.DW, 3, 10, -8, 0),
  i(CLASS.ALU | ALU.ADD | SRC_X, 3, 1, 0, 0),
  i(CLASS.ALU64 | ALU.SUB | SRC_K, 1, 0, 0, 1),
  i(CLASS.JMP | JMP.JNE | SRC_K, 1, 0, 0, 0, { target: 'loop' }),
  i(CLASS.JMP | JMP.EXIT, 0, 0, 0, 0),
];
const prep = prepareInsns(loop);
const maps = prep.initialMaps();
const rates: number[] = [];
rates.push(measure('alu+stack loop', () => run(prep.unit, 'prog', 'kprobe', { packet: new Uint8Array(0) }, maps, { maxSteps: 10_000_000, snapshotMaps: false }).steps));

const fx = join(root, 'fixtures/build/xdp_parser.o');
if (existsSync(fx)) {
  const p = prepareObject(readObject(fx));
  const pkt = fromHex('02000000000102000000000208004500002e1234000040117c54c0000201c63364029c400007001a00006b322066697874757265206563686f212121');
  const m = p.initialMaps();
  rates.push(measure('xdp_parser fixture (IPv4/UDP echo)', () => run(p.unit, 'xdp_parser', 'xdp', { packet: pkt }, m, { snapshotMaps: false }).steps));
} else {
  console.log(`(skipping the fixture benchmark: ${fx} not built; run make -C fixtures)`);
}
console.log(`interpreter instructions/s: ${(Math.min(...rates) / 1e6).toFixed(1)} M (slowest workload, per CPU-second)`);
