// proxy-server command line: upstream flag names, meanings and defaults, except the few
// defaults improved on purpose (marked "ours"), and validation with clear messages.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
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
import { readPem, type TlsFiles } from '../common/tls.js';
import { LabelSyntaxError, parseLabels } from '../common/kube/leases.js';
import { checkKubeContentType, JSON_CONTENT_TYPE } from '../common/kube/client.js';
import { parseProxyStrategies, StrategyError } from './backend/proxy-strategies.js';
import { TlsPolicyError, tlsPolicyFromFlags } from '../common/tls-policy.js';
import type { Logger } from '../common/log.js';
import type { FrontendConfig, ProxyServerConfig } from './proxy-server.js';
import { MIN_SECRET_BYTES } from './session-tickets.js';
import {
  BindingOptionError,
  parseAccountList,
  parseBindingMode,
  parseNodeFromCert,
} from './identity/binding-options.js';

export const serverFlags = {
  ...klogFlags,
  mode: { kind: 'string', default: 'grpc', help: "frontend protocol: 'grpc' or 'http-connect'" },
  'uds-name': { kind: 'string', default: '', help: 'serve the frontend on this Unix socket instead of TCP' },
  'delete-existing-uds-file': {
    kind: 'bool',
    default: true,
    help: 'remove an existing socket file at --uds-name before listening',
  },
  'uds-socket-mode': {
    kind: 'string',
    default: '0600',
    help: 'ours: file mode of the --uds-name socket (upstream uses 0770; set 0770 when kube-apiserver runs as another user of the group)',
  },
  'server-port': { kind: 'int', default: 8090, help: 'frontend TCP port (0 with --uds-name)' },
  'server-bind-address': {
    kind: 'string',
    default: '',
    help: 'frontend bind address (empty: all interfaces)',
  },
  'server-cert': { kind: 'string', default: '', help: 'frontend TLS certificate (TCP mode)' },
  'server-key': { kind: 'string', default: '', help: 'frontend TLS key (TCP mode)' },
  'server-ca-cert': {
    kind: 'string',
    default: '',
    help: 'CA that signs frontend client certificates (required in TCP mode)',
  },
  'agent-port': { kind: 'int', default: 8091, help: 'port for agent connections' },
  'agent-bind-address': {
    kind: 'string',
    default: '',
    help: 'bind address for agent connections (empty: all interfaces)',
  },
  'cluster-cert': {
    kind: 'string',
    default: '',
    help: 'agent-port TLS certificate (default: --server-cert)',
  },
  'cluster-key': { kind: 'string', default: '', help: 'agent-port TLS key (default: --server-key)' },
  'cluster-ca-cert': { kind: 'string', default: '', help: 'CA that must sign agent client certificates' },
  'health-port': { kind: 'int', default: 8092, help: 'port for /healthz and /readyz' },
  'health-bind-address': { kind: 'string', default: '', help: 'bind address for the health port' },
  'admin-port': { kind: 'int', default: 8095, help: 'port for /metrics' },
  'admin-bind-address': { kind: 'string', default: '127.0.0.1', help: 'bind address for the admin port' },
  'keepalive-time': {
    kind: 'duration',
    default: 15_000,
    help: 'ours: an agent connection on which nothing arrived for this long gets TCP keepalive probes from the kernel (a vanished host is noticed 10 s later) and an HTTP/2 ping (one timer for all agents, paced; a busy agent is never pinged) (upstream 1h)',
  },
  'max-keepalive-pings-per-second': {
    kind: 'int',
    default: 10,
    help: "ours: keepalive pings sent a second, all agents together: with more quiet agents than --keepalive-time allows at this rate, each is pinged less often (10,000 quiet agents at 10/s: every 17 min, against upstream's 1h), so idle agents cost a bounded share of a core; a vanished host is noticed sooner by TCP keepalive (--keepalive-time, then 10 one-second probes). 0: no limit",
  },
  'frontend-keepalive-time': {
    kind: 'duration',
    default: 15_000,
    help: 'ours: TCP keepalive probes and an HTTP/2 ping for a frontend connection on which nothing arrived for this long (upstream 1h)',
  },
  'backend-dial-timeout': {
    kind: 'duration',
    default: 10_000,
    help: 'ours: bound on a pending dial, DIAL_REQ to DIAL_RSP; 0 disables (upstream default 0: a dial may hang)',
  },
  'graceful-shutdown-timeout': {
    kind: 'duration',
    default: 20_000,
    help: 'ours: on SIGTERM, how long open connections may finish before exit (upstream 0)',
  },
  'agent-window-size': {
    kind: 'int',
    default: 16 * 1024 * 1024,
    help: "ours: HTTP/2 receive window (bytes) of each agent stream, which carries all of that agent's connections; its HTTP/2 connection gets twice that (Node's default 64 KiB caps throughput at window/RTT)",
  },
  'frontend-window-size': {
    kind: 'int',
    default: 4 * 1024 * 1024,
    help: 'ours: HTTP/2 receive window (bytes) of each gRPC frontend stream',
  },
  'connection-window-size': {
    kind: 'int',
    default: 8 * 1024 * 1024,
    help: 'ours: per-connection flow-control window (bytes) granted to our agents: one connection moves at most this per round trip, and a client that stops reading holds at most this',
  },
  'max-pending-dials': {
    kind: 'int',
    default: 4096,
    help: 'ours: dials waiting for an agent answer, all agents together; over it a dial fails at once (429 / DIAL_RSP error). 0: no limit',
  },
  'max-connections-per-agent': {
    kind: 'int',
    default: 20_000,
    help: 'ours: open plus pending connections through one agent on this server; over it a dial fails at once (429 / DIAL_RSP error). 0: no limit',
  },
  'max-dials-per-second': {
    kind: 'int',
    default: 100,
    help: 'ours: dials one gRPC frontend connection may start per second (burst the same); kube-apiserver opens a connection per dial, so only a client that reuses one meets it. 0: no limit',
  },
  'max-concurrent-token-reviews': {
    kind: 'int',
    default: 128,
    help: 'ours: TokenReviews in flight to the Kubernetes API at once; agents beyond it wait their turn (a restarted server would otherwise send one per agent at once), and one that hangs up while waiting costs no review. 0: no limit',
  },
  'max-concurrent-agent-handshakes': {
    kind: 'int',
    default: 64,
    help: 'ours: TLS handshakes in progress at once on the agent port; further agents are accepted and wait unread, in arrival order, so that a reconnect storm is served at full speed instead of every handshake slowing down until agents give up; one that waited 10 s is closed unread (its agent retries). 0: no limit',
  },
  'idle-connection-timeout': {
    kind: 'duration',
    default: 30_000,
    help: 'ours: a gRPC connection (frontend or agent port) with no open stream for this long is closed, so a client that connects and never speaks does not hold a socket forever. 0: never',
  },
  'frontend-header-timeout': {
    kind: 'duration',
    default: 10_000,
    help: 'ours: an HTTP CONNECT request head must be complete within this, or the client gets 408 and is dropped (slowloris)',
  },
  'max-grpc-message-size': {
    kind: 'int',
    default: 4 * 1024 * 1024,
    help: 'ours: largest gRPC message (packet) accepted from frontends and agents, in bytes; a larger one ends that stream only',
  },
  'server-id': {
    kind: 'string',
    default: '',
    help: 'unique ID of this server (default: $PROXY_SERVER_ID, else a UUID)',
  },
  'server-count': { kind: 'int', default: 1, help: 'number of proxy-server instances (HA)' },
  'proxy-strategies': {
    kind: 'string',
    default: 'default',
    help: 'ordered, comma-separated ways to choose an agent for a dial: default (any ready agent), destHost (the agent whose host/ipv4/ipv6/cidr identifier matches the dial host), defaultRoute (agents with default-route=true)',
  },
  'tls-min-version': {
    kind: 'string',
    default: '',
    help: 'minimum TLS version of every TLS listener: VersionTLS12 (default) or VersionTLS13 (VersionTLS10/11 are accepted and served as 1.2)',
  },
  'cipher-suites': {
    kind: 'stringSlice',
    default: [],
    help: "comma-separated TLS 1.2 cipher suites, Go's names (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); empty: Node's secure defaults. TLS 1.3 suites stay enabled unless listed",
  },
  'agent-tls-ticket-key-file': {
    kind: 'string',
    default: '',
    help: "ours: a file of at least 32 random bytes (e.g. `head -c 48 /dev/urandom`, in a Secret shared by the server replicas; never the serving key): the agent port's TLS session-ticket key is derived from it, from the listener's certificate, client CA and TLS policy and from the UTC day, so agents resume their sessions after a server restart or on another replica (about 1 ms less server CPU per reconnecting agent); tickets last until the next UTC midnight, and a resumed session whose client certificate has expired is closed. Empty: Node's default, a random key per process and 5-minute tickets",
  },
  'cert-reload-interval': {
    kind: 'duration',
    default: 10_000,
    help: 'ours: how often certificate, key and CA files are checked for changes; changed files are served to the next handshake without a restart (0 disables)',
  },
  'agent-namespace': { kind: 'string', default: '', help: 'agent token authentication: expected namespace' },
  'agent-service-account': {
    kind: 'string',
    default: '',
    help: 'agent token authentication: expected service account',
  },
  'authentication-audience': {
    kind: 'string',
    default: '',
    help: 'agent token authentication: expected audience',
  },
  'agent-identity-binding': {
    kind: 'string',
    default: 'auto',
    help: 'ours: whether an agent may claim only its own node (host/ipv4/ipv6 of its Node, cidr inside its podCIDRs, no default-route): enforce (mismatching claims are not routed; an agent whose node is unknown gets default routing only), warn (routed, logged and counted), off (upstream: any claim). Default auto: enforce for agents whose node is known, unknown nodes unchecked',
  },
  'agent-node-from-cert': {
    kind: 'string',
    default: 'off',
    help: 'ours: the node of an agent without a token, from its verified client certificate: cn (subject CN, system:node:<name> too), san-dns (first DNS subjectAltName) or off. Needs --cluster-ca-cert',
  },
  'agents-allowed-any-identifier': {
    kind: 'stringSlice',
    default: [],
    help: 'ours: <namespace>/<serviceaccount>,... whose agents may claim any identifier (cidr, default-route, other nodes); token authentication admits them besides --agent-service-account',
  },
  kubeconfig: {
    kind: 'string',
    default: '',
    help: 'kubeconfig for the Kubernetes API (token review, leases, Nodes for identity binding)',
  },
  'kubeconfig-qps': {
    kind: 'float',
    default: 0,
    help: '',
    notImplemented: 'API requests are not rate-limited client-side; TokenReviews are cached per token',
  },
  'kubeconfig-burst': {
    kind: 'int',
    default: 0,
    help: '',
    notImplemented: 'API requests are not rate-limited client-side; TokenReviews are cached per token',
  },
  'kube-api-content-type': {
    kind: 'string',
    default: JSON_CONTENT_TYPE,
    help: 'content type of requests to the Kubernetes API: only application/json is spoken; another value (upstream: protobuf) is accepted with a warning',
  },
  'enable-lease-controller': {
    kind: 'bool',
    default: false,
    help: "publish and renew this server's Lease (konnectivity-proxy-server-<server-id>) so agents can count the servers, and delete expired ones",
  },
  'lease-namespace': { kind: 'string', default: 'kube-system', help: 'namespace of the server Leases' },
  'lease-label': {
    kind: 'string',
    default: 'k8s-app=konnectivity-server',
    help: 'labels of the server Leases (k=v,k2=v2)',
  },
  'lease-duration': {
    kind: 'duration',
    default: 30_000,
    help: "ours: leaseDurationSeconds of this server's Lease (upstream: fixed 30s); rounded up to whole seconds",
  },
  'lease-renew-interval': {
    kind: 'duration',
    default: 15_000,
    help: 'ours: how often the Lease is renewed and expired Leases are collected (upstream: fixed 15s)',
  },
  ...profilingFlags,
  'xfr-channel-size': {
    kind: 'int',
    default: 10,
    help: '',
    notImplemented: 'buffering is bounded by backpressure',
  },
  'frontend-write-channel-size': {
    kind: 'int',
    default: 10,
    help: '',
    notImplemented: 'buffering is bounded by backpressure',
  },
  'warn-on-channel-limit': { kind: 'bool', default: true, help: '', notImplemented: 'deprecated upstream' },
} satisfies FlagTable;

export type ServerFlagValues = FlagValues<typeof serverFlags>;

function pair(certFlag: string, cert: string, keyFlag: string, key: string): void {
  if (cert && !key)
    throw new FlagError(`cannot have --${keyFlag} empty when --${certFlag} is set to "${cert}"`);
  if (key && !cert)
    throw new FlagError(`cannot have --${certFlag} empty when --${keyFlag} is set to "${key}"`);
}

/** Flags → validated configuration. Throws FlagError (or a TunnelError for unreadable files). */
export function serverConfigFromFlags(
  values: ServerFlagValues,
  explicit: ReadonlySet<string>,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
): ProxyServerConfig {
  const v = values;
  checkKubeContentType(v['kube-api-content-type'], log);
  if (v.mode !== 'grpc' && v.mode !== 'http-connect') {
    throw new FlagError(`mode must be set to either 'grpc' or 'http-connect' not "${v.mode}"`);
  }
  for (const p of ['server-port', 'agent-port', 'health-port', 'admin-port'] as const) checkPortFlag(p, v[p]);
  pair('server-cert', v['server-cert'], 'server-key', v['server-key']);
  pair('cluster-cert', v['cluster-cert'], 'cluster-key', v['cluster-key']);
  for (const w of ['agent-window-size', 'frontend-window-size'] as const) {
    if (v[w] < 65_535 || v[w] > 2 ** 31 - 1)
      throw new FlagError(`--${w} must be between 65535 and 2147483647 bytes`);
  }
  if (!isValidConnectionWindow(v['connection-window-size'])) {
    throw new FlagError('--connection-window-size must be between 65536 and 1073741824 bytes');
  }
  for (const l of [
    'max-pending-dials',
    'max-connections-per-agent',
    'max-dials-per-second',
    'max-concurrent-token-reviews',
    'max-concurrent-agent-handshakes',
    'max-keepalive-pings-per-second',
  ] as const) {
    if (v[l] < 0) throw new FlagError(`--${l} must be >= 0 (0: no limit)`);
  }
  if (v['max-grpc-message-size'] < 64 * 1024)
    throw new FlagError('--max-grpc-message-size must be at least 65536 bytes');
  if (v['server-count'] < 1)
    throw new FlagError(`--server-count must be at least 1, not ${v['server-count']}`);
  for (const d of [
    'keepalive-time',
    'frontend-keepalive-time',
    'backend-dial-timeout',
    'graceful-shutdown-timeout',
    'idle-connection-timeout',
  ] as const) {
    if (v[d] < 0) throw new FlagError(`--${d} must be >= 0`);
  }
  const strategies = parseFlagValue(() => parseProxyStrategies(v['proxy-strategies']), StrategyError);
  let agentAuth: ProxyServerConfig['agentAuth'];
  if (v['agent-namespace'] || v['agent-service-account'] || v['authentication-audience']) {
    for (const f of ['agent-namespace', 'agent-service-account', 'authentication-audience'] as const) {
      if (!v[f])
        throw new FlagError(
          `--${f} cannot be empty when agent token authentication is configured (--agent-namespace, --agent-service-account, --authentication-audience go together)`,
        );
    }
    agentAuth = {
      policy: {
        namespace: v['agent-namespace'],
        serviceAccount: v['agent-service-account'],
        audience: v['authentication-audience'],
      },
    };
  }
  const identityBinding = {
    mode: parseFlagValue(() => parseBindingMode(v['agent-identity-binding']), BindingOptionError),
    nodeFromCert: parseFlagValue(() => parseNodeFromCert(v['agent-node-from-cert']), BindingOptionError),
    anyIdentifierAccounts: parseFlagValue(
      () => parseAccountList(v['agents-allowed-any-identifier']),
      BindingOptionError,
    ),
  };
  if (identityBinding.anyIdentifierAccounts.length > 0) {
    if (!agentAuth)
      throw new FlagError(
        '--agents-allowed-any-identifier names service accounts: it needs agent token authentication (--agent-namespace, --agent-service-account, --authentication-audience)',
      );
    agentAuth.policy.alsoAdmitted = identityBinding.anyIdentifierAccounts;
  }
  if (identityBinding.nodeFromCert !== 'off' && !v['cluster-ca-cert'])
    throw new FlagError(
      `--agent-node-from-cert=${identityBinding.nodeFromCert} trusts what the CA put in agent certificates: it needs --cluster-ca-cert`,
    );
  let leases: ProxyServerConfig['leases'];
  if (v['enable-lease-controller']) {
    const labels = parseFlagValue(() => parseLabels(v['lease-label']), LabelSyntaxError, '--lease-label: ');
    if (Object.keys(labels).length === 0) throw new FlagError('--lease-label cannot be empty');
    if (v['lease-duration'] < 1000) throw new FlagError('--lease-duration must be at least 1s');
    if (v['lease-renew-interval'] <= 0 || v['lease-renew-interval'] >= v['lease-duration'])
      throw new FlagError('--lease-renew-interval must be > 0 and shorter than --lease-duration');
    leases = {
      namespace: v['lease-namespace'],
      labels,
      durationSeconds: Math.ceil(v['lease-duration'] / 1000),
      renewIntervalMs: v['lease-renew-interval'],
    };
  }
  const tlsPolicy = parseFlagValue(
    () => tlsPolicyFromFlags(v['tls-min-version'], v['cipher-suites'], (msg) => log.warn(msg)),
    TlsPolicyError,
  );
  if (v['frontend-header-timeout'] <= 0) throw new FlagError('--frontend-header-timeout must be > 0');
  if (v['cert-reload-interval'] < 0) throw new FlagError('--cert-reload-interval must be >= 0');
  if (!/^0?[0-7]{3}$/.test(v['uds-socket-mode']))
    throw new FlagError(`--uds-socket-mode "${v['uds-socket-mode']}" is not an octal file mode`);

  const frontend: FrontendConfig = { mode: v.mode };
  if (v['uds-name']) {
    if (explicit.has('server-port') && v['server-port'] !== 0) {
      throw new FlagError(`server port should be set to 0 not ${v['server-port']} for UDS`);
    }
    if (v['server-cert'] || v['server-key'] || v['server-ca-cert']) {
      throw new FlagError('server cert, key and CA should not be set for UDS');
    }
    frontend.uds = v['uds-name'];
    frontend.deleteExistingUds = v['delete-existing-uds-file'];
    frontend.udsMode = Number.parseInt(v['uds-socket-mode'], 8);
  } else {
    if (!v['server-ca-cert'])
      throw new FlagError('server ca cert must be set when in TCP mode (uds-name is empty)');
    if (!v['server-cert']) throw new FlagError('--server-cert and --server-key must be set when in TCP mode');
    frontend.host = v['server-bind-address'];
    frontend.port = v['server-port'];
    frontend.tls = {
      cert: readPem('server-cert', v['server-cert']),
      key: readPem('server-key', v['server-key']),
      ca: readPem('server-ca-cert', v['server-ca-cert']),
      paths: { cert: v['server-cert'], key: v['server-key'], ca: v['server-ca-cert'] },
    };
  }

  const clusterCert = v['cluster-cert'] || v['server-cert'];
  const clusterKey = v['cluster-cert'] ? v['cluster-key'] : v['server-key'];
  if (!clusterCert) {
    throw new FlagError(
      'the agent port needs TLS: set --cluster-cert and --cluster-key (or --server-cert and --server-key)',
    );
  }
  const agentTls: TlsFiles = {
    cert: readPem(v['cluster-cert'] ? 'cluster-cert' : 'server-cert', clusterCert),
    key: readPem(v['cluster-cert'] ? 'cluster-key' : 'server-key', clusterKey),
    paths: { cert: clusterCert, key: clusterKey, ca: v['cluster-ca-cert'] || undefined },
  };
  if (v['cluster-ca-cert']) agentTls.ca = readPem('cluster-ca-cert', v['cluster-ca-cert']);
  else log.warn('--cluster-ca-cert is not set: any agent that reaches the agent port is accepted');

  return {
    serverID: v['server-id'] || env.PROXY_SERVER_ID || randomUUID(),
    serverCount: v['server-count'],
    proxyStrategies: strategies,
    frontends: [frontend],
    agent: { host: v['agent-bind-address'], port: v['agent-port'], tls: agentTls },
    health: { host: v['health-bind-address'], port: v['health-port'] },
    admin: { host: v['admin-bind-address'], port: v['admin-port'] },
    keepaliveTimeMs: v['keepalive-time'],
    frontendKeepaliveTimeMs: v['frontend-keepalive-time'],
    keepaliveMaxPingsPerSecond: v['max-keepalive-pings-per-second'],
    backendDialTimeoutMs: v['backend-dial-timeout'],
    gracefulShutdownTimeoutMs: v['graceful-shutdown-timeout'],
    agentWindowBytes: v['agent-window-size'],
    frontendWindowBytes: v['frontend-window-size'],
    connectionWindowBytes: v['connection-window-size'],
    agentAuth,
    identityBinding,
    leases,
    kubeconfig: v.kubeconfig,
    limits: {
      maxPendingDials: v['max-pending-dials'],
      maxConnectionsPerAgent: v['max-connections-per-agent'],
      maxDialsPerSecond: v['max-dials-per-second'],
      maxConcurrentTokenReviews: v['max-concurrent-token-reviews'],
      maxConcurrentAgentHandshakes: v['max-concurrent-agent-handshakes'],
      maxMessageBytes: v['max-grpc-message-size'],
      idleConnectionMs: v['idle-connection-timeout'],
      headerTimeoutMs: v['frontend-header-timeout'],
    },
    tlsPolicy,
    certReloadIntervalMs: v['cert-reload-interval'],
    agentTicketSecret: readTicketSecret(v['agent-tls-ticket-key-file']),
    log,
  };
}

/** The agent port's session-ticket secret, read once at start; undefined without the flag. */
function readTicketSecret(path: string): Buffer | undefined {
  if (path === '') return undefined;
  let secret: Buffer;
  try {
    secret = readFileSync(path);
  } catch (err) {
    throw new FlagError(`--agent-tls-ticket-key-file: cannot read "${path}": ${(err as Error).message}`);
  }
  if (secret.length < MIN_SECRET_BYTES) {
    throw new FlagError(
      `--agent-tls-ticket-key-file: "${path}" holds ${String(secret.length)} bytes; it needs at least ${String(MIN_SECRET_BYTES)} random bytes (e.g. head -c 48 /dev/urandom)`,
    );
  }
  return secret;
}
