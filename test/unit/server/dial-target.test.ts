import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkDialTarget } from '../../../server/frontend/dial-target.js';

describe('dial target validation', () => {
  it('accepts host:port, IPv4 and bracketed IPv6', () => {
    assert.deepEqual(checkDialTarget('kubelet.node-1:10250'), {
      ok: true,
      host: 'kubelet.node-1',
      port: 10250,
    });
    assert.deepEqual(checkDialTarget('10.0.0.7:443'), { ok: true, host: '10.0.0.7', port: 443 });
    assert.deepEqual(checkDialTarget('[fd00::1]:443'), { ok: true, host: 'fd00::1', port: 443 });
  });
  it('refuses what must never reach an agent', () => {
    for (const bad of [
      '',
      ':80',
      'host',
      'host:',
      'host:0',
      'host:99999',
      'host:80a',
      'fd00::1:443',
      '[fd00::1]443',
      '[nope]:80',
      'a b:80',
      'x'.repeat(400) + ':80',
    ]) {
      assert.equal(checkDialTarget(bad).ok, false, bad);
    }
  });

  it('property: any request-target is either refused with a reason or yields a host and a port in range', () => {
    const chars = fc.constantFrom(...'abz09.-_:[]/ %@\u0000\r\nfF'.split(''));
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: chars, maxLength: 40 }), fc.string({ maxLength: 400 })),
        (text) => {
          const r = checkDialTarget(text);
          if (!r.ok) {
            assert.ok(r.reason.length > 0);
            return;
          }
          assert.ok(r.port >= 1 && r.port <= 65535);
          assert.ok(
            r.host.length > 0 && !/\s/.test(r.host) && !r.host.includes('\u0000'),
            JSON.stringify(text),
          );
          // What we accept is exactly the text: host, then the port (leading zeros allowed, as Go).
          const prefix = r.host.includes(':') ? `[${r.host}]:` : `${r.host}:`;
          assert.ok(text.startsWith(prefix), JSON.stringify(text));
          assert.equal(Number(text.slice(prefix.length)), r.port);
        },
      ),
      { numRuns: 5000 },
    );
  });
});
