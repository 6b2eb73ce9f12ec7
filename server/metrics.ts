// konnectivity_network_proxy_server_* metrics, upstream names and labels.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { StreamMetrics } from '../common/stream-metrics.js';
import type { ConcurrencyObserver } from '../common/concurrency-limit.js';
import type { HandshakeObserver } from './handshake-admission.js';

const PREFIX = 'konnectivity_network_proxy_server_';
// Upstream's buckets (1 µs .. 12.5 s).
const LATENCY_BUCKETS = [0.000001, 0.00001, 0.0001, 0.005, 0.025, 0.1, 0.5, 2.5, 12.5];

export type DialFailureReason =
  | 'endpoint'
  | 'unrecognized_response'
  | 'send'
  | 'backend_close'
  | 'frontend_close'
  | 'timeout'
  | 'no_agent'
  | 'limit';

export type ServerSegment = 'from_client' | 'to_client' | 'from_agent' | 'to_agent';

export class ServerMetrics {
  readonly dialDuration: Histogram;
  readonly frontendWriteDuration: Histogram;
  readonly established: Gauge;
  readonly pendingDials: Gauge;
  readonly readyBackends: Gauge;
  readonly grpcConnections: Gauge<'service_method'>;
  readonly httpConnections: Gauge;
  readonly stream: StreamMetrics<ServerSegment>;
  readonly dialFailures: Counter<'reason'>;
  readonly agentAuthFailures: Counter;
  readonly strategyDials: Counter<'strategy'>;
  readonly strategyMisses: Counter<'strategy'>;
  readonly drainingBackends: Gauge;
  readonly culledLeases: Counter;
  readonly identifierClaimsRefused: Counter<'type'>;
  readonly agentTlsHandshakes: Counter<'resumed'>;
  readonly agentTlsHandshakeFailures: Counter;
  readonly tokenReviewsInFlight: Gauge;
  readonly tokenReviewsWaiting: Gauge;
  readonly agentTlsHandshakesInProgress: Gauge;
  readonly agentTlsHandshakesWaiting: Gauge;
  readonly agentTlsHandshakesQueued: Counter;
  readonly agentTlsHandshakesExpired: Counter;
  readonly tokenReviewsQueued: Counter;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.dialDuration = new Histogram({
      name: PREFIX + 'dial_duration_seconds',
      help: 'Latency of dial to the remote endpoint in seconds',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.frontendWriteDuration = new Histogram({
      name: PREFIX + 'frontend_write_duration_seconds',
      help: 'Time a frontend connection stayed unwritable (its client not reading), in seconds',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.established = new Gauge({
      name: PREFIX + 'established_connections',
      help: 'Current number of established end-to-end connections',
      registers,
    });
    this.pendingDials = new Gauge({
      name: PREFIX + 'pending_backend_dials',
      help: 'Current number of pending backend dial requests',
      registers,
    });
    this.readyBackends = new Gauge({
      name: PREFIX + 'ready_backend_connections',
      help: 'Number of konnectivity agent connected to the proxy server',
      registers,
    });
    this.grpcConnections = new Gauge({
      name: PREFIX + 'grpc_connections',
      help: 'Number of current grpc connections, partitioned by service method.',
      labelNames: ['service_method'],
      registers,
    });
    this.httpConnections = new Gauge({
      name: PREFIX + 'http_connections',
      help: 'Number of current HTTP CONNECT connections',
      registers,
    });
    this.stream = new StreamMetrics<ServerSegment>(PREFIX, registry);
    this.dialFailures = new Counter({
      name: PREFIX + 'dial_failure_count',
      help: 'Number of dial failures observed. Multiple failures can occur for a single dial request.',
      labelNames: ['reason'],
      registers,
    });
    this.agentAuthFailures = new Counter({
      name: PREFIX + 'agent_auth_failures_total',
      help: 'ours: agent streams refused because their ServiceAccount token failed authentication',
      registers,
    });
    this.strategyDials = new Counter({
      name: PREFIX + 'strategy_dials_total',
      help: 'ours: dials routed to an agent, by the proxy strategy that chose it',
      labelNames: ['strategy'],
      registers,
    });
    this.strategyMisses = new Counter({
      name: PREFIX + 'strategy_misses_total',
      help: 'ours: dials for which a proxy strategy found no agent (the next one in --proxy-strategies is tried)',
      labelNames: ['strategy'],
      registers,
    });
    this.drainingBackends = new Gauge({
      name: PREFIX + 'draining_backend_connections',
      help: 'ours: connected agents that sent DRAIN and get no new dials',
      registers,
    });
    this.culledLeases = new Counter({
      name: PREFIX + 'culled_leases_count',
      help: 'Count of expired server leases deleted by the lease garbage collector',
      registers,
    });
    this.identifierClaimsRefused = new Counter({
      name: PREFIX + 'identifier_claims_refused_total',
      help: "ours: agent identifier claims that do not match the agent's authenticated node (identity binding), by type (host, ipv4, ipv6, cidr, default-route): withdrawn from routing under enforce, routed anyway under warn",
      labelNames: ['type'],
      registers,
    });
    this.agentTlsHandshakes = new Counter({
      name: PREFIX + 'agent_tls_handshakes_total',
      help: 'ours: TLS handshakes completed on the agent port, by whether they resumed an earlier session (a reconnecting agent that resumes costs no certificate work)',
      labelNames: ['resumed'],
      registers,
    });
    for (const r of ['true', 'false']) this.agentTlsHandshakes.labels(r).inc(0);
    this.agentTlsHandshakeFailures = new Counter({
      name: PREFIX + 'agent_tls_handshake_failures_total',
      help: 'ours: TLS handshakes on the agent port that failed (a bad or missing client certificate, or a client that gave up mid-handshake during a reconnect storm); each is logged at debug',
      registers,
    });
    this.agentTlsHandshakesInProgress = new Gauge({
      name: PREFIX + 'agent_tls_handshakes_in_progress',
      help: 'ours: TLS handshakes under way on the agent port (at most --max-concurrent-agent-handshakes)',
      registers,
    });
    this.agentTlsHandshakesWaiting = new Gauge({
      name: PREFIX + 'agent_tls_handshakes_waiting',
      help: 'ours: agent connections accepted and waiting, unread, for a handshake slot under --max-concurrent-agent-handshakes',
      registers,
    });
    this.agentTlsHandshakesQueued = new Counter({
      name: PREFIX + 'agent_tls_handshakes_queued_total',
      help: 'ours: agent connections that had to wait for a handshake slot under --max-concurrent-agent-handshakes',
      registers,
    });
    this.agentTlsHandshakesExpired = new Counter({
      name: PREFIX + 'agent_tls_handshakes_expired_total',
      help: 'ours: agent connections closed unread after waiting 10 s for a handshake slot (their agents retry); many mean the server cannot keep up with a reconnect storm',
      registers,
    });
    this.tokenReviewsInFlight = new Gauge({
      name: PREFIX + 'token_reviews_in_flight',
      help: 'ours: TokenReviews of agent tokens sent to the Kubernetes API and not yet answered (at most --max-concurrent-token-reviews)',
      registers,
    });
    this.tokenReviewsWaiting = new Gauge({
      name: PREFIX + 'token_reviews_waiting',
      help: 'ours: agent TokenReviews queued behind --max-concurrent-token-reviews',
      registers,
    });
    this.tokenReviewsQueued = new Counter({
      name: PREFIX + 'token_reviews_queued_total',
      help: 'ours: agent TokenReviews that had to wait for a slot under --max-concurrent-token-reviews',
      registers,
    });
    // Every type from the start, so rate() and alerts see a series before the first refusal.
    for (const t of ['host', 'ipv4', 'ipv6', 'cidr', 'default-route'])
      this.identifierClaimsRefused.labels(t).inc(0);
    for (const v of [0, 1]) this.grpcConnections.labels(v === 0 ? 'Proxy' : 'Connect').set(0);
  }

  /** Feeds the token review gauges from the review limiter. */
  tokenReviewObserver(): ConcurrencyObserver {
    return concurrencyObserver(this.tokenReviewsInFlight, this.tokenReviewsWaiting, this.tokenReviewsQueued);
  }

  /** Feeds the agent-port handshake gauges and counters from the handshake admission. */
  agentHandshakeObserver(): HandshakeObserver {
    return {
      ...concurrencyObserver(
        this.agentTlsHandshakesInProgress,
        this.agentTlsHandshakesWaiting,
        this.agentTlsHandshakesQueued,
      ),
      expired: () => {
        this.agentTlsHandshakesExpired.inc();
      },
    };
  }

  packet(segment: ServerSegment, type: number): void {
    this.stream.packet(segment, type);
  }

  streamError(segment: ServerSegment, code: string, type: number | undefined): void {
    this.stream.error(segment, code, type);
  }
}

/** A concurrency limit's running and waiting gauges, and its count of tasks that had to wait. */
function concurrencyObserver(running: Gauge, waiting: Gauge, queued: Counter): ConcurrencyObserver {
  return {
    changed: (r, w) => {
      running.set(r);
      waiting.set(w);
    },
    queued: () => {
      queued.inc();
    },
  };
}
