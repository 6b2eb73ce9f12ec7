// The cloud provider interface, modelled on k8s.io/cloud-provider (InstancesV2, LoadBalancer),
// and the registry of providers by name (--cloud-provider).
import type { V1LoadBalancerStatus, V1Node, V1NodeAddress, V1Service } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { Logger } from '../../../common/log.js';
import type { KubeClient } from '../../../common/kube/client.js';
import type { EgressDialer } from '../../egress-selector/egress-dialer-types.js';

export interface InstanceMetadata {
  /** e.g. konnectivity://node-1 */
  providerID: string;
  instanceType: string;
  nodeAddresses: V1NodeAddress[];
  zone: string;
  region: string;
  additionalLabels?: Record<string, string>;
}

/** Instances by Node, as cloud-provider's InstancesV2. */
export interface InstancesV2 {
  instanceExists(node: V1Node, signal: AbortSignal): Promise<boolean>;
  instanceShutdown(node: V1Node, signal: AbortSignal): Promise<boolean>;
  instanceMetadata(node: V1Node, signal: AbortSignal): Promise<InstanceMetadata>;
}

/** Load balancers for Services of type LoadBalancer, as cloud-provider's LoadBalancer. */
export interface LoadBalancer {
  getLoadBalancer(
    clusterName: string,
    service: V1Service,
    signal: AbortSignal,
  ): Promise<{ status: V1LoadBalancerStatus; exists: boolean }>;
  getLoadBalancerName(clusterName: string, service: V1Service): string;
  ensureLoadBalancer(
    clusterName: string,
    service: V1Service,
    nodes: V1Node[],
    signal: AbortSignal,
  ): Promise<V1LoadBalancerStatus>;
  updateLoadBalancer(
    clusterName: string,
    service: V1Service,
    nodes: V1Node[],
    signal: AbortSignal,
  ): Promise<void>;
  ensureLoadBalancerDeleted(clusterName: string, service: V1Service, signal: AbortSignal): Promise<void>;
}

export interface CloudProvider {
  readonly name: string;
  /** undefined: this provider has no instances (the node controllers then do nothing). */
  instancesV2(): InstancesV2 | undefined;
  /** undefined: this provider has no load balancers (the service controller then does nothing). */
  loadBalancer(): LoadBalancer | undefined;
  /** Releases what the provider holds (listeners, tunnels, timers). */
  stop(): Promise<void>;
  /**
   * This replica stopped leading and its controllers have stopped: release what only the
   * leader may hold (a load balancer's listeners). The provider stays in use for a later term.
   * Upstream CCMs exit when they lose the lease; ours campaigns again as a standby.
   */
  stoppedLeading?(): Promise<void>;
}

/** What every provider is given when it is created. */
export interface CloudProviderInit {
  /** --cloud-config path; '' when not set. */
  cloudConfigPath: string;
  kube: KubeClient;
  log: Logger;
  /**
   * The CCM's egress dialer (--egress-selector-config-file, selection --egress-selection), so a
   * provider's own API calls and probes can go through the tunnel; undefined when not set.
   */
  egress: EgressDialer | undefined;
  /** The CCM's metrics registry (its /metrics), for the provider's own metrics; may be absent. */
  registry?: Registry;
}

export type CloudProviderFactory = (init: CloudProviderInit) => Promise<CloudProvider>;

/** A provider's configuration is wrong: the CCM exits 2 with this message. */
export class CloudConfigError extends Error {
  override readonly name = 'CloudConfigError';
  readonly code = 'KNP_CONFIG';
}

const registry = new Map<string, CloudProviderFactory>();

export function registerCloudProvider(name: string, factory: CloudProviderFactory): void {
  if (registry.has(name)) throw new Error(`cloud provider ${name} is registered twice`);
  registry.set(name, factory);
}

export function cloudProviderFactory(name: string): CloudProviderFactory | undefined {
  return registry.get(name);
}

export function registeredCloudProviders(): string[] {
  return [...registry.keys()].sort();
}
