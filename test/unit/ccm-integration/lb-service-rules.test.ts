// The service controller's rules, as k8s.io/cloud-provider's: which Services want our load
// balancer (type and class), which need cleanup, which changes need a sync, which Nodes take
// traffic and which Node changes matter, and when two statuses are the same.
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment, @typescript-eslint/no-misused-spread -- client-node's models
   are plain data classes; its documented use passes object literals. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node, V1Service } from '@kubernetes/client-node';
import {
  LB_FINALIZER,
  loadBalancerStatusEqual,
  needsCleanup,
  needsUpdate,
  nodeEligible,
  nodesSufficientlyEqual,
  shouldSyncUpdatedNode,
  wantsLoadBalancer,
} from '../../../ccm-integration/ccm/controllers/service-rules.js';

function service(
  spec: Partial<NonNullable<V1Service['spec']>> = {},
  meta: V1Service['metadata'] = {},
): V1Service {
  return {
    metadata: { name: 'web', namespace: 'default', uid: 'u1', ...meta },
    spec: {
      type: 'LoadBalancer',
      ports: [{ name: 'http', port: 80, nodePort: 30080, protocol: 'TCP' }],
      ...spec,
    },
  };
}

function node(
  name: string,
  o: {
    ready?: boolean;
    labels?: Record<string, string>;
    unschedulable?: boolean;
    taint?: string;
    ip?: string;
  } = {},
): V1Node {
  return {
    metadata: { name, labels: o.labels ?? {} },
    spec: {
      providerID: `konnectivity://${name}`,
      unschedulable: o.unschedulable,
      taints: o.taint ? [{ key: o.taint, effect: 'NoSchedule' }] : [],
    },
    status: {
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
      addresses: [{ type: 'InternalIP', address: o.ip ?? '10.0.0.1' }],
    },
  };
}

describe('service controller rules', () => {
  it('wants a load balancer for type LoadBalancer without a class, or of the class it serves', () => {
    assert.ok(wantsLoadBalancer(service(), ''));
    assert.ok(!wantsLoadBalancer(service({ type: 'ClusterIP' }), ''));
    assert.ok(!wantsLoadBalancer(service({ loadBalancerClass: 'example.com/other' }), ''));
    assert.ok(wantsLoadBalancer(service({ loadBalancerClass: 'example.com/ours' }), 'example.com/ours'));
    assert.ok(!wantsLoadBalancer(service({ loadBalancerClass: 'example.com/other' }), 'example.com/ours'));
    assert.ok(wantsLoadBalancer(service(), 'example.com/ours'), 'classless Services are still ours');
  });

  it('needs cleanup only with our finalizer, when deleted or no longer a load balancer', () => {
    const withFinalizer = { finalizers: [LB_FINALIZER] };
    assert.ok(!needsCleanup(service({ type: 'ClusterIP' }), ''));
    assert.ok(needsCleanup(service({ type: 'ClusterIP' }, withFinalizer), ''));
    assert.ok(needsCleanup(service({}, { ...withFinalizer, deletionTimestamp: new Date() }), ''));
    assert.ok(!needsCleanup(service({}, withFinalizer), ''));
  });

  it('needs an update for what the load balancer follows, not for the rest', () => {
    const base = service();
    const changed = (spec: Partial<NonNullable<V1Service['spec']>>, meta: V1Service['metadata'] = {}) =>
      needsUpdate(base, service(spec, meta), '');
    assert.ok(changed({ ports: [{ name: 'http', port: 81, nodePort: 30080, protocol: 'TCP' }] }));
    assert.ok(changed({ ports: [{ name: 'http', port: 80, nodePort: 30081, protocol: 'TCP' }] }));
    assert.ok(changed({ externalTrafficPolicy: 'Local' }));
    assert.ok(changed({ healthCheckNodePort: 32000 }));
    assert.ok(changed({ sessionAffinity: 'ClientIP' }));
    assert.ok(changed({ loadBalancerSourceRanges: ['192.0.2.0/24'] }));
    assert.ok(changed({ loadBalancerIP: '192.0.2.9' }));
    assert.ok(changed({}, { annotations: { 'konnectivity.io/load-balancer-proxy-protocol': 'v2' } }));
    assert.ok(changed({}, { uid: 'u2' }));
    assert.ok(changed({ type: 'NodePort' }));
    assert.ok(!changed({}, { labels: { team: 'a' } }));
    assert.ok(!changed({ selector: { app: 'other' } }));
    assert.ok(!needsUpdate(service({ type: 'ClusterIP' }), service({ type: 'NodePort' }), ''));
  });

  it('takes traffic only on nodes that are Ready, schedulable, not excluded and not being removed', () => {
    assert.ok(nodeEligible(node('a')));
    assert.ok(!nodeEligible(node('a', { ready: false })));
    assert.ok(!nodeEligible(node('a', { unschedulable: true })));
    assert.ok(!nodeEligible(node('a', { taint: 'ToBeDeletedByClusterAutoscaler' })));
    const exclude = 'node.kubernetes.io/exclude-from-external-load-balancers';
    assert.ok(!nodeEligible(node('a', { labels: { [exclude]: 'true' } })));
    assert.ok(!nodeEligible(node('a', { labels: { [exclude]: '' } })), 'an unparsable value excludes');
    assert.ok(nodeEligible(node('a', { labels: { [exclude]: 'false' } })));
  });

  it('syncs node sets on eligibility, providerID and InternalIP changes only', () => {
    assert.ok(shouldSyncUpdatedNode(node('a'), node('a', { ready: false })));
    assert.ok(shouldSyncUpdatedNode(node('a'), node('a', { ip: '10.0.0.2' })));
    assert.ok(!shouldSyncUpdatedNode(node('a'), node('a', { labels: { team: 'x' } })));
    assert.ok(nodesSufficientlyEqual([node('a'), node('b')], [node('b'), node('a')]));
    assert.ok(!nodesSufficientlyEqual([node('a')], [node('a', { ip: '10.0.0.9' })]));
    assert.ok(!nodesSufficientlyEqual([node('a')], [node('a'), node('b')]));
  });

  it('compares statuses as their JSON', () => {
    assert.ok(loadBalancerStatusEqual(undefined, {}));
    assert.ok(loadBalancerStatusEqual({ ingress: [] }, {}));
    const one = { ingress: [{ ip: '192.0.2.1', ports: [{ port: 80, protocol: 'TCP' }] }] };
    assert.ok(
      loadBalancerStatusEqual(one, {
        ingress: [{ ip: '192.0.2.1', ports: [{ port: 80, protocol: 'TCP' }] }],
      }),
    );
    assert.ok(
      !loadBalancerStatusEqual(one, {
        ingress: [{ ip: '192.0.2.2', ports: [{ port: 80, protocol: 'TCP' }] }],
      }),
    );
    assert.ok(!loadBalancerStatusEqual(one, {}));
  });
});
