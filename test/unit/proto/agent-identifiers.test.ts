import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalIp, parseAgentIdentifiers } from '../../../proto/agent-identifiers.js';
import { parseProxyStrategies, StrategyError } from '../../../server/backend/proxy-strategies.js';

describe('agent identifiers', () => {
  it('parses every type, repeated, with canonical addresses', () => {
    const p = parseAgentIdentifiers(
      'host=Node-1.example&host=node1&ipv4=10.0.0.5&ipv6=FD00:0:0::1&cidr=10.1.0.0/16&cidr=fd00::/8&default-route=true',
    );
    assert.deepEqual(p.invalid, []);
    assert.deepEqual(p.unknown, []);
    assert.deepEqual(p.identifiers.hosts, ['node-1.example', 'node1']);
    assert.deepEqual(p.identifiers.ips, ['10.0.0.5', 'fd00::1']);
    assert.deepEqual(p.identifiers.cidrs, [
      { address: '10.1.0.0', prefix: 16, family: 'ipv4' },
      { address: 'fd00::', prefix: 8, family: 'ipv6' },
    ]);
    assert.equal(p.identifiers.defaultRoute, true);
  });

  it('ignores unknown types (fail open, as upstream) and reports malformed values', () => {
    const p = parseAgentIdentifiers(
      'zone=a&ipv4=10.0.0.300&ipv6=10.0.0.1&cidr=10.0.0.0/33&cidr=10.0.0.1&host=a b&default-route=yes',
    );
    assert.deepEqual(p.unknown, ['zone']);
    assert.deepEqual(p.invalid, [
      'ipv4=10.0.0.300',
      'ipv6=10.0.0.1',
      'cidr=10.0.0.0/33',
      'cidr=10.0.0.1',
      'host=a b',
      'default-route=yes',
    ]);
    assert.deepEqual(p.identifiers, { hosts: [], ips: [], cidrs: [], defaultRoute: false });
  });

  it('property: any text parses without throwing; every kept value is valid for its type', () => {
    const chars = fc.constantFrom(...'hostipv46cdrfaulte-=&%./:0123456789abAB '.split(''));
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: chars, maxLength: 60 }), fc.string({ maxLength: 200 })),
        (text) => {
          const p = parseAgentIdentifiers(text);
          for (const ip of p.identifiers.ips) assert.equal(canonicalIp(ip), ip);
          for (const c of p.identifiers.cidrs) assert.ok(c.prefix <= (c.family === 'ipv4' ? 32 : 128));
          for (const h of p.identifiers.hosts) assert.equal(h, h.toLowerCase());
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('property: identifiers written by URLSearchParams are read back', () => {
    const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
    fc.assert(
      fc.property(fc.array(ipv4, { maxLength: 5 }), fc.boolean(), (ips, route) => {
        const q = new URLSearchParams();
        for (const ip of ips) q.append('ipv4', ip);
        if (route) q.append('default-route', 'true');
        const p = parseAgentIdentifiers(q.toString());
        assert.deepEqual(p.identifiers.ips, ips);
        assert.equal(p.identifiers.defaultRoute, route);
      }),
    );
  });
});

describe('proxy strategies', () => {
  it('keeps the order given and refuses unknown or repeated names', () => {
    assert.deepEqual(parseProxyStrategies('destHost, defaultRoute,default'), [
      'destHost',
      'defaultRoute',
      'default',
    ]);
    assert.throws(
      () => parseProxyStrategies('destHost,nearest'),
      (e: Error) => e instanceof StrategyError && /unknown strategy "nearest"/.test(e.message),
    );
    assert.throws(() => parseProxyStrategies('default,default'), /twice/);
    assert.throws(() => parseProxyStrategies(' , '), /cannot be empty/);
  });
});
