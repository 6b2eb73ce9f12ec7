// The `konnectivity` provider's LoadBalancer: the CCM itself is the balancer. Each Service gets
// an address from the pool (the one it asks for, else the one its status already shows, else
// the first on which all its ports are free: Services share an address when their ports do not
// collide) and a listener per TCP port there; connections are carried to the nodes through the
// tunnel (service-balancer.ts). Only the leader serves: stopServing() is called when this
// replica stops leading, and the next leader binds the same addresses from the Services' status.
import type { V1LoadBalancerStatus, V1Node, V1PortStatus, V1Service } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { Logger } from '../../../../../common/log.js';
import { errorText } from '../../../../../common/log.js';
import type { EgressDialer } from '../../../../egress-selector/egress-dialer-types.js';
import type { LoadBalancer } from '../../cloud-provider.js';
import type { LoadBalancerCloudConfig } from '../config.js';
import { AddressPool } from './address-pool.js';
import { readBalancerSpec, serviceKey, type BalancerSpec } from './balancer-spec.js';
import { HealthMonitor } from './health-monitor.js';
import { parseIp } from './ip-address.js';
import { LoadBalancerMetrics } from './metrics.js';
import { PortClaims } from './port-claims.js';
import { ServiceBalancer, type NodeTarget } from './service-balancer.js';

/** Bound on one backend dial through the tunnel (the agent's own dial timeout is shorter). */
const BACKEND_DIAL_TIMEOUT_MS = 10_000;
/** Fresh addresses tried when a port turns out to be held by another process. */
const MAX_FRESH_ADDRESS_TRIES = 8;

/** Where an address comes from, which decides what a failure to bind there means. */
type AddressChoice = { address: string; fresh: boolean; why: string };

export class NoAddressError extends Error {
  override readonly name = 'NoAddressError';
}

export class KonnectivityLoadBalancer implements LoadBalancer {
  private readonly pool: AddressPool;
  private readonly claims = new PortClaims();
  private readonly balancers = new Map<string, ServiceBalancer>();
  /** Load balancers whose open connections drain (deleted, or this replica stopped leading). */
  private readonly closing = new Set<ServiceBalancer>();
  private readonly health: HealthMonitor;
  private readonly metrics: LoadBalancerMetrics;
  private readonly log: Logger;

  constructor(
    private readonly config: LoadBalancerCloudConfig,
    private readonly egress: EgressDialer,
    registry: Registry,
    log: Logger,
  ) {
    this.log = log.child({ part: 'load-balancer' });
    this.pool = new AddressPool(config.pool, config.addresses);
    this.health = new HealthMonitor({
      egress,
      intervalMs: config.healthCheckIntervalMs,
      timeoutMs: config.healthCheckTimeoutMs,
      log: this.log,
    });
    this.metrics = new LoadBalancerMetrics(registry, () => this.liveBackends());
  }

  getLoadBalancer(
    _clusterName: string,
    service: V1Service,
    signal: AbortSignal,
  ): Promise<{ status: V1LoadBalancerStatus; exists: boolean }> {
    signal.throwIfAborted();
    const balancer = this.balancers.get(serviceKey(service));
    return Promise.resolve({ status: balancer?.status ?? {}, exists: balancer !== undefined });
  }

  /** cloud-provider's DefaultLoadBalancerName: "a" + the UID without dashes, at most 32 characters. */
  getLoadBalancerName(_clusterName: string, service: V1Service): string {
    return `a${service.metadata?.uid ?? ''}`.replaceAll('-', '').slice(0, 32);
  }

  async ensureLoadBalancer(
    _clusterName: string,
    service: V1Service,
    nodes: V1Node[],
    signal: AbortSignal,
  ): Promise<V1LoadBalancerStatus> {
    signal.throwIfAborted();
    const spec = readBalancerSpec(service);
    let balancer = this.balancers.get(spec.key);
    const created = balancer === undefined;
    balancer ??= new ServiceBalancer(spec.key, this.balancerContext());
    try {
      await this.listen(balancer, spec);
    } catch (err) {
      if (created) balancer.destroy();
      throw err;
    }
    this.balancers.set(spec.key, balancer);
    await balancer.route(spec, this.nodeTargets(nodes));
    balancer.status = statusOf(balancer.address ?? '', service, spec);
    return balancer.status;
  }

  async updateLoadBalancer(
    _clusterName: string,
    service: V1Service,
    nodes: V1Node[],
    signal: AbortSignal,
  ): Promise<void> {
    signal.throwIfAborted();
    const balancer = this.balancers.get(serviceKey(service));
    // Not ensured by this replica (yet): the service sync will do it with the current nodes.
    if (!balancer) return;
    await balancer.route(readBalancerSpec(service), this.nodeTargets(nodes));
  }

  async ensureLoadBalancerDeleted(
    _clusterName: string,
    service: V1Service,
    signal: AbortSignal,
  ): Promise<void> {
    const key = serviceKey(service);
    const balancer = this.balancers.get(key);
    if (!balancer) return;
    this.balancers.delete(key);
    this.claims.release(key);
    this.log.info(
      { service: key, address: balancer.address },
      'load balancer deleted; open connections drain',
    );
    await balancer.close(signal);
  }

  /** This replica no longer leads: listeners close at once, open connections drain in the background. */
  stopServing(): void {
    if (this.balancers.size === 0) return;
    this.log.info({ loadBalancers: this.balancers.size }, 'not leading: load balancers stop serving');
    for (const [key, balancer] of this.balancers) {
      this.claims.release(key);
      void this.close(balancer);
    }
    this.balancers.clear();
  }

  /** The provider stops: everything closes at once, draining connections included. */
  stop(): void {
    for (const balancer of [...this.balancers.values(), ...this.closing]) balancer.destroy();
    this.balancers.clear();
    this.closing.clear();
    this.health.stop();
  }

  private async close(balancer: ServiceBalancer, signal?: AbortSignal): Promise<void> {
    this.closing.add(balancer);
    try {
      await balancer.close(signal);
    } finally {
      this.closing.delete(balancer);
    }
  }

  private balancerContext() {
    return {
      egress: this.egress,
      health: this.health,
      metrics: this.metrics,
      drainTimeoutMs: this.config.drainTimeoutMs,
      dialTimeoutMs: BACKEND_DIAL_TIMEOUT_MS,
      log: this.log,
    };
  }

  private *liveBackends() {
    for (const balancer of this.balancers.values()) yield* balancer.liveBackends();
  }

  /**
   * Claims an address for the Service's ports and listens there. The first choice that fits
   * is used; a fresh pool address whose port another process holds is skipped for the next.
   */
  private async listen(balancer: ServiceBalancer, spec: BalancerSpec): Promise<void> {
    const ports = spec.ports.map((p) => p.port);
    let freshTries = 0;
    for (const choice of this.addressChoices(balancer, spec)) {
      const conflicts = this.claims.conflicts(choice.address, ports, spec.key);
      if (conflicts.length > 0) {
        if (choice.fresh) continue;
        const held = conflicts.map((c) => `${c.port}/TCP (held by Service ${c.owner})`).join(', ');
        if (choice.why === 'status') {
          this.log.info(
            { service: spec.key, address: choice.address, held },
            'the address in the status has a port taken; another address is chosen',
          );
          continue;
        }
        throw new NoAddressError(`${choice.why} address ${choice.address} has ports taken: ${held}`);
      }
      this.claims.claim(choice.address, ports, spec.key);
      try {
        await balancer.listen(choice.address, spec.ports);
      } catch (err) {
        this.claims.release(spec.key, balancer.address, balancer.ports);
        const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (choice.fresh && inUse && ++freshTries < MAX_FRESH_ADDRESS_TRIES) {
          this.log.info(
            { service: spec.key, address: choice.address, error: errorText(err) },
            'a port of this address is in use by another process; trying the next address',
          );
          continue;
        }
        throw new Error(`cannot listen on ${choice.address} (${choice.why} address): ${errorText(err)}`, {
          cause: err,
        });
      }
      // Whatever the Service held elsewhere (another address, removed ports) is free again.
      this.claims.release(spec.key, choice.address, ports);
      return;
    }
    const wanted = ports.map((p) => `${p}/TCP`).join(', ');
    throw new NoAddressError(
      `no address of loadBalancer.addresses (${this.pool.entries.join(', ')}) has ${wanted} free; the Service waits for one`,
    );
  }

  /** The requested address alone; else the current one alone; else the status's, then the pool's in order. */
  private *addressChoices(balancer: ServiceBalancer, spec: BalancerSpec): Generator<AddressChoice> {
    if (spec.requestedIP !== undefined) {
      if (!this.pool.contains(spec.requestedIP)) {
        throw new NoAddressError(
          `the requested address ${spec.requestedIP} is not in loadBalancer.addresses (${this.pool.entries.join(', ')})`,
        );
      }
      yield { address: spec.requestedIP, fresh: false, why: 'requested' };
      return;
    }
    if (balancer.address !== undefined && this.pool.contains(balancer.address)) {
      yield { address: balancer.address, fresh: false, why: 'current' };
      return;
    }
    const fromStatus = spec.statusIPs.find((ip) => this.pool.contains(ip));
    if (fromStatus !== undefined) yield { address: fromStatus, fresh: false, why: 'status' };
    for (const address of this.pool.addresses()) {
      if (address !== fromStatus) yield { address, fresh: true, why: 'pool' };
    }
  }

  /** Each node's InternalIP (IPv4 first): the address its agent is known by, which destHost routes on. */
  private nodeTargets(nodes: readonly V1Node[]): NodeTarget[] {
    const out: NodeTarget[] = [];
    for (const node of nodes) {
      const name = node.metadata?.name ?? '';
      const internal = (node.status?.addresses ?? [])
        .filter((a) => a.type === 'InternalIP')
        .map((a) => a.address);
      const host = internal.find((ip) => parseIp(ip)?.family === 4) ?? internal.find((ip) => parseIp(ip));
      if (host === undefined) {
        this.log.warn({ node: name }, 'node has no InternalIP: it takes no load balancer traffic');
        continue;
      }
      out.push({ name, host });
    }
    return out;
  }
}

/** One ingress entry: the address and every port in the Service's order, refused ones with their error. */
function statusOf(address: string, service: V1Service, spec: BalancerSpec): V1LoadBalancerStatus {
  const ports: V1PortStatus[] = [];
  for (const p of service.spec?.ports ?? []) {
    const protocol = p.protocol ?? 'TCP';
    const refused = spec.refused.find((r) => r.port === p.port && r.protocol === protocol);
    ports.push(refused ? { port: p.port, protocol, error: refused.error } : { port: p.port, protocol });
  }
  return { ingress: [{ ip: address, ports }] };
}
