// The `konnectivity` cloud provider: the "cloud" is the set of agents connected to the
// proxy-servers. An instance is a node that some agent names with a `host` identifier.
//   providerID     konnectivity://<node name>
//   addresses      InternalIP for each ipv4/ipv6 identifier of the node's agents, Hostname <node name>
//   instance type  konnectivity-agent
//   zone, region   the Node's own topology.kubernetes.io/zone and /region labels, else '':
//                  agents carry no topology, and whoever labelled the Node (kubelet
//                  --node-labels, an installer) knows it; echoing the labels back lets the
//                  cloud-node controller add the beta labels beside them.
//   exists         false only once no agent has named the node for longer than
//                  nodeDeletionGrace (0, the default: never false)
//   shutdown       true when no agent has named the node for longer than shutdownGrace AND a
//                  TCP dial to <the Node's InternalIP>:<kubeletPort> through the tunnel fails
// A node with no agent gets no metadata (an error: the cloud-node controller keeps its
// uninitialized taint and retries); deciding whether it is gone is the lifecycle
// controller's job, through instanceExists.
// With a `loadBalancer` section the provider also has load balancers: the CCM listens on pool
// addresses and carries each connection through the tunnel to a node (load-balancer/).
import type { V1Node } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { createRegistry } from '../../../../common/metrics.js';
import type { Logger } from '../../../../common/log.js';
import { errorText } from '../../../../common/log.js';
import type { EgressDialer } from '../../../egress-selector/egress-dialer-types.js';
import { egressDialer, loadEgressSelectorConfiguration } from '../../../egress-selector/index.js';
import {
  CloudConfigError,
  type CloudProvider,
  type CloudProviderInit,
  type InstanceMetadata,
  type InstancesV2,
  type LoadBalancer,
} from '../cloud-provider.js';
import { KonnectivityLoadBalancer } from './load-balancer/konnectivity-load-balancer.js';
import { AgentDirectory, type AgentListing, type ListedNode } from './agent-directory.js';
import { loadKonnectivityCloudConfig, type KonnectivityCloudConfig } from './config.js';
import { kubeletAnswers } from './kubelet-probe.js';
import { NodePresence } from './node-presence.js';

export const PROVIDER_NAME = 'konnectivity';
export const PROVIDER_ID_PREFIX = 'konnectivity://';
export const INSTANCE_TYPE = 'konnectivity-agent';
const ZONE_LABEL = 'topology.kubernetes.io/zone';
const REGION_LABEL = 'topology.kubernetes.io/region';
/** Bound on each GET /agents. */
const LISTING_TIMEOUT_MS = 5000;
/** Bound on the kubelet dial: the upstream agent gives its own dials 5 s. */
const KUBELET_DIAL_TIMEOUT_MS = 10_000;

/** The CloudProviderFactory of `konnectivity` (registered in ../providers.ts). */
export function createKonnectivityProvider(init: CloudProviderInit): Promise<CloudProvider> {
  try {
    const config = loadKonnectivityCloudConfig(init.cloudConfigPath);
    const egress = egressFor(config, init);
    return Promise.resolve(
      new KonnectivityCloudProvider(config, egress.dialer, egress.owned, init.log, init.registry),
    );
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** The dialer that carries the kubelet probes: the cloud-config's own selection, else the CCM's. */
function egressFor(
  config: KonnectivityCloudConfig,
  init: CloudProviderInit,
): { dialer: EgressDialer; owned: boolean } {
  const file = config.egressSelectorConfigFile;
  if (file) {
    try {
      return {
        dialer: egressDialer(loadEgressSelectorConfiguration(file), config.egressSelection),
        owned: true,
      };
    } catch (err) {
      throw new CloudConfigError(
        `--cloud-config ${init.cloudConfigPath}: egressSelectorConfigFile: ${errorText(err)}`,
        {
          cause: err,
        },
      );
    }
  }
  if (init.egress) return { dialer: init.egress, owned: false };
  throw new CloudConfigError(
    `--cloud-config ${init.cloudConfigPath}: the konnectivity provider probes kubelets through the tunnel and has no egress: ` +
      'set egressSelectorConfigFile (and egressSelection) in the cloud-config, or --egress-selector-config-file',
  );
}

export class KonnectivityCloudProvider implements CloudProvider {
  readonly name = PROVIDER_NAME;
  private readonly instances: KonnectivityInstances;
  private readonly balancer: KonnectivityLoadBalancer | undefined;

  constructor(
    readonly config: KonnectivityCloudConfig,
    private readonly egress: EgressDialer,
    private readonly ownsEgress: boolean,
    log: Logger,
    /** Where the load balancers' metrics go (the CCM's /metrics); a private one when absent. */
    registry: Registry = createRegistry(false),
  ) {
    const providerLog = log.child({ cloudProvider: PROVIDER_NAME });
    const directory = new AgentDirectory({
      servers: config.servers,
      ttlMs: config.agentCacheTtlMs,
      requestTimeoutMs: LISTING_TIMEOUT_MS,
      log: providerLog,
    });
    this.instances = new KonnectivityInstances(config, directory, egress, providerLog);
    this.balancer = config.loadBalancer
      ? new KonnectivityLoadBalancer(config.loadBalancer, egress, registry, providerLog)
      : undefined;
  }

  instancesV2(): InstancesV2 {
    return this.instances;
  }

  /** undefined without a `loadBalancer` section in the cloud-config. */
  loadBalancer(): LoadBalancer | undefined {
    return this.balancer;
  }

  stoppedLeading(): Promise<void> {
    this.balancer?.stopServing();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.balancer?.stop();
    if (this.ownsEgress) this.egress.close();
    return Promise.resolve();
  }
}

class KonnectivityInstances implements InstancesV2 {
  private readonly presence = new NodePresence();

  constructor(
    private readonly config: KonnectivityCloudConfig,
    private readonly directory: AgentDirectory,
    private readonly egress: EgressDialer,
    private readonly log: Logger,
  ) {
    directory.onListing((listing) => this.presence.observe(listing));
  }

  async instanceMetadata(node: V1Node, signal: AbortSignal): Promise<InstanceMetadata> {
    const name = nodeName(node);
    const listed = (await this.directory.listing(signal)).nodes.get(name.toLowerCase());
    if (!listed) throw new Error(`no konnectivity agent reports host=${name}`);
    const labels = node.metadata?.labels ?? {};
    return {
      providerID: `${PROVIDER_ID_PREFIX}${name}`,
      instanceType: INSTANCE_TYPE,
      nodeAddresses: addressesOf(name, listed),
      zone: labels[ZONE_LABEL] ?? '',
      region: labels[REGION_LABEL] ?? '',
    };
  }

  async instanceExists(node: V1Node, signal: AbortSignal): Promise<boolean> {
    const name = nodeName(node);
    const listing = await this.directory.listing(signal);
    const grace = this.config.nodeDeletionGraceMs;
    if (grace === 0) return true;
    const missing = this.missingFor(name, listing);
    if (missing <= grace) return true;
    const lastSeen = this.presence.lastSeenAt(name.toLowerCase());
    this.log.info(
      {
        node: name,
        missingMs: missing,
        nodeDeletionGraceMs: grace,
        lastSeen: lastSeen === undefined ? 'never since start' : new Date(lastSeen).toISOString(),
      },
      'no agent for longer than nodeDeletionGrace: instance gone',
    );
    return false;
  }

  async instanceShutdown(node: V1Node, signal: AbortSignal): Promise<boolean> {
    const name = nodeName(node);
    const listing = await this.directory.listing(signal);
    const missing = this.missingFor(name, listing);
    if (missing <= this.config.shutdownGraceMs) return false;
    const address = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
    if (!address) {
      this.log.info(
        { node: name, missingMs: missing },
        'no agent for longer than shutdownGrace and no InternalIP to probe: shut down',
      );
      return true;
    }
    const port = this.config.kubeletPort;
    const answers = await kubeletAnswers(this.egress, address, port, KUBELET_DIAL_TIMEOUT_MS, signal);
    this.log.debug(
      { node: name, missingMs: missing, kubelet: `${address}:${port}`, answers },
      'kubelet probed through the tunnel',
    );
    return !answers;
  }

  private missingFor(name: string, listing: AgentListing): number {
    return this.presence.missingFor(name.toLowerCase(), listing);
  }
}

function nodeName(node: V1Node): string {
  const name = node.metadata?.name;
  if (!name) throw new Error('a Node without metadata.name');
  return name;
}

function addressesOf(name: string, listed: ListedNode): InstanceMetadata['nodeAddresses'] {
  return [
    ...listed.ips.map((address) => ({ type: 'InternalIP', address })),
    { type: 'Hostname', address: name },
  ];
}
