// Agent-port ticket keys derived from the listener's TLS material: the same material and day
// give the same key in any process, and any change gives another.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  sessionIdContextFor,
  ticketKeysFor,
  TicketKeyRotation,
  ticketOptions,
  utcDay,
  TICKET_LIFETIME_SECONDS,
  type TicketMaterial,
} from '../../../server/session-tickets.js';
import { waitFor } from '../../support/wait.js';

const material: TicketMaterial = { key: 'KEY', cert: 'CERT', ca: 'CA', policy: '{"minVersion":"TLSv1.2"}' };
const DAY_MS = 86_400_000;

describe('session ticket keys', () => {
  it('are 48 bytes, the same for the same material and day, different for any change', () => {
    const day = 20_000;
    const key = ticketKeysFor(material, day);
    assert.equal(key.length, 48);
    assert.deepEqual(ticketKeysFor({ ...material }, day), key);
    const changed: TicketMaterial[] = [
      { ...material, key: 'KEY2' },
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
    const opts = ticketOptions(material, 5 * DAY_MS + 1);
    assert.deepEqual(opts.ticketKeys, ticketKeysFor(material, 5));
    assert.equal(opts.sessionTimeout, TICKET_LIFETIME_SECONDS);
  });

  it('rotate at UTC midnight to the next day, from the latest material', async () => {
    // A clock 40 ms before midnight: the rotation timer fires for real, shortly.
    const offset = (utcDay(Date.now()) + 1) * DAY_MS - 40 - Date.now();
    const now = () => Date.now() + offset;
    const applied: Buffer[] = [];
    const rotation = new TicketKeyRotation(material, (k) => applied.push(k), now);
    const today = utcDay(now());
    const reloaded = { ...material, cert: 'RELOADED' };
    rotation.set(reloaded);
    rotation.start();
    try {
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
});
