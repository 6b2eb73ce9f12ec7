// Quantiles of latency samples, picked as bench/scenarios.ts picks them (the sample at
// floor(p * n) of the sorted list), so the two benches' p50/p99 mean the same thing.

/** The p-quantile (0 <= p <= 1) of samples sorted ascending; NaN for no samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (p < 0 || p > 1) throw new RangeError(`percentile wants 0 <= p <= 1, not ${p}`);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}
