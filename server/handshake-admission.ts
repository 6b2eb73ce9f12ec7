// Admission control for TLS handshakes: at most maxInProgress run at once; further connections
// are accepted but left unread, first come first served. When thousands of agents reconnect at
// once (a server restart), handshaking all of them together shares the CPU so thinly that none
// finishes before the agents give up (15 s) and retry, and the work done on them is lost; with a
// bound, the admitted ones finish in milliseconds and the rest wait their turn. A connection
// that waited longer than maxWaitMs is closed unread: its agent has probably given up already,
// and a handshake with it would be work thrown away.
import net from 'node:net';
import type tls from 'node:tls';

export interface HandshakeAdmissionOptions {
  /** TLS handshakes in progress at once. */
  maxInProgress: number;
  /** A connection that waited this long for its turn is closed without a handshake. */
  maxWaitMs: number;
  /** Called whenever the number waiting or in progress changes. */
  changed?: (inProgress: number, waiting: number) => void;
  /** A connection had to wait for its turn. */
  queued?: () => void;
  /** A connection waited too long and was closed unread. */
  expired?: () => void;
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

export class HandshakeAdmission {
  /** Accepts TCP connections for the TLS server: listen on this one. */
  readonly tcp: net.Server;
  private readonly inProgress = new Map<string, net.Socket>();
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
      this.finished(peerKey(socket));
    });
    secure.on('tlsClientError', (_err: Error, socket: tls.TLSSocket) => {
      this.finished(peerKey(socket));
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

  private arrive(socket: net.Socket): void {
    // A waiting connection that fails is dropped at its turn; until then nobody reads it.
    socket.on('error', () => undefined);
    if (this.inProgress.size < this.options.maxInProgress && this.waiting === 0) {
      this.admit(socket);
    } else {
      this.queue.push({ socket, since: this.now() });
      this.options.queued?.();
    }
    this.report();
  }

  private admit(socket: net.Socket): void {
    const key = peerKey(socket);
    if (key === undefined) {
      socket.destroy(); // already gone
      return;
    }
    this.inProgress.set(key, socket);
    socket.once('close', () => {
      if (this.inProgress.get(key) === socket) this.finished(key);
    });
    this.secure.emit('connection', socket);
  }

  /** A handshake ended (done, failed, or its connection closed): the next one may start. */
  private finished(key: string | undefined): void {
    if (key === undefined || !this.inProgress.delete(key)) return;
    const now = this.now();
    while (this.inProgress.size < this.options.maxInProgress && this.head < this.queue.length) {
      const next = this.queue[this.head];
      this.queue[this.head++] = undefined;
      if (!next || next.socket.destroyed) continue;
      if (now - next.since > this.options.maxWaitMs) {
        next.socket.destroy();
        this.options.expired?.();
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
    this.options.changed?.(this.inProgress.size, this.waiting);
  }
}
