import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_OVERSHOOT,
  ReceiveWindow,
  WINDOW_GROWTH_INTERVAL_MS,
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

  it('a receiver returns credit in batches of a quarter window, and held bytes only once drained', () => {
    const updates: number[] = [];
    const w = new ReceiveWindow(400, (n) => updates.push(n));
    for (let i = 0; i < 4; i++) {
      assert.equal(w.accept(30), true);
      w.delivered(30);
    }
    assert.deepEqual(updates, [120]);
    w.accept(200);
    w.hold(200);
    assert.deepEqual(updates, [120], 'held bytes have not left');
    w.drained();
    assert.deepEqual(updates, [120, 200]);
  });

  it('auto-tunes: a window consumed quickly doubles (up to its limit), a slow or stalled one never grows', () => {
    let now = 0;
    const updates: number[] = [];
    const w = new ReceiveWindow(
      400,
      (n) => updates.push(n),
      1600,
      () => undefined,
      () => now,
    );
    // A quarter window (100) leaves within the growth interval: credit 100 + growth 400.
    now = WINDOW_GROWTH_INTERVAL_MS - 1;
    w.accept(100);
    w.delivered(100);
    assert.deepEqual(updates, [500]);
    assert.equal(w.size, 800);
    // The peer may now have 800 in flight (plus one message of overshoot).
    assert.equal(w.accept(800 + MAX_OVERSHOOT - 0), true);
    w.delivered(200); // quarter of 800, fast again: grows to the limit
    assert.equal(w.size, 1600);
    assert.deepEqual(updates, [500, 1000]);
    w.delivered(400); // fast, but at the limit: credit only
    assert.deepEqual(updates, [500, 1000, 400]);
    assert.equal(w.size, 1600);

    const slow = new ReceiveWindow(
      400,
      () => undefined,
      1600,
      () => undefined,
      () => now,
    );
    now += WINDOW_GROWTH_INTERVAL_MS * 2;
    slow.accept(100);
    slow.delivered(100);
    assert.equal(slow.size, 400, 'a quarter window that took longer than the interval: no growth');

    const stalled = new ReceiveWindow(
      400,
      () => undefined,
      1600,
      () => undefined,
      () => now,
    );
    stalled.accept(400);
    stalled.hold(400);
    assert.equal(stalled.size, 400, 'bytes held by a reader that does not read: no credit, no growth');
    assert.equal(stalled.accept(MAX_OVERSHOOT + 1), false, 'and the peer may send no further');
  });

  it('auto-tunes by the measured round trip: grows on a far link, not on a fast near one', () => {
    let now = 0;
    let rtt: number | undefined = 40;
    const w = new ReceiveWindow(
      400,
      () => undefined,
      1600,
      () => rtt,
      () => now,
    );
    // 40 ms away: a quarter window within two round trips means the window is the bound.
    now = 79;
    w.accept(100);
    w.delivered(100);
    assert.equal(w.size, 800);
    now += 81; // a quarter window (200) took longer than two round trips: the reader sets the pace
    w.accept(200);
    w.delivered(200);
    assert.equal(w.size, 800);
    // Near (0.2 ms): even a quarter window every millisecond is far from window-bound, though
    // it is faster than the fixed interval used before a measurement.
    rtt = 0.2;
    now += 1;
    w.accept(200);
    w.delivered(200);
    assert.equal(w.size, 800);
    // The same pace before any measurement: the fixed interval takes it for a far link.
    rtt = undefined;
    now += 1;
    w.accept(200);
    w.delivered(200);
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
