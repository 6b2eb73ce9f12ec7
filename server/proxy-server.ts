// The proxy-server composition root: frontend listeners (gRPC or HTTP CONNECT, on a Unix
// socket or mTLS TCP), the agent listener, the health and admin endpoints, and their lifecycle.
import http from 'node:http';
import https from 'node:https';
import { resolve as resolvePath } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import type { Registry } from 'prom-client';
import { CONNECT_METHOD, PROXY_METHOD } from '../proto/services.js';
import type { Logger } from '../common/log.js';
import { createRegistry } from '../common/metrics.js';
import { HttpEndpoint, healthRoutes, metricsRoute } from '../common/http-endpoints.js';
import { listen } from '../common/listen.js';
import { ConcurrencyLimit } from '../common/concurrency-limit.js';
import type { TlsFiles } from '../common/tls.js';
import { DEFAULT_TLS_POLICY, tlsPolicyOptions, type TlsPolicy } from '../common/tls-policy.js';
import { TlsReloader } from '../common/tls-reload.js';
import { TIMED_OUT, withDeadline } from '../common/deadline.js';
import { GrpcServer, type GrpcServerOptions, type TlsListenOptions } from './grpc/server.js';
import { HTTP2_WINDOW_GROWTH } from '../common/http2-link-tuner.js';
import { ServerMetrics } from './metrics.js';
import { DEFAULT_CONNECTION_WINDOW } from '../proto/flow-control.js';
import { BackendManager } from './backend/backend-manager.js';
import type { ProxyStrategy } from './backend/proxy-strategies.js';
import { AgentService } from './backend/agent-service.js';
import { WebSocketAgentEndpoint } from './websocket/websocket-agent-endpoint.js';
import {
  expiredClientCertificate,
  ticketOptions,
  TicketKeyRotation,
  utcDay,
  type TicketMaterial,
} from './session-tickets.js';
import { TunnelBroker } from './tunnel/broker.js';
import { GrpcFrontend } from './frontend/grpc-frontend.js';
import { HttpConnectFrontend } from './frontend/http-connect-frontend.js';
import {
  TokenAuthenticator,
  apiTokenReviewer,
  type TokenPolicy,
  type TokenReviewer,
} from '../common/kube/token-review.js';
import { loadKubeClient } from '../common/kube/client.js';
import { LeaseController, type LeaseControllerOptions } from './leases/lease-controller.js';
import { IdentityBinding } from './identity/identity-binding.js';
import { DEFAULT_IDENTITY_BINDING, type IdentityBindingConfig } from './identity/binding-options.js';
import { NodeWatch } from './identity/node-watch.js';

export interface FrontendConfig {
  mode: 'grpc' | 'http-connect';
  /** Unix socket path; otherwise TCP on host:port with TLS. */
  uds?: string;
  udsMode?: number;
  deleteExistingUds?: boolean;
  host?: string;
  port?: number;
  /** TLS for TCP; with `ca`, client certificates are required and verified. */
  tls?: TlsFiles;
}

export interface ProxyServerConfig {
  serverID: string;
  serverCount: number;
  /** How agents are chosen for a dial, in order; default ['default']. */
  proxyStrategies?: ProxyStrategy[];
  frontends: FrontendConfig[];
  agent: { host: string; port: number; tls: TlsFiles };
  health?: { host: string; port: number };
  admin?: { host: string; port: number };
  keepaliveTimeMs: number;
  frontendKeepaliveTimeMs: number;
  /** Keepalive pings a second per listener, all connections together; 0: no limit. */
  keepaliveMaxPingsPerSecond?: number;
  /** HTTP/2 receive window of each agent stream (its connection gets twice that). */
  agentWindowBytes?: number;
  /** HTTP/2 receive window of each gRPC frontend stream. */
  frontendWindowBytes?: number;
  /** flow-control extension: the window granted to agents per connection. */
  connectionWindowBytes?: number;
  backendDialTimeoutMs: number;
  gracefulShutdownTimeoutMs: number;
  /** Agents must present a ServiceAccount token that a TokenReview accepts. */
  agentAuth?: { policy: TokenPolicy } | undefined;
  /** Agents may claim only their own node; default: enforce where the node is known. */
  identityBinding?: IdentityBindingConfig;
  /** --enable-lease-controller. */
  leases?: Omit<LeaseControllerOptions, 'serverID'> | undefined;
  /** For the Kubernetes API (token review, leases); empty: in-cluster config. */
  kubeconfig?: string;
  /** Limits that make a dial fail at once rather than harm others; absent or 0: none. */
  limits?: Partial<ServerLimits>;
  /** Minimum TLS version and cipher list of every TLS listener; default TLS 1.2, Node's ciphers. */
  tlsPolicy?: TlsPolicy;
  /** How often certificate files are checked for changes; 0 or undefined: never. */
  certReloadIntervalMs?: number;
  /** The agent port's session-ticket secret: tickets valid across restarts and replicas. */
  agentTicketSecret?: Buffer | undefined;
  /** Overrides the Kubernetes TokenReview (embedding, tests). */
  tokenReviewer?: TokenReviewer;
  log: Logger;
  registry?: Registry;
}

export interface ServerLimits {
  maxPendingDials: number;
  maxConnectionsPerAgent: number;
  maxDialsPerSecond: number;
  /** TokenReviews in flight at once (agents beyond it queue); 0: no limit. */
  maxConcurrentTokenReviews: number;
  /** TLS handshakes in progress at once on the agent port (the rest wait unread); 0: no limit. */
  maxConcurrentAgentHandshakes?: number;
  /** Largest gRPC message accepted from frontends and agents. */
  maxMessageBytes: number;
  /** A gRPC connection without a stream for this long is closed; 0: never. */
  idleConnectionMs: number;
  /** An HTTP CONNECT request head must be complete within this; default 10 s. */
  headerTimeoutMs: number;
}

export interface BoundFrontend {
  mode: 'grpc' | 'http-connect';
  uds?: string;
  port?: number;
}

export interface ServerAddresses {
  frontends: BoundFrontend[];
  agentPort: number;
  healthPort?: number;
  adminPort?: number;
}

const KEEPALIVE_TIMEOUT_MS = 10_000;
export const DEFAULT_AGENT_WINDOW = 16 * 1024 * 1024;
export const DEFAULT_FRONTEND_WINDOW = 4 * 1024 * 1024;
/** gRPC's usual default (grpc-js, grpc-go), stated so both sides agree. */
const DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024;
const DEFAULT_HEADER_TIMEOUT = 10_000;
const DEFAULT_MAX_CONCURRENT_REVIEWS = 128;
const DEFAULT_MAX_CONCURRENT_AGENT_HANDSHAKES = 64;
/** Shorter than the agents' own 15 s: one that waited longer has probably given up. */
const AGENT_HANDSHAKE_MAX_WAIT_MS = 10_000;
const DEFAULT_KEEPALIVE_PINGS_PER_SECOND = 10;

export class ProxyServer {
  readonly metrics: ServerMetrics;
  readonly backends: BackendManager;
  readonly broker: TunnelBroker;
  private readonly log: Logger;
  private readonly grpcFrontendServer: GrpcServer;
  private readonly agentServer: GrpcServer;
  private readonly httpServers: http.Server[] = [];
  private readonly httpFrontends: HttpConnectFrontend[] = [];
  private readonly endpoints: HttpEndpoint[] = [];
  private readonly agentService: AgentService;
  /** HTTP/1.1 on the agent port: agents' WebSocket upgrades. */
  private readonly agentWebSocket: WebSocketAgentEndpoint;
  private readonly reloaders: TlsReloader[] = [];
  private readonly rotations: TicketKeyRotation[] = [];
  private leaseController: LeaseController | undefined;
  private binding: IdentityBinding | undefined;
  private stopped = false;

  constructor(private readonly config: ProxyServerConfig) {
    this.log = config.log;
    this.metrics = new ServerMetrics(config.registry ?? createRegistry(true));
    this.backends = new BackendManager(this.metrics, config.proxyStrategies ?? ['default']);
    const limits = config.limits ?? {};
    this.broker = new TunnelBroker(this.backends, this.metrics, this.log.child({ part: 'broker' }), {
      dialTimeoutMs: config.backendDialTimeoutMs,
      maxPendingDials: limits.maxPendingDials ?? 0,
      maxConnectionsPerAgent: limits.maxConnectionsPerAgent ?? 0,
    });
    const common = {
      maxMessageBytes: limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE,
      keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS,
      keepaliveMaxPingsPerSecond: config.keepaliveMaxPingsPerSecond ?? DEFAULT_KEEPALIVE_PINGS_PER_SECOND,
      idleConnectionMs: limits.idleConnectionMs ?? 0,
    };
    const frontendLog = this.log.child({ part: 'grpc-frontend' });
    const frontend = new GrpcFrontend(this.broker, this.metrics, frontendLog, {
      maxDialsPerSecond: limits.maxDialsPerSecond ?? 0,
    });
    this.grpcFrontendServer = new GrpcServer(
      { [PROXY_METHOD]: frontend.handle },
      {
        ...common,
        windowBytes: config.frontendWindowBytes ?? DEFAULT_FRONTEND_WINDOW,
        keepaliveTimeMs: config.frontendKeepaliveTimeMs,
      },
      frontendLog,
    );
    const agentWindow = config.agentWindowBytes ?? DEFAULT_AGENT_WINDOW;
    this.agentService = new AgentService(
      this.broker,
      this.backends,
      this.metrics,
      this.log.child({ part: 'agent-server' }),
      {
        serverID: config.serverID,
        serverCount: config.serverCount,
        connectionWindow: config.connectionWindowBytes ?? DEFAULT_CONNECTION_WINDOW,
      },
    );
    this.agentWebSocket = new WebSocketAgentEndpoint(
      this.agentService.handle,
      {
        maxMessageBytes: common.maxMessageBytes,
        keepaliveTimeMs: config.keepaliveTimeMs,
        keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS,
        keepaliveMaxPingsPerSecond: common.keepaliveMaxPingsPerSecond,
        headerTimeoutMs: limits.headerTimeoutMs || DEFAULT_HEADER_TIMEOUT,
      },
      this.log.child({ part: 'agent-server', transport: 'websocket' }),
    );
    this.agentServer = new GrpcServer(
      { [CONNECT_METHOD]: this.agentService.handle },
      {
        ...common,
        windowBytes: agentWindow,
        maxWindowBytes: agentWindow * HTTP2_WINDOW_GROWTH,
        keepaliveTimeMs: config.keepaliveTimeMs,
        http1: (socket) => {
          this.agentWebSocket.accept(socket);
        },
        onSecureConnection: (socket) => {
          // Runs when the handshake is done, before any request is read: an agent refused here
          // never reaches AgentService (Node's HTTP/2 session exists already, and goes with it).
          const expired = expiredClientCertificate(socket, Date.now());
          if (expired) {
            this.log.warn({ peer: socket.remoteAddress, reason: expired }, 'agent refused');
            this.metrics.agentTlsHandshakeFailures.inc();
            socket.destroy();
            return;
          }
          this.metrics.agentTlsHandshakes.labels(socket.isSessionReused() ? 'true' : 'false').inc();
        },
        onTlsClientError: () => {
          this.metrics.agentTlsHandshakeFailures.inc();
        },
        handshakeAdmission: this.agentHandshakeAdmission(),
      },
      this.log.child({ part: 'agent-server' }),
    );
  }

  private agentHandshakeAdmission(): GrpcServerOptions['handshakeAdmission'] {
    const max = this.config.limits?.maxConcurrentAgentHandshakes ?? DEFAULT_MAX_CONCURRENT_AGENT_HANDSHAKES;
    if (max <= 0) return undefined;
    return {
      maxInProgress: max,
      maxWaitMs: AGENT_HANDSHAKE_MAX_WAIT_MS,
      observer: this.metrics.agentHandshakeObserver(),
    };
  }

  get registry(): Registry {
    return this.metrics.registry;
  }

  /** Ready means a dial can be routed now: at least one agent connected. */
  readiness(): { ok: boolean; reason: string } {
    if (this.backends.readyCount > 0) return { ok: true, reason: '' };
    return { ok: false, reason: this.backends.size > 0 ? 'every agent is draining' : 'no agent connected' };
  }

  /** GET /agents on the admin port: the connected agents, as JSON. */
  private agentsRoute(): Promise<{ status: number; type: string; body: string }> {
    const agents = this.backends.list().map((b) => ({
      agentID: b.agentID,
      identifiers: b.identifiers,
      ...this.binding?.describe(b),
      peer: b.peer,
      transport: b.transport,
      connectedSince: b.connectedAt.toISOString(),
      draining: b.draining,
      openConnections: b.connections.size,
      pendingDials: b.pendingDials,
      extensions: [...b.extensions],
      rttMs: roundTo(b.rttMs(), 2),
      receiveWindowBytes: b.receiveWindowBytes(),
    }));
    const body = JSON.stringify(
      { serverID: this.config.serverID, serverCount: this.config.serverCount, agents },
      null,
      2,
    );
    return Promise.resolve({ status: 200, type: 'application/json', body: body + '\n' });
  }

  async start(): Promise<ServerAddresses> {
    const out: ServerAddresses = { frontends: [], agentPort: 0 };
    try {
      const { agentAuth: auth, leases } = this.config;
      const bindingConfig = this.config.identityBinding ?? DEFAULT_IDENTITY_BINDING;
      const needsNodes = IdentityBinding.needsNodes(bindingConfig, auth !== undefined);
      const needsKube = (auth && !this.config.tokenReviewer) || leases || needsNodes;
      const kube = needsKube ? await loadKubeClient(this.config.kubeconfig ?? '', this.log) : undefined;
      if (auth) {
        const reviewer = this.config.tokenReviewer ?? (kube && apiTokenReviewer(kube));
        if (!reviewer) throw new Error('token authentication needs a Kubernetes client');
        const limit = new ConcurrencyLimit(
          this.config.limits?.maxConcurrentTokenReviews ?? DEFAULT_MAX_CONCURRENT_REVIEWS,
          this.metrics.tokenReviewObserver(),
        );
        this.agentService.authenticator = new TokenAuthenticator(reviewer, auth.policy, { limit });
        this.log.info({ ...auth.policy }, 'agents must present a ServiceAccount token');
      }
      const bindingLog = this.log.child({ part: 'identity-binding' });
      this.binding = new IdentityBinding(
        bindingConfig,
        auth !== undefined,
        needsNodes && kube ? new NodeWatch(kube, bindingLog) : undefined,
        this.backends,
        this.metrics,
        bindingLog,
      );
      this.binding.logStartup();
      this.agentService.binding = this.binding;
      for (const fe of this.config.frontends) out.frontends.push(await this.startFrontend(fe));
      const a = this.config.agent;
      out.agentPort = await this.listenGrpcTls(
        this.agentServer,
        'agent',
        a.host,
        a.port,
        a.tls,
        this.config.agentTicketSecret,
      );
      this.log.info({ listener: 'agent', port: out.agentPort, host: a.host }, 'listening');
      if (this.config.health) {
        const ep = new HttpEndpoint(healthRoutes(() => this.readiness()));
        this.endpoints.push(ep);
        out.healthPort = await ep.listen(this.config.health.port, this.config.health.host);
        this.log.info({ listener: 'health', port: out.healthPort }, 'listening');
      }
      if (this.config.admin) {
        const ep = new HttpEndpoint({ ...metricsRoute(this.registry), '/agents': () => this.agentsRoute() });
        this.endpoints.push(ep);
        out.adminPort = await ep.listen(this.config.admin.port, this.config.admin.host);
        this.log.info({ listener: 'admin', port: out.adminPort }, 'listening');
      }
      if (leases && kube) {
        this.leaseController = new LeaseController(
          kube,
          { ...leases, serverID: this.config.serverID },
          this.metrics,
          this.log.child({ part: 'leases' }),
        );
        this.leaseController.start();
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    return out;
  }

  private async startFrontend(fe: FrontendConfig): Promise<BoundFrontend> {
    const where = fe.uds ? { uds: fe.uds } : { host: fe.host ?? '', port: fe.port ?? 0 };
    const tls = fe.tls;
    if (!fe.uds && !tls) throw new Error('a TCP frontend needs --server-cert and --server-key');
    if (fe.mode === 'grpc') {
      let port = 0;
      if (fe.uds) {
        const path = resolvePath(fe.uds);
        await this.grpcFrontendServer.listenUds(path, fe.deleteExistingUds ?? true, fe.udsMode);
      } else if (tls) {
        port = await this.listenGrpcTls(this.grpcFrontendServer, 'frontend', fe.host, fe.port ?? 0, tls);
      }
      this.log.info({ listener: 'frontend', mode: 'grpc', ...where, port }, 'listening');
      return fe.uds ? { mode: 'grpc', uds: fe.uds } : { mode: 'grpc', port };
    }
    const headerTimeout = this.config.limits?.headerTimeoutMs || DEFAULT_HEADER_TIMEOUT;
    const serverOptions: http.ServerOptions = {
      maxHeaderSize: 16 * 1024,
      requireHostHeader: false,
      // Slowloris: a request head not complete in time gets 408. Node checks only every
      // connectionsCheckingInterval (default 30 s), so check often enough to honour the bound.
      headersTimeout: headerTimeout,
      requestTimeout: headerTimeout,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headerTimeout / 4))),
    };
    let server: http.Server;
    if (fe.uds || !tls) {
      server = http.createServer(serverOptions);
    } else {
      const secure = https.createServer({
        ...serverOptions,
        // http.Server sets this itself, https.Server does not: without it a client's FIN
        // ends our direction too and a half-closed tunnel loses the target's answer.
        allowHalfOpen: true,
        ...this.secureContext(tls),
        ...(tls.ca ? { requestCert: true, rejectUnauthorized: true } : {}),
      });
      server = secure;
      this.watchTls('frontend', tls, (files) => {
        secure.setSecureContext(this.secureContext(files));
      });
    }
    server.on('tlsClientError', (err: Error) =>
      this.log.info({ error: err.message }, 'TLS handshake with client failed'),
    );
    const frontend = new HttpConnectFrontend(
      this.broker,
      this.metrics,
      this.log.child({ part: 'http-connect-frontend' }),
      this.config.frontendKeepaliveTimeMs,
    );
    frontend.attach(server);
    this.httpFrontends.push(frontend);
    this.httpServers.push(server);
    const bound = await listen(server, {
      uds: fe.uds,
      host: fe.host,
      port: fe.port,
      deleteExisting: fe.deleteExistingUds ?? true,
      mode: fe.udsMode,
    });
    this.log.info({ listener: 'frontend', mode: 'http-connect', ...where, port: bound.port }, 'listening');
    return fe.uds ? { mode: 'http-connect', uds: fe.uds } : { mode: 'http-connect', port: bound.port };
  }

  /** A gRPC listener over TLS whose certificate files are re-read when they change. */
  private async listenGrpcTls(
    server: GrpcServer,
    name: string,
    host: string | undefined,
    port: number,
    tls: TlsFiles,
    ticketSecret?: Buffer,
  ): Promise<number> {
    const material = (files: TlsFiles): TicketMaterial | undefined =>
      ticketSecret && {
        secret: ticketSecret,
        cert: files.cert,
        ca: files.ca,
        policy: JSON.stringify(tlsPolicyOptions(this.tlsPolicy)),
      };
    const first = material(tls);
    const startDay = utcDay(Date.now());
    const options: TlsListenOptions = {
      ...this.secureContext(tls),
      ...(first ? ticketOptions(first, startDay) : {}),
      requestCert: !!tls.ca,
    };
    const bound = await server.listenTls(host || '0.0.0.0', port, options).catch((err: unknown) => {
      throw new Error(`cannot listen on ${host || '0.0.0.0'}:${port}: ${(err as Error).message}`);
    });
    let rotation: TicketKeyRotation | undefined;
    if (first) {
      rotation = new TicketKeyRotation(first, startDay, (keys) => {
        bound.setTicketKeys(keys);
      });
      rotation.start(); // today's key at once if midnight passed while listening began
      this.rotations.push(rotation);
    }
    this.watchTls(name, tls, (files) => {
      const day = utcDay(Date.now());
      const m = material(files);
      bound.setSecureContext({ ...this.secureContext(files), ...(m ? ticketOptions(m, day) : {}) });
      if (m) rotation?.set(m, day);
    });
    return bound.port;
  }

  /**
   * SIGTERM: stop accepting new frontend connections, let open ones finish for up to the
   * graceful timeout, then close everything.
   */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    const timeout = this.config.gracefulShutdownTimeoutMs;
    this.log.info(
      { timeoutMs: timeout, open: this.broker.establishedCount, pending: this.broker.pendingCount },
      'shutting down: no new connections',
    );
    this.grpcFrontendServer.stopAccepting();
    for (const s of this.httpServers) s.close();
    // Then agents stop counting this server, as upstream does.
    await this.leaseController?.stop();
    this.leaseController = undefined;
    if (timeout > 0) {
      const idle = (await withDeadline(this.broker.whenIdle(), timeout)) !== TIMED_OUT;
      this.log.info({ drained: idle, open: this.broker.establishedCount }, 'graceful period over');
    }
    await this.stop();
  }

  private get tlsPolicy(): TlsPolicy {
    return this.config.tlsPolicy ?? DEFAULT_TLS_POLICY;
  }

  /** Certificate, key, client CA and TLS policy of a listener, at start and on every reload. */
  private secureContext(files: TlsFiles): SecureContextOptions {
    return {
      cert: files.cert,
      key: files.key,
      ...(files.ca ? { ca: files.ca } : {}),
      ...tlsPolicyOptions(this.tlsPolicy),
    };
  }

  /** Re-reads a listener's certificate files when they change on disk. */
  private watchTls(name: string, tls: TlsFiles, apply: (files: TlsFiles) => void): void {
    const interval = this.config.certReloadIntervalMs ?? 0;
    if (!tls.paths || interval <= 0) return;
    const reloader = new TlsReloader(name, tls.paths, tls, this.log);
    reloader.onChange(apply);
    reloader.start(interval);
    this.reloaders.push(reloader);
  }

  /** Closes every listener and connection at once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const r of this.reloaders) r.stop();
    for (const r of this.rotations) r.stop();
    this.binding?.stop();
    await this.leaseController?.stop();
    this.grpcFrontendServer.destroy();
    this.agentServer.destroy();
    this.agentWebSocket.destroy();
    for (const s of this.httpServers) {
      s.close();
      s.closeAllConnections();
    }
    for (const f of this.httpFrontends) f.destroyAll();
    await Promise.all(this.endpoints.map((e) => e.close()));
    this.agentService.churn.flush();
  }
}

function roundTo(n: number | undefined, digits: number): number | undefined {
  return n === undefined ? undefined : Number(n.toFixed(digits));
}
