import type { Parameters } from "fast-check";

/**
 * fast-check run parameters for the property tests on the real stores, reproducible from the
 * environment:
 *   FC_SEED=<n>      replay the run that failed (fast-check prints its seed and path);
 *   FC_PATH=<p>      with FC_SEED, jump straight to the shrunk counterexample;
 *   FC_NUM_RUNS=<n>  more (or fewer) runs than the file's default, e.g. for a long soak.
 * Without FC_SEED each run draws a fresh seed, printed with any failure.
 */
export function propertyParameters<T>(
  defaultRuns: number,
  /** Hand-written cases run before the random ones (fast-check's `examples`). */
  examples: T[] = [],
): Parameters<T> {
  const seed = process.env.FC_SEED;
  const path = process.env.FC_PATH;
  const runs = process.env.FC_NUM_RUNS;
  return {
    numRuns: runs ? Number(runs) : defaultRuns,
    ...(examples.length > 0 ? { examples } : {}),
    ...(seed ? { seed: Number(seed) } : {}),
    ...(seed && path ? { path } : {}),
  };
}
