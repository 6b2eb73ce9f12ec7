// The set of streams to proxy-servers: one per distinct server ID, up to the server count the
// servers announce. A sync loop (re)connects with exponential backoff whenever one is missing.
import { Backoff } from '../common/backoff.js';
import { errorText } from '../common/log.js';
import { ServerClient, type ServerClientConfig } from './server-client.js';

/** What every stream needs, and the pace of the sync loop. */
export interface ClientSetConfig extends ServerClientConfig {
  syncIntervalMs: number;
  syncIntervalCapMs: number;
  /**
   * Keep connecting at --sync-interval even with a stream to every known server, to learn of
   * added servers from the serverCount header (upstream's --sync-forever).
   */
  syncForever?: boolean;
  /** How often each stream's connection is checked; a broken one is dropped and replaced. */
  probeIntervalMs?: number;
  /** Servers counted another way (unexpired Leases); undefined without --count-server-leases. */
  countedServers?: (() => number) | undefined;
  /** --server-count-source, as upstream: how the Lease count and the header count combine. */
  serverCountSource?: ServerCountSource;
}

/**
 * 'default': one source, the Lease count when Leases are counted, else the serverCount header;
 * 'max': the larger of the two, at least 1.
 */
export type ServerCountSource = 'default' | 'max';

export class ClientSet {
  readonly clients = new Map<string, ServerClient>();
  /** serverCount from the latest response headers. */
  private headerCount = 1;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  private connecting = false;
  private stopped = false;

  constructor(private readonly config: ClientSetConfig) {
    // Full jitter: after a server restart its agents come back spread over the window.
    this.backoff = new Backoff(config.syncIntervalMs, config.syncIntervalCapMs, 1.5, 'full');
  }

  get connectedCount(): number {
    return this.clients.size;
  }

  /** The number of servers the agent wants a stream to (upstream's ClientSet.ServerCount). */
  get targetCount(): number {
    const leases = this.config.countedServers;
    if (this.config.serverCountSource === 'max') return Math.max(1, this.headerCount, leases?.() ?? 0);
    if (!leases) return this.headerCount;
    // No Lease seen yet (the informer is starting, or no server publishes one): upstream keeps
    // connecting while its count is 0; following the header does the same without a hot loop.
    return leases() || this.headerCount;
  }

  /** When the latest DIAL_REQ arrived on any stream (performance.now()), 0 if none has. */
  get lastDialAt(): number {
    let t = 0;
    for (const c of this.clients.values()) t = Math.max(t, c.lastDialAt);
    return t;
  }

  get pendingDials(): number {
    let n = 0;
    for (const c of this.clients.values()) n += c.pendingDialCount;
    return n;
  }

  start(): void {
    void this.sync();
    const probe = this.config.probeIntervalMs ?? 0;
    if (probe > 0) {
      this.probeTimer = setInterval(() => {
        this.probe();
      }, probe);
      this.probeTimer.unref();
    }
  }

  /** A stream whose connection broke without an event yet is dropped, so sync replaces it. */
  private probe(): void {
    for (const [id, client] of this.clients) {
      if (!client.healthy()) {
        this.config.log.warn(
          { serverID: id },
          'probe: connection to proxy-server is not ready; reconnecting',
        );
        client.shutdown('probe failed');
      }
    }
    this.config.metrics.knownServerCount.set(this.targetCount);
    if (this.clients.size < this.targetCount && !this.timer && !this.connecting) void this.sync();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync();
    }, delayMs);
  }

  private async sync(): Promise<void> {
    if (this.stopped || this.connecting) return;
    const atTarget = this.clients.size >= this.targetCount;
    this.config.metrics.knownServerCount.set(this.targetCount);
    if (atTarget && !this.config.syncForever) {
      this.schedule(this.config.syncIntervalMs);
      return;
    }
    this.connecting = true;
    const { config } = this;
    const client = new ServerClient(config);
    try {
      const identity = await client.connect();
      this.connecting = false;
      if (this.isStopped()) {
        client.shutdown('agent stopping');
        return;
      }
      if (identity.serverCount !== this.headerCount) {
        config.log.info({ from: this.headerCount, to: identity.serverCount }, 'server count changed');
        this.headerCount = identity.serverCount;
      }
      config.metrics.knownServerCount.set(this.targetCount);
      if (this.clients.has(identity.serverID)) {
        // Behind a load balancer we reached a server we already hold a stream to.
        config.log.debug({ serverID: identity.serverID }, 'duplicate server; closing the new stream');
        client.shutdown('duplicate server');
        this.schedule(atTarget ? config.syncIntervalMs : this.backoff.next());
        return;
      }
      this.clients.set(identity.serverID, client);
      config.metrics.serverConnections.set(this.clients.size);
      this.backoff.reset();
      config.log.info(
        {
          serverID: identity.serverID,
          serverCount: identity.serverCount,
          halfClose: client.halfClose,
          transport: config.transport ?? 'grpc',
        },
        'connected to proxy-server',
      );
      client.onClose((reason) => {
        if (this.clients.get(identity.serverID) === client) this.clients.delete(identity.serverID);
        config.metrics.serverConnections.set(this.clients.size);
        if (!this.stopped)
          config.log.warn({ serverID: identity.serverID, reason }, 'lost connection to proxy-server');
        this.schedule(this.backoff.next());
      });
      this.schedule(config.syncIntervalMs);
    } catch (err) {
      this.connecting = false;
      const delay = this.backoff.next();
      config.log.warn(
        {
          address: config.address,
          error: errorText(err),
          retryInMs: delay,
          backoffWindowMs: this.backoff.window,
        },
        'cannot connect to proxy-server',
      );
      this.schedule(delay);
    }
  }

  /** Read through a method: `stopped` can change while connect() is awaited. */
  private isStopped(): boolean {
    return this.stopped;
  }

  get openConnections(): number {
    let n = 0;
    for (const c of this.clients.values()) n += c.connections.size;
    return n;
  }

  /** SIGTERM: no new streams; DRAIN on every stream. Connections stay until stop(). */
  drain(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    for (const c of this.clients.values()) c.drain();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    for (const c of [...this.clients.values()]) c.shutdown('agent stopping');
    this.clients.clear();
    this.config.metrics.serverConnections.set(0);
  }
}
