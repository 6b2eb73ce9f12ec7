// Keepalive for every connection of a listener from one timer: a connection is pinged only
// after a whole interval in which nothing arrived on it (gRPC's server keepalive), so agents
// that are sending anyway cost nothing. The connections wait on a timing wheel, each in the
// slot of the tick at which it could next be due, so a tick looks only at the connections that
// fall due then: 10,000 idle agents cost a few list moves per tick, not a pass over all of them
// every second (which was 0.2% of a core by itself). Pings are paced to a rate, sent from the
// same tick: agents that connected together (a restart) would otherwise all fall due at once,
// and a burst of hundreds of pings stalls every dial behind it. HTTP/2 connections and
// WebSockets both plug in as a KeepaliveTarget.
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

/** The sweeper's time as of its last tick: what a read records, without reading a clock. */
interface CoarseClock {
  now: number;
}

/** What a connection's calls mark for each chunk they read: one store, no clock read. */
export class ReadActivity {
  /** The sweeper's tick time when something last arrived (the read came at most a tick later). */
  lastRead: number;

  constructor(private readonly clock: CoarseClock) {
    this.lastRead = clock.now;
  }

  read(): void {
    this.lastRead = this.clock.now;
  }
}

/**
 * waiting: on the wheel until it may be due; due: quiet for an interval, in the due queue for
 * the pacer; pinged: on the wheel at its ping's deadline; gone: no longer watched.
 */
type State = 'waiting' | 'due' | 'pinged' | 'gone';

const NOWHERE = -2;
const DUE_QUEUE = -1;

interface Watched {
  key: object | undefined;
  target: KeepaliveTarget | undefined;
  readonly activity: ReadActivity;
  state: State;
  /** When the unanswered ping left (precise clock). */
  pingSentAt: number;
  /** The coarse clock when it left: a read marked later means the peer is alive. */
  pingTick: number;
  /** The list it is on: a wheel slot, DUE_QUEUE or NOWHERE. */
  list: number;
  prev: Watched | undefined;
  next: Watched | undefined;
}

/** A doubly linked list threaded through the entries: moves and removals are O(1). */
interface List {
  head: Watched | undefined;
  tail: Watched | undefined;
  size: number;
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

/**
 * Each wake-up of an idle process costs more than a ping (measured here: a 20 ms timer alone is
 * 1% of a core), so pings go out in batches from the tick; a batch of 25 takes about a
 * millisecond, so a faster rate makes the tick shorter rather than the batch larger.
 */
const MAX_BATCH = 25;

/**
 * Ticks often enough to be late by at most a sixteenth of the interval (and at most 1 s), and
 * to send at most MAX_BATCH pings per tick at the configured rate.
 */
export function keepaliveTickMs(intervalMs: number, maxPingsPerSecond: number): number {
  const forInterval = Math.min(1000, Math.max(50, Math.floor(intervalMs / 16)));
  if (maxPingsPerSecond <= 0) return forInterval;
  return Math.max(20, Math.min(forInterval, Math.floor((1000 * MAX_BATCH) / maxPingsPerSecond)));
}

export class KeepaliveSweeper {
  private readonly watched = new Map<object, Watched>();
  private readonly tickMs: number;
  private readonly slots: List[];
  private readonly due: List = { head: undefined, tail: undefined, size: 0 };
  private readonly clock: CoarseClock;
  /** The last tick whose slot was handled; entries sit in later ticks' slots. */
  private handledTick = 0;
  private outstanding = 0;
  /** Pings the pacer may send now: grows with time at the rate, up to one tick's worth. */
  private credit = 0;
  private lastPace = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: KeepaliveOptions,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tickMs = keepaliveTickMs(options.intervalMs, options.maxPingsPerSecond ?? 0);
    // Nothing is ever scheduled further ahead than an interval or a ping timeout plus two ticks.
    const span = Math.max(options.intervalMs, options.timeoutMs) + 2 * this.tickMs;
    const count = options.intervalMs > 0 ? Math.ceil(span / this.tickMs) + 2 : 0;
    this.slots = Array.from({ length: count }, () => ({ head: undefined, tail: undefined, size: 0 }));
    this.clock = { now: this.now() };
  }

  /** Starts watching a connection, known by `key`; returns what its reads mark. */
  watch(key: object, target: KeepaliveTarget): ReadActivity {
    if (this.options.intervalMs <= 0) return new ReadActivity(this.clock);
    if (!this.timer) this.start();
    const w: Watched = {
      key,
      target,
      activity: new ReadActivity(this.clock),
      state: 'waiting',
      pingSentAt: 0,
      pingTick: 0,
      list: NOWHERE,
      prev: undefined,
      next: undefined,
    };
    this.watched.set(key, w);
    this.wait(w);
    return w.activity;
  }

  forget(key: object): void {
    const w = this.watched.get(key);
    if (!w) return;
    this.watched.delete(key);
    this.unlink(w);
    if (w.state === 'pinged') this.outstanding--;
    w.state = 'gone';
    // A ping answer still in flight holds the entry: not the connection behind it.
    w.key = undefined;
    w.target = undefined;
    if (this.watched.size === 0) this.stop();
  }

  get size(): number {
    return this.watched.size;
  }

  /** Connections with a ping sent and not yet answered. */
  get pingsOutstanding(): number {
    return this.outstanding;
  }

  /** Connections due for a ping and waiting for the pacer. */
  get pingsWaiting(): number {
    return this.due.size;
  }

  /**
   * Handles every slot up to now, then sends the pings the rate allows; public for tests that
   * drive the clock.
   */
  tick(): void {
    const now = this.now();
    this.clock.now = now;
    const current = Math.floor(now / this.tickMs);
    // After a stall longer than the wheel, every slot is overdue: each is handled once.
    this.handledTick = Math.max(this.handledTick, current - this.slots.length);
    while (this.handledTick < current) {
      this.handledTick++;
      const slot = this.slots[this.handledTick % this.slots.length];
      if (!slot) continue;
      for (let w = slot.head; w; w = slot.head) {
        this.unlink(w);
        this.check(w, now);
      }
    }
    if (this.due.size > 0) this.pace(now);
  }

  /** A connection off the wheel: due, alive again, or timed out. */
  private check(w: Watched, now: number): void {
    const { timeoutMs } = this.options;
    if (w.state === 'pinged') {
      if (w.activity.lastRead > w.pingTick) {
        // Something arrived after the ping left: alive, whatever became of the ping.
        this.unpinged(w, w.activity.lastRead);
      } else if (now - w.pingSentAt >= timeoutMs) {
        const { target } = w;
        if (w.key) this.forget(w.key);
        target?.timedOut(timeoutMs);
      } else {
        this.schedule(w, w.pingSentAt + timeoutMs);
      }
      return;
    }
    if (now < this.dueAt(w)) {
      this.wait(w);
    } else if ((this.options.maxPingsPerSecond ?? 0) > 0) {
      w.state = 'due';
      this.append(this.due, w, DUE_QUEUE);
    } else {
      this.ping(w, now);
    }
  }

  /**
   * When a connection will have been quiet for a whole interval. A read marks the tick before
   * it, so one tick is added: a ping never goes out early.
   */
  private dueAt(w: Watched): number {
    return w.activity.lastRead + this.options.intervalMs + this.tickMs;
  }

  private wait(w: Watched): void {
    w.state = 'waiting';
    this.schedule(w, this.dueAt(w));
  }

  /** Sends the pings the rate allows now, from the head of the due queue. */
  private pace(now: number): void {
    const rate = this.options.maxPingsPerSecond ?? 0;
    const perTick = Math.max(1, (rate * this.tickMs) / 1000);
    this.credit = Math.min(perTick, this.credit + (rate * (now - this.lastPace)) / 1000);
    this.lastPace = now;
    while (this.credit >= 1 && this.due.head) {
      const w = this.due.head;
      this.unlink(w);
      // Something arrived since it fell due: back on the wheel, no ping.
      if (now < this.dueAt(w)) {
        this.wait(w);
        continue;
      }
      this.ping(w, now);
      this.credit--;
    }
    // An empty queue saves no credit for a burst later.
    if (!this.due.head) this.credit = Math.min(this.credit, 1);
  }

  private ping(w: Watched, now: number): void {
    const { target } = w;
    if (!target) return;
    w.state = 'pinged';
    w.pingSentAt = now;
    w.pingTick = this.clock.now;
    this.outstanding++;
    this.schedule(w, now + this.options.timeoutMs);
    const sent = target.ping(() => {
      if (w.state !== 'pinged' || w.pingSentAt !== now) return; // gone, or a later ping's
      this.unpinged(w, this.now());
    });
    // Closing (its close will forget it), or too many pings outstanding: try an interval on.
    if (!sent) this.unpinged(w, now);
  }

  /** A pinged connection back on the wheel, counted as active at `since`. */
  private unpinged(w: Watched, since: number): void {
    this.outstanding--;
    this.unlink(w);
    w.activity.lastRead = since;
    this.wait(w);
  }

  /**
   * Puts an entry in the slot of the first tick at or after `at`, after the last handled. The
   * wheel spans every delay used; only an entry checked late (catching up after a stall) can
   * reach past it, and it goes at most to the slot before the one being handled, to be checked
   * again there.
   */
  private schedule(w: Watched, at: number): void {
    const ahead = Math.ceil(at / this.tickMs) - this.handledTick;
    const tick = this.handledTick + Math.min(this.slots.length - 1, Math.max(1, ahead));
    const index = tick % this.slots.length;
    const slot = this.slots[index];
    if (slot) this.append(slot, w, index);
  }

  private append(list: List, w: Watched, id: number): void {
    w.list = id;
    w.prev = list.tail;
    w.next = undefined;
    if (list.tail) list.tail.next = w;
    else list.head = w;
    list.tail = w;
    list.size++;
  }

  private unlink(w: Watched): void {
    if (w.list === NOWHERE) return;
    const list = w.list === DUE_QUEUE ? this.due : this.slots[w.list];
    if (!list) return;
    if (w.prev) w.prev.next = w.next;
    else list.head = w.next;
    if (w.next) w.next.prev = w.prev;
    else list.tail = w.prev;
    list.size--;
    w.list = NOWHERE;
    w.prev = undefined;
    w.next = undefined;
  }

  private start(): void {
    const now = this.now();
    this.clock.now = now;
    this.handledTick = Math.floor(now / this.tickMs);
    this.lastPace = now;
    this.credit = 0;
    this.timer = setInterval(() => {
      this.tick();
    }, this.tickMs);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
