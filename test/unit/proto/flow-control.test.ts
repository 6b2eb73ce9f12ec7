import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_OVERSHOOT,
  ReceiveWindow,
  WINDOW_GROWTH_UNMEASURED_MS,
  SendCredit,
  parseConnectionWindow,
  parseWindowUpdate,
  windowUpdate,
  DEFAULT_CONNECTION_WINDOW,
} from '../../../proto/flow-control.js';
import { decodePacket, encodePacket } from '../../../proto/codec.js';
import { packets, PacketType } from '../../../proto/packet.js';

describe('per-connection flow control', () => {
  it('a sender pauses when its credit is used up and resumes when credit returns', () => {
    const credit = new SendCredit(100);
    assert.equal(credit.consume(60), true);
    assert.equal(credit.consume(60), false);
    let resumed = 0;
    credit.whenAvailable(() => resumed++);
    credit.grant(10);
    assert.equal(resumed, 0, 'still -10 + 10 = 0: no credit');
    credit.grant(30);
    assert.equal(resumed, 1);
    credit.whenAvailable(() => resumed++);
    assert.equal(resumed, 2, 'credit left: at once');
  });

  it('a receiver returns credit in batches of a quarter window, for bytes that have left only', () => {
    const updates: number[] = [];
    const w = new ReceiveWindow(400, (n) => updates.push(n));
    for (let i = 0; i < 4; i++) {
      assert.equal(w.accept(30), true);
      w.delivered(30);
    }
    assert.deepEqual(updates, [120]);
    w.accept(200);
    assert.deepEqual(updates, [120], 'received, not yet written on: no credit');
    w.delivered(200);
    assert.deepEqual(updates, [120, 200]);
  });

  it('auto-tunes faster when a whole window leaves within two round trips: it quadruples', () => {
    let now = 0;
    const updates: number[] = [];
    const w = new ReceiveWindow(
      400,
      (n) => updates.push(n),
      6400,
      () => 40, // four round trips: 160 ms
      () => now,
    );
    now = 79; // under two round trips: x4
    for (let i = 0; i < 4; i++) w.delivered(100);
    assert.equal(w.size, 1600);
    assert.deepEqual(updates, [100, 100, 100, 100 + 1200]);
    now += 81; // 1600 within two to four round trips: x2
    for (let i = 0; i < 4; i++) w.delivered(400);
    assert.equal(w.size, 3200);
    assert.deepEqual(updates.slice(4), [400, 400, 400, 400 + 1600]);
    now += 160; // four round trips or more: no growth
    for (let i = 0; i < 4; i++) w.delivered(800);
    assert.equal(w.size, 3200);
  });

  it('auto-tunes: a whole window consumed quickly doubles (up to its limit), a slow or stalled one never grows', () => {
    let now = 0;
    const updates: number[] = [];
    const w = new ReceiveWindow(
      400,
      (n) => updates.push(n),
      1600,
      () => undefined,
      () => now,
    );
    // Credit goes back per quarter window (100); growth is judged once a whole window has left.
    now = 10;
    for (let i = 0; i < 3; i++) w.delivered(100);
    assert.deepEqual(updates, [100, 100, 100]);
    assert.equal(w.size, 400);
    now = WINDOW_GROWTH_UNMEASURED_MS - 1; // the whole window (400) within the time: + 400
    w.delivered(100);
    assert.deepEqual(updates, [100, 100, 100, 500]);
    assert.equal(w.size, 800);
    // The peer may now have 800 in flight (plus one message of overshoot).
    assert.equal(w.accept(800 + MAX_OVERSHOOT), true);
    now += 1;
    for (let i = 0; i < 4; i++) w.delivered(200); // a whole window of 800, fast again: to the limit
    assert.equal(w.size, 1600);
    assert.deepEqual(updates.slice(4), [200, 200, 200, 1000]);
    now += 1;
    for (let i = 0; i < 4; i++) w.delivered(400); // fast, but at the limit: credit only
    assert.deepEqual(updates.slice(8), [400, 400, 400, 400]);
    assert.equal(w.size, 1600);

    const slow = new ReceiveWindow(
      400,
      () => undefined,
      1600,
      () => undefined,
      () => now,
    );
    slow.accept(400); // the first byte arrives: the measurement starts here
    now += WINDOW_GROWTH_UNMEASURED_MS + 1;
    for (let i = 0; i < 4; i++) slow.delivered(100);
    assert.equal(slow.size, 400, 'a whole window that took longer than the time: no growth');

    const stalled = new ReceiveWindow(
      400,
      () => undefined,
      1600,
      () => undefined,
      () => now,
    );
    stalled.accept(400);
    assert.equal(stalled.size, 400, 'bytes a reader does not take: no credit, no growth');
    assert.equal(stalled.accept(MAX_OVERSHOOT + 1), false, 'and the peer may send no further');
  });

  it('auto-tunes by the measured round trip over a whole window: a burst does not look like a fast link', () => {
    let now = 0;
    let rtt: number | undefined = 40;
    const w = new ReceiveWindow(
      400,
      () => undefined,
      1600,
      () => rtt,
      () => now,
    );
    w.accept(400); // the first byte arrives: the measurement starts here
    // 40 ms away: a whole window within four round trips (160 ms) means the window is the bound.
    now = 159;
    for (let i = 0; i < 4; i++) w.delivered(100);
    assert.equal(w.size, 800);
    // Three quarters trickle out slowly, the last one in a burst: the whole window took 200 ms.
    now += 199;
    for (let i = 0; i < 3; i++) w.delivered(200);
    now += 1;
    w.delivered(200);
    assert.equal(w.size, 800, 'judged over the whole window, the burst at its end does not count');
    // Near (0.2 ms): a whole window every 10 ms is fast, but far from window-bound here; before
    // any measurement, the fixed time takes the same pace for a far link.
    rtt = 0.2;
    now += 10;
    for (let i = 0; i < 4; i++) w.delivered(200);
    assert.equal(w.size, 800);
    rtt = undefined;
    now += 10;
    for (let i = 0; i < 4; i++) w.delivered(200);
    assert.equal(w.size, 1600);
  });

  it('measures from the first byte received, not from when the connection was made', () => {
    let now = 0;
    const w = new ReceiveWindow(
      400,
      () => undefined,
      6400,
      () => 40,
      () => now,
    );
    now = 1000; // the dial and the request took their round trips; then data flows
    w.accept(400);
    now += 70; // the whole window within two round trips of its first byte: x4
    for (let i = 0; i < 4; i++) w.delivered(100);
    assert.equal(w.size, 1600);
  });

  it('flags a peer that sends past its window (one message of overshoot allowed)', () => {
    const w = new ReceiveWindow(1000, () => undefined);
    assert.equal(w.accept(1000 + MAX_OVERSHOOT), true);
    assert.equal(w.accept(1), false);
  });

  it('WINDOW packets round-trip through the codec and nothing else parses as one', () => {
    const p = decodePacket(encodePacket(windowUpdate(7n, 65536)));
    assert.ok(p.type === PacketType.DATA);
    assert.equal(parseWindowUpdate(p), 65536);
    assert.equal(
      parseWindowUpdate(packets.data(7n, Buffer.from('x'), 'WINDOW 5')),
      undefined,
      'data present',
    );
    assert.equal(parseWindowUpdate(packets.data(7n, packets.empty, 'EOF')), undefined);
    assert.equal(parseWindowUpdate(packets.data(7n, packets.empty, 'WINDOW -5')), undefined);
    assert.equal(parseWindowUpdate(packets.data(7n, packets.empty, 'WINDOW x')), undefined);
  });

  it('accepts announced windows in range and falls back to the default otherwise', () => {
    assert.equal(parseConnectionWindow('1048576'), 1048576);
    for (const bad of [undefined, '', '12', 'abc', String(2 ** 40)]) {
      assert.equal(parseConnectionWindow(bad), DEFAULT_CONNECTION_WINDOW, String(bad));
    }
  });
});
