// Seeded PRNG (xorshift128+) so a search is reproducible from its seed.
export class Rng {
  private s0: bigint;
  private s1: bigint;
  constructor(seed: number) {
    this.s0 = BigInt.asUintN(64, BigInt(seed) * 0x9e3779b97f4a7c15n + 1n);
    this.s1 = BigInt.asUintN(64, (this.s0 ^ 0xbf58476d1ce4e5b9n) * 0x94d049bb133111ebn + 7n);
    for (let i = 0; i < 8; i++) this.next64();
  }
  next64(): bigint {
    let x = this.s0;
    const y = this.s1;
    this.s0 = y;
    x = BigInt.asUintN(64, x ^ (x << 23n));
    this.s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return BigInt.asUintN(64, this.s1 + y);
  }
  /** Uniform in [0, n). */
  int(n: number): number {
    return Number(this.next64() % BigInt(n));
  }
  float(): number {
    return Number(this.next64() >> 11n) / 2 ** 53;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}
