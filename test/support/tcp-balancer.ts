// A round-robin TCP load balancer on loopback, as agents meet it in front of several
// proxy-servers: each new connection goes to the next backend; a backend that refuses is
// skipped (as a balancer's health check would), so agents still land on the live ones.
import net from 'node:net';

export class TcpBalancer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private next = 0;
  port = 0;

  constructor(readonly backends: number[]) {
    this.server = net.createServer((client) => {
      this.track(client);
      client.pause();
      this.route(client, 0);
    });
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => this.sockets.delete(s));
  }

  private route(client: net.Socket, attempt: number): void {
    if (attempt >= this.backends.length || client.destroyed) {
      client.destroy();
      return;
    }
    const port = this.backends[this.next++ % this.backends.length] ?? 0;
    const upstream = net.connect(port, '127.0.0.1');
    this.track(upstream);
    let connected = false;
    upstream.once('error', () => {
      if (!connected) this.route(client, attempt + 1);
      else client.destroy();
    });
    upstream.once('connect', () => {
      connected = true;
      client.pipe(upstream).pipe(client);
      client.resume();
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** Breaks every connection through the balancer; it goes on accepting new ones. */
  cutAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
