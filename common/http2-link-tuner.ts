// Sizes the HTTP/2 receive windows of one long-lived connection (an agent's) by the link's
// bandwidth-delay product, after grpc-go's bdpEstimator: while data arrives, a PING measures
// the round trip, and when the bytes received during it reach a quarter of the window (Go:
// 2/3; we keep four round trips of slack, see proto/flow-control.ts), the window doubles
// (stream and connection), up to a limit. A near link moves far less than that per round
// trip, so its windows, and the memory an unread stream can pin, stay at their configured
// size. The round trip also serves the per-connection window auto-tuning.
import type { Http2Session, Http2Stream } from 'node:http2';

/** At most one measuring ping per this long: Go pings once per round trip, too often for us. */
const MIN_PING_INTERVAL_MS = 20;
const KEPT_RTT_SAMPLES = 5;
const MAX_HTTP2_WINDOW = 2 ** 31 - 1;
/** Agent connections grow their windows to at most this many times the configured size. */
export const HTTP2_WINDOW_GROWTH = 4;

export interface LinkTunerOptions {
  /** The stream window the connection started with (its connection window: twice that). */
  windowBytes: number;
  /** Growth limit of the stream window; at or below windowBytes: no growth. */
  maxWindowBytes: number;
}

export class Http2LinkTuner {
  private window: number;
  private sample = 0;
  private pinging = false;
  private lastPingAt = -Infinity;
  private rtts: number[] = [];

  constructor(
    private readonly session: Http2Session,
    private readonly options: LinkTunerOptions,
  ) {
    this.window = options.windowBytes;
    // One measurement at once, so an idle link shows its round trip too (the agents listing).
    if (!session.connecting) this.ping(0);
    else session.once('connect', () => this.ping(0));
  }

  /** Counts the bytes of every DATA frame `stream` receives. */
  watch(stream: Http2Stream): void {
    stream.on('data', (chunk: Buffer) => {
      this.received(chunk.length);
    });
  }

  /** The stream window now in effect (it grows). */
  get windowBytes(): number {
    return this.window;
  }

  /** The smallest recent round trip in ms (a ping queued behind data measures the queue). */
  get rttMs(): number | undefined {
    return this.rtts.length > 0 ? Math.min(...this.rtts) : undefined;
  }

  private received(bytes: number): void {
    if (this.pinging) {
      this.sample += bytes;
      return;
    }
    if (performance.now() - this.lastPingAt >= MIN_PING_INTERVAL_MS) this.ping(bytes);
  }

  /** Sends a measuring PING; `sample` counts the bytes received from now until its answer. */
  private ping(sample: number): void {
    // 'close' comes a tick after destroy(): a ping in between would throw.
    if (this.pinging || this.session.destroyed || this.session.closed) return;
    this.lastPingAt = performance.now();
    this.sample = sample;
    this.pinging = this.session.ping((err, durationMs) => {
      this.pinging = false;
      if (!err) this.measured(durationMs);
    });
  }

  private measured(rttMs: number): void {
    this.rtts.push(rttMs);
    if (this.rtts.length > KEPT_RTT_SAMPLES) this.rtts.shift();
    const limit = Math.min(MAX_HTTP2_WINDOW, this.options.maxWindowBytes);
    if (this.window >= limit || this.sample < this.window / 4) return;
    if (this.session.destroyed || this.session.closed) return;
    // Four round trips of slack, as the threshold above: straight there, not by doublings.
    this.window = Math.min(limit, Math.max(this.window * 2, this.sample * 4));
    // SETTINGS_INITIAL_WINDOW_SIZE applies to open streams too (RFC 9113 §6.9.2).
    this.session.settings({ initialWindowSize: this.window });
    this.session.setLocalWindowSize(Math.min(MAX_HTTP2_WINDOW, this.window * 2));
  }
}
