// The main thread's side of the swarm: N simulated agents spread over W worker threads
// (agent-swarm.ts), their counters summed, and the wait for "all connected" that the
// connect rows time.
import { Worker } from 'node:worker_threads';
import {
  emptyWorkerStats,
  type SwarmTotals,
  type SwarmWorkerData,
  type WorkerStats,
} from './swarm-messages.js';

export type { SwarmTotals } from './swarm-messages.js';

export interface SwarmConfig {
  agents: number;
  workers: number;
  host: string;
  port: number;
  /** PEM texts. */
  tls: { ca: string; cert: string; key: string };
  tokens: boolean;
}

/** How a wait for all agents ended. */
export interface ConnectWait {
  wanted: number;
  connected: number;
  /** From `since` until the last agent connected; undefined when the wait timed out or failed. */
  seconds: number | undefined;
  /** Why it did not finish. */
  unfinished?: string;
}

/** agents split as evenly as possible, never a worker with none. */
export function shareOut(agents: number, workers: number): number[] {
  const n = Math.max(1, Math.min(workers, agents));
  return Array.from({ length: n }, (_, w) => Math.floor(agents / n) + (w < agents % n ? 1 : 0));
}

/** b - a for every counter (what happened between two snapshots). */
export function totalsDelta(a: SwarmTotals, b: SwarmTotals): SwarmTotals {
  const failures: Record<string, number> = {};
  for (const [reason, n] of Object.entries(b.failures)) {
    const d = n - (a.failures[reason] ?? 0);
    if (d > 0) failures[reason] = d;
  }
  return {
    agents: b.agents,
    connected: b.connected,
    connects: b.connects - a.connects,
    handshakes: b.handshakes - a.handshakes,
    resumed: b.resumed - a.resumed,
    failures,
    dials: b.dials - a.dials,
    dialErrors: b.dialErrors - a.dialErrors,
  };
}

const POLL_MS = 25;

export class Swarm {
  private readonly stats: WorkerStats[];
  private readonly workers: Worker[] = [];
  private failure: string | undefined;
  private stopping = false;

  private constructor(config: SwarmConfig) {
    const shares = shareOut(config.agents, config.workers);
    this.stats = shares.map((count, worker) => emptyWorkerStats(worker, count));
    let firstIndex = 0;
    for (const [worker, count] of shares.entries()) {
      const workerData: SwarmWorkerData = {
        worker,
        firstIndex,
        count,
        host: config.host,
        port: config.port,
        ...config.tls,
        tokens: config.tokens,
      };
      firstIndex += count;
      const w = new Worker(new URL('./agent-swarm.js', import.meta.url), { workerData });
      w.on('message', (s: WorkerStats) => {
        this.stats[s.worker] = s;
      });
      w.on('error', (err) => {
        this.failure ??= `swarm worker ${worker} failed: ${err.stack ?? err.message}`;
      });
      w.on('exit', (code) => {
        if (!this.stopping) this.failure ??= `swarm worker ${worker} exited (${code})`;
      });
      this.workers.push(w);
    }
  }

  /** Starts the workers; every agent begins connecting at once. */
  static start(config: SwarmConfig): Swarm {
    return new Swarm(config);
  }

  /** Set when a worker died: its agents are gone. */
  get failed(): string | undefined {
    return this.failure;
  }

  totals(): SwarmTotals {
    const t: SwarmTotals = {
      agents: 0,
      connected: 0,
      connects: 0,
      handshakes: 0,
      resumed: 0,
      failures: {},
      dials: 0,
      dialErrors: 0,
    };
    for (const s of this.stats) {
      t.agents += s.agents;
      t.connected += s.connected;
      t.connects += s.connects;
      t.handshakes += s.handshakes;
      t.resumed += s.resumed;
      t.dials += s.dials;
      t.dialErrors += s.dialErrors;
      for (const [reason, n] of Object.entries(s.failures))
        t.failures[reason] = (t.failures[reason] ?? 0) + n;
    }
    return t;
  }

  /**
   * Waits until every agent has connected after `since` (epochNow), at most timeoutMs, or
   * until `abort` names a reason to stop (the server died). Never throws.
   */
  async waitAllConnected(
    since: number,
    timeoutMs: number,
    abort: () => string | undefined = () => undefined,
  ): Promise<ConnectWait> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const full = this.stats.every(
        (s) => s.connected === s.agents && s.fullSince !== undefined && s.fullSince >= since,
      );
      const totals = this.totals();
      if (full) {
        const last = Math.max(...this.stats.map((s) => s.fullSince ?? since));
        return { wanted: totals.agents, connected: totals.connected, seconds: (last - since) / 1000 };
      }
      const reason =
        this.failure ??
        abort() ??
        (Date.now() > deadline ? `timed out after ${timeoutMs / 1000} s` : undefined);
      if (reason !== undefined) {
        return { wanted: totals.agents, connected: totals.connected, seconds: undefined, unfinished: reason };
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Ends every worker: their sockets and timers go with them. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
