// Admission control for TLS handshakes: at most maxInProgress run at once; further connections
// are accepted and wait. When thousands of agents reconnect at once (a server restart),
// handshaking all of them together shares the CPU so thinly that none finishes before the
// agents give up and retry, and the work done on them is lost; with a bound, the admitted ones
// finish in milliseconds and the rest wait their turn.
// A waiting connection is read, not handshaken: its ClientHello is kept and handed to TLS at its
// turn, and a client that gives up while waiting (it closes: our agent after 15 s, grpc-go's
// after 20 s) leaves the queue at once. So the queue holds only clients still there, and no
// handshake is spent on one that left.
// Whose turn: the oldest first while the server keeps up; once the oldest has waited longer
// than newestFirstAfterMs the newest first (adaptive LIFO). In a storm the oldest are the ones
// about to give up: serving them first spends whole handshakes on clients that then time out
// before their stream opens, while the newest have all their patience left. The oldest wait on
// or leave (and retry, becoming the newest). A connection that waited longer than maxWaitMs
// without closing (a peer that vanished silently) is closed when the next slot frees (at least
// every 10 s while handshakes are under way: their own timeout). What a waiting connection may
// send before its turn is bounded (client-hello-buffer.ts).
import net from 'node:net';
import type tls from 'node:tls';
import type { ConcurrencyObserver } from '../common/concurrency-limit.js';
import { ClientHelloBuffer } from './client-hello-buffer.js';

/** As for any concurrency limit (handshakes in progress, connections waiting), and expiry. */
export interface HandshakeObserver extends ConcurrencyObserver {
  /** A connection waited too long and was closed without a handshake. */
  expired(): void;
  /** A waiting connection's client closed it before its turn (it gave up, and retries). */
  abandoned(): void;
  /** A waiting connection sent what no waiting TLS client sends (client-hello-buffer.ts). */
  refused(): void;
}

export interface HandshakeAdmissionOptions {
  /** TLS handshakes in progress at once. */
  maxInProgress: number;
  /** A connection that waited this long for its turn is closed without a handshake. */
  maxWaitMs: number;
  /**
   * Once the oldest waiting connection has waited this long, the server is behind: the newest
   * are admitted first (default 1 s).
   */
  newestFirstAfterMs?: number;
  observer?: HandshakeObserver;
  now?: () => number;
}

const DEFAULT_NEWEST_FIRST_AFTER_MS = 1000;

/** A connection waiting for a handshake slot, read meanwhile so that its client's close is seen. */
class Waiting {
  readonly since: number;
  /** Closed before its turn, by its client or refused. */
  gone = false;
  /** It sent what no waiting TLS client sends, and was closed. */
  refused = false;
  private readonly hello = new ClientHelloBuffer();
  private readonly onData = (chunk: Buffer): void => {
    if (this.hello.push(chunk) !== undefined) {
      this.refused = true;
      this.socket.destroy();
    }
  };
  private readonly onEnd = (): void => {
    this.socket.destroy();
  };
  private readonly onClose = (): void => {
    this.gone = true;
    this.hello.take();
    this.left(this);
  };

  constructor(
    readonly socket: net.Socket,
    now: number,
    private readonly left: (waiting: Waiting) => void,
  ) {
    this.since = now;
    socket.on('data', this.onData);
    socket.once('end', this.onEnd);
    socket.once('close', this.onClose);
  }

  /**
   * Stops reading and puts back what was read, for the TLS socket to start from: Node's TLS
   * socket feeds a wrapped socket's buffered bytes to TLS before any new ones (`initRead` in
   * _tls_wrap.js; the admission tests pin it). Paused first: unshift on a flowing stream with
   * an empty buffer would emit the bytes as 'data' instead of buffering them.
   */
  handOver(): void {
    this.stopWatching();
    this.socket.pause();
    const bytes = this.hello.take();
    if (bytes.length > 0) this.socket.unshift(bytes);
  }

  /** Forgets the connection without a handshake (expired, or the server closes). */
  discard(): void {
    this.stopWatching();
    this.hello.take();
    this.socket.destroy();
  }

  private stopWatching(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
  }
}

/** The peer of a connection, which names it until it closes. */
function peerKey(socket: net.Socket): string | undefined {
  const { remoteAddress, remotePort } = socket;
  return remoteAddress === undefined || remotePort === undefined
    ? undefined
    : `${remoteAddress}|${remotePort}`;
}

/**
 * The TCP socket under a server-side TLS socket: Node keeps it as `_parent`. Not documented, so
 * the peer's address is the fallback, and the TCP socket's 'close' the last resort.
 */
function parentOf(socket: tls.TLSSocket): unknown {
  return (socket as unknown as { _parent?: unknown })._parent;
}

export class HandshakeAdmission {
  /** Accepts TCP connections for the TLS server: listen on this one. */
  readonly tcp: net.Server;
  /** Admitted connections whose handshake has not ended, with their peer at admission. */
  private readonly inProgress = new Map<net.Socket, string | undefined>();
  private queue: (Waiting | undefined)[] = [];
  private head = 0;
  /** Entries of the queue whose client is still there. */
  private live = 0;
  private readonly now: () => number;
  private readonly newestFirstAfterMs: number;

  constructor(
    private readonly secure: tls.Server,
    private readonly options: HandshakeAdmissionOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.newestFirstAfterMs = options.newestFirstAfterMs ?? DEFAULT_NEWEST_FIRST_AFTER_MS;
    // pauseOnConnect: nothing is read until the connection is admitted or queued.
    this.tcp = net.createServer({ pauseOnConnect: true }, (socket) => {
      this.arrive(socket);
    });
    secure.on('secureConnection', (socket: tls.TLSSocket) => {
      this.ended(socket);
    });
    secure.on('tlsClientError', (_err: Error, socket: tls.TLSSocket) => {
      this.ended(socket);
    });
  }

  get handshaking(): number {
    return this.inProgress.size;
  }

  get waiting(): number {
    return this.live;
  }

  /** Stops accepting and closes the connections still waiting. */
  close(): void {
    this.tcp.close();
    for (let i = this.head; i < this.queue.length; i++) this.queue[i]?.discard();
    this.queue = [];
    this.head = 0;
    this.live = 0;
    this.report();
  }

  /** As close(), and the handshakes under way are cut too. */
  destroy(): void {
    this.close();
    for (const socket of [...this.inProgress.keys()]) socket.destroy();
  }

  private arrive(socket: net.Socket): void {
    // A waiting connection's errors end it (its 'close' takes it out of the queue); the TLS
    // socket reports its own once admitted.
    socket.on('error', () => undefined);
    if (this.inProgress.size < this.options.maxInProgress && this.live === 0) {
      this.admit(socket);
    } else {
      this.queue.push(new Waiting(socket, this.now(), this.leftQueue));
      this.live++;
      this.options.observer?.queued();
      socket.resume();
    }
    this.report();
  }

  /** A waiting connection closed: it no longer counts, and is skipped at its turn. */
  private readonly leftQueue = (waiting: Waiting): void => {
    this.live--;
    this.countClosed(waiting);
    // Newest first leaves closed entries under newer ones: drop them once they are most.
    const entries = this.queue.length - this.head;
    if (entries > 2 * this.live + 1024) {
      this.queue = this.queue.slice(this.head).filter((w) => w !== undefined && !w.gone);
      this.head = 0;
    }
    this.report();
  };

  /** A waiting connection closed before its turn: by its client, or for sending too much. */
  private countClosed(waiting: Waiting): void {
    if (waiting.refused) this.options.observer?.refused();
    else this.options.observer?.abandoned();
  }

  private admit(socket: net.Socket): void {
    if (socket.destroyed) return;
    this.inProgress.set(socket, peerKey(socket));
    // The last resort: whatever became of the handshake, the slot is free once the connection is.
    socket.once('close', () => {
      this.release(socket);
    });
    try {
      this.secure.emit('connection', socket);
    } catch {
      // A 'connection' listener threw: this connection cannot be served, the others can.
      socket.destroy();
      this.release(socket);
    }
  }

  /** A TLS handshake ended, done or failed: finds its connection's slot. */
  private ended(tlsSocket: tls.TLSSocket): void {
    const parent = parentOf(tlsSocket);
    if (parent instanceof net.Socket && this.inProgress.has(parent)) {
      this.release(parent);
      return;
    }
    const key = peerKey(tlsSocket);
    if (key === undefined) return; // gone already: its 'close' frees the slot
    for (const [socket, admittedAs] of this.inProgress) {
      if (admittedAs === key) {
        this.release(socket);
        return;
      }
    }
  }

  /** The next waiting connections may start their handshakes. */
  private release(socket: net.Socket): void {
    if (!this.inProgress.delete(socket)) return;
    const now = this.now();
    // After this every entry is younger than maxWaitMs: take() needs no check of its own.
    this.expireOldest(now);
    while (this.inProgress.size < this.options.maxInProgress && this.head < this.queue.length) {
      const next = this.take(now);
      if (!next) continue;
      this.live--;
      if (next.socket.destroyed) {
        // Closed, its 'close' not yet emitted.
        next.discard();
        this.countClosed(next);
        continue;
      }
      next.handOver();
      this.admit(next.socket);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.report();
  }

  /**
   * Closes the waiting connections older than maxWaitMs. Entries are in arrival order (added at
   * the tail, taken from either end), so those are a block at the head; newest first would
   * otherwise never reach them while newer ones keep arriving.
   */
  private expireOldest(now: number): void {
    while (this.head < this.queue.length) {
      const oldest = this.queue[this.head];
      if (oldest && !oldest.gone && now - oldest.since <= this.options.maxWaitMs) return;
      this.queue[this.head++] = undefined;
      if (!oldest || oldest.gone) continue;
      this.live--;
      oldest.discard();
      this.options.observer?.expired();
    }
  }

  /**
   * The next connection to admit, or undefined for an entry that had left: the oldest, unless
   * the oldest has waited longer than newestFirstAfterMs; then the newest.
   */
  private take(now: number): Waiting | undefined {
    const oldest = this.queue[this.head];
    if (!oldest || oldest.gone || now - oldest.since <= this.newestFirstAfterMs) {
      this.queue[this.head++] = undefined;
      return oldest?.gone ? undefined : oldest;
    }
    const newest = this.queue.pop();
    return newest?.gone ? undefined : newest;
  }

  private report(): void {
    this.options.observer?.changed(this.inProgress.size, this.waiting);
  }
}
