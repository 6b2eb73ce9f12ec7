import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConcurrencyLimit, TaskSkipped } from '../../../common/concurrency-limit.js';

/** A task that finishes when the test says so. */
function gatedTask(log: string[], name: string) {
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const task = async (): Promise<string> => {
    log.push(`start ${name}`);
    await done;
    return name;
  };
  return { task, finish };
}

describe('ConcurrencyLimit', () => {
  it('runs at most `limit` tasks at once, the rest in arrival order, and reports what waits', async () => {
    const log: string[] = [];
    const seen: [number, number][] = [];
    let queued = 0;
    const limit = new ConcurrencyLimit(2, {
      changed: (running, waiting) => seen.push([running, waiting]),
      queued: () => queued++,
    });
    const tasks = ['a', 'b', 'c', 'd'].map((n) => gatedTask(log, n));
    const results = tasks.map((t) => limit.run(t.task));
    assert.deepEqual(log, ['start a', 'start b']);
    assert.equal(limit.inFlight, 2);
    assert.equal(limit.waiting, 2);
    assert.equal(queued, 2);
    tasks[1]?.finish();
    assert.equal(await results[1], 'b');
    assert.deepEqual(log, ['start a', 'start b', 'start c']);
    tasks[0]?.finish();
    tasks[2]?.finish();
    tasks[3]?.finish();
    assert.deepEqual(await Promise.all(results), ['a', 'b', 'c', 'd']);
    assert.deepEqual(log, ['start a', 'start b', 'start c', 'start d']);
    assert.equal(limit.inFlight, 0);
    assert.equal(limit.waiting, 0);
    assert.ok(
      seen.every(([running]) => running <= 2),
      'never more than the limit in flight',
    );
    assert.deepEqual(seen.at(-1), [0, 0]);
  });

  it('skips a waiter that is no longer wanted when its turn comes, and runs the next', async () => {
    const log: string[] = [];
    const limit = new ConcurrencyLimit(1);
    const first = gatedTask(log, 'first');
    const gone = gatedTask(log, 'gone');
    const next = gatedTask(log, 'next');
    const running = limit.run(first.task);
    let wanted = true;
    const skipped = limit.run(gone.task, () => wanted);
    const after = limit.run(next.task);
    wanted = false; // its agent hung up while it waited
    first.finish();
    await assert.rejects(skipped, TaskSkipped);
    next.finish();
    assert.equal(await running, 'first');
    assert.equal(await after, 'next');
    assert.deepEqual(log, ['start first', 'start next']);
  });

  it('frees the slot of a task that fails', async () => {
    const limit = new ConcurrencyLimit(1);
    const failing = limit.run(() => Promise.reject(new Error('API down')));
    const next = limit.run(() => Promise.resolve('ran'));
    await assert.rejects(failing, /API down/);
    assert.equal(await next, 'ran');
    assert.equal(limit.inFlight, 0);
  });

  it('with limit 0 runs everything at once', async () => {
    const log: string[] = [];
    const limit = new ConcurrencyLimit(0);
    const tasks = Array.from({ length: 50 }, (_, i) => gatedTask(log, String(i)));
    const results = tasks.map((t) => limit.run(t.task));
    assert.equal(log.length, 50);
    assert.equal(limit.waiting, 0);
    for (const t of tasks) t.finish();
    await Promise.all(results);
  });
});
