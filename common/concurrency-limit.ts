// At most `limit` tasks run at once; the rest wait in arrival order. A waiter that is no longer
// wanted when its turn comes (an agent that hung up while queued) is skipped, not run, so a
// reconnect storm does not leave a backlog of work for connections that are already gone.

export interface ConcurrencyObserver {
  /** Called whenever the number running or waiting changes. */
  changed(running: number, waiting: number): void;
  /** A task had to wait for a slot (counted once, when it starts waiting). */
  queued(): void;
}

export class TaskSkipped extends Error {
  constructor() {
    super('no longer wanted when its turn came');
    this.name = 'TaskSkipped';
  }
}

interface Waiter {
  wanted: () => boolean;
  start: () => void;
  skip: () => void;
}

export class ConcurrencyLimit {
  private running = 0;
  private readonly waiters: Waiter[] = [];
  /** Index of the first waiter still in `waiters` (a head index instead of shift(): O(1)). */
  private head = 0;

  /** `limit` 0: no limit. */
  constructor(
    private readonly limit: number,
    private readonly observer?: ConcurrencyObserver,
  ) {}

  get inFlight(): number {
    return this.running;
  }

  get waiting(): number {
    return this.waiters.length - this.head;
  }

  /**
   * Runs `task` when a slot is free. If `wanted()` is false when the slot comes, the task is
   * not run and the promise rejects with TaskSkipped.
   */
  run<T>(task: () => Promise<T>, wanted: () => boolean = () => true): Promise<T> {
    if (this.limit === 0 || this.running < this.limit) return this.start(task);
    this.observer?.queued();
    return new Promise<T>((resolve, reject) => {
      this.waiters.push({
        wanted,
        start: () => {
          this.start(task).then(resolve, reject);
        },
        skip: () => {
          reject(new TaskSkipped());
        },
      });
      this.notify();
    });
  }

  private async start<T>(task: () => Promise<T>): Promise<T> {
    this.running++;
    this.notify();
    try {
      return await task();
    } finally {
      this.running--;
      this.next();
    }
  }

  private next(): void {
    while (this.head < this.waiters.length && this.running < this.limit) {
      const w = this.waiters[this.head++];
      if (!w) break;
      if (w.wanted()) w.start();
      else w.skip();
    }
    if (this.head === this.waiters.length) {
      this.waiters.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters.splice(0, this.head);
      this.head = 0;
    }
    this.notify();
  }

  private notify(): void {
    this.observer?.changed(this.running, this.waiting);
  }
}
