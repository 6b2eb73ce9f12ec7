// Metrics of the konnectivity load balancers, per load balancer (service + port) and backend
// (node): connections, bytes each way, dial failures through the tunnel, health, open
// connections, and connections refused (no healthy backend, source range, every dial failed).
// Gauges are read from the live backends when scraped; counters of a deleted load balancer
// are removed with it.
import { Counter, Gauge, type Registry } from 'prom-client';

export interface BackendLabels {
  /** "namespace/name" */
  service: string;
  /** The Service port. */
  port: string;
  /** The node. */
  backend: string;
}

export type RejectReason = 'no_healthy_backend' | 'source_range' | 'dial_failed';

/** What the gauges read from a live backend. */
export interface LiveBackend {
  readonly labels: BackendLabels;
  readonly open: number;
  /** 1 healthy, 0 unhealthy, -1 not checked yet. */
  healthValue(): number;
}

/** One backend's counters, bound once (nothing is looked up per connection or per chunk). */
export interface BackendCounters {
  connections: { inc(): void };
  dialFailures: { inc(): void };
  toBackend: { inc(n: number): void };
  toClient: { inc(n: number): void };
}

export class LoadBalancerMetrics {
  private readonly connections: Counter<keyof BackendLabels>;
  private readonly bytes: Counter<keyof BackendLabels | 'direction'>;
  private readonly dialFailures: Counter<keyof BackendLabels>;
  private readonly rejected: Counter<'service' | 'port' | 'reason'>;
  /** Label sets in use per service, for removal with the load balancer. */
  /** Per service, per counter, its label sets (by their JSON). */
  private readonly series = new Map<string, Map<Counter, Map<string, Record<string, string>>>>();
  private readonly rejectedByKey = new Map<string, { inc(): void }>();

  constructor(registry: Registry, live: () => Iterable<LiveBackend>) {
    const registers = [registry];
    const labelNames = ['service', 'port', 'backend'] as const;
    this.connections = new Counter({
      name: 'konnectivity_ccm_load_balancer_connections_total',
      help: 'Connections accepted by a load balancer and carried to a backend through the tunnel',
      labelNames,
      registers,
    });
    this.bytes = new Counter({
      name: 'konnectivity_ccm_load_balancer_bytes_total',
      help: 'Bytes carried by a load balancer, by direction (to_backend, to_client)',
      labelNames: [...labelNames, 'direction'],
      registers,
    });
    this.dialFailures = new Counter({
      name: 'konnectivity_ccm_load_balancer_dial_failures_total',
      help: 'Dials to a backend through the tunnel that failed (the connection tries another backend)',
      labelNames,
      registers,
    });
    this.rejected = new Counter({
      name: 'konnectivity_ccm_load_balancer_rejected_connections_total',
      help: 'Connections closed at once: no healthy backend, client outside loadBalancerSourceRanges, or every dial failed',
      labelNames: ['service', 'port', 'reason'],
      registers,
    });
    new Gauge({
      name: 'konnectivity_ccm_load_balancer_backend_healthy',
      help: 'Health of a backend as last checked through the tunnel: 1 healthy, 0 unhealthy, -1 not checked yet',
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const b of live()) this.set({ ...b.labels }, b.healthValue());
      },
    });
    new Gauge({
      name: 'konnectivity_ccm_load_balancer_open_connections',
      help: 'Connections open through a load balancer to a backend',
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const b of live()) this.set({ ...b.labels }, b.open);
      },
    });
  }

  backendCounters(labels: BackendLabels): BackendCounters {
    const plain = { ...labels };
    this.track(labels.service, plain, this.connections);
    this.track(labels.service, plain, this.dialFailures);
    const toBackend = { ...plain, direction: 'to_backend' };
    const toClient = { ...plain, direction: 'to_client' };
    this.track(labels.service, toBackend, this.bytes);
    this.track(labels.service, toClient, this.bytes);
    return {
      connections: this.connections.labels(plain),
      dialFailures: this.dialFailures.labels(plain),
      toBackend: this.bytes.labels(toBackend),
      toClient: this.bytes.labels(toClient),
    };
  }

  rejectedConnection(service: string, port: number, reason: RejectReason): void {
    const key = `${service}\u0000${port}\u0000${reason}`;
    let child = this.rejectedByKey.get(key);
    if (!child) {
      const labels = { service, port: String(port), reason };
      this.track(service, labels, this.rejected);
      child = this.rejected.labels(labels);
      this.rejectedByKey.set(key, child);
    }
    child.inc();
  }

  /** Removes every counter series of `service` (its load balancer is gone). */
  forget(service: string): void {
    for (const [counter, sets] of this.series.get(service) ?? []) {
      for (const labels of sets.values()) counter.remove(labels);
    }
    this.series.delete(service);
    for (const key of this.rejectedByKey.keys()) {
      if (key.startsWith(`${service}\u0000`)) this.rejectedByKey.delete(key);
    }
  }

  private track(service: string, labels: Record<string, string>, counter: Counter): void {
    let tracked = this.series.get(service);
    if (!tracked) {
      tracked = new Map();
      this.series.set(service, tracked);
    }
    let sets = tracked.get(counter);
    if (!sets) {
      sets = new Map();
      tracked.set(counter, sets);
    }
    sets.set(JSON.stringify(labels), labels);
  }
}
