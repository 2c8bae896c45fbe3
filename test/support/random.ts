/**
 * Seeded randomness for property-style integration tests: a failure prints
 * its seed, and `CDC_TEST_SEED=<n>` replays exactly that run.
 */

/** The seed of this run: `CDC_TEST_SEED` when set, otherwise a fresh one. */
export function testSeed(): number {
  const fixed = process.env.CDC_TEST_SEED;
  if (fixed !== undefined && fixed !== '') {
    const seed = Number(fixed);
    if (!Number.isSafeInteger(seed)) throw new Error(`CDC_TEST_SEED=${fixed} is not an integer`);
    return seed;
  }
  return Math.floor(Math.random() * 2 ** 31);
}

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max], both included. */
export function randomInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/**
 * Runs `body` with this run's seed; a failure's message starts with the seed
 * and how to replay it. `onFailure` runs first (e.g. to keep logs).
 */
export async function withSeed(
  body: (seed: number) => Promise<void>,
  onFailure: () => void = () => undefined,
): Promise<void> {
  const seed = testSeed();
  try {
    await body(seed);
  } catch (err) {
    onFailure();
    if (err instanceof Error)
      err.message = `seed ${seed} (replay with CDC_TEST_SEED=${seed}): ${err.message}`;
    throw err;
  }
}
