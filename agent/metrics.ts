// konnectivity_network_proxy_agent_* metrics, upstream names and labels.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { StreamMetrics } from '../common/stream-metrics.js';

export type AgentSegment = 'from_server' | 'to_server';

const PREFIX = 'konnectivity_network_proxy_agent_';

export class AgentMetrics {
  readonly dialDuration: Histogram;
  readonly dialFailures: Counter<'reason'>;
  readonly serverConnections: Gauge;
  readonly knownServerCount: Gauge;
  readonly endpointConnections: Gauge;
  readonly serverFailures: Counter<'direction'>;
  readonly stream: StreamMetrics<AgentSegment>;
  readonly destinationDenied: Counter;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.dialDuration = new Histogram({
      name: PREFIX + 'dial_duration_seconds',
      help: 'Latency of dial to the remote endpoint in seconds',
      buckets: [0.005, 0.025, 0.1, 0.5, 2.5, 10, 30],
      registers,
    });
    this.dialFailures = new Counter({
      name: PREFIX + 'endpoint_dial_failure_total',
      help: 'Number of failures dialing the remote endpoint, by reason (example: timeout).',
      labelNames: ['reason'],
      registers,
    });
    this.serverConnections = new Gauge({
      name: PREFIX + 'open_server_connections',
      help: 'Current number of open server connections.',
      registers,
    });
    this.knownServerCount = new Gauge({
      name: PREFIX + 'known_server_count',
      help: 'Current number of servers agent is trying to connect to.',
      registers,
    });
    this.endpointConnections = new Gauge({
      name: PREFIX + 'open_endpoint_connections',
      help: 'Current number of open endpoint connections.',
      registers,
    });
    this.serverFailures = new Counter({
      name: PREFIX + 'server_connection_failure_count',
      help: 'Count of failures to send to or receive from the proxy server, labeled by the direction (from_server or to_server).',
      labelNames: ['direction'],
      registers,
    });
    this.stream = new StreamMetrics<AgentSegment>(PREFIX, registry);
    this.destinationDenied = new Counter({
      name: PREFIX + 'destination_denied_total',
      help: 'ours: dials refused by --allowed-destinations / --denied-destinations',
      registers,
    });
  }

  /** konnectivity_network_proxy_agent_server_lease_count, read at each scrape. */
  trackLeaseCount(count: () => number): void {
    new Gauge({
      name: PREFIX + 'server_lease_count',
      help: 'ours: proxy-servers with an unexpired Lease (--count-server-leases)',
      registers: [this.registry],
      collect() {
        this.set(count());
      },
    });
  }

  packet(segment: AgentSegment, type: number): void {
    this.stream.packet(segment, type);
  }
}
