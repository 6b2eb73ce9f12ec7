import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_OVERSHOOT,
  ReceiveWindow,
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
