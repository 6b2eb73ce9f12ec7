// The load balancers' address pool and who holds which port on which address: a Service gets
// the first address where its ports are free, Services share an address when their ports do
// not collide, and releasing a Service frees its ports for the next.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  AddressPool,
  parsePool,
  parsePoolEntry,
} from '../../../ccm-integration/ccm/cloud/konnectivity/load-balancer/address-pool.js';
import {
  canonicalIp,
  clientIp,
  parseCidr,
} from '../../../ccm-integration/ccm/cloud/konnectivity/load-balancer/ip-address.js';
import { PortClaims } from '../../../ccm-integration/ccm/cloud/konnectivity/load-balancer/port-claims.js';

function poolOf(...entries: string[]): AddressPool {
  return new AddressPool(parsePool(entries), entries);
}

function firstN(pool: AddressPool, n: number): string[] {
  const out: string[] = [];
  for (const address of pool.addresses()) {
    out.push(address);
    if (out.length === n) break;
  }
  return out;
}

describe('load balancer address pool', () => {
  it('walks IPv6 ranges and CIDRs in canonical form', () => {
    assert.deepEqual(firstN(poolOf('2001:DB8::fffe-2001:db8::1:1'), 5), [
      '2001:db8::fffe',
      '2001:db8::ffff',
      '2001:db8::1:0',
      '2001:db8::1:1',
    ]);
    assert.deepEqual(firstN(poolOf('fd00::/126'), 8), ['fd00::', 'fd00::1', 'fd00::2', 'fd00::3']);
  });

  it('hands out a huge CIDR lazily', () => {
    assert.deepEqual(firstN(poolOf('10.0.0.0/8'), 2), ['10.0.0.0', '10.0.0.1']);
    assert.deepEqual(firstN(poolOf('2001:db8::/32'), 1), ['2001:db8::']);
  });

  it('knows its addresses in any spelling', () => {
    const pool = poolOf('192.0.2.8/29', '2001:db8::1');
    assert.ok(pool.contains('192.0.2.15'));
    assert.ok(!pool.contains('192.0.2.16'));
    assert.ok(pool.contains('2001:0db8:0:0:0:0:0:1'));
    assert.ok(!pool.contains('not an ip'));
  });

  it('parses an entry as one address, a range or a CIDR', () => {
    assert.deepEqual(parsePoolEntry('192.0.2.1'), { family: 4, first: 0xc0000201n, last: 0xc0000201n });
    assert.deepEqual(parsePoolEntry('192.0.2.1-192.0.2.3'), {
      family: 4,
      first: 0xc0000201n,
      last: 0xc0000203n,
    });
    assert.deepEqual(parsePoolEntry('::ffff:192.0.2.1'), {
      family: 6,
      first: 0xffffc0000201n,
      last: 0xffffc0000201n,
    });
    assert.throws(() => parsePoolEntry('fe80::1%eth0'), /is not an IP address/);
  });

  it('accepts host bits in a source range, as Kubernetes does', () => {
    assert.deepEqual(parseCidr('192.0.2.5/24', false), { family: 4, first: 0xc0000200n, last: 0xc00002ffn });
  });

  it('reads a client address as the IPv4 address an IPv4-mapped one stands for', () => {
    assert.equal(clientIp('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(clientIp('2001:db8:0::1'), '2001:db8::1');
    assert.equal(canonicalIp('2001:DB8::0:1'), '2001:db8::1');
  });
});

describe('load balancer port claims', () => {
  it('lets Services share an address while their ports differ, and names the holder of a taken port', () => {
    const claims = new PortClaims();
    claims.claim('192.0.2.1', [80, 443], 'default/web');
    assert.ok(claims.fits('192.0.2.1', [8080], 'default/api'));
    assert.ok(claims.fits('192.0.2.1', [80], 'default/web'), 'its own ports fit');
    assert.deepEqual(claims.conflicts('192.0.2.1', [443, 8443], 'default/api'), [
      { port: 443, owner: 'default/web' },
    ]);
    assert.ok(claims.fits('192.0.2.2', [80], 'default/api'));
  });

  it('releases what a Service holds, except what it keeps', () => {
    const claims = new PortClaims();
    claims.claim('192.0.2.1', [80, 443], 'default/web');
    claims.claim('192.0.2.2', [80], 'default/web');
    claims.release('default/web', '192.0.2.1', [443]);
    assert.ok(claims.fits('192.0.2.1', [80], 'default/api'));
    assert.ok(claims.fits('192.0.2.2', [80], 'default/api'));
    assert.ok(!claims.fits('192.0.2.1', [443], 'default/api'));
    claims.release('default/web');
    assert.ok(claims.fits('192.0.2.1', [443], 'default/api'));
  });
});
