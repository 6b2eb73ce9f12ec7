// What the main thread and the swarm's worker threads tell each other. Times are epoch
// milliseconds with sub-millisecond precision (epochNow), comparable across threads.

/** performance.now() on the epoch: each thread has its own timeOrigin, the sum is shared. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** workerData of one swarm worker. */
export interface SwarmWorkerData {
  worker: number;
  /** Global index of its first agent (agent i is sim-<worker>-<i>, host=sim-<i>). */
  firstIndex: number;
  count: number;
  host: string;
  port: number;
  /** PEM: the CA the server certificate is checked against, and the agents' client certificate. */
  ca: string;
  cert: string;
  key: string;
  /** Present a ServiceAccount token (simToken(i)) on every connect. */
  tokens: boolean;
}

/** A worker's counters since it started, sent whenever they change (at most every STATS_INTERVAL_MS). */
/** Counters of a set of simulated agents: one worker's, or all of them summed. */
export interface SwarmTotals {
  agents: number;
  /** Agents whose Connect stream is open now (response headers 200 received). */
  connected: number;
  /** Successful connects, first ones and reconnects. */
  connects: number;
  /** Completed TLS handshakes, and how many of them resumed a session. */
  handshakes: number;
  resumed: number;
  /** Connect attempts that did not reach connected, by reason. */
  failures: Record<string, number>;
  /** DIAL_REQs answered, and those answered with an error. */
  dials: number;
  dialErrors: number;
}

/** A worker's counters since it started, sent whenever they change (at most every STATS_INTERVAL_MS). */
export interface WorkerStats extends SwarmTotals {
  worker: number;
  /** When `connected` last reached `agents` (epochNow), if it is there now. */
  fullSince: number | undefined;
}

/** A worker's counters before its first agent connects. */
export function emptyWorkerStats(worker: number, agents: number): WorkerStats {
  return {
    worker,
    agents,
    connected: 0,
    connects: 0,
    handshakes: 0,
    resumed: 0,
    failures: {},
    fullSince: undefined,
    dials: 0,
    dialErrors: 0,
  };
}

export const STATS_INTERVAL_MS = 50;
