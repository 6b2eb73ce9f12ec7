import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../../../common/backoff.js';

/** Random draws from a fixed list, so the delays are known. */
function draws(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}

describe('Backoff', () => {
  it('with full jitter draws each delay from [0, window) and grows the window to the cap', () => {
    const b = new Backoff(1000, 10_000, 1.5, 'full', draws([0.999999, 0, 0.5]));
    assert.equal(b.next(), 999); // window 1000
    assert.equal(b.window, 1000);
    assert.equal(b.next(), 0); // window 1500: a draw of 0 retries at once
    assert.equal(b.window, 1500);
    assert.equal(b.next(), 1125); // window 2250
    const windows = Array.from({ length: 20 }, () => b.next());
    assert.ok(Math.max(...windows) < 10_000, 'never beyond the cap');
    b.reset();
    assert.equal(b.next(), 500); // back to window 1000 (the next draw is 0.5)
  });

  it("with fractional jitter stays within that fraction of the delay (upstream's 0.1)", () => {
    const low = new Backoff(1000, 10_000, 1.5, 0.1, () => 0);
    const high = new Backoff(1000, 10_000, 1.5, 0.1, () => 0.999999);
    assert.equal(low.next(), 900);
    assert.equal(high.next(), 1100);
    assert.equal(low.next(), 1350);
    assert.equal(high.next(), 1650);
  });

  it('spreads agents that lost their server at the same moment over the whole window', () => {
    // 10,000 agents after a restart: their first retries fall in every tenth of the window.
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const delay = new Backoff(1000, 10_000, 1.5, 'full').next();
      buckets[Math.floor(delay / 100)] = (buckets[Math.floor(delay / 100)] ?? 0) + 1;
    }
    for (const n of buckets) assert.ok(n > 500, `each tenth of the window gets agents: ${buckets.join(',')}`);
  });
});
