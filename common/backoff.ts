// Exponential backoff between an initial interval and a cap, as the upstream agent's sync loop
// (--sync-interval, --sync-interval-cap). Jitter is either a fraction of the delay either way
// (upstream's 0.1) or "full": a uniform draw in [0, delay), so agents that lost their server at
// the same moment (a restart) come back spread over the whole window instead of all at once.
export type Jitter = number | 'full';

export class Backoff {
  private current: number;
  private lastWindow = 0;
  constructor(
    private readonly initialMs: number,
    private readonly capMs: number,
    private readonly factor = 1.5,
    private readonly jitter: Jitter = 0.1,
    private readonly random: () => number = Math.random,
  ) {
    this.current = initialMs;
  }

  /** The next delay; each call grows the following one up to the cap. */
  next(): number {
    const base = this.current;
    this.lastWindow = base;
    this.current = Math.min(this.capMs, Math.max(1, this.current * this.factor));
    if (this.jitter === 'full') return Math.floor(this.random() * base);
    const delta = base * this.jitter * (this.random() * 2 - 1);
    return Math.max(0, Math.min(this.capMs, Math.round(base + delta)));
  }

  /** The interval the last delay was drawn around (full jitter: drawn below); it grows. */
  get window(): number {
    return this.lastWindow;
  }

  reset(): void {
    this.current = this.initialMs;
  }
}
