import test from 'ava';
import { Terms, toSigned, type Term } from '../src/smt/term.js';
import { Env, Evaluator } from '../src/smt/eval.js';
import { rng } from '../src/smt/decide.js';
import { decideByRanges, learnFacts, rangeOf, type Facts } from '../src/smt/ranges.js';

// The interval analysis the symbolic machine uses to decide branch conditions a path already
// implies (src/smt/ranges.ts) must be sound: on every input satisfying the facts' conditions, a
// term's value lies in its range, and a decided condition has the decided value. Checked on random
// terms in the shapes clang's bound checks produce (sign/zero extension, 32-bit slices, clamps as
// ite, masks) and random inputs, biased to the conditions' boundaries.

function randomTerm(T: Terms, r: () => number, x: Term, depth: number): Term {
  const int = (n: number) => Math.floor(r() * n);
  const k = (w: number) => T.bv(BigInt([0, 1, 7, 31, 32, 33, 100, -1, -32, 0x7fffffff][int(10)]!), w);
  if (depth <= 0) return x;
  const sub = randomTerm(T, r, x, depth - 1);
  switch (int(7)) {
    case 0: return T.sext(T.extract(31, 0, sub), 32);
    case 1: return T.zext(T.extract(31, 0, sub), 32);
    case 2: return T.ite(T.slt(k(64), sub), k(64), sub);
    case 3: return T.ite(T.ult(sub, k(64)), sub, k(64));
    case 4: return T.and(sub, k(64));
    case 5: return T.add(sub, k(64));
    default: return sub;
  }
}

function randomCond(T: Terms, r: () => number, t: Term): Term {
  const int = (n: number) => Math.floor(r() * n);
  const c = T.bv(BigInt([0, 1, 14, 31, 32, 64, -1, -14][int(8)]!), 64);
  switch (int(4)) {
    case 0: return T.slt(c, t);
    case 1: return T.slt(t, c);
    case 2: return T.ult(c, t);
    default: return T.bnot(T.ult(c, t));
  }
}

test('ranges and decided conditions hold on every input that satisfies the facts', (t) => {
  const r = rng(99);
  let checked = 0, decided = 0;
  for (let n = 0; n < 400; n++) {
    const T = new Terms();
    const x = T.var('x', 64);
    const terms = [randomTerm(T, r, x, 1 + Math.floor(r() * 4)), randomTerm(T, r, x, 1 + Math.floor(r() * 4))];
    const conds = [randomCond(T, r, terms[0]!), randomCond(T, r, terms[1]!)];
    let facts: Facts = new Map();
    for (const c of conds) facts = learnFacts(facts, c);
    const query = randomCond(T, r, terms[Math.floor(r() * 2)]!);
    const d = decideByRanges(T, facts, query);
    if (d !== null) decided++;
    const ranges = terms.map((u) => rangeOf(T, u, facts));
    const ints = [0n, 1n, 13n, 14n, 15n, 31n, 32n, 33n, 45n, 46n, 64n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, -1n, -14n, -32n];
    for (let i = 0; i < 60; i++) {
      const v = i < ints.length ? ints[i]! : BigInt(Math.floor(r() * 2 ** 32)) * (r() < 0.5 ? 1n : -1n) + BigInt(Math.floor(r() * 64) - 32);
      const env = new Env();
      env.vars.set('x', BigInt.asUintN(64, v));
      const ev = new Evaluator(env);
      if (!conds.every((c) => ev.bool(c))) continue;
      checked++;
      terms.forEach((u, j) => {
        const val = ev.bv(u), s = toSigned(val, u.w), g = ranges[j]!;
        t.true(val >= g.ulo && val <= g.uhi && s >= g.slo && s <= g.shi, `value ${val} outside ${JSON.stringify(g, (_k, y) => (typeof y === 'bigint' ? y.toString() : y))}`);
      });
      if (d !== null) t.is(ev.bool(query), d, 'a decided condition has another value on an input satisfying the facts');
    }
  }
  t.log(`${checked} inputs checked, ${decided} conditions decided`);
  t.true(checked > 1000);
  t.true(decided > 10);
});
