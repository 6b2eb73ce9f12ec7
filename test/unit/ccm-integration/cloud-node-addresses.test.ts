// The address rules of the cloud-node controller, as upstream's (cloud-provider
// node/helpers GetNodeAddressesFromNodeIP, controllers/node nodeAddressesChangeDetected).
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment -- client-node's models
   are plain data, as eslint.config.js has it for ccm-integration/ccm */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node } from '@kubernetes/client-node';
import {
  addressesChanged,
  ipKey,
  withProvidedNodeIp,
} from '../../../ccm-integration/ccm/controllers/cloud-node.js';

const CLOUD = [
  { type: 'InternalIP', address: '10.0.0.1' },
  { type: 'InternalIP', address: '10.0.0.2' },
  { type: 'ExternalIP', address: '203.0.113.7' },
  { type: 'InternalIP', address: 'fd00::2' },
  { type: 'Hostname', address: 'node-a' },
];

const annotated = (ip: string): V1Node => ({
  metadata: { name: 'node-a', annotations: { 'alpha.kubernetes.io/provided-node-ip': ip } },
});

describe('cloud-node addresses', () => {
  it('keeps the cloud addresses as they are without the provided-node-ip annotation', () => {
    assert.deepEqual(withProvidedNodeIp({ metadata: { name: 'node-a' } }, CLOUD), CLOUD);
  });

  it("puts the kubelet's --node-ip first, alone of its type", () => {
    assert.deepEqual(withProvidedNodeIp(annotated('10.0.0.2'), CLOUD), [
      { type: 'InternalIP', address: '10.0.0.2' },
      { type: 'ExternalIP', address: '203.0.113.7' },
      { type: 'Hostname', address: 'node-a' },
    ]);
  });

  it('takes a dual-stack pair, and IPs in other spellings', () => {
    assert.deepEqual(withProvidedNodeIp(annotated('010.0.0.1,FD00:0::2'), CLOUD), [
      { type: 'InternalIP', address: '10.0.0.1' },
      { type: 'InternalIP', address: 'fd00::2' },
      { type: 'ExternalIP', address: '203.0.113.7' },
      { type: 'Hostname', address: 'node-a' },
    ]);
  });

  for (const [what, ip, message] of [
    [
      'an IP the cloud does not know',
      '10.9.9.9',
      'failed to get node address from cloud provider that matches ip: 10.9.9.9',
    ],
    ['something not an IP', 'node-a', 'failed to parse node IP "node-a": could not parse "node-a"'],
    [
      'two IPs of one family',
      '10.0.0.1,10.0.0.2',
      'failed to parse node IP "10.0.0.1,10.0.0.2": must contain either a single IP or a dual-stack pair of IPs',
    ],
    [
      'an unspecified address in a pair',
      '0.0.0.0,fd00::2',
      `failed to parse node IP "0.0.0.0,fd00::2": dual-stack node IP cannot include '0.0.0.0' or '::'`,
    ],
  ] as const) {
    it(`refuses ${what}`, () => {
      assert.throws(() => withProvidedNodeIp(annotated(ip), CLOUD), { message });
    });
  }

  it('compares IPs as Go does', () => {
    assert.equal(ipKey('010.000.000.001'), '10.0.0.1');
    assert.equal(ipKey('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(ipKey('FD00:0:0::1'), 'fd00::1');
    assert.equal(ipKey('256.0.0.1'), undefined);
    assert.equal(ipKey(' 10.0.0.1'), undefined);
  });

  it('sees a change in count, type or address, not in order', () => {
    const hostname = { type: 'Hostname', address: 'node-a' };
    const a = [{ type: 'InternalIP', address: '10.0.0.1' }, hostname];
    assert.equal(addressesChanged(a, [...a].reverse()), false);
    assert.equal(addressesChanged(a, a.slice(1)), true);
    assert.equal(addressesChanged(a, [{ type: 'InternalIP', address: '10.0.0.9' }, hostname]), true);
    assert.equal(addressesChanged(a, [{ type: 'ExternalIP', address: '10.0.0.1' }, hostname]), true);
  });
});
