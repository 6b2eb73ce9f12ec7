import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAgentIdentifiers, parseCidr } from '../../../../proto/agent-identifiers.js';
import {
  checkClaims,
  cidrWithin,
  claimsOf,
  claimText,
  identifiersOf,
  type AgentNode,
  type Verdict,
} from '../../../../server/identity/claim-check.js';
import { nodeFactsOf } from '../../../../server/identity/node-facts.js';
import type { NodeView } from '../../../../server/identity/node-watch.js';

const NODE_A = {
  metadata: { name: 'node-a', uid: 'uid-a' },
  spec: { podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] },
  status: {
    addresses: [
      { type: 'InternalIP', address: '10.0.0.1' },
      { type: 'ExternalIP', address: '203.0.113.7' },
      { type: 'InternalIP', address: 'FD00::0:1' },
      { type: 'Hostname', address: 'Node-A.Example' },
      { type: 'InternalDNS', address: 'node-a.internal' },
    ],
  },
};

const facts = nodeFactsOf(NODE_A);
const found: NodeView = facts ? { state: 'found', facts } : { state: 'absent' };
const onA: AgentNode = { name: 'node-a', uid: 'uid-a', source: 'token' };

function verdicts(identifiers: string, node: AgentNode | undefined = onA, view: NodeView = found) {
  const claims = claimsOf(parseAgentIdentifiers(identifiers).identifiers);
  return checkClaims(claims, node, view, 'no token').map((v: Verdict) => [claimText(v.claim), v.status]);
}

describe('node facts', () => {
  it('keeps the InternalIP and ExternalIP addresses (canonical), Hostnames lower-cased and podCIDRs', () => {
    assert.deepEqual(facts, {
      name: 'node-a',
      uid: 'uid-a',
      hostnames: ['node-a.example'],
      addresses: ['10.0.0.1', '203.0.113.7', 'fd00::1'],
      podCidrs: [
        { address: '10.244.1.0', prefix: 24, family: 'ipv4' },
        { address: 'fd00:10:244:1::', prefix: 64, family: 'ipv6' },
      ],
    });
  });

  it('reads the older spec.podCIDR when podCIDRs is absent, and ignores what is not a Node', () => {
    assert.deepEqual(nodeFactsOf({ metadata: { name: 'n' }, spec: { podCIDR: '10.1.0.0/16' } })?.podCidrs, [
      { address: '10.1.0.0', prefix: 16, family: 'ipv4' },
    ]);
    assert.equal(nodeFactsOf({ spec: {} }), undefined);
    assert.equal(nodeFactsOf('node-a'), undefined);
  });
});

describe('claim checks', () => {
  it("allows the node's own name, Hostname addresses and InternalIP/ExternalIP addresses", () => {
    assert.deepEqual(
      verdicts('host=node-a&host=node-a.example&ipv4=10.0.0.1&ipv4=203.0.113.7&ipv6=fd00::1&host=10.0.0.1'),
      [
        ['host=node-a', 'allowed'],
        ['host=node-a.example', 'allowed'],
        ['host=10.0.0.1', 'allowed'],
        ['ipv4=10.0.0.1', 'allowed'],
        ['ipv4=203.0.113.7', 'allowed'],
        ['ipv6=fd00::1', 'allowed'],
      ],
    );
  });

  it("refuses another node's name and addresses, and InternalDNS names", () => {
    assert.deepEqual(verdicts('host=node-b&ipv4=10.0.0.2&ipv6=fd00::2&host=node-a.internal&host=10.0.0.2'), [
      ['host=node-b', 'refused'],
      ['host=node-a.internal', 'refused'],
      ['host=10.0.0.2', 'refused'],
      ['ipv4=10.0.0.2', 'refused'],
      ['ipv6=fd00::2', 'refused'],
    ]);
  });

  it('allows a cidr inside the podCIDRs only, and never default-route', () => {
    assert.deepEqual(
      verdicts(
        'cidr=10.244.1.0/24&cidr=10.244.1.128/25&cidr=10.244.0.0/16&cidr=10.244.2.0/24&cidr=fd00:10:244:1::/80&default-route=true',
      ),
      [
        ['cidr=10.244.1.0/24', 'allowed'],
        ['cidr=10.244.1.128/25', 'allowed'],
        ['cidr=10.244.0.0/16', 'refused'],
        ['cidr=10.244.2.0/24', 'refused'],
        ['cidr=fd00:10:244:1::/80', 'allowed'],
        ['default-route=true', 'refused'],
      ],
    );
  });

  it('refuses every claim of an agent whose node is unknown, saying why', () => {
    const claims = claimsOf(parseAgentIdentifiers('host=node-a&ipv4=10.0.0.1').identifiers);
    const out = checkClaims(claims, undefined, undefined, 'no token; --agent-node-from-cert=off');
    assert.deepEqual(
      out.map((v) => v.status),
      ['refused', 'refused'],
    );
    const first = out[0];
    assert.ok(first && first.status !== 'allowed');
    assert.equal(first.reason, "the agent's node is unknown: no token; --agent-node-from-cert=off");
  });

  it('holds claims while the Node cache syncs, except the node name itself', () => {
    assert.deepEqual(verdicts('host=node-a&ipv4=10.0.0.1', onA, { state: 'syncing' }), [
      ['host=node-a', 'allowed'],
      ['ipv4=10.0.0.1', 'pending'],
    ]);
  });

  it('refuses address claims when the Node does not exist, was re-created, or cannot be read', () => {
    for (const view of [
      { state: 'absent' },
      { state: 'unavailable', reason: 'forbidden' },
      { state: 'found', facts: { ...(facts ?? NODE_A), uid: 'uid-new' } },
    ] as NodeView[]) {
      assert.deepEqual(verdicts('host=node-a&ipv4=10.0.0.1', onA, view), [
        ['host=node-a', 'allowed'],
        ['ipv4=10.0.0.1', 'refused'],
      ]);
    }
  });

  it('a certificate-identified agent (no uid) is checked against the Node of that name', () => {
    assert.deepEqual(verdicts('ipv4=10.0.0.1', { name: 'node-a', source: 'cert' }), [
      ['ipv4=10.0.0.1', 'allowed'],
    ]);
  });

  it('turns verdicted claims back into identifiers', () => {
    const ids = parseAgentIdentifiers(
      'host=node-a&ipv4=10.0.0.1&ipv6=fd00::1&cidr=10.244.1.0/24&default-route=true',
    );
    assert.deepEqual(identifiersOf(claimsOf(ids.identifiers)), ids.identifiers);
  });

  it('cidrWithin compares families and prefixes', () => {
    const c = (t: string) => {
      const v = parseCidr(t);
      assert.ok(v, t);
      return v;
    };
    assert.equal(cidrWithin(c('10.0.0.0/8'), c('10.0.0.0/8')), true);
    assert.equal(cidrWithin(c('10.1.2.0/24'), c('10.0.0.0/8')), true);
    assert.equal(cidrWithin(c('10.0.0.0/7'), c('10.0.0.0/8')), false);
    assert.equal(cidrWithin(c('11.0.0.0/24'), c('10.0.0.0/8')), false);
    assert.equal(cidrWithin(c('::ffff:10.0.0.0/120'), c('10.0.0.0/8')), false);
  });
});
