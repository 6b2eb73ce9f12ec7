// Keepalive for every connection of a listener from one timer: a connection is pinged only
// after a whole interval in which nothing arrived on it (gRPC's server keepalive), so agents
// that are sending anyway cost nothing, and 10,000 idle ones cost one sweep per tick instead
// of 10,000 interval timers and a timeout timer per ping. HTTP/2 connections and WebSockets
// both plug in as a KeepaliveTarget.
import type http2 from 'node:http2';

/** A connection the sweeper can ping and give up on. */
export interface KeepaliveTarget {
  /** Sends a ping; `answered` runs when its answer arrives. False: it could not be sent. */
  ping(answered: () => void): boolean;
  /** Its ping went unanswered for `timeoutMs`: close it. */
  timedOut(timeoutMs: number): void;
}

/** An HTTP/2 connection as a KeepaliveTarget. */
export function http2Target(
  session: http2.Http2Session,
  onTimeout: (timeoutMs: number) => void,
): KeepaliveTarget {
  return {
    ping: (answered) => {
      // 'close' comes a tick after destroy(): a ping in between would throw.
      if (session.destroyed || session.closed) return false;
      return session.ping(() => {
        answered();
      });
    },
    timedOut: (timeoutMs) => {
      onTimeout(timeoutMs);
      session.destroy();
    },
  };
}

/** What a connection's calls bump for each chunk they read: a counter, no clock read. */
export interface ReadActivity {
  reads: number;
}

interface Watched {
  target: KeepaliveTarget;
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
}

/** Sweeps often enough to be late by at most an eighth of the interval (and at most 2 s). */
function tickFor(intervalMs: number): number {
  return Math.min(2000, Math.max(100, Math.floor(intervalMs / 8)));
}

export class KeepaliveSweeper {
  private readonly watched = new Map<object, Watched>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: KeepaliveOptions,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Starts watching a connection, known by `key`; returns the counter its reads bump. */
  watch(key: object, target: KeepaliveTarget): ReadActivity {
    const activity: ReadActivity = { reads: 0 };
    if (this.options.intervalMs <= 0) return activity;
    this.watched.set(key, { target, activity, seen: 0, quietSince: this.now(), pingSentAt: 0 });
    if (!this.timer) {
      this.timer = setInterval(() => {
        this.sweep();
      }, tickFor(this.options.intervalMs));
      this.timer.unref();
    }
    return activity;
  }

  forget(key: object): void {
    this.watched.delete(key);
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
    for (const [key, w] of this.watched) {
      if (w.activity.reads !== w.seen) {
        w.seen = w.activity.reads;
        w.quietSince = now;
        continue;
      }
      if (w.pingSentAt > 0) {
        if (now - w.pingSentAt < timeoutMs) continue;
        this.forget(key);
        w.target.timedOut(timeoutMs);
        continue;
      }
      if (now - w.quietSince >= intervalMs) this.ping(w, now);
    }
  }

  private ping(w: Watched, now: number): void {
    w.pingSentAt = now;
    const sent = w.target.ping(() => {
      w.pingSentAt = 0;
      w.quietSince = this.now();
    });
    if (!sent) w.pingSentAt = 0; // closing, or too many pings outstanding
  }
}
