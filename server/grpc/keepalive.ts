// Keepalive for every connection of a listener from one timer: a connection is pinged only
// after a whole interval in which nothing arrived on it (gRPC's server keepalive), so agents
// that are sending anyway cost nothing, and 10,000 idle ones cost one sweep per tick instead
// of 10,000 interval timers and a timeout timer per ping.
import type http2 from 'node:http2';

/** What a connection's calls bump for each chunk they read: a counter, no clock read. */
export interface ReadActivity {
  reads: number;
}

interface Watched {
  activity: ReadActivity;
  /** `activity.reads` at the last sweep. */
  seen: number;
  /** When something last arrived (as far as the sweeps can tell) or a ping was answered. */
  quietSince: number;
  /** When the unanswered ping left; 0: none outstanding. */
  pingSentAt: number;
}

export interface KeepaliveOptions {
  /** Ping a connection quiet for this long; 0: never. */
  intervalMs: number;
  /** A ping not answered in this long closes the connection. */
  timeoutMs: number;
  /** Called for a connection whose ping went unanswered, before it is destroyed. */
  onTimeout: (timeoutMs: number) => void;
}

/** Sweeps often enough to be late by at most an eighth of the interval (and at most 2 s). */
function tickFor(intervalMs: number): number {
  return Math.min(2000, Math.max(100, Math.floor(intervalMs / 8)));
}

export class KeepaliveSweeper {
  private readonly watched = new Map<http2.Http2Session, Watched>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: KeepaliveOptions,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Starts watching `session`; returns the counter its calls bump on reads. */
  watch(session: http2.Http2Session): ReadActivity {
    const activity: ReadActivity = { reads: 0 };
    if (this.options.intervalMs <= 0) return activity;
    this.watched.set(session, { activity, seen: 0, quietSince: this.now(), pingSentAt: 0 });
    if (!this.timer) {
      this.timer = setInterval(() => {
        this.sweep();
      }, tickFor(this.options.intervalMs));
      this.timer.unref();
    }
    return activity;
  }

  forget(session: http2.Http2Session): void {
    this.watched.delete(session);
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  get size(): number {
    return this.watched.size;
  }

  /** Connections with a ping sent and not yet answered. */
  get pingsOutstanding(): number {
    let n = 0;
    for (const w of this.watched.values()) if (w.pingSentAt > 0) n++;
    return n;
  }

  /** One pass over every connection; public for tests that drive the clock. */
  sweep(): void {
    const now = this.now();
    const { intervalMs, timeoutMs } = this.options;
    for (const [session, w] of this.watched) {
      if (w.activity.reads !== w.seen) {
        w.seen = w.activity.reads;
        w.quietSince = now;
        continue;
      }
      if (w.pingSentAt > 0) {
        if (now - w.pingSentAt < timeoutMs) continue;
        this.forget(session);
        this.options.onTimeout(timeoutMs);
        session.destroy();
        continue;
      }
      if (now - w.quietSince >= intervalMs) this.ping(session, w, now);
    }
  }

  private ping(session: http2.Http2Session, w: Watched, now: number): void {
    // 'close' comes a tick after destroy(): a ping in between would throw.
    if (session.destroyed || session.closed) return;
    w.pingSentAt = now;
    const sent = session.ping(() => {
      w.pingSentAt = 0;
      w.quietSince = this.now();
    });
    if (!sent) w.pingSentAt = 0; // too many pings outstanding: nghttp2 refused this one
  }
}
