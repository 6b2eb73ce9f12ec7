import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SEND_BUFFER_HIGH, StreamGate, WRITE_AHEAD } from '../../../common/stream-gate.js';

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
    // Written out one by one (each completion hands the gate's next message to the stream):
    // still above half the mark, the waiter waits.
    for (let i = 0; i < fill / 2; i++) f.pending.shift()?.();
    assert.equal(released, 0);
    f.pending.shift()?.();
    assert.equal(released, 1, 'released at half the mark, with bytes still in the buffer');
    assert.ok(f.pending.length > 0);
    let immediate = false;
    gate.whenWritable(() => (immediate = true));
    assert.equal(immediate, true, 'room now: at once');
  });

  it('hands the stream at most WRITE_AHEAD bytes ahead of its completions, in order', () => {
    const f = fakeStream();
    const gate = new StreamGate(f.stream);
    const order: number[] = [];
    const n = 3 * fill;
    for (let i = 0; i < n; i++) {
      gate.send(chunk, (written) => {
        order.push(i);
        f.write(written);
      });
      assert.ok(f.pending.length * chunk <= WRITE_AHEAD, 'no more than the write-ahead in the stream');
    }
    assert.equal(f.pending.length, WRITE_AHEAD / chunk);
    while (f.pending.length > 0) f.pending.shift()?.();
    assert.deepEqual(
      order,
      Array.from({ length: n }, (_, i) => i),
      'every message, in order',
    );
    // A message larger than the write-ahead still goes, once nothing else is in the stream.
    gate.send(4 * WRITE_AHEAD, f.write);
    assert.equal(f.pending.length, 1);
  });

  it('says when all it was given is in the stream, and drops what is queued when closed', () => {
    const f = fakeStream();
    const gate = new StreamGate(f.stream);
    let calls = 0;
    for (let i = 0; i < fill; i++) gate.send(chunk, (w) => (calls++, f.write(w)));
    let flushed = false;
    gate.whenFlushed(() => (flushed = true));
    assert.equal(flushed, false);
    while (calls < fill) f.pending.shift()?.();
    assert.equal(flushed, true, 'the last message is handed to the stream');

    const g = new StreamGate(f.stream);
    let handed = 0;
    for (let i = 0; i <= fill; i++) g.send(chunk, (w) => (handed++, f.write(w)));
    let released = 0;
    g.whenWritable(() => released++);
    g.close();
    assert.equal(released, 1);
    f.pending.length = 0;
    assert.equal(handed, WRITE_AHEAD / chunk, 'queued messages are never written after close');
    assert.equal(
      g.send(chunk, () => assert.fail('sent after close')),
      true,
    );
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
