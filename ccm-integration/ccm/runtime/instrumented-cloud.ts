// A CloudProvider wrapper that counts every InstancesV2 and LoadBalancer call in
// konnectivity_ccm_cloud_provider_calls_total{method,result} and logs it at debug, so an
// operator sees what the controllers ask of the provider without the provider's help.
import type { Logger } from '../../../common/log.js';
import { errorText } from '../../../common/log.js';
import type { CloudProvider, InstancesV2, LoadBalancer } from '../cloud/cloud-provider.js';
import type { CcmMetrics } from './metrics.js';

type Recorder = <T>(method: string, call: () => Promise<T>) => Promise<T>;

function recorder(metrics: CcmMetrics, log: Logger): Recorder {
  return async (method, call) => {
    const started = performance.now();
    try {
      const result = await call();
      metrics.cloudCall(method, 'ok');
      log.debug({ method, ms: Math.round(performance.now() - started) }, 'cloud provider call');
      return result;
    } catch (err) {
      metrics.cloudCall(method, 'error');
      log.debug(
        { method, ms: Math.round(performance.now() - started), error: errorText(err) },
        'cloud provider call failed',
      );
      throw err;
    }
  };
}

function instrumentInstances(inner: InstancesV2, record: Recorder): InstancesV2 {
  return {
    instanceExists: (node, signal) => record('instanceExists', () => inner.instanceExists(node, signal)),
    instanceShutdown: (node, signal) =>
      record('instanceShutdown', () => inner.instanceShutdown(node, signal)),
    instanceMetadata: (node, signal) =>
      record('instanceMetadata', () => inner.instanceMetadata(node, signal)),
  };
}

function instrumentLoadBalancer(inner: LoadBalancer, record: Recorder, metrics: CcmMetrics): LoadBalancer {
  return {
    getLoadBalancer: (cluster, service, signal) =>
      record('getLoadBalancer', () => inner.getLoadBalancer(cluster, service, signal)),
    getLoadBalancerName: (cluster, service) => {
      // Synchronous and pure in every provider we know; counted all the same.
      try {
        const name = inner.getLoadBalancerName(cluster, service);
        metrics.cloudCall('getLoadBalancerName', 'ok');
        return name;
      } catch (err) {
        metrics.cloudCall('getLoadBalancerName', 'error');
        throw err;
      }
    },
    ensureLoadBalancer: (cluster, service, nodes, signal) =>
      record('ensureLoadBalancer', () => inner.ensureLoadBalancer(cluster, service, nodes, signal)),
    updateLoadBalancer: (cluster, service, nodes, signal) =>
      record('updateLoadBalancer', () => inner.updateLoadBalancer(cluster, service, nodes, signal)),
    ensureLoadBalancerDeleted: (cluster, service, signal) =>
      record('ensureLoadBalancerDeleted', () => inner.ensureLoadBalancerDeleted(cluster, service, signal)),
  };
}

/** `provider`, with every instance and load-balancer call counted and logged. */
export function instrumentCloud(provider: CloudProvider, metrics: CcmMetrics, log: Logger): CloudProvider {
  const record = recorder(metrics, log.child({ provider: provider.name }));
  // One wrapper per inner object, so callers comparing identities see a stable object.
  const instances = new WeakMap<InstancesV2, InstancesV2>();
  const balancers = new WeakMap<LoadBalancer, LoadBalancer>();
  return {
    name: provider.name,
    instancesV2: () => {
      const inner = provider.instancesV2();
      if (!inner) return undefined;
      let outer = instances.get(inner);
      if (!outer) {
        outer = instrumentInstances(inner, record);
        instances.set(inner, outer);
      }
      return outer;
    },
    loadBalancer: () => {
      const inner = provider.loadBalancer();
      if (!inner) return undefined;
      let outer = balancers.get(inner);
      if (!outer) {
        outer = instrumentLoadBalancer(inner, record, metrics);
        balancers.set(inner, outer);
      }
      return outer;
    },
    stop: () => provider.stop(),
  };
}
