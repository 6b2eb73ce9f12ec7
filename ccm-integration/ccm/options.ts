// konnectivity-ccm command line: the upstream cloud-controller-manager flag names, meanings and
// defaults (k8s.io/cloud-provider options, k8s.io/controller-manager generic options), so a
// manifest written for an upstream CCM starts this one. Upstream flags we do not act on are
// accepted with a warning; ours get new names.
//
// The health/metrics port is plain HTTP, unlike upstream's HTTPS with delegated authentication
// and authorization: those need TokenReview/SubjectAccessReview round trips for every scrape,
// and what the port serves (/healthz, /readyz, /metrics) carries no secret and changes nothing.
// Bind it to loopback (--bind-address=127.0.0.1) or restrict it with a NetworkPolicy where
// metrics must not be readable by the cluster network.
import { isIP } from 'node:net';
import { checkPortFlag, FlagError, type FlagTable, type FlagValues } from '../../common/flags/flag-set.js';
import { formatGoDuration } from '../../common/flags/go-duration.js';
import { klogFlags } from '../../common/flags/klog-flags.js';
import type { Logger } from '../../common/log.js';
import type { EgressSelectionName } from '../egress-selector/egress-dialer-types.js';
import { registeredCloudProviders } from './cloud/cloud-provider.js';
import type { ControllerOptions } from './controller.js';
import { JITTER_FACTOR } from './runtime/leader-election.js';

const servedPlain =
  'the health/metrics port is plain HTTP here (see --bind-address); put it on loopback or behind a NetworkPolicy';
const noDelegatedAuth = 'the health/metrics port has no authentication or authorization (plain HTTP)';
const noRoutes = 'no provider here configures routes or allocates node CIDRs';
const oneClient = 'every controller uses the --kubeconfig (or in-cluster) credentials';

export const ccmFlags = {
  ...klogFlags,
  kubeconfig: {
    kind: 'string',
    default: '',
    help: 'path to a kubeconfig file with authorization and master location information (empty: in-cluster service account)',
  },
  'cloud-provider': {
    kind: 'string',
    default: '',
    help: 'the provider for cloud services (required); built in: fake, konnectivity',
  },
  'cloud-config': {
    kind: 'string',
    default: '',
    help: "the path to the cloud provider's configuration file",
  },
  controllers: {
    kind: 'stringSlice',
    default: ['*'],
    help: "controllers to enable: '*' enables all on-by-default controllers, 'foo' enables foo, '-foo' disables foo. All: cloud-node, cloud-node-lifecycle, route, service",
  },
  'leader-elect': {
    kind: 'bool',
    default: true,
    help: 'start a leader election client and gain leadership before running the controllers (for replicated deployments)',
  },
  'leader-elect-lease-duration': {
    kind: 'duration',
    default: 15_000,
    help: 'how long non-leader candidates wait after observing a leadership renewal before trying to take over a led but unrenewed lease',
  },
  'leader-elect-renew-deadline': {
    kind: 'duration',
    default: 10_000,
    help: 'how long the leader keeps retrying to renew before it stops leading; less than the lease duration',
  },
  'leader-elect-retry-period': {
    kind: 'duration',
    default: 2_000,
    help: 'how long clients wait between attempts to acquire and renew the leadership',
  },
  'leader-elect-resource-namespace': {
    kind: 'string',
    default: 'kube-system',
    help: 'namespace of the Lease used for leader election',
  },
  'leader-elect-resource-name': {
    kind: 'string',
    default: 'cloud-controller-manager',
    help: 'name of the Lease used for leader election',
  },
  'leader-elect-resource-lock': {
    kind: 'string',
    default: 'leases',
    help: "type of the leader election lock; only 'leases' (coordination.k8s.io/v1)",
  },
  'node-monitor-period': {
    kind: 'duration',
    default: 5_000,
    help: 'the period for syncing NodeStatus in the cloud-node-lifecycle controller',
  },
  'node-status-update-frequency': {
    kind: 'duration',
    default: 5 * 60_000,
    help: "how often the cloud-node controller updates nodes' status (addresses)",
  },
  'concurrent-service-syncs': {
    kind: 'int',
    default: 1,
    help: 'the number of services that are allowed to sync concurrently',
  },
  'concurrent-node-syncs': {
    kind: 'int',
    default: 1,
    help: 'the number of workers concurrently synchronizing nodes',
  },
  'load-balancer-class': {
    kind: 'string',
    default: '',
    help: 'the spec.loadBalancerClass this CCM serves; empty: Services without a class only',
  },
  'cluster-name': { kind: 'string', default: 'kubernetes', help: 'the instance prefix for the cluster' },
  'secure-port': {
    kind: 'int',
    default: 10258,
    help: 'port of /healthz, /readyz and /metrics (plain HTTP, see --bind-address); 0: pick a free port (upstream: 0 disables serving)',
  },
  'bind-address': {
    kind: 'string',
    default: '0.0.0.0',
    help: 'IP address of --secure-port. Plain HTTP (no delegated authentication): what it serves carries no secret; use 127.0.0.1 or a NetworkPolicy to keep metrics private',
  },
  'egress-selector-config-file': {
    kind: 'string',
    default: '',
    help: "ours: an EgressSelectorConfiguration file (kube-apiserver's format); the provider's dials to the cluster go through the selection --egress-selection names",
  },
  'egress-selection': {
    kind: 'string',
    default: 'cluster',
    help: "ours: which selection of --egress-selector-config-file carries the provider's dials: cluster, controlplane or etcd",
  },
  // Upstream flags accepted for compatibility, without effect here.
  master: {
    kind: 'string',
    default: '',
    help: '',
    notImplemented: 'put the API server address in the --kubeconfig',
  },
  'kube-api-qps': { kind: 'float', default: 20, help: '', notImplemented: 'no client-side rate limit' },
  'kube-api-burst': { kind: 'int', default: 30, help: '', notImplemented: 'no client-side rate limit' },
  'kube-api-content-type': {
    kind: 'string',
    default: 'application/vnd.kubernetes.protobuf',
    help: '',
    notImplemented: 'the API is spoken in JSON',
  },
  'use-service-account-credentials': {
    kind: 'bool',
    default: false,
    help: '',
    notImplemented: oneClient,
  },
  'configure-cloud-routes': { kind: 'bool', default: true, help: '', notImplemented: noRoutes },
  'allocate-node-cidrs': { kind: 'bool', default: false, help: '', notImplemented: noRoutes },
  'cidr-allocator-type': { kind: 'string', default: 'RangeAllocator', help: '', notImplemented: noRoutes },
  'cluster-cidr': { kind: 'string', default: '', help: '', notImplemented: noRoutes },
  'route-reconciliation-period': { kind: 'duration', default: 10_000, help: '', notImplemented: noRoutes },
  'node-sync-period': { kind: 'duration', default: 0, help: '', notImplemented: 'deprecated upstream' },
  'min-resync-period': {
    kind: 'duration',
    default: 12 * 3600_000,
    help: '',
    notImplemented: 'informers do not resync; controllers requeue on their own periods',
  },
  'controller-start-interval': {
    kind: 'duration',
    default: 0,
    help: '',
    notImplemented: 'controllers start together',
  },
  'concurrent-node-status-updates': {
    kind: 'int',
    default: 0,
    help: '',
    notImplemented: '--concurrent-node-syncs is used',
  },
  'external-cloud-volume-plugin': {
    kind: 'string',
    default: '',
    help: '',
    notImplemented: 'no volume controllers',
  },
  'allow-untagged-cloud': { kind: 'bool', default: false, help: '', notImplemented: 'deprecated upstream' },
  'enable-leader-migration': {
    kind: 'bool',
    default: false,
    help: '',
    notImplemented: 'no leader migration',
  },
  'leader-migration-config': { kind: 'string', default: '', help: '', notImplemented: 'no leader migration' },
  'feature-gates': { kind: 'string', default: '', help: '', notImplemented: 'no feature gates' },
  profiling: { kind: 'bool', default: true, help: '', notImplemented: 'use node --cpu-prof' },
  'contention-profiling': {
    kind: 'bool',
    default: false,
    help: '',
    notImplemented: 'no lock contention in Node',
  },
  'logging-format': {
    kind: 'string',
    default: 'text',
    help: '',
    notImplemented: 'logs are JSON lines on stdout',
  },
  'tls-cert-file': { kind: 'string', default: '', help: '', notImplemented: servedPlain },
  'tls-private-key-file': { kind: 'string', default: '', help: '', notImplemented: servedPlain },
  'tls-cipher-suites': { kind: 'stringSlice', default: [], help: '', notImplemented: servedPlain },
  'tls-min-version': { kind: 'string', default: '', help: '', notImplemented: servedPlain },
  'tls-sni-cert-key': { kind: 'stringSlice', default: [], help: '', notImplemented: servedPlain },
  'cert-dir': { kind: 'string', default: '', help: '', notImplemented: servedPlain },
  'http2-max-streams-per-connection': { kind: 'int', default: 0, help: '', notImplemented: servedPlain },
  'permit-port-sharing': { kind: 'bool', default: false, help: '', notImplemented: servedPlain },
  'permit-address-sharing': { kind: 'bool', default: false, help: '', notImplemented: servedPlain },
  'authentication-kubeconfig': { kind: 'string', default: '', help: '', notImplemented: noDelegatedAuth },
  'authentication-skip-lookup': { kind: 'bool', default: false, help: '', notImplemented: noDelegatedAuth },
  'authentication-token-webhook-cache-ttl': {
    kind: 'duration',
    default: 10_000,
    help: '',
    notImplemented: noDelegatedAuth,
  },
  'authentication-tolerate-lookup-failure': {
    kind: 'bool',
    default: false,
    help: '',
    notImplemented: noDelegatedAuth,
  },
  'client-ca-file': { kind: 'string', default: '', help: '', notImplemented: noDelegatedAuth },
  'requestheader-client-ca-file': { kind: 'string', default: '', help: '', notImplemented: noDelegatedAuth },
  'requestheader-allowed-names': {
    kind: 'stringSlice',
    default: [],
    help: '',
    notImplemented: noDelegatedAuth,
  },
  'requestheader-extra-headers-prefix': {
    kind: 'stringSlice',
    default: [],
    help: '',
    notImplemented: noDelegatedAuth,
  },
  'requestheader-group-headers': {
    kind: 'stringSlice',
    default: [],
    help: '',
    notImplemented: noDelegatedAuth,
  },
  'requestheader-username-headers': {
    kind: 'stringSlice',
    default: [],
    help: '',
    notImplemented: noDelegatedAuth,
  },
  'requestheader-uid-headers': {
    kind: 'stringSlice',
    default: [],
    help: '',
    notImplemented: noDelegatedAuth,
  },
  'authorization-kubeconfig': { kind: 'string', default: '', help: '', notImplemented: noDelegatedAuth },
  'authorization-always-allow-paths': {
    kind: 'stringSlice',
    default: ['/healthz', '/readyz', '/livez'],
    help: '',
    notImplemented: noDelegatedAuth,
  },
  'authorization-webhook-cache-authorized-ttl': {
    kind: 'duration',
    default: 10_000,
    help: '',
    notImplemented: noDelegatedAuth,
  },
  'authorization-webhook-cache-unauthorized-ttl': {
    kind: 'duration',
    default: 10_000,
    help: '',
    notImplemented: noDelegatedAuth,
  },
  webhooks: { kind: 'stringSlice', default: [], help: '', notImplemented: 'no cloud provider webhooks' },
  'webhook-bind-address': {
    kind: 'string',
    default: '',
    help: '',
    notImplemented: 'no cloud provider webhooks',
  },
  'webhook-secure-port': { kind: 'int', default: 0, help: '', notImplemented: 'no cloud provider webhooks' },
  'webhook-cert-dir': { kind: 'string', default: '', help: '', notImplemented: 'no cloud provider webhooks' },
  'webhook-tls-cert-file': {
    kind: 'string',
    default: '',
    help: '',
    notImplemented: 'no cloud provider webhooks',
  },
  'webhook-tls-private-key-file': {
    kind: 'string',
    default: '',
    help: '',
    notImplemented: 'no cloud provider webhooks',
  },
} satisfies FlagTable;

export type CcmFlagValues = FlagValues<typeof ccmFlags>;

/** The controllers --controllers knows, by their short (alias) names. */
export const KNOWN_CONTROLLERS = ['cloud-node', 'cloud-node-lifecycle', 'route', 'service'] as const;
export type ControllerName = (typeof KNOWN_CONTROLLERS)[number];

/** Upstream's full names (k8s.io/cloud-provider/names), accepted as well. */
const LONG_NAMES: Record<string, ControllerName> = {
  'cloud-node-controller': 'cloud-node',
  'cloud-node-lifecycle-controller': 'cloud-node-lifecycle',
  'node-route-controller': 'route',
  'service-lb-controller': 'service',
};

function canonicalController(name: string): ControllerName | undefined {
  if ((KNOWN_CONTROLLERS as readonly string[]).includes(name)) return name as ControllerName;
  return LONG_NAMES[name];
}

/**
 * --controllers → the enabled controllers, as controller-manager's IsControllerEnabled: an
 * explicit name wins, then an explicit -name, then '*' (every controller is on by default).
 */
export function enabledControllers(list: readonly string[]): ControllerName[] {
  const on = new Set<ControllerName>();
  const off = new Set<ControllerName>();
  let star = false;
  for (const raw of list) {
    const item = raw.trim();
    if (item === '*') {
      star = true;
      continue;
    }
    const disable = item.startsWith('-');
    const name = canonicalController(disable ? item.slice(1) : item);
    if (!name) {
      throw new FlagError(
        `--controllers: "${disable ? item.slice(1) : item}" is not in the list of known controllers (${KNOWN_CONTROLLERS.join(', ')}, or *)`,
      );
    }
    (disable ? off : on).add(name);
  }
  return KNOWN_CONTROLLERS.filter((c) => on.has(c) || (!off.has(c) && star));
}

export interface LeaderElectionOptions {
  enabled: boolean;
  namespace: string;
  name: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface CcmConfig {
  /** '' : in-cluster. */
  kubeconfig: string;
  cloudProvider: string;
  cloudConfig: string;
  /** Enabled controllers by --controllers name ('route' included when enabled; it never runs). */
  controllers: ControllerName[];
  leaderElection: LeaderElectionOptions;
  controllerOptions: ControllerOptions;
  health: { host: string; port: number };
  egress: { configFile: string; selection: EgressSelectionName } | undefined;
  /** Leader-election identity; default <hostname>_<uuid> as upstream. */
  identity?: string;
  log: Logger;
}

const SELECTIONS: readonly EgressSelectionName[] = ['cluster', 'controlplane', 'etcd'];

function positive(name: string, value: number): void {
  if (!(value > 0)) throw new FlagError(`--${name} must be greater than zero`);
}

/** Flags → validated configuration; throws FlagError with the flag's name. */
export function ccmConfigFromFlags(v: CcmFlagValues, log: Logger): CcmConfig {
  if (v['cloud-provider'] === '') {
    throw new FlagError(
      `--cloud-provider cannot be empty (registered providers: ${registeredCloudProviders().join(', ')})`,
    );
  }
  const controllers = enabledControllers(v.controllers);
  if (controllers.includes('route') && v['allocate-node-cidrs'] && v['configure-cloud-routes']) {
    log.warn(
      '--configure-cloud-routes is set, but no provider here supports routes: routes will not be configured',
    );
  }

  if (v['leader-elect-resource-lock'] !== 'leases') {
    throw new FlagError(
      `--leader-elect-resource-lock "${v['leader-elect-resource-lock']}" is not supported: only "leases" (coordination.k8s.io/v1)`,
    );
  }
  const lease = v['leader-elect-lease-duration'];
  const renew = v['leader-elect-renew-deadline'];
  const retry = v['leader-elect-retry-period'];
  if (v['leader-elect']) {
    positive('leader-elect-retry-period', retry);
    positive('leader-elect-renew-deadline', renew);
    // leaseDurationSeconds is a whole number of seconds (client-go truncates): 0 would never expire.
    if (lease < 1000)
      throw new FlagError(`--leader-elect-lease-duration must be at least 1s, not ${lease}ms`);
    const d = formatGoDuration;
    if (lease <= renew) {
      throw new FlagError(
        `--leader-elect-lease-duration (${d(lease)}) must be greater than --leader-elect-renew-deadline (${d(renew)})`,
      );
    }
    if (renew <= JITTER_FACTOR * retry) {
      throw new FlagError(
        `--leader-elect-renew-deadline (${d(renew)}) must be greater than ${JITTER_FACTOR} × --leader-elect-retry-period (${d(retry)}), as client-go requires`,
      );
    }
    if (v['leader-elect-resource-name'] === '')
      throw new FlagError('--leader-elect-resource-name cannot be empty');
    if (v['leader-elect-resource-namespace'] === '')
      throw new FlagError('--leader-elect-resource-namespace cannot be empty');
  }

  positive('node-monitor-period', v['node-monitor-period']);
  positive('node-status-update-frequency', v['node-status-update-frequency']);
  if (v['concurrent-service-syncs'] < 1)
    throw new FlagError('--concurrent-service-syncs must not be less than 1');
  if (v['concurrent-node-syncs'] < 1) throw new FlagError('--concurrent-node-syncs must not be less than 1');

  checkPortFlag('secure-port', v['secure-port']);
  if (isIP(v['bind-address']) === 0)
    throw new FlagError(`--bind-address "${v['bind-address']}" is not an IP address`);

  let egress: CcmConfig['egress'];
  const selection = v['egress-selection'] as EgressSelectionName;
  if (!SELECTIONS.includes(selection)) {
    throw new FlagError(
      `--egress-selection must be one of ${SELECTIONS.join(', ')}, not "${v['egress-selection']}"`,
    );
  }
  if (v['egress-selector-config-file'] !== '') {
    egress = { configFile: v['egress-selector-config-file'], selection };
  }

  return {
    kubeconfig: v.kubeconfig,
    cloudProvider: v['cloud-provider'],
    cloudConfig: v['cloud-config'],
    controllers,
    leaderElection: {
      enabled: v['leader-elect'],
      namespace: v['leader-elect-resource-namespace'],
      name: v['leader-elect-resource-name'],
      leaseDurationMs: lease,
      renewDeadlineMs: renew,
      retryPeriodMs: retry,
    },
    controllerOptions: {
      clusterName: v['cluster-name'],
      nodeMonitorPeriodMs: v['node-monitor-period'],
      nodeStatusUpdateFrequencyMs: v['node-status-update-frequency'],
      concurrentServiceSyncs: v['concurrent-service-syncs'],
      concurrentNodeSyncs: v['concurrent-node-syncs'],
      loadBalancerClass: v['load-balancer-class'],
    },
    health: { host: v['bind-address'], port: v['secure-port'] },
    egress,
    log,
  };
}
