// The `loadBalancer` section of the konnectivity cloud-config: the address pool (IPs, ranges,
// CIDRs, no overlaps), health-check timing and the drain bound, with defaults, and every
// refusal naming the file and the key.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CloudConfigError } from '../../../ccm-integration/ccm/cloud/cloud-provider.js';
import { parseKonnectivityCloudConfig } from '../../../ccm-integration/ccm/cloud/konnectivity/config.js';
import { AddressPool } from '../../../ccm-integration/ccm/cloud/konnectivity/load-balancer/address-pool.js';

const SOURCE = 'cloud.yaml';
const SERVERS = 'servers: ["http://127.0.0.1:8095"]';

function lb(lines: string[]) {
  const config = parseKonnectivityCloudConfig(
    [SERVERS, 'loadBalancer:', ...lines.map((l) => `  ${l}`)].join('\n'),
    SOURCE,
  );
  assert.ok(config.loadBalancer);
  return config.loadBalancer;
}

function refusal(lines: string[]): string {
  try {
    lb(lines);
  } catch (err) {
    assert.ok(err instanceof CloudConfigError, String(err));
    const prefix = `--cloud-config ${SOURCE}: `;
    assert.ok(err.message.startsWith(prefix), err.message);
    return err.message.slice(prefix.length);
  }
  assert.fail('accepted');
}

describe('konnectivity cloud-config: loadBalancer', () => {
  it('has no load balancers without the section', () => {
    assert.equal(parseKonnectivityCloudConfig(SERVERS, SOURCE).loadBalancer, undefined);
  });

  it('needs only addresses; checks every 5s, each check bounded at 2s, drains for 10s', () => {
    const config = lb(['addresses: ["192.0.2.10"]']);
    assert.deepEqual(config.addresses, ['192.0.2.10']);
    assert.equal(config.healthCheckIntervalMs, 5000);
    assert.equal(config.healthCheckTimeoutMs, 2000);
    assert.equal(config.drainTimeoutMs, 10_000);
  });

  it('bounds a check at half a short interval by default', () => {
    assert.equal(lb(['addresses: ["192.0.2.10"]', 'healthCheckInterval: 1s']).healthCheckTimeoutMs, 500);
  });

  it('reads every key, and walks the pool in the order written', () => {
    const config = lb([
      'addresses: ["192.0.2.10-192.0.2.11", "198.51.100.0/31", "2001:db8::5", " 203.0.113.1 - 203.0.113.2 "]',
      'healthCheckInterval: 3s',
      'healthCheckTimeout: 1s',
      'drainTimeout: 1m',
    ]);
    assert.equal(config.healthCheckIntervalMs, 3000);
    assert.equal(config.healthCheckTimeoutMs, 1000);
    assert.equal(config.drainTimeoutMs, 60_000);
    const pool = new AddressPool(config.pool, config.addresses);
    assert.deepEqual(
      [...pool.addresses()],
      [
        '192.0.2.10',
        '192.0.2.11',
        '198.51.100.0',
        '198.51.100.1',
        '2001:db8::5',
        '203.0.113.1',
        '203.0.113.2',
      ],
    );
  });

  const refused: [string, string[], string][] = [
    [
      'no addresses',
      ['healthCheckInterval: 5s'],
      'loadBalancer.addresses: is required: the addresses load balancers get, as IPs, ranges a-b or CIDRs (e.g. ["192.0.2.10-192.0.2.20"])',
    ],
    ['an empty list', ['addresses: []'], 'loadBalancer.addresses: must not be empty'],
    [
      'a word',
      ['addresses: ["192.0.2.1", "vip"]'],
      'loadBalancer.addresses[1]: "vip" is not an IP address, a range a-b or a CIDR',
    ],
    [
      'an IPv4 address with a leading zero',
      ['addresses: ["192.0.2.01"]'],
      'loadBalancer.addresses[0]: "192.0.2.01" is not an IP address, a range a-b or a CIDR',
    ],
    [
      'a range that ends before it starts',
      ['addresses: ["192.0.2.20-192.0.2.10"]'],
      'loadBalancer.addresses[0]: "192.0.2.20-192.0.2.10" ends before it starts',
    ],
    [
      'a range of two families',
      ['addresses: ["192.0.2.1-2001:db8::1"]'],
      'loadBalancer.addresses[0]: "192.0.2.1-2001:db8::1" mixes IPv4 and IPv6',
    ],
    [
      'a range with a missing end',
      ['addresses: ["192.0.2.1-"]'],
      'loadBalancer.addresses[0]: "192.0.2.1-" is not a range of two IP addresses (e.g. 192.0.2.10-192.0.2.20)',
    ],
    [
      'a CIDR with host bits',
      ['addresses: ["192.0.2.5/24"]'],
      'loadBalancer.addresses[0]: "192.0.2.5/24" has host bits set; the network is 192.0.2.0/24',
    ],
    [
      'a CIDR with too long a prefix',
      ['addresses: ["192.0.2.0/33"]'],
      'loadBalancer.addresses[0]: "192.0.2.0/33": the prefix length must be a number from 0 to 32',
    ],
    [
      'overlapping entries',
      ['addresses: ["192.0.2.0/28", "192.0.2.15-192.0.2.20"]'],
      'loadBalancer.addresses[1]: "192.0.2.15-192.0.2.20" overlaps [0] "192.0.2.0/28"',
    ],
    [
      'a number',
      ['addresses: ["192.0.2.1", 7]'],
      'loadBalancer.addresses[1]: must be a non-empty string, got number 7',
    ],
    [
      'too short an interval',
      ['addresses: ["192.0.2.1"]', 'healthCheckInterval: 10ms'],
      'loadBalancer.healthCheckInterval: must be at least 100ms',
    ],
    [
      'a timeout longer than the interval',
      ['addresses: ["192.0.2.1"]', 'healthCheckInterval: 1s', 'healthCheckTimeout: 2s'],
      'loadBalancer.healthCheckTimeout: must be more than 0 and at most healthCheckInterval (1000ms)',
    ],
    [
      'a bad drainTimeout',
      ['addresses: ["192.0.2.1"]', 'drainTimeout: soon'],
      'loadBalancer.drainTimeout: "soon" is not a Go duration (examples: 500ms, 40s, 5m, 1h30m)',
    ],
    [
      'an unknown key',
      ['addresses: ["192.0.2.1"]', 'ports: [80]'],
      'loadBalancer.ports: unknown key (known keys: addresses, healthCheckInterval, healthCheckTimeout, drainTimeout)',
    ],
  ];
  for (const [what, lines, message] of refused) {
    it(`refuses ${what}`, () => {
      assert.equal(refusal(lines), message);
    });
  }
});
