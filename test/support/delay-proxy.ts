// A user-space TCP proxy that delays every byte by `delayMs` in each direction without
// limiting bandwidth: a stand-in for a network with latency (no netem here). It records the
// most bytes it ever held in one direction of one connection: the bytes in flight, which
// show the flow-control windows actually in effect.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** Past this many held bytes per direction, reading pauses (bounds the proxy's memory). */
const HIGH_WATER = 256 * 1024 * 1024;

class DelayedPipe {
  private readonly queue: { due: number; chunk: Buffer }[] = [];
  private held = 0;
  private timer: NodeJS.Timeout | undefined;
  private blocked = false;
  private srcEnded = false;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly delayMs: number,
    private readonly onHeld: (bytes: number) => void,
  ) {
    src.on('data', (chunk: Buffer) => {
      this.queue.push({ due: performance.now() + delayMs, chunk });
      this.held += chunk.length;
      this.onHeld(this.held);
      if (this.held > HIGH_WATER) src.pause();
      this.schedule();
    });
    src.on('end', () => {
      this.srcEnded = true;
      this.schedule();
    });
    dst.on('drain', () => {
      this.blocked = false;
      this.flush();
    });
  }

  private schedule(): void {
    if (this.timer || this.blocked) return;
    const head = this.queue[0];
    if (!head) {
      if (this.srcEnded) this.dst.end();
      return;
    }
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.flush();
      },
      Math.max(0, head.due - performance.now()),
    );
  }

  private flush(): void {
    const now = performance.now();
    while (!this.blocked) {
      const head = this.queue[0];
      if (!head || head.due > now) break;
      this.queue.shift();
      this.held -= head.chunk.length;
      if (!this.dst.write(head.chunk)) this.blocked = true;
    }
    if (this.src.isPaused() && this.held < HIGH_WATER / 2) this.src.resume();
    this.schedule();
  }
}

export class DelayProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  /** Most bytes held at once in one direction of one connection. */
  peakInFlight = 0;

  constructor(
    private readonly targetPort: number,
    readonly delayMs: number,
  ) {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
      const upstream = net.connect({
        port: this.targetPort,
        host: '127.0.0.1',
        allowHalfOpen: true,
        noDelay: true,
      });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.once('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
        s.once('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      const note = (bytes: number) => {
        if (bytes > this.peakInFlight) this.peakInFlight = bytes;
      };
      new DelayedPipe(client, upstream, delayMs, note);
      new DelayedPipe(upstream, client, delayMs, note);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
