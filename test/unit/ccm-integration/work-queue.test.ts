// The CCM's work queue keeps client-go's promises: dedupe, one worker per key, re-queue of a key
// added while processing, per-key exponential backoff reset by forget, and a shutdown that
// releases waiting workers and drops pending timers. Time is a fake clock: no sleeps, no thresholds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ItemExponentialBackoff,
  RateLimitedWorkQueue,
  type QueueTimers,
  type WorkQueueHooks,
} from '../../../ccm-integration/ccm/runtime/work-queue.js';

/** Timers that fire only when the test says so. */
class FakeTimers implements QueueTimers {
  time = 0;
  private nextId = 1;
  readonly pending = new Map<number, { fn: () => void; at: number; ms: number }>();
  /** Every delay ever asked for, in order. */
  readonly requested: number[] = [];

  set(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.set(id, { fn, at: this.time + ms, ms });
    this.requested.push(ms);
    return id;
  }

  clear(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  now(): number {
    return this.time;
  }

  /** Moves the clock forward, firing what falls due, in order. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = [...this.pending.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.time = due[1].at;
      due[1].fn();
    }
    this.time = until;
  }
}

class CountingHooks implements WorkQueueHooks {
  adds = 0;
  retries = 0;
  depths: number[] = [];
  waits: number[] = [];
  works: number[] = [];
  added(): void {
    this.adds++;
  }
  depth(n: number): void {
    this.depths.push(n);
  }
  retried(): void {
    this.retries++;
  }
  waited(s: number): void {
    this.waits.push(s);
  }
  worked(s: number): void {
    this.works.push(s);
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('RateLimitedWorkQueue', () => {
  it('keeps one entry per key while it waits, in first-added order', async () => {
    const hooks = new CountingHooks();
    const q = new RateLimitedWorkQueue({ hooks, timers: new FakeTimers() });
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('b');
    assert.equal(q.length, 2);
    assert.equal(hooks.adds, 2, 'a duplicate add is not counted');
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), 'b');
    assert.equal(q.length, 0);
  });

  it('queues a key added while it is processed again only at done(), never to a second worker', async () => {
    const q = new RateLimitedWorkQueue({ timers: new FakeTimers() });
    q.add('a');
    assert.equal(await q.get(), 'a');
    q.add('a');
    q.add('a');
    assert.equal(q.length, 0, 'not handed out while a worker holds it');
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await tick();
    assert.equal(second, undefined, 'a waiting worker does not get the key being processed');
    q.done('a');
    await tick();
    assert.equal(second, 'a', 'handed out again after done(), once');
    assert.equal(q.length, 0);
    q.done('a');
  });

  it('never gives one key to two of 4 concurrent workers, and processes every key after its last add', async () => {
    const q = new RateLimitedWorkQueue({ timers: new FakeTimers() });
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    const busy = new Set<string>();
    const overlaps: string[] = [];
    let seq = 0;
    const lastAdd = new Map<string, number>();
    const lastStart = new Map<string, number>();
    let processed = 0;
    const worker = async () => {
      for (;;) {
        const key = await q.get();
        if (key === undefined) return;
        if (busy.has(key)) overlaps.push(key);
        busy.add(key);
        lastStart.set(key, ++seq);
        // Let other workers and the producer run while this key is held.
        await tick();
        if (processed % 3 === 0) q.add(key);
        await tick();
        busy.delete(key);
        processed++;
        q.done(key);
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    for (let i = 0; i < 200; i++) {
      const key = keys[i % keys.length] ?? 'k0';
      q.add(key);
      lastAdd.set(key, ++seq);
      if (i % 7 === 0) await tick();
    }
    // Drain: wait until nothing is queued or held.
    while (q.length > 0 || busy.size > 0) await tick();
    q.shutDown();
    await Promise.all(workers);
    assert.deepEqual(overlaps, [], 'no key was held by two workers at once');
    for (const key of keys) {
      assert.ok(
        (lastStart.get(key) ?? 0) > (lastAdd.get(key) ?? 0),
        `${key} was processed after its last add`,
      );
    }
  });

  it('backs a key off 5, 10, 20, 40 ms… on each addRateLimited, and forget() starts again at 5 ms', async () => {
    const timers = new FakeTimers();
    const hooks = new CountingHooks();
    const q = new RateLimitedWorkQueue({ hooks, timers });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      q.addRateLimited('x');
      const asked = timers.requested.at(-1) ?? -1;
      delays.push(asked);
      assert.equal(q.length, 0, 'not ready before its delay');
      timers.advance(asked - 1);
      assert.equal(q.length, 0, 'not ready 1 ms before its delay');
      timers.advance(1);
      assert.equal(q.length, 1, 'ready at its delay');
      assert.equal(await q.get(), 'x');
      q.done('x');
    }
    assert.deepEqual(delays, [5, 10, 20, 40, 80, 160]);
    assert.equal(q.numRequeues('x'), 6);
    assert.equal(hooks.retries, 6);
    q.forget('x');
    assert.equal(q.numRequeues('x'), 0);
    q.addRateLimited('x');
    assert.equal(timers.requested.at(-1), 5, 'backoff starts again after forget');
    assert.equal(q.numRequeues('other'), 0, 'backoff is per key');
    q.shutDown();
  });

  it('caps the backoff at 1000 s', () => {
    const backoff = new ItemExponentialBackoff<string>();
    let last = 0;
    for (let i = 0; i < 40; i++) last = backoff.when('k');
    assert.equal(last, 1000 * 1000);
    assert.equal(backoff.numRequeues('k'), 40);
    for (let i = 0; i < 2000; i++) last = backoff.when('k');
    assert.equal(last, 1000 * 1000, 'still capped (no overflow to Infinity or NaN)');
  });

  it('addAfter keeps the earliest time for a waiting key', () => {
    const timers = new FakeTimers();
    const q = new RateLimitedWorkQueue({ timers });
    q.addAfter('a', 100);
    q.addAfter('a', 300);
    assert.equal(timers.pending.size, 1, 'a later time does not add a timer');
    q.addAfter('a', 50);
    assert.equal(timers.pending.size, 1, 'an earlier time replaces the timer');
    timers.advance(50);
    assert.equal(q.length, 1);
    timers.advance(1000);
    assert.equal(q.length, 1, 'the replaced timer does not add the key again');
    q.addAfter('b', 0);
    assert.equal(q.length, 2, 'no delay: added at once');
    q.shutDown();
  });

  it('shutDown releases waiting workers, drops timers and refuses new work', async () => {
    const timers = new FakeTimers();
    const q = new RateLimitedWorkQueue({ timers });
    const waiting = [q.get(), q.get()];
    q.addAfter('later', 1000);
    q.addRateLimited('retry');
    assert.equal(timers.pending.size, 2);
    q.shutDown();
    assert.deepEqual(await Promise.all(waiting), [undefined, undefined]);
    assert.equal(timers.pending.size, 0, 'every timer cleared');
    q.add('new');
    q.addAfter('new', 10);
    assert.equal(q.length, 0);
    assert.equal(timers.pending.size, 0);
    assert.equal(await q.get(), undefined);
  });

  it('reports depth, time in queue and time in work to its hooks', async () => {
    const timers = new FakeTimers();
    const hooks = new CountingHooks();
    const q = new RateLimitedWorkQueue({ hooks, timers });
    q.add('a');
    q.add('b');
    assert.deepEqual(hooks.depths, [1, 2]);
    timers.advance(250);
    const key = await q.get();
    assert.equal(key, 'a');
    assert.deepEqual(hooks.waits, [0.25]);
    timers.advance(500);
    q.done('a');
    assert.deepEqual(hooks.works, [0.5]);
    assert.equal(hooks.depths.at(-1), 1);
    q.shutDown();
  });
});
