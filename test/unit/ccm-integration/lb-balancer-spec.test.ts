// What the konnectivity load balancer reads from a Service: TCP ports served at their nodePort,
// the others refused with a port error, the address asked for, traffic policy, affinity, PROXY
// protocol and source ranges; bad annotations refused with a message naming them.
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment -- client-node's models
   are plain data classes; its documented use passes object literals. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Service } from '@kubernetes/client-node';
import {
  LoadBalancerSpecError,
  readBalancerSpec,
} from '../../../ccm-integration/ccm/cloud/konnectivity/load-balancer/balancer-spec.js';

function service(
  spec: Partial<NonNullable<V1Service['spec']>> = {},
  annotations?: Record<string, string>,
): V1Service {
  return {
    metadata: { name: 'web', namespace: 'default', annotations },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080, protocol: 'TCP' }], ...spec },
    status: { loadBalancer: { ingress: [{ ip: '192.0.2.7' }] } },
  };
}

describe('konnectivity load balancer: reading a Service', () => {
  it('serves TCP ports at their nodePort and refuses UDP, SCTP and ports without a nodePort', () => {
    const spec = readBalancerSpec(
      service({
        ports: [
          { name: 'a', port: 53, nodePort: 30053, protocol: 'TCP' },
          { name: 'b', port: 53, nodePort: 30053, protocol: 'UDP' },
          { name: 'c', port: 9, nodePort: 30009, protocol: 'SCTP' },
          { name: 'd', port: 8080, protocol: 'TCP' },
        ],
      }),
    );
    assert.equal(spec.key, 'default/web');
    assert.deepEqual(spec.ports, [{ port: 53, nodePort: 30053 }]);
    assert.deepEqual(
      spec.refused.map((r) => [r.port, r.protocol, r.error]),
      [
        [53, 'UDP', 'konnectivity.io/UnsupportedProtocol'],
        [9, 'SCTP', 'konnectivity.io/UnsupportedProtocol'],
        [8080, 'TCP', 'konnectivity.io/NoNodePort'],
      ],
    );
    assert.deepEqual(spec.statusIPs, ['192.0.2.7']);
  });

  it('defaults: Cluster policy, no affinity, no PROXY protocol, every client allowed', () => {
    const spec = readBalancerSpec(service());
    assert.equal(spec.local, false);
    assert.equal(spec.healthCheckNodePort, undefined);
    assert.equal(spec.affinityTimeoutMs, undefined);
    assert.equal(spec.proxyProtocol, undefined);
    assert.equal(spec.sourceRanges, undefined);
    assert.equal(spec.requestedIP, undefined);
  });

  it('reads Local with its healthCheckNodePort, and ClientIP affinity with kube-proxy’s default timeout', () => {
    const spec = readBalancerSpec(
      service({ externalTrafficPolicy: 'Local', healthCheckNodePort: 32100, sessionAffinity: 'ClientIP' }),
    );
    assert.equal(spec.local, true);
    assert.equal(spec.healthCheckNodePort, 32100);
    assert.equal(spec.affinityTimeoutMs, 10_800_000);
    const short = readBalancerSpec(
      service({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }),
    );
    assert.equal(short.affinityTimeoutMs, 60_000);
  });

  it('takes the address from the annotation or spec.loadBalancerIP, and refuses two different ones', () => {
    assert.equal(
      readBalancerSpec(service({}, { 'konnectivity.io/load-balancer-ip': '2001:DB8::1' })).requestedIP,
      '2001:db8::1',
    );
    assert.equal(readBalancerSpec(service({ loadBalancerIP: '192.0.2.9' })).requestedIP, '192.0.2.9');
    assert.throws(
      () =>
        readBalancerSpec(
          service({ loadBalancerIP: '192.0.2.9' }, { 'konnectivity.io/load-balancer-ip': '192.0.2.8' }),
        ),
      (err: unknown) =>
        err instanceof LoadBalancerSpecError &&
        err.message ===
          'annotation konnectivity.io/load-balancer-ip (192.0.2.8) and spec.loadBalancerIP (192.0.2.9) differ',
    );
    assert.throws(
      () => readBalancerSpec(service({}, { 'konnectivity.io/load-balancer-ip': 'vip-1' })),
      /annotation konnectivity.io\/load-balancer-ip "vip-1" is not an IP address/,
    );
  });

  it('reads the PROXY protocol version and refuses another', () => {
    assert.equal(
      readBalancerSpec(service({}, { 'konnectivity.io/load-balancer-proxy-protocol': 'v2' })).proxyProtocol,
      'v2',
    );
    assert.throws(
      () => readBalancerSpec(service({}, { 'konnectivity.io/load-balancer-proxy-protocol': 'yes' })),
      /annotation konnectivity.io\/load-balancer-proxy-protocol: "yes" is not a PROXY protocol version \(v1 or v2\)/,
    );
  });

  it('reads source ranges from the spec, else from the upstream annotation', () => {
    assert.equal(
      readBalancerSpec(service({ loadBalancerSourceRanges: ['192.0.2.0/24'] })).sourceRanges?.length,
      1,
    );
    const fromAnnotation = readBalancerSpec(
      service(
        {},
        { 'service.beta.kubernetes.io/load-balancer-source-ranges': '192.0.2.0/24, 198.51.100.7/32' },
      ),
    );
    assert.equal(fromAnnotation.sourceRanges?.length, 2);
    assert.throws(
      () => readBalancerSpec(service({ loadBalancerSourceRanges: ['192.0.2.0'] })),
      /spec.loadBalancerSourceRanges: "192.0.2.0" is not a CIDR/,
    );
  });
});
