// The proxy-agent composition root: the client set (streams to the servers) and the health
// and admin endpoints.
import type { Registry } from 'prom-client';
import type { Logger } from '../common/log.js';
import { createRegistry } from '../common/metrics.js';
import { HttpEndpoint, healthRoutes, metricsRoute } from '../common/http-endpoints.js';
import { AgentMetrics } from './metrics.js';
import { ClientSet, type ServerCountSource } from './client-set.js';
import { DEFAULT_CONNECTION_WINDOW } from '../proto/flow-control.js';
import type { DestinationPolicy } from './destination-policy.js';
import { LeaseCounter } from './lease-counter.js';
import { loadKubeClient } from '../common/kube/client.js';
import type { TransportName } from './transport/server-stream.js';
import type { HttpProxy } from './transport/http-proxy.js';

export interface ProxyAgentConfig {
  agentID: string;
  agentIdentifiers: string;
  serverHost: string;
  serverPort: number;
  /** --transport: gRPC (default) or WebSocket. */
  transport?: TransportName;
  /** --proxy-url or HTTPS_PROXY (NO_PROXY applied): the HTTP proxy to cross; undefined: direct. */
  proxy?: HttpProxy | undefined;
  /** CAs an https:// proxy is checked against; undefined: the system roots. */
  proxyCa?: (string | Buffer)[] | undefined;
  /** CA for the server certificate; undefined: the system roots. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  syncIntervalMs: number;
  syncIntervalCapMs: number;
  syncForever?: boolean;
  probeIntervalMs?: number;
  keepaliveTimeMs: number;
  /** HTTP/2 receive window towards each server (stream and connection); default 16 MiB. */
  windowBytes?: number;
  /** flow-control extension: the window granted to servers per connection; default 8 MiB. */
  connectionWindowBytes?: number;
  /** ServiceAccount token file, read on every connect. */
  tokenPath?: string | undefined;
  /** Largest gRPC message accepted from a server; default 4 MiB. */
  maxMessageBytes?: number;
  /** --alpn-proto: ALPN protocols offered before h2. */
  alpnProtocols?: string[];
  /** Which targets may be dialed; undefined: any. */
  destinationPolicy?: DestinationPolicy;
  /** --count-server-leases: where the server Leases are. */
  leaseCounting?: { namespace: string; labelSelector: string; kubeconfig: string } | undefined;
  /** SIGTERM: how long open connections may finish after DRAIN; 0: stop at once. */
  drainTimeoutMs?: number;
  /**
   * While draining, the agent exits only once no connection is open and no dial has arrived
   * for this long (a dial a server routed before it read DRAIN, or one an upstream server
   * routes to its only agent, still finds the agent serving). Default 5 s.
   */
  drainIdleGraceMs?: number;
  /** --server-count-source. */
  serverCountSource?: ServerCountSource;
  health?: { host: string; port: number };
  admin?: { host: string; port: number };
  log: Logger;
  registry?: Registry;
}

export const DEFAULT_DRAIN_IDLE_GRACE_MS = 5000;

export interface AgentAddresses {
  healthPort?: number;
  adminPort?: number;
}

export class ProxyAgent {
  readonly metrics: AgentMetrics;
  readonly clients: ClientSet;
  private readonly endpoints: HttpEndpoint[] = [];
  private draining = false;
  private leaseCounter: LeaseCounter | undefined;

  constructor(private readonly config: ProxyAgentConfig) {
    this.metrics = new AgentMetrics(config.registry ?? createRegistry(true));
    const host = config.serverHost.includes(':') ? `[${config.serverHost}]` : config.serverHost;
    this.clients = new ClientSet({
      address: `${host}:${config.serverPort}`,
      target: {
        host: config.serverHost,
        port: config.serverPort,
        tls: { ca: config.ca, cert: config.cert, key: config.key, alpnProtocols: config.alpnProtocols },
      },
      call: {
        keepaliveTimeMs: config.keepaliveTimeMs,
        keepaliveTimeoutMs: 10_000,
        windowBytes: config.windowBytes ?? 16 * 1024 * 1024,
        maxMessageBytes: config.maxMessageBytes ?? 4 * 1024 * 1024,
      },
      transport: config.transport,
      proxy: config.proxy,
      proxyCa: config.proxyCa,
      agentID: config.agentID,
      agentIdentifiers: config.agentIdentifiers,
      connectionWindow: config.connectionWindowBytes ?? DEFAULT_CONNECTION_WINDOW,
      tokenPath: config.tokenPath,
      destinationPolicy: config.destinationPolicy,
      syncIntervalMs: config.syncIntervalMs,
      syncIntervalCapMs: config.syncIntervalCapMs,
      syncForever: config.syncForever ?? false,
      countedServers: config.leaseCounting ? () => this.leaseCounter?.count() ?? 0 : undefined,
      serverCountSource: config.serverCountSource ?? 'default',
      probeIntervalMs: config.probeIntervalMs ?? 1000,
      log: config.log,
      metrics: this.metrics,
    });
  }

  get registry(): Registry {
    return this.metrics.registry;
  }

  readiness(): { ok: boolean; reason: string } {
    if (this.draining) return { ok: false, reason: 'draining' };
    return this.clients.connectedCount > 0
      ? { ok: true, reason: '' }
      : { ok: false, reason: 'not connected to any proxy-server' };
  }

  async start(): Promise<AgentAddresses> {
    const out: AgentAddresses = {};
    try {
      const leases = this.config.leaseCounting;
      if (leases) {
        const client = await loadKubeClient(leases.kubeconfig, this.config.log);
        this.leaseCounter = new LeaseCounter(
          client,
          leases.namespace,
          leases.labelSelector,
          this.config.log.child({ part: 'lease-counter' }),
        );
        await this.leaseCounter.start();
        const counter = this.leaseCounter;
        this.metrics.trackLeaseCount(() => counter.count());
      }
      if (this.config.health) {
        // Upstream serves /metrics on the agent's health port; existing scrape configs expect it there.
        const ep = new HttpEndpoint({
          ...healthRoutes(() => this.readiness()),
          ...metricsRoute(this.registry),
        });
        this.endpoints.push(ep);
        out.healthPort = await ep.listen(this.config.health.port, this.config.health.host);
      }
      if (this.config.admin) {
        const ep = new HttpEndpoint(metricsRoute(this.registry));
        this.endpoints.push(ep);
        out.adminPort = await ep.listen(this.config.admin.port, this.config.admin.host);
      }
    } catch (err) {
      await this.shutdown();
      throw err;
    }
    this.config.log.info({ agentID: this.config.agentID, ...out }, 'proxy-agent started');
    this.clients.start();
    return out;
  }

  /**
   * SIGTERM: DRAIN on every stream so servers prefer other agents, keep serving dials that still
   * arrive, and stop once no connection is open and no dial has come for the idle grace, or at
   * the drain timeout, or when no server is left. A second signal exits at once (main-runner).
   */
  async shutdown(): Promise<void> {
    const timeout = this.config.drainTimeoutMs ?? 0;
    if (timeout > 0 && !this.draining) {
      this.draining = true;
      this.clients.drain();
      const log = this.config.log;
      const grace = this.config.drainIdleGraceMs ?? DEFAULT_DRAIN_IDLE_GRACE_MS;
      log.info({ timeoutMs: timeout, idleGraceMs: grace, open: this.clients.openConnections }, 'draining');
      const started = performance.now();
      const deadline = started + timeout;
      const idleFor = () => performance.now() - Math.max(started, this.clients.lastDialAt);
      const busy = () => this.clients.openConnections > 0 || this.clients.pendingDials > 0;
      while (
        this.clients.connectedCount > 0 &&
        performance.now() < deadline &&
        (busy() || idleFor() < grace)
      ) {
        await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, deadline - performance.now()))));
      }
      log.info(
        { open: this.clients.openConnections, drainedMs: Math.round(performance.now() - started) },
        'drain over',
      );
    }
    this.clients.stop();
    await this.leaseCounter?.stop();
    await Promise.all(this.endpoints.map((e) => e.close()));
  }
}
