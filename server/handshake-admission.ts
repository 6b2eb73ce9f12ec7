// Admission control for TLS handshakes: at most maxInProgress run at once; further connections
// are accepted but left unread, first come first served. When thousands of agents reconnect at
// once (a server restart), handshaking all of them together shares the CPU so thinly that none
// finishes before the agents give up (15 s) and retry, and the work done on them is lost; with a
// bound, the admitted ones finish in milliseconds and the rest wait their turn. A connection
// that waited longer than maxWaitMs is closed unread: its agent has probably given up already,
// and a handshake with it would be work thrown away.
import net from 'node:net';
import type tls from 'node:tls';
import type { ConcurrencyObserver } from '../common/concurrency-limit.js';

/** As for any concurrency limit (handshakes in progress, connections waiting), and expiry. */
export interface HandshakeObserver extends ConcurrencyObserver {
  /** A connection waited too long and was closed unread. */
  expired(): void;
}

export interface HandshakeAdmissionOptions {
  /** TLS handshakes in progress at once. */
  maxInProgress: number;
  /** A connection that waited this long for its turn is closed without a handshake. */
  maxWaitMs: number;
  observer?: HandshakeObserver;
  now?: () => number;
}

interface Waiting {
  socket: net.Socket;
  since: number;
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
  private readonly now: () => number;

  constructor(
    private readonly secure: tls.Server,
    private readonly options: HandshakeAdmissionOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    // pauseOnConnect: nothing is read (no TLS work) until the connection is admitted.
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
    return this.queue.length - this.head;
  }

  /** Stops accepting and closes the connections still waiting. */
  close(): void {
    this.tcp.close();
    for (let i = this.head; i < this.queue.length; i++) this.queue[i]?.socket.destroy();
    this.queue = [];
    this.head = 0;
    this.report();
  }

  /** As close(), and the handshakes under way are cut too. */
  destroy(): void {
    this.close();
    for (const socket of [...this.inProgress.keys()]) socket.destroy();
  }

  private arrive(socket: net.Socket): void {
    // A waiting connection that fails is dropped at its turn; until then nobody reads it.
    socket.on('error', () => undefined);
    if (this.inProgress.size < this.options.maxInProgress && this.waiting === 0) {
      this.admit(socket);
    } else {
      this.queue.push({ socket, since: this.now() });
      this.options.observer?.queued();
    }
    this.report();
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
    while (this.inProgress.size < this.options.maxInProgress && this.head < this.queue.length) {
      const next = this.queue[this.head];
      this.queue[this.head++] = undefined;
      if (!next || next.socket.destroyed) continue;
      if (now - next.since > this.options.maxWaitMs) {
        next.socket.destroy();
        this.options.observer?.expired();
        continue;
      }
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

  private report(): void {
    this.options.observer?.changed(this.inProgress.size, this.waiting);
  }
}
