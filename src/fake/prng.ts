/**
 * Seeded pseudo-random numbers for the fake backend and simulations: sfc32 (Chris Doty-Humphrey's
 * Small Fast Counting generator) on 32-bit integer math, no BigInt. The same seed gives the same
 * sequence on every run and machine, so a failing simulation can be replayed from its seed.
 */
export class Prng {
  /** The seed this generator started from; print it when a test fails. */
  readonly seed: number;
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError("Prng seed must be an integer");
    this.seed = seed >>> 0;
    // splitmix32 spreads one 32-bit seed over the four state words, so seeds 1 and 2 do not
    // start from nearly equal states.
    let mix = this.seed;
    const splitmix32 = (): number => {
      mix = (mix + 0x9e3779b9) | 0;
      let z = mix;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix32();
    this.b = splitmix32();
    this.c = splitmix32();
    this.d = splitmix32();
    // The sfc32 authors discard the first outputs so that the state is well mixed.
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Next value, an unsigned 32-bit integer. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform integer in [0, maxExclusive); maxExclusive must be in 1..2^32. */
  int(maxExclusive: number): number {
    if (!(maxExclusive >= 1 && maxExclusive <= 0x100000000)) {
      throw new RangeError("Prng.int needs 1 <= maxExclusive <= 2^32");
    }
    // Scale instead of modulo (no modulo bias). next() / 2^32 is exact and below 1, so the
    // product stays below maxExclusive even after rounding.
    return Math.floor((this.next() / 0x100000000) * maxExclusive);
  }

  /** An integer in [min, max], both inclusive. */
  range(min: number, max: number): number {
    if (max < min) throw new RangeError("Prng.range needs min <= max");
    return min + this.int(max - min + 1);
  }

  /** True with probability `ratio` (0 never, 1 always). Draws nothing when ratio is 0 or 1. */
  chance(ratio: number): boolean {
    if (ratio <= 0) return false;
    if (ratio >= 1) return true;
    return this.next() < ratio * 0x100000000;
  }
}
