// One Service's load balancer: a listener per TCP port on its pool address, and per port the
// nodes that back it. A client connection goes to the backend the picker chooses, dialled
// through the tunnel to <node InternalIP>:<nodePort> (the proxy-server's destHost strategy
// takes the dial to that node's agent); a failed dial tries another backend. Updates change
// backends and settings in place; a port or address that goes away stops accepting and its
// open connections drain (bounded).
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { V1LoadBalancerStatus } from '@kubernetes/client-node';
import type { Logger } from '../../../../../common/log.js';
import { errorText } from '../../../../../common/log.js';
import type { EgressDialer } from '../../../../egress-selector/egress-dialer-types.js';
import { BackendPicker, type PickableBackend } from './backend-picker.js';
import type { BalancerSpec, ProxyProtocolVersion, ServedPort } from './balancer-spec.js';
import { splice } from './connection-splice.js';
import type { HealthMonitor, HealthTarget, Probe } from './health-monitor.js';
import { clientIp, parseIp, rangeContains, type IpRange } from './ip-address.js';
import type { BackendCounters, BackendLabels, LiveBackend, LoadBalancerMetrics } from './metrics.js';
import { PortListener } from './port-listener.js';
import { proxyProtocolHeader } from './proxy-protocol.js';

/** A node that may take traffic: its name and the address its agent is known by. */
export interface NodeTarget {
  name: string;
  host: string;
}

export interface BalancerContext {
  egress: EgressDialer;
  health: HealthMonitor;
  metrics: LoadBalancerMetrics;
  drainTimeoutMs: number;
  dialTimeoutMs: number;
  log: Logger;
}

/** How many backends one client connection tries before it is closed. */
const MAX_DIAL_ATTEMPTS = 3;

class Backend implements PickableBackend, LiveBackend {
  open = 0;

  constructor(
    readonly node: string,
    readonly host: string,
    readonly port: number,
    readonly health: HealthTarget,
    readonly labels: BackendLabels,
    readonly counters: BackendCounters,
    /** Identity across updates: same node, address, nodePort and health check. */
    readonly key: string,
  ) {}

  usable(): boolean {
    return this.health.usable;
  }

  healthValue(): number {
    return this.health.health === 'healthy' ? 1 : this.health.health === 'unhealthy' ? 0 : -1;
  }
}

/** One Service port: its listener and how its connections are routed. */
class PortRoute {
  readonly picker = new BackendPicker<Backend>();
  proxyProtocol: ProxyProtocolVersion | undefined;
  sourceRanges: IpRange[] | undefined;

  constructor(
    readonly port: number,
    readonly listener: PortListener,
  ) {}
}

export class ServiceBalancer {
  /** The pool address of the listeners; undefined until bound. */
  address: string | undefined;
  status: V1LoadBalancerStatus = {};
  private readonly routes = new Map<number, PortRoute>();
  /** Listeners that stopped accepting and whose connections drain. */
  private readonly draining = new Set<PortListener>();
  private readonly log: Logger;

  constructor(
    readonly key: string,
    private readonly ctx: BalancerContext,
  ) {
    this.log = ctx.log.child({ service: key });
  }

  /** The TCP ports listened on now. */
  get ports(): number[] {
    return [...this.routes.keys()];
  }

  /** The backends of every port, for the gauges. */
  *liveBackends(): Generator<LiveBackend> {
    for (const route of this.routes.values()) yield* route.picker.all;
  }

  /**
   * Listens on `address` for every port of `ports`: listeners already there are kept, new
   * ones are bound, and the others (ports gone, or the old address) stop accepting and drain.
   * Throws the bind error, with nothing changed, when a new listener cannot bind.
   */
  async listen(address: string, ports: readonly ServedPort[]): Promise<void> {
    const wanted = new Set(ports.map((p) => p.port));
    const kept = new Map<number, PortRoute>();
    const added: PortRoute[] = [];
    try {
      for (const { port } of ports) {
        const current = this.routes.get(port);
        if (current && this.address === address) {
          kept.set(port, current);
          continue;
        }
        const listener = new PortListener(address, port, () => undefined);
        await listener.listen();
        const route = new PortRoute(port, listener);
        listener.setHandler((client) => this.onConnection(route, client));
        added.push(route);
      }
    } catch (err) {
      for (const route of added) route.listener.destroy();
      throw err;
    }
    for (const [port, route] of this.routes) {
      if (kept.get(port) !== route) this.retire(route, wanted.has(port) ? 'address changed' : 'port removed');
    }
    this.routes.clear();
    for (const [port, route] of kept) this.routes.set(port, route);
    for (const route of added) {
      this.routes.set(route.port, route);
      this.log.info({ address, port: route.port }, 'load balancer listening');
    }
    this.address = address;
  }

  /**
   * Sets every port's backends (the nodes at their nodePort), health checks and settings.
   * Resolves once new backends have had their first health check (bounded by its timeout).
   */
  async route(spec: BalancerSpec, nodes: readonly NodeTarget[]): Promise<void> {
    const firstChecks: Promise<void>[] = [];
    for (const served of spec.ports) {
      const route = this.routes.get(served.port);
      if (!route) continue;
      const previous = new Map(route.picker.all.map((b) => [b.key, b]));
      const backends = nodes.map((node) => {
        const probe = probeFor(spec, node, served);
        const key = `${node.name}|${node.host}|${served.nodePort}|${probe.kind}:${probe.port}`;
        const existing = previous.get(key);
        if (existing) {
          previous.delete(key);
          return existing;
        }
        const health = this.ctx.health.acquire(probe);
        firstChecks.push(health.firstResult);
        const labels = { service: spec.key, port: String(served.port), backend: node.name };
        return new Backend(
          node.name,
          node.host,
          served.nodePort,
          health,
          labels,
          this.ctx.metrics.backendCounters(labels),
          key,
        );
      });
      for (const gone of previous.values()) this.ctx.health.release(gone.health);
      route.picker.update(backends, spec.affinityTimeoutMs);
      route.proxyProtocol = spec.proxyProtocol;
      route.sourceRanges = spec.sourceRanges;
    }
    await Promise.all(firstChecks);
  }

  /** Stops accepting on every port and waits for open connections (bounded); releases health checks. */
  async close(signal?: AbortSignal): Promise<void> {
    for (const route of this.routes.values()) this.draining.add(route.listener);
    this.releaseRoutes();
    await Promise.all(
      [...this.draining].map((l) =>
        l.drain(this.ctx.drainTimeoutMs, signal).finally(() => this.draining.delete(l)),
      ),
    );
    this.ctx.metrics.forget(this.key);
  }

  /** Stops accepting and cuts every connection at once. */
  destroy(): void {
    for (const route of this.routes.values()) route.listener.destroy();
    for (const listener of this.draining) listener.destroy();
    this.releaseRoutes();
    this.ctx.metrics.forget(this.key);
  }

  private releaseRoutes(): void {
    for (const route of this.routes.values()) {
      route.listener.stopAccepting();
      for (const backend of route.picker.all) this.ctx.health.release(backend.health);
      route.picker.update([], undefined);
    }
    this.routes.clear();
  }

  private retire(route: PortRoute, why: string): void {
    const { listener } = route;
    for (const backend of route.picker.all) this.ctx.health.release(backend.health);
    this.log.info(
      { address: listener.address, port: listener.port, open: listener.connections.size, why },
      'load balancer port closed; open connections drain',
    );
    this.draining.add(listener);
    void listener.drain(this.ctx.drainTimeoutMs).finally(() => this.draining.delete(listener));
  }

  private onConnection(route: PortRoute, client: net.Socket): void {
    const ip = clientIp(client.remoteAddress);
    const ranges = route.sourceRanges;
    if (ranges && !allowedBy(ranges, ip)) {
      this.ctx.metrics.rejectedConnection(this.key, route.port, 'source_range');
      client.resetAndDestroy();
      return;
    }
    void this.connect(route, client, ip);
  }

  /** Dials a backend for `client` (another one when a dial fails) and splices the two. */
  private async connect(route: PortRoute, client: net.Socket, ip: string): Promise<void> {
    const left = new AbortController();
    const onClose = () => left.abort();
    client.once('close', onClose);
    const tried = new Set<Backend>();
    let backend: Backend | undefined;
    let socket: Duplex | undefined;
    while (!socket && tried.size < MAX_DIAL_ATTEMPTS) {
      backend = route.picker.pick(ip, tried);
      if (!backend) break;
      tried.add(backend);
      // Counted from the pick, so that concurrent picks spread over the backends.
      backend.open++;
      try {
        socket = await this.ctx.egress.dial(backend.host, backend.port, {
          signal: left.signal,
          timeoutMs: this.ctx.dialTimeoutMs,
        });
      } catch (err) {
        backend.open--;
        if (left.signal.aborted) return;
        backend.counters.dialFailures.inc();
        this.log.debug(
          { backend: backend.node, target: `${backend.host}:${backend.port}`, error: errorText(err) },
          'dial to backend failed',
        );
      }
    }
    client.off('close', onClose);
    if (!socket || !backend) {
      this.ctx.metrics.rejectedConnection(
        this.key,
        route.port,
        tried.size === 0 ? 'no_healthy_backend' : 'dial_failed',
      );
      if (!client.destroyed) client.resetAndDestroy();
      return;
    }
    if (client.destroyed) {
      socket.destroy();
      backend.open--;
      return;
    }
    backend.counters.connections.inc();
    if (route.proxyProtocol) {
      socket.write(
        proxyProtocolHeader(route.proxyProtocol, {
          sourceAddress: client.remoteAddress ?? '',
          sourcePort: client.remotePort ?? 0,
          destinationAddress: client.localAddress ?? '',
          destinationPort: client.localPort ?? 0,
        }),
      );
    }
    try {
      await splice(client, socket, backend.counters);
    } finally {
      backend.open--;
    }
  }
}

/** externalTrafficPolicy: Local asks kube-proxy's healthz on the node; otherwise the nodePort must accept. */
function probeFor(spec: BalancerSpec, node: NodeTarget, served: ServedPort): Probe {
  return spec.healthCheckNodePort !== undefined
    ? { kind: 'http', host: node.host, port: spec.healthCheckNodePort }
    : { kind: 'tcp', host: node.host, port: served.nodePort };
}

function allowedBy(ranges: readonly IpRange[], ip: string): boolean {
  const value = parseIp(ip);
  return value !== undefined && ranges.some((r) => rangeContains(r, value));
}
