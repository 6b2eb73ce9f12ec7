// proxy-agent command line: upstream flag names, meanings and defaults.
import { randomUUID } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import {
  checkPortFlag,
  FlagError,
  parseFlagValue,
  type FlagTable,
  type FlagValues,
} from '../common/flags/flag-set.js';
import { klogFlags } from '../common/flags/klog-flags.js';
import { profilingFlags } from '../common/flags/upstream-noop-flags.js';
import { isValidConnectionWindow } from '../proto/flow-control.js';
import { readPem } from '../common/tls.js';
import type { Logger } from '../common/log.js';
import { DEFAULT_DRAIN_IDLE_GRACE_MS, type ProxyAgentConfig } from './proxy-agent.js';
import { parseAgentIdentifiers } from '../proto/agent-identifiers.js';
import { LabelSyntaxError, parseLabels } from '../common/kube/leases.js';
import { checkKubeContentType, JSON_CONTENT_TYPE } from '../common/kube/client.js';
import {
  DEFAULT_DENIED_DESTINATIONS,
  DestinationPolicy,
  DestinationSyntaxError,
  parseDestinations,
} from './destination-policy.js';
import { TRANSPORT_NAMES, type TransportName } from './transport/server-stream.js';
import { ProxyUrlError, proxyForServer } from './transport/http-proxy.js';

const DEFAULT_LEASE_LABEL = 'k8s-app=konnectivity-server';

export const agentFlags = {
  ...klogFlags,
  'proxy-server-host': {
    kind: 'string',
    default: '127.0.0.1',
    help: 'host name of the proxy-server agent port',
  },
  'proxy-server-port': { kind: 'int', default: 8091, help: 'port of the proxy-server agent port' },
  transport: {
    kind: 'string',
    default: 'grpc',
    help: "ours: how the agent reaches the server's agent port: 'grpc' (HTTP/2, as upstream) or 'websocket' (an HTTP/1.1 upgrade at /konnectivity/v1/agent, for proxies and balancers that carry only HTTP/1.1)",
  },
  'proxy-url': {
    kind: 'string',
    default: '',
    help: 'ours: HTTP proxy to cross to the server, http://[user:pass@]host:port or https://… (HTTP CONNECT, then TLS to the server inside it; Basic auth from the URL); empty: $HTTPS_PROXY / $https_proxy unless $NO_PROXY names the server (loopback is not exempted)',
  },
  'ca-cert': { kind: 'string', default: '', help: 'CA for the server certificate (default: system roots)' },
  'agent-cert': { kind: 'string', default: '', help: 'client certificate presented to the server' },
  'agent-key': { kind: 'string', default: '', help: 'key of --agent-cert' },
  'agent-id': {
    kind: 'string',
    default: '',
    help: 'unique ID of this agent (default: $PROXY_AGENT_ID, else a UUID)',
  },
  'agent-identifiers': {
    kind: 'string',
    default: '',
    help: 'URL-query encoded identifiers used by the server to route dials, e.g. host=node1&ipv4=10.0.0.5&cidr=10.0.0.0/24&default-route=true',
  },
  'health-server-host': {
    kind: 'string',
    default: '',
    help: 'bind address of the health port (empty: all interfaces)',
  },
  'health-server-port': { kind: 'int', default: 8093, help: 'port for /healthz, /readyz and /metrics' },
  'admin-server-port': { kind: 'int', default: 8094, help: 'port for /metrics' },
  'admin-bind-address': { kind: 'string', default: '127.0.0.1', help: 'bind address of the admin port' },
  'sync-interval': {
    kind: 'duration',
    default: 1000,
    help: 'initial interval between connection attempts; a retry waits a random time within the interval (full jitter, so agents that lost a server together do not return together), and the interval grows 1.5x per failure',
  },
  'sync-interval-cap': {
    kind: 'duration',
    default: 10_000,
    help: 'maximum interval between connection attempts',
  },
  'probe-interval': {
    kind: 'duration',
    default: 1000,
    help: 'interval of readiness probes of the server streams',
  },
  'sync-forever': {
    kind: 'bool',
    default: false,
    help: 'keep connecting at --sync-interval after holding a stream to every known server, to learn of added servers from the serverCount header (each extra connection to a known server is closed)',
  },
  'keepalive-time': {
    kind: 'duration',
    default: 3_600_000,
    help: 'gRPC keepalive ping interval towards the server (upstream default; an upstream server refuses frequent pings)',
  },
  'server-window-size': {
    kind: 'int',
    default: 16 * 1024 * 1024,
    help: "ours: HTTP/2 receive window (bytes) of the stream to each server, stream and connection (Node's default 64 KiB caps throughput at window/RTT)",
  },
  'connection-window-size': {
    kind: 'int',
    default: 8 * 1024 * 1024,
    help: 'ours: per-connection flow-control window (bytes) granted to our servers: one connection moves at most this per round trip, and a target that stops reading holds at most this',
  },
  'service-account-token-path': {
    kind: 'string',
    default: '',
    help: 'file holding a ServiceAccount token sent as "authorization: Bearer <token>"; read again on every connect, so rotated projected tokens take effect',
  },
  'drain-timeout': {
    kind: 'duration',
    default: 20_000,
    help: 'ours: on SIGTERM the agent sends DRAIN (servers prefer other agents), keeps serving, and exits when idle (see --drain-idle-grace) or after this long at the most; a second signal exits at once. 0: exit at once',
  },
  'drain-idle-grace': {
    kind: 'duration',
    default: DEFAULT_DRAIN_IDLE_GRACE_MS,
    help: 'ours: while draining, exit only once no connection is open and no dial has arrived for this long (dials routed before DRAIN, or by an upstream server to its only agent, are still served)',
  },
  'max-grpc-message-size': {
    kind: 'int',
    default: 4 * 1024 * 1024,
    help: 'ours: largest gRPC message (packet) accepted from a server, in bytes',
  },
  'allowed-destinations': {
    kind: 'string',
    default: '',
    help: 'ours: comma-separated CIDR, CIDR:PORT or CIDR:LOW-HIGH (IPv6 in brackets) this agent may dial; empty: any destination not denied',
  },
  'denied-destinations': {
    kind: 'string',
    default: DEFAULT_DENIED_DESTINATIONS,
    help: 'ours: destinations this agent never dials (same syntax; deny wins over allow); the default denies the cloud metadata service, set it empty to allow that',
  },
  'alpn-proto': {
    kind: 'stringSlice',
    default: [],
    help: 'additional ALPN protocols offered (before h2) when connecting to the server, to tell proxy connections apart from others to the same address',
  },
  'count-server-leases': {
    kind: 'bool',
    default: false,
    help: 'count the proxy-servers by their unexpired Leases (needs list/watch on leases); how the count combines with the serverCount header: --server-count-source',
  },
  'lease-namespace': { kind: 'string', default: 'kube-system', help: 'namespace of the server Leases' },
  'lease-label': {
    kind: 'string',
    default: DEFAULT_LEASE_LABEL,
    help: 'label selector of the server Leases',
  },
  'lease-label-selector': {
    kind: 'string',
    default: DEFAULT_LEASE_LABEL,
    help: 'ours: the same as --lease-label (its earlier name here, kept as an alias)',
  },
  'server-count-source': {
    kind: 'string',
    default: 'default',
    help: "how many servers to connect to: 'default' uses one source (the Lease count with --count-server-leases, else the serverCount header), 'max' the larger of both (at least 1)",
  },
  kubeconfig: {
    kind: 'string',
    default: '',
    help: 'kubeconfig for --count-server-leases (empty: the in-cluster service account); a plain http:// server is accepted, with a warning',
  },
  'kube-api-content-type': {
    kind: 'string',
    default: JSON_CONTENT_TYPE,
    help: 'content type of requests to the Kubernetes API: only application/json is spoken; another value (upstream: protobuf) is accepted with a warning',
  },
  ...profilingFlags,
  'warn-on-channel-limit': {
    kind: 'bool',
    default: false,
    help: '',
    notImplemented: 'there are no channels to fill: buffering is bounded by backpressure',
  },
  'xfr-channel-size': {
    kind: 'int',
    default: 150,
    help: '',
    notImplemented: 'buffering is bounded by backpressure',
  },
  'apiserver-port-mapping': {
    kind: 'string',
    default: '',
    help: '',
    notImplemented: 'node-to-control-plane traffic is not supported',
  },
  'bind-address': {
    kind: 'string',
    default: '',
    help: '',
    notImplemented: 'node-to-control-plane traffic is not supported',
  },
  'feature-gates': { kind: 'string', default: '', help: '', notImplemented: 'no feature gates' },
  'enable-push-service-account-token': {
    kind: 'bool',
    default: false,
    help: '',
    notImplemented: 'removed upstream',
  },
} satisfies FlagTable;

export type AgentFlagValues = FlagValues<typeof agentFlags>;

/** Checks --agent-identifiers: unknown types are ignored (fail open, as upstream); bad values refused. */
export function checkAgentIdentifiers(text: string, log: Logger): void {
  const parsed = parseAgentIdentifiers(text);
  if (parsed.invalid.length > 0) {
    throw new FlagError(
      `--agent-identifiers: invalid ${parsed.invalid.map((v) => `"${v}"`).join(', ')} (want host=<name>, ipv4=<addr>, ipv6=<addr>, cidr=<addr>/<prefix>, default-route=true)`,
    );
  }
  for (const type of parsed.unknown) log.warn({ type }, 'unknown agent identifier type ignored');
}

/** --lease-label (upstream's name) or --lease-label-selector (ours, an alias): whichever is set. */
function leaseLabelFlag(v: AgentFlagValues): string {
  const upstream = v['lease-label'];
  const alias = v['lease-label-selector'];
  if (alias === DEFAULT_LEASE_LABEL) return upstream;
  if (upstream !== DEFAULT_LEASE_LABEL && upstream !== alias) {
    throw new FlagError(
      `--lease-label "${upstream}" and --lease-label-selector "${alias}" disagree: set one of them`,
    );
  }
  return alias;
}

export function agentConfigFromFlags(
  values: AgentFlagValues,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
): ProxyAgentConfig {
  const v = values;
  for (const p of ['proxy-server-port', 'health-server-port', 'admin-server-port'] as const)
    checkPortFlag(p, v[p]);
  if (v['proxy-server-port'] === 0) throw new FlagError('proxy server port 0 must be greater than 0');
  if (v['agent-cert'] && !v['agent-key'])
    throw new FlagError('cannot have --agent-key empty when --agent-cert is set');
  if (v['agent-key'] && !v['agent-cert'])
    throw new FlagError('cannot have --agent-cert empty when --agent-key is set');
  const leaseLabel = leaseLabelFlag(v);
  if (v['count-server-leases']) {
    const flag = v['lease-label-selector'] === DEFAULT_LEASE_LABEL ? 'lease-label' : 'lease-label-selector';
    parseFlagValue(() => parseLabels(leaseLabel), LabelSyntaxError, `--${flag}: `);
  }
  const countSource = v['server-count-source'];
  if (countSource !== '' && countSource !== 'default' && countSource !== 'max') {
    throw new FlagError(`--server-count-source must be one of '', 'default', 'max', got ${countSource}`);
  }
  checkKubeContentType(v['kube-api-content-type'], log);
  if (v['probe-interval'] <= 0) throw new FlagError('--probe-interval must be > 0');
  if (v['drain-timeout'] < 0) throw new FlagError('--drain-timeout must be >= 0');
  if (v['drain-idle-grace'] < 0) throw new FlagError('--drain-idle-grace must be >= 0');
  if (v['sync-interval'] <= 0) throw new FlagError('--sync-interval must be > 0');
  if (v['sync-interval'] > v['sync-interval-cap']) {
    throw new FlagError(
      `sync interval ${v['sync-interval']}ms must be less than sync interval cap ${v['sync-interval-cap']}ms`,
    );
  }
  if (v['max-grpc-message-size'] < 64 * 1024)
    throw new FlagError('--max-grpc-message-size must be at least 65536 bytes');
  if (v['server-window-size'] < 65_535 || v['server-window-size'] > 2 ** 31 - 1) {
    throw new FlagError('--server-window-size must be between 65535 and 2147483647 bytes');
  }
  if (!isValidConnectionWindow(v['connection-window-size'])) {
    throw new FlagError('--connection-window-size must be between 65536 and 1073741824 bytes');
  }
  checkAgentIdentifiers(v['agent-identifiers'], log);
  const destinations = (flag: 'allowed-destinations' | 'denied-destinations') =>
    parseFlagValue(() => parseDestinations(v[flag]), DestinationSyntaxError, `--${flag}: `);
  const policy = new DestinationPolicy(
    destinations('allowed-destinations'),
    destinations('denied-destinations'),
  );
  const transport = v.transport as TransportName;
  if (!TRANSPORT_NAMES.includes(transport)) {
    throw new FlagError(`--transport must be one of ${TRANSPORT_NAMES.join(', ')}, got "${v.transport}"`);
  }
  const proxied = parseFlagValue(
    () => proxyForServer(v['proxy-server-host'], v['proxy-server-port'], v['proxy-url'], env),
    ProxyUrlError,
    v['proxy-url'] === '' ? '' : '--proxy-url: ',
  );
  if (proxied) {
    log.info(
      { proxy: proxied.proxy.display, from: proxied.source, transport },
      'reaching the proxy-server through an HTTP proxy',
    );
  }
  const config: ProxyAgentConfig = {
    agentID: v['agent-id'] || env.PROXY_AGENT_ID || randomUUID(),
    agentIdentifiers: v['agent-identifiers'],
    serverHost: v['proxy-server-host'],
    serverPort: v['proxy-server-port'],
    transport,
    proxy: proxied?.proxy,
    syncIntervalMs: v['sync-interval'],
    syncIntervalCapMs: v['sync-interval-cap'],
    syncForever: v['sync-forever'],
    serverCountSource: countSource === 'max' ? 'max' : 'default',
    probeIntervalMs: v['probe-interval'],
    keepaliveTimeMs: v['keepalive-time'],
    windowBytes: v['server-window-size'],
    connectionWindowBytes: v['connection-window-size'],
    tokenPath: v['service-account-token-path'] || undefined,
    maxMessageBytes: v['max-grpc-message-size'],
    alpnProtocols: v['alpn-proto'],
    drainTimeoutMs: v['drain-timeout'],
    drainIdleGraceMs: v['drain-idle-grace'],
    leaseCounting: v['count-server-leases']
      ? {
          namespace: v['lease-namespace'],
          labelSelector: leaseLabel,
          kubeconfig: v.kubeconfig,
        }
      : undefined,
    destinationPolicy: policy,
    health: { host: v['health-server-host'], port: v['health-server-port'] },
    admin: { host: v['admin-bind-address'], port: v['admin-server-port'] },
    log,
  };
  if (v['ca-cert']) config.ca = readPem('ca-cert', v['ca-cert']);
  // An https:// proxy is trusted by the system's roots and by --ca-cert.
  if (config.proxy?.protocol === 'https' && config.ca) config.proxyCa = [...rootCertificates, config.ca];
  if (v['agent-cert']) {
    config.cert = readPem('agent-cert', v['agent-cert']);
    config.key = readPem('agent-key', v['agent-key']);
  }
  return config;
}
