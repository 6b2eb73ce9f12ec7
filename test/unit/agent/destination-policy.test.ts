import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DEFAULT_DENIED_DESTINATIONS,
  DestinationPolicy,
  DestinationSyntaxError,
  parseDestinations,
} from '../../../agent/destination-policy.js';

const policy = (allowed: string, denied: string) =>
  new DestinationPolicy(parseDestinations(allowed), parseDestinations(denied));

describe('destination policy', () => {
  it('denies the cloud metadata service by default, IPv4, IPv6 and IPv4-mapped', () => {
    const p = policy('', DEFAULT_DENIED_DESTINATIONS);
    assert.equal(p.check('169.254.169.254', 80).ok, false);
    assert.equal(p.check('::ffff:169.254.169.254', 80).ok, false);
    assert.equal(p.check('fd00:ec2::254', 80).ok, false);
    assert.equal(p.check('169.254.169.253', 80).ok, true);
    assert.equal(p.check('10.0.0.1', 10250).ok, true);
  });

  it('matches ports and port ranges; deny wins over allow', () => {
    const p = policy('10.0.0.0/8:10250, 10.0.0.0/8:30000-32767, [fd00::/8]:443', '10.9.0.0/16');
    assert.equal(p.check('10.1.2.3', 10250).ok, true);
    assert.equal(p.check('10.1.2.3', 10255).ok, false);
    assert.equal(p.check('10.1.2.3', 30000).ok, true);
    assert.equal(p.check('10.1.2.3', 32767).ok, true);
    assert.equal(p.check('10.1.2.3', 32768).ok, false);
    assert.equal(p.check('10.9.2.3', 10250).ok, false);
    assert.match(
      (p.check('10.9.2.3', 10250) as { reason: string }).reason,
      /denied destination 10\.9\.0\.0\/16/,
    );
    assert.equal(p.check('fd12::1', 443).ok, true);
    assert.equal(p.check('fd12::1', 80).ok, false);
    assert.equal(p.check('192.168.0.1', 10250).ok, false);
  });

  it('refuses a name when any of its addresses is refused', () => {
    const p = policy('', '10.0.0.0/8');
    assert.equal(p.checkAll(['192.168.1.1', '10.0.0.5'], 80).ok, false);
    assert.equal(p.checkAll(['192.168.1.1', '192.168.1.2'], 80).ok, true);
  });

  it('accepts every documented form and single addresses', () => {
    for (const ok of [
      '10.0.0.0/8',
      '10.0.0.1',
      '10.0.0.0/8:443',
      '0.0.0.0/0:1-65535',
      '[::/0]',
      '[fd00::1]:22',
      '[fd00::/8]:1000-2000',
      '',
    ]) {
      assert.doesNotThrow(() => parseDestinations(ok), ok);
    }
  });

  it('refuses malformed entries with a message naming them', () => {
    for (const bad of [
      'nope',
      '10.0.0.0/33',
      '10.0.0.0/-1',
      '10.0.0.0/8:0',
      '10.0.0.0/8:65536',
      '10.0.0.0/8:20-10',
      '10.0.0.0/8:',
      '10.0.0.0/8:http',
      'fd00::/8',
      '[fd00::/8',
      '[fd00::/8]443',
      '[fd00::/129]',
      '[10.0.0.0/8',
      'host.example:443',
    ]) {
      assert.throws(
        () => parseDestinations(bad),
        (err: Error) => {
          assert.ok(err instanceof DestinationSyntaxError, bad);
          assert.ok(err.message.includes(JSON.stringify(bad.trim())), `${bad}: ${err.message}`);
          return true;
        },
      );
    }
  });

  it('property: any text either parses or fails with DestinationSyntaxError, never anything else', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...'0123456789abcdef.:/[]-, '.split('')), maxLength: 40 }),
        (text) => {
          try {
            parseDestinations(text);
          } catch (err) {
            assert.ok(err instanceof DestinationSyntaxError, String(err));
          }
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('property: an IPv4 CIDR contains exactly the addresses sharing its prefix', () => {
    const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
    const asText = (a: number[]) => a.join('.');
    const asInt = (a: number[]) => a.reduce((n, b) => n * 256 + b, 0);
    fc.assert(
      fc.property(
        ipv4,
        fc.integer({ min: 0, max: 32 }),
        ipv4,
        fc.integer({ min: 1, max: 65535 }),
        (net, prefix, ip, port) => {
          const p = policy(`${asText(net)}/${prefix}`, '');
          const shift = 2 ** (32 - prefix);
          const inside = Math.floor(asInt(net) / shift) === Math.floor(asInt(ip) / shift);
          assert.equal(p.check(asText(ip), port).ok, inside);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
