// The per-window incremental check agrees with a whole-program check of the spliced program.
import test from 'ava';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readObject } from '../src/ir/index.js';
import type { IrInsn } from '../src/ir/types.js';
import { WindowChecker, checkLinked, windowsOf } from '../src/safety/index.js';
import { rng } from '../src/safety/mutate.js';
import { CLASS, MODE, SIZE, ALU } from '../src/isa/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixturesDir = join(root, 'fixtures/build');

/** A random edit of a window: identity, one operand changed, one instruction dropped, a nop added. */
function edit(win: IrInsn[], r: () => number): IrInsn[] {
  const w = win.map((i) => ({ ...i, labels: undefined }));
  const k = Math.floor(r() * w.length);
  switch (Math.floor(r() * 5)) {
    case 0: return w;
    case 1: w[k] = { ...w[k]!, off: w[k]!.off + [-8, -4, 4, 8][Math.floor(r() * 4)]! }; return w;
    case 2: w.splice(k, 1); return w;
    case 3: w.splice(k, 0, { code: CLASS.ALU64 | ALU.MOV, dst: Math.floor(r() * 10), src: 0, off: 0, imm: 0 }); return w;
    default: w[k] = { ...w[k]!, code: (w[k]!.code & 0x07) === CLASS.LDX ? CLASS.LDX | MODE.MEM | SIZE.DW : w[k]!.code, dst: Math.floor(r() * 10) }; return w;
  }
}

test('window verdicts imply whole-program verdicts and rarely lose precision', (t) => {
  const r = rng(42);
  let agree = 0, total = 0, unsound = 0, identityRejected = 0;
  for (const f of readdirSync(fixturesDir).filter((x) => x.endsWith('.o')).sort()) {
    const obj = readObject(join(fixturesDir, f));
    for (const prog of obj.programs) {
      const wc = WindowChecker.forProgram(obj, prog);
      if (!checkLinked(wc.prog).safe) continue;
      const wins = windowsOf(wc.prog, 3);
      const chosen = Array.from({ length: Math.min(6, wins.length) }, () => wins[Math.floor(r() * wins.length)]!);
      const sites = wc.prepare(chosen);
      for (const site of sites) {
        const orig = wc.prog.insns.slice(site.start, site.end);
        if (!wc.check(site, orig).safe) identityRejected++;
        for (let n = 0; n < 5; n++) {
          const repl = edit(orig, r);
          const w = wc.check(site, repl);
          const whole = checkLinked(wc.splice(site, repl));
          total++;
          if (w.safe === whole.safe) agree++;
          else if (process.env.K2_DEBUG_WIN) t.log(`${f} ${prog.name} [${site.start},${site.end}) window: ${w.reason} whole: ${whole.reason} repl ${JSON.stringify(repl.map((i) => [i.code, i.dst, i.src, i.off, i.imm]))}`);
          if (w.safe && !whole.safe) {
            unsound++;
            t.log(`${f} ${prog.name} [${site.start},${site.end}): window safe, whole program: ${whole.reason}`);
          }
        }
      }
    }
  }
  t.log(`window vs whole-program agreement: ${agree}/${total}`);
  t.true(total > 100);
  t.is(unsound, 0);
  t.is(identityRejected, 0, 'the original window itself must be accepted');
  t.true(agree / total >= 0.9);
});
