// A swarm worker thread: runs its share of the simulated agents, all connects started at
// once (as a DaemonSet rollout or a server restart does), and reports its counters to the
// main thread whenever they change. The main thread ends it with worker.terminate().
import tls from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';
import { SimAgent, type SimAgentObserver } from './sim-agent.js';
import {
  emptyWorkerStats,
  epochNow,
  STATS_INTERVAL_MS,
  type SwarmWorkerData,
  type WorkerStats,
} from './swarm-messages.js';
import { simAgentID, simIdentifiers, simToken } from './sim-identity.js';

/** The upstream agent's defaults: --sync-interval 1s, --sync-interval-cap 10s. */
const SYNC_INTERVAL_MS = 1_000;
const SYNC_INTERVAL_CAP_MS = 10_000;

const data = workerData as SwarmWorkerData;
const port = parentPort;
if (!port) throw new Error('agent-swarm.js runs as a worker thread (bench/scale/swarm.ts starts it)');

const stats: WorkerStats = emptyWorkerStats(data.worker, data.count);
let changed = true;

const observer: SimAgentObserver = {
  handshake(resumed) {
    stats.handshakes++;
    if (resumed) stats.resumed++;
    changed = true;
  },
  connected() {
    stats.connected++;
    stats.connects++;
    if (stats.connected === stats.agents) stats.fullSince = epochNow();
    changed = true;
  },
  disconnected() {
    stats.connected--;
    stats.fullSince = undefined;
    changed = true;
  },
  failed(reason) {
    stats.failures[reason] = (stats.failures[reason] ?? 0) + 1;
    changed = true;
  },
  dialAnswered(ok) {
    stats.dials++;
    if (!ok) stats.dialErrors++;
    changed = true;
  },
};

const secureContext = tls.createSecureContext({ ca: data.ca, cert: data.cert, key: data.key });
for (let n = 0; n < data.count; n++) {
  const i = data.firstIndex + n;
  new SimAgent(
    {
      host: data.host,
      port: data.port,
      secureContext,
      agentID: simAgentID(data.worker, i),
      identifiers: simIdentifiers(i),
      token: data.tokens ? simToken(i) : undefined,
      syncIntervalMs: SYNC_INTERVAL_MS,
      syncIntervalCapMs: SYNC_INTERVAL_CAP_MS,
    },
    observer,
  ).start();
}

setInterval(() => {
  if (!changed) return;
  changed = false;
  port.postMessage(stats);
}, STATS_INTERVAL_MS);
