import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SEND_BUFFER_HIGH, StreamGate } from '../../../common/stream-gate.js';

/** A stream whose writes complete when the test says so. */
function fakeStream() {
  const pending: (() => void)[] = [];
  const state = { paused: 0, resumed: 0 };
  return {
    pending,
    state,
    stream: {
      pause: () => state.paused++,
      resume: () => state.resumed++,
    },
    write: (written: () => void) => pending.push(written),
  };
}

describe('StreamGate', () => {
  const chunk = 64 * 1024;
  const fill = SEND_BUFFER_HIGH / chunk;

  it('has room until more than its high mark is unwritten, and lets waiters go at half of it, not at empty', () => {
    const f = fakeStream();
    const gate = new StreamGate(f.stream);
    for (let i = 0; i < fill; i++) assert.equal(gate.send(chunk, f.write), true);
    assert.equal(gate.send(chunk, f.write), false, 'over the high mark');
    let released = 0;
    gate.whenWritable(() => released++);
    // Written out one by one: still above half the mark, the waiter waits.
    while (f.pending.length > fill / 2 + 1) f.pending.shift()?.();
    assert.equal(released, 0);
    f.pending.shift()?.();
    assert.equal(released, 1, 'released at half the mark, with bytes still in the buffer');
    assert.ok(f.pending.length > 0);
    let immediate = false;
    gate.whenWritable(() => (immediate = true));
    assert.equal(immediate, true, 'room now: at once');
  });

  it('releases every waiter when closed, and counts read pauses', () => {
    const f = fakeStream();
    const gate = new StreamGate(f.stream);
    for (let i = 0; i <= fill; i++) gate.send(chunk, f.write);
    let released = 0;
    gate.whenWritable(() => released++);
    gate.whenWritable(() => released++);
    gate.pauseReads();
    gate.pauseReads();
    gate.resumeReads();
    assert.deepEqual(f.state, { paused: 1, resumed: 0 }, 'resumed only when the last pause lets go');
    gate.resumeReads();
    assert.deepEqual(f.state, { paused: 1, resumed: 1 });
    gate.close();
    assert.equal(released, 2);
  });
});
