// Keepalive for every connection of a listener from one timer: a connection is pinged only
// after a whole interval in which nothing arrived on it (gRPC's server keepalive), so agents
// that are sending anyway cost nothing, and 10,000 idle ones cost one sweep per tick instead
// of 10,000 interval timers and a timeout timer per ping. Pings are paced to a rate: agents
// that connected together (a restart) would otherwise all fall due in the same tick, and a
// burst of hundreds of pings stalls every dial behind it. HTTP/2 connections and WebSockets
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
  key: object;
  target: KeepaliveTarget;
  activity: ReadActivity;
  /** `activity.reads` at the last sweep. */
  seen: number;
  /** When something last arrived (as far as the sweeps can tell) or a ping was answered. */
  quietSince: number;
  /** When the unanswered ping left; 0: none outstanding. */
  pingSentAt: number;
  /** Waiting in the due queue for the pacer. */
  queued: boolean;
  /** No longer watched (closed, or given up on). */
  gone: boolean;
}

export interface KeepaliveOptions {
  /** Ping a connection quiet for this long; 0: never. */
  intervalMs: number;
  /** A ping not answered in this long closes the connection. */
  timeoutMs: number;
  /**
   * At most this many pings a second; due connections wait their turn (with many quiet
   * agents, each is pinged less often than intervalMs). 0: no limit.
   */
  maxPingsPerSecond?: number;
}

/** Sweeps often enough to be late by at most a sixteenth of the interval (and at most 1 s). */
function tickFor(intervalMs: number): number {
  return Math.min(1000, Math.max(50, Math.floor(intervalMs / 16)));
}

/**
 * The pacer sends its share of pings this often while any are due: each wake-up of an idle
 * process costs more than a ping (measured here: a 20 ms timer alone is 1% of a core), so
 * pings go out in small batches, not one by one; a batch of 25 takes about a millisecond.
 */
const PACE_MS = 250;

export class KeepaliveSweeper {
  private readonly watched = new Map<object, Watched>();
  private timer: NodeJS.Timeout | undefined;
  private due: Watched[] = [];
  private dueHead = 0;
  private pacer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: KeepaliveOptions,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Starts watching a connection, known by `key`; returns the counter its reads bump. */
  watch(key: object, target: KeepaliveTarget): ReadActivity {
    const activity: ReadActivity = { reads: 0 };
    if (this.options.intervalMs <= 0) return activity;
    this.watched.set(key, {
      key,
      target,
      activity,
      seen: 0,
      quietSince: this.now(),
      pingSentAt: 0,
      queued: false,
      gone: false,
    });
    if (!this.timer) {
      this.timer = setInterval(() => {
        this.sweep();
      }, tickFor(this.options.intervalMs));
      this.timer.unref();
    }
    return activity;
  }

  forget(key: object): void {
    const w = this.watched.get(key);
    if (!w) return;
    w.gone = true;
    this.watched.delete(key);
    if (this.watched.size === 0) this.stop();
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

  /** Connections due for a ping and waiting for the pacer. */
  get pingsWaiting(): number {
    return this.due.length - this.dueHead;
  }

  /** One pass over every connection; public for tests that drive the clock. */
  sweep(): void {
    const now = this.now();
    const { intervalMs, timeoutMs } = this.options;
    const paced = (this.options.maxPingsPerSecond ?? 0) > 0;
    // values(), not entries(): no [key, value] array per connection per sweep.
    for (const w of this.watched.values()) {
      if (w.activity.reads !== w.seen) {
        w.seen = w.activity.reads;
        w.quietSince = now;
        continue;
      }
      if (w.pingSentAt > 0) {
        if (now - w.pingSentAt < timeoutMs) continue;
        this.forget(w.key);
        w.target.timedOut(timeoutMs);
        continue;
      }
      if (w.queued || now - w.quietSince < intervalMs) continue;
      if (!paced) {
        this.ping(w, now);
        continue;
      }
      w.queued = true;
      this.due.push(w);
    }
    if (this.pingsWaiting > 0) this.startPacer();
  }

  /** Sends the next share of due pings; public for tests that drive the clock. */
  pace(): void {
    const rate = this.options.maxPingsPerSecond ?? 0;
    let budget = Math.max(1, Math.round((rate * PACE_MS) / 1000));
    const now = this.now();
    while (budget > 0 && this.dueHead < this.due.length) {
      const w = this.due[this.dueHead++];
      if (!w) break;
      w.queued = false;
      // Gone, or something arrived since it fell due: the next sweep sees it as alive.
      if (w.gone || w.activity.reads !== w.seen) continue;
      this.ping(w, now);
      budget--;
    }
    if (this.dueHead >= this.due.length) {
      this.due = [];
      this.dueHead = 0;
      if (this.pacer) clearInterval(this.pacer);
      this.pacer = undefined;
    }
  }

  private startPacer(): void {
    if (this.pacer) return;
    this.pacer = setInterval(() => {
      this.pace();
    }, PACE_MS);
    this.pacer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.pacer) clearInterval(this.pacer);
    this.timer = undefined;
    this.pacer = undefined;
    this.due = [];
    this.dueHead = 0;
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
