// Per-connection flow control between our server and our agent (the `flow-control`
// extension). Upstream multiplexes every connection of an agent on one stream without it, so
// one client that stops reading stalls all of them. With it, each side grants the other a
// window per connection (announced in the konnectivity-ts-connection-window header); the
// receiver returns credit as bytes leave it (not when they arrive), in DATA packets with no
// data and error "WINDOW <bytes>". A sender out of credit pauses that connection's source
// only; the shared stream is never paused. One connection moves at most a window per round
// trip, and a stalled reader holds at most a window.
import { packets, type DataPacket } from './packet.js';

export const DEFAULT_CONNECTION_WINDOW = 8 * 1024 * 1024;
const MIN_WINDOW = 64 * 1024;
const MAX_WINDOW = 1024 * 1024 * 1024;

/** The window a peer announced, or the default when it announced none or nonsense. */
export function parseConnectionWindow(value: string | undefined): number {
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= MIN_WINDOW && n <= MAX_WINDOW ? n : DEFAULT_CONNECTION_WINDOW;
}

export function isValidConnectionWindow(n: number): boolean {
  return Number.isSafeInteger(n) && n >= MIN_WINDOW && n <= MAX_WINDOW;
}

const PREFIX = 'WINDOW ';

export function windowUpdate(connectID: bigint, bytes: number): DataPacket {
  return packets.data(connectID, packets.empty, PREFIX + String(bytes));
}

/** The credit a WINDOW packet returns, or undefined when the DATA packet is not one. */
export function parseWindowUpdate(p: DataPacket): number | undefined {
  if (p.data.length !== 0 || !p.error.startsWith(PREFIX)) return undefined;
  const n = Number(p.error.slice(PREFIX.length));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** Sender side: bytes we may still send on one connection. */
export class SendCredit {
  private waiters: (() => void)[] = [];

  /** `credit`: the window the peer granted. */
  constructor(private credit: number) {}

  /** Accounts for sent bytes; false when the credit is used up (pause the source). */
  consume(bytes: number): boolean {
    this.credit -= bytes;
    return this.credit > 0;
  }

  grant(bytes: number): void {
    this.credit += bytes;
    if (this.credit <= 0 || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  whenAvailable(fn: () => void): void {
    if (this.credit > 0) fn();
    else this.waiters.push(fn);
  }

  /** Releases waiters when the connection ends. */
  release(): void {
    this.credit = Number.MAX_SAFE_INTEGER;
    this.grant(0);
  }
}

/**
 * A sender checks its credit after sending, so it may overshoot by one message: at most the
 * gRPC message size limit (4 MiB). Beyond that, the peer is ignoring the window.
 */
export const MAX_OVERSHOOT = 4 * 1024 * 1024;

/**
 * Window auto-tuning. When a whole window leaves the receiver within four round trips of the
 * link (measured by HTTP/2 PING, common/http2-link-tuner.ts), the window is less than about
 * four bandwidth-delay products and it doubles (up to the tuning limit); within two round
 * trips it is under two, and it quadruples, so that a far link's ramp takes fewer round
 * trips (a 50 ms agent: 8 -> 32 -> 64 MiB rather than 8 -> 16 -> 32 -> 64). Four, not Go's 1.5:
 * credit goes back in quarter-window batches and crosses two busy event loops, and queues on
 * the sending side count against the window too. Measured over a whole window, not one batch,
 * because writes complete in bursts: a quarter window can "leave" in a moment on a link that
 * is not fast at all. A link that is fast but near (loopback, one zone) stays far below that,
 * so its windows, and what a stalled reader can hold, stay at the configured size. Before the
 * first measurement, a fixed time stands in. Growth needs a reader that keeps up: a stalled one
 * returns no credit, so it never holds more than its window.
 */
export const WINDOW_GROWTH_ROUND_TRIPS = 4;
export const WINDOW_GROWTH_UNMEASURED_MS = 100;

/** Auto-tuning grows a connection's window to at most this many times the configured one. */
export const WINDOW_GROWTH_LIMIT = 16;

export function tunedWindowLimit(window: number): number {
  return Math.min(MAX_WINDOW, window * WINDOW_GROWTH_LIMIT);
}

/** Receiver side: bytes that have left us and whose credit is still to be returned. */
export class ReceiveWindow {
  private unacked = 0;
  /** Received and not yet credited back. */
  private outstanding = 0;
  private window: number;
  /** Credited since `measureStart`: growth is judged once a whole window has left. */
  private measured = 0;
  /** From the first byte received: a dial's own round trips are not the link's slowness. */
  private measureStart: number | undefined;

  constructor(
    window: number,
    private readonly sendUpdate: (bytes: number) => void,
    /** The window may grow to this (auto-tuning); default: no growth. */
    private readonly maxWindow = window,
    /** The link's round trip in ms, when known (auto-tuning). */
    private readonly rttMs: () => number | undefined = () => undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.window = window;
  }

  /** The current window (it grows with auto-tuning). */
  get size(): number {
    return this.window;
  }

  /** Accounts for received bytes; false when the peer has sent past its window (a violation). */
  accept(bytes: number): boolean {
    this.measureStart ??= this.now();
    this.outstanding += bytes;
    return this.outstanding <= this.window + MAX_OVERSHOOT;
  }

  /** Bytes handed on without backpressure. */
  delivered(bytes: number): void {
    this.measureStart ??= this.now();
    this.unacked += bytes;
    // Credit goes back in batches of at least a quarter window, to keep control packets rare.
    if (this.unacked < Math.floor(this.window / 4)) return;
    let growth = 0;
    this.measured += this.unacked;
    if (this.measured >= this.window) {
      const t = this.now();
      const elapsed = t - this.measureStart;
      const growthTime = this.growthTime();
      if (this.window < this.maxWindow && elapsed < growthTime) {
        const factor = elapsed < growthTime / 2 ? 4 : 2;
        growth = Math.min(this.window * (factor - 1), this.maxWindow - this.window);
        this.window += growth;
      }
      this.measureStart = t;
      this.measured = 0;
    }
    // The extra credit is the growth: the sender just sees more room.
    this.sendUpdate(this.unacked + growth);
    this.outstanding -= this.unacked;
    this.unacked = 0;
  }

  /** A whole window leaving faster than this means the connection is window-bound. */
  private growthTime(): number {
    const rtt = this.rttMs();
    return rtt === undefined ? WINDOW_GROWTH_UNMEASURED_MS : rtt * WINDOW_GROWTH_ROUND_TRIPS;
  }
}
