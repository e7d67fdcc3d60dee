// Seeded PRNG (sfc32, 32-bit arithmetic on plain numbers: the search draws millions of values, and
// BigInt arithmetic made it the hot spot) so a search is reproducible from its seed.
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = (seed ^ Math.imul(seed >>> 16, 0x85ebca6b)) >>> 0;
    for (let i = 0; i < 16; i++) this.next32();
  }
  /** Uniform 32-bit unsigned integer. */
  next32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  next64(): bigint {
    return (BigInt(this.next32()) << 32n) | BigInt(this.next32());
  }
  /** Uniform in [0, n) for n ≤ 2^32. */
  int(n: number): number {
    return Math.floor((this.next32() / 2 ** 32) * n);
  }
  float(): number {
    return this.next32() / 2 ** 32;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}
