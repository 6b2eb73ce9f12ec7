// Agent-port ticket keys derived from the shared secret and the listener's TLS material: the
// same secret, material and day give the same key in any process, and any change gives another.
// And the expiry check on resumed sessions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  expiredClientCertificate,
  sessionIdContextFor,
  ticketKeysFor,
  TicketKeyRotation,
  ticketOptions,
  utcDay,
  TICKET_LIFETIME_SECONDS,
  type ResumedSocket,
  type TicketMaterial,
} from '../../../server/session-tickets.js';
import { waitFor } from '../../support/wait.js';

const material: TicketMaterial = {
  secret: Buffer.alloc(32, 1),
  cert: 'CERT',
  ca: 'CA',
  policy: '{"minVersion":"TLSv1.2"}',
};
const DAY_MS = 86_400_000;

describe('session ticket keys', () => {
  it('are 48 bytes, the same for the same material and day, different for any change', () => {
    const day = 20_000;
    const key = ticketKeysFor(material, day);
    assert.equal(key.length, 48);
    assert.deepEqual(ticketKeysFor({ ...material }, day), key);
    const changed: TicketMaterial[] = [
      { ...material, secret: Buffer.alloc(32, 2) },
      { ...material, cert: 'CERT2' },
      { ...material, ca: 'CA2' },
      { ...material, ca: undefined },
      { ...material, policy: '{"minVersion":"TLSv1.3"}' },
      // Parts are length-prefixed: moving a byte from one to the next is a change too.
      { ...material, cert: 'CERTC', ca: 'A' },
    ];
    for (const m of changed) assert.notDeepEqual(ticketKeysFor(m, day), key, JSON.stringify(m));
    assert.notDeepEqual(ticketKeysFor(material, day + 1), key, 'the next day');
  });

  it('give a session context that follows the material, not the day', () => {
    assert.equal(sessionIdContextFor(material), sessionIdContextFor({ ...material }));
    assert.equal(sessionIdContextFor(material).length, 32);
    assert.notEqual(sessionIdContextFor({ ...material, ca: 'CA2' }), sessionIdContextFor(material));
    const opts = ticketOptions(material, 5);
    assert.deepEqual(opts.ticketKeys, ticketKeysFor(material, 5));
    assert.equal(opts.sessionTimeout, TICKET_LIFETIME_SECONDS);
  });

  it('rotate at UTC midnight to the next day, from the latest material', async () => {
    // A clock 40 ms before midnight: the rotation timer fires for real, shortly.
    const offset = (utcDay(Date.now()) + 1) * DAY_MS - 40 - Date.now();
    const now = () => Date.now() + offset;
    const today = utcDay(now());
    const applied: Buffer[] = [];
    const rotation = new TicketKeyRotation(material, today, (k) => applied.push(k), now);
    const reloaded = { ...material, cert: 'RELOADED' };
    rotation.set(reloaded, today);
    rotation.start();
    try {
      assert.equal(applied.length, 0, "the listener already holds today's key");
      await waitFor('rotated', () => applied[0]);
      assert.deepEqual(
        applied[0],
        ticketKeysFor(reloaded, today + 1),
        "the next day's, from the reloaded material",
      );
    } finally {
      rotation.stop();
    }
  });

  it("apply today's key at start when the listener was made with yesterday's (midnight passed)", () => {
    const applied: Buffer[] = [];
    const now = () => 10 * DAY_MS + 5;
    const rotation = new TicketKeyRotation(material, 9, (k) => applied.push(k), now);
    rotation.start();
    rotation.stop();
    assert.deepEqual(applied, [ticketKeysFor(material, 10)]);
  });
});

describe('expiredClientCertificate', () => {
  /** What the check reads of a TLS socket: whether it resumed, and the client certificate's end. */
  const socket = (reused: boolean, validTo?: string): ResumedSocket => ({
    isSessionReused: () => reused,
    getPeerCertificate: () => (validTo === undefined ? {} : { valid_to: validTo }),
  });
  const end = 'Dec  2 10:00:00 2026 GMT';
  const endMs = Date.parse(end);

  it('closes a resumed session whose certificate has expired, and says when', () => {
    assert.match(
      expiredClientCertificate(socket(true, end), endMs + 1) ?? '',
      /expired at 2026-12-02T10:00:00\.000Z/,
    );
    assert.equal(expiredClientCertificate(socket(true, end), endMs), undefined, 'valid to its last second');
  });

  it('leaves full handshakes (OpenSSL checked them) and sessions without a certificate alone', () => {
    assert.equal(expiredClientCertificate(socket(false, end), endMs + 1), undefined);
    assert.equal(expiredClientCertificate(socket(true), endMs + 1), undefined);
  });

  it('fails closed on an expiry it cannot read', () => {
    assert.match(
      expiredClientCertificate(socket(true, 'not a date'), 0) ?? '',
      /unreadable expiry "not a date"/,
    );
  });
});
