/**
 * A small seedable pseudo-random generator for the fuzz tests, so a failing seed
 * replays exactly (FUZZ_SEED=n).
 *
 * @module
 */

/** mulberry32: small, seedable, good enough to explore inputs. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  const text = (n: number) =>
    Array.from(
      { length: n },
      () => String.fromCharCode(pick([int(128), 0x2028, 0xfffd, 0xd800, 32 + int(95)])),
    )
      .join("");
  return { next, int, pick, bytes, text };
}
export type Rng = ReturnType<typeof prng>;

/** Flips, truncates, extends or replaces bytes. */
export function mutate(r: Rng, bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes);
  switch (r.int(4)) {
    case 0:
      for (let i = 0; i < 1 + r.int(4) && out.length; i++) out[r.int(out.length)] ^= 1 << r.int(8);
      return out;
    case 1:
      return out.subarray(0, r.int(out.length + 1));
    case 2:
      return Uint8Array.from([...out, ...r.bytes(r.int(64))]);
    default:
      return r.bytes(r.int(128));
  }
}
