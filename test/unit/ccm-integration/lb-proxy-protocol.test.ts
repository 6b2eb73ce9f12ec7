// PROXY protocol headers towards the backends, byte for byte as haproxy's spec has them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  proxyV1,
  proxyV2,
  V2_SIGNATURE,
} from '../../../ccm-integration/ccm/cloud/konnectivity/load-balancer/proxy-protocol.js';

const V4 = {
  sourceAddress: '192.0.2.7',
  sourcePort: 51000,
  destinationAddress: '198.51.100.1',
  destinationPort: 443,
};
const V6 = {
  sourceAddress: '2001:db8::7',
  sourcePort: 51000,
  destinationAddress: '2001:db8::1',
  destinationPort: 443,
};

describe('PROXY protocol', () => {
  it('writes a v1 line for IPv4 and IPv6', () => {
    assert.equal(proxyV1(V4).toString('latin1'), 'PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n');
    assert.equal(
      proxyV1(V6).toString('latin1'),
      'PROXY TCP6 2001:db8:0:0:0:0:0:7 2001:db8:0:0:0:0:0:1 51000 443\r\n',
    );
  });

  it('writes an IPv4-mapped client of an IPv4 listener as TCP4', () => {
    assert.equal(
      proxyV1({ ...V4, sourceAddress: '::ffff:192.0.2.7' }).toString('latin1'),
      'PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n',
    );
  });

  it('writes UNKNOWN (v1) and LOCAL (v2) when the addresses are not IPs', () => {
    const unknown = { ...V4, sourceAddress: '' };
    assert.equal(proxyV1(unknown).toString('latin1'), 'PROXY UNKNOWN\r\n');
    assert.equal(proxyV2(unknown).toString('hex'), `${V2_SIGNATURE.toString('hex')}20000000`);
  });

  it('writes a v2 header for TCP over IPv4', () => {
    assert.equal(
      proxyV2(V4).toString('hex'),
      `${V2_SIGNATURE.toString('hex')}2111000c` + 'c0000207' + 'c6336401' + 'c738' + '01bb',
    );
  });

  it('writes a v2 header for TCP over IPv6', () => {
    const header = proxyV2(V6);
    assert.equal(header.length, 16 + 36);
    assert.equal(header.subarray(12, 16).toString('hex'), '21210024');
    assert.equal(header.subarray(16, 32).toString('hex'), '20010db8000000000000000000000007');
    assert.equal(header.subarray(32, 48).toString('hex'), '20010db8000000000000000000000001');
    assert.equal(header.readUInt16BE(48), 51000);
    assert.equal(header.readUInt16BE(50), 443);
  });
});
