// One TCP listener of a load balancer, on <pool address>:<Service port>. It accepts and counts
// client connections and hands each to its handler, which can be swapped while it listens
// (a Service update changes backends, not the listener). Closing stops accepting at once and
// lets open connections finish, cut after a bound.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type ConnectionHandler = (client: net.Socket) => void;

/** Bound on the queue of connections not yet accepted; Node's default of 511 is too small for bursts. */
const LISTEN_BACKLOG = 4096;

export class PortListener {
  readonly connections = new Set<net.Socket>();
  private readonly server: net.Server;
  private closing = false;

  constructor(
    readonly address: string,
    readonly port: number,
    private handler: ConnectionHandler,
  ) {
    // Half-open: a client's EOF reaches the backend as an EOF, the answer still flows back.
    // Paused: nothing is read from a client until its backend connection is there.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      this.accept(socket);
    });
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** Binds; rejects with the bind error (EADDRINUSE, EADDRNOTAVAIL, EACCES) as Node reports it. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(
        { host: this.address, port: this.port, backlog: LISTEN_BACKLOG, exclusive: true },
        () => {
          this.server.off('error', onError);
          // Errors after binding (EMFILE on accept) are Node's to retry; nothing to do here.
          this.server.on('error', () => undefined);
          resolve();
        },
      );
    });
  }

  setHandler(handler: ConnectionHandler): void {
    this.handler = handler;
  }

  /** Stops accepting: the port is free again at once; open connections go on. */
  stopAccepting(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.server.listening) this.server.close();
  }

  /**
   * Stops accepting and waits until the open connections have ended, at most `timeoutMs`
   * (or until `signal` aborts); those still open then are cut.
   */
  async drain(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    this.stopAccepting();
    const deadline = performance.now() + timeoutMs;
    while (this.connections.size > 0 && performance.now() < deadline && !signal?.aborted) {
      const closed = [...this.connections].map(
        (s) => new Promise<void>((resolve) => s.once('close', () => resolve())),
      );
      const left = deadline - performance.now();
      const timer = new AbortController();
      const onAbort = () => timer.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      await Promise.race([
        Promise.any(closed),
        sleep(left, undefined, { signal: timer.signal }).catch(() => undefined),
      ]);
      timer.abort();
      signal?.removeEventListener('abort', onAbort);
    }
    this.destroyConnections();
  }

  /** Stops accepting and cuts every open connection. */
  destroy(): void {
    this.stopAccepting();
    this.destroyConnections();
  }

  private destroyConnections(): void {
    for (const socket of this.connections) socket.destroy();
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    // A client's reset is seen as 'close' by whoever carries the connection; never a crash.
    socket.on('error', () => undefined);
    socket.once('close', () => this.connections.delete(socket));
    this.handler(socket);
  }
}
