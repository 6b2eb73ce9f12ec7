// The controllers' work queue, with client-go's semantics (util/workqueue): keys are
// deduplicated while they wait; a key being processed is never handed to a second worker, and
// a key added meanwhile is queued again at done(); addRateLimited delays a key by its own
// exponential backoff (5 ms doubling, capped at 1000 s) until forget() resets it.
// One difference, on purpose: after shutDown() get() answers undefined at once, even with keys
// still queued (client-go hands those out first). Shutdown here means leadership is gone, and
// a replica that no longer leads must not act on another key.
import type { WorkQueue } from '../controller.js';

/** What a queue reports, as client-go's workqueue metrics provider. */
export interface WorkQueueHooks {
  /** workqueue_adds_total */
  added(): void;
  /** workqueue_depth */
  depth(n: number): void;
  /** workqueue_retries_total */
  retried(): void;
  /** workqueue_queue_duration_seconds: from add to get. */
  waited(seconds: number): void;
  /** workqueue_work_duration_seconds: from get to done. */
  worked(seconds: number): void;
}

/** Timers, injectable so tests control time. */
export interface QueueTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
  /** Milliseconds, monotonic. */
  now(): number;
}

const realTimers: QueueTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => {
    clearTimeout(handle as NodeJS.Timeout);
  },
  now: () => performance.now(),
};

const noHooks: WorkQueueHooks = {
  added: () => undefined,
  depth: () => undefined,
  retried: () => undefined,
  waited: () => undefined,
  worked: () => undefined,
};

export const DEFAULT_BASE_DELAY_MS = 5;
export const DEFAULT_MAX_DELAY_MS = 1000 * 1000;

/** client-go's ItemExponentialFailureRateLimiter: base × 2^failures, capped. */
export class ItemExponentialBackoff<K> {
  private readonly failures = new Map<K, number>();

  constructor(
    private readonly baseMs = DEFAULT_BASE_DELAY_MS,
    private readonly maxMs = DEFAULT_MAX_DELAY_MS,
  ) {}

  /** The delay for this failure of `key`; counts the failure. */
  when(key: K): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2 ** n grows to Infinity for large n; the cap keeps the result finite.
    return Math.min(this.baseMs * 2 ** n, this.maxMs);
  }

  numRequeues(key: K): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: K): void {
    this.failures.delete(key);
  }
}

export interface WorkQueueOptions {
  hooks?: WorkQueueHooks;
  timers?: QueueTimers;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class RateLimitedWorkQueue<K = string> implements WorkQueue<K> {
  /** Keys ready to be handed out, in order. */
  private queue: K[] = [];
  /** Keys that need processing (queued, or re-added while processing). */
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  /** addAfter keys not yet added: the earliest time wins. */
  private readonly waiting = new Map<K, { handle: unknown; readyAt: number }>();
  private readonly getters: ((key: K | undefined) => void)[] = [];
  private readonly queuedAt = new Map<K, number>();
  private readonly startedAt = new Map<K, number>();
  private readonly limiter: ItemExponentialBackoff<K>;
  private readonly hooks: WorkQueueHooks;
  private readonly timers: QueueTimers;
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.hooks = options.hooks ?? noHooks;
    this.timers = options.timers ?? realTimers;
    this.limiter = new ItemExponentialBackoff(options.baseDelayMs, options.maxDelayMs);
  }

  get length(): number {
    return this.queue.length;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  add(key: K): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.hooks.added();
    this.dirty.add(key);
    this.queuedAt.set(key, this.timers.now());
    // A key being processed goes back in the queue at done(), never to a second worker now.
    if (this.processing.has(key)) return;
    this.enqueue(key);
  }

  addAfter(key: K, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.timers.now() + delayMs;
    const pending = this.waiting.get(key);
    if (pending) {
      if (pending.readyAt <= readyAt) return;
      this.timers.clear(pending.handle);
    }
    const handle = this.timers.set(() => {
      this.waiting.delete(key);
      this.add(key);
    }, delayMs);
    this.waiting.set(key, { handle, readyAt });
  }

  addRateLimited(key: K): void {
    if (this.shuttingDown) return;
    this.hooks.retried();
    this.addAfter(key, this.limiter.when(key));
  }

  forget(key: K): void {
    this.limiter.forget(key);
  }

  numRequeues(key: K): number {
    return this.limiter.numRequeues(key);
  }

  get(): Promise<K | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    if (this.queue.length > 0) {
      const key = this.queue.shift() as K;
      this.hooks.depth(this.queue.length);
      return Promise.resolve(this.start(key));
    }
    return new Promise((resolve) => this.getters.push(resolve));
  }

  done(key: K): void {
    if (!this.processing.delete(key)) return;
    const started = this.startedAt.get(key);
    this.startedAt.delete(key);
    if (started !== undefined) this.hooks.worked((this.timers.now() - started) / 1000);
    if (this.dirty.has(key) && !this.shuttingDown) this.enqueue(key);
  }

  /** Stops the queue: pending and future get() resolve undefined; delayed adds are dropped. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { handle } of this.waiting.values()) this.timers.clear(handle);
    this.waiting.clear();
    this.queue = [];
    this.hooks.depth(0);
    for (const resolve of this.getters.splice(0)) resolve(undefined);
  }

  /** Hands the key to a waiting worker, or queues it. */
  private enqueue(key: K): void {
    const getter = this.getters.shift();
    if (getter) {
      getter(this.start(key));
      return;
    }
    this.queue.push(key);
    this.hooks.depth(this.queue.length);
  }

  /** The key goes from queued to processing, at once: no other worker can receive it now. */
  private start(key: K): K {
    this.processing.add(key);
    this.dirty.delete(key);
    const now = this.timers.now();
    const queued = this.queuedAt.get(key);
    this.queuedAt.delete(key);
    if (queued !== undefined) this.hooks.waited((now - queued) / 1000);
    this.startedAt.set(key, now);
    return key;
  }
}
