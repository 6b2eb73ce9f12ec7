// Exponential backoff with jitter between an initial interval and a cap, as the upstream
// agent's sync loop (--sync-interval, --sync-interval-cap).
export class Backoff {
  private current: number;
  constructor(
    private readonly initialMs: number,
    private readonly capMs: number,
    private readonly factor = 1.5,
    private readonly jitter = 0.1,
  ) {
    this.current = initialMs;
  }

  /** The next delay; each call grows the following one up to the cap. */
  next(): number {
    const base = this.current;
    this.current = Math.min(this.capMs, Math.max(1, this.current * this.factor));
    const delta = base * this.jitter * (Math.random() * 2 - 1);
    return Math.max(0, Math.min(this.capMs, Math.round(base + delta)));
  }

  reset(): void {
    this.current = this.initialMs;
  }
}
