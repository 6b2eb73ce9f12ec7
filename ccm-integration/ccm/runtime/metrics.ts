// konnectivity-ccm's metrics, in a Registry of its own (an embedder may run several). Upstream
// names where upstream has the metric: client-go's workqueue_* and leader_election_master_status.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createRegistry } from '../../../common/metrics.js';
import type { WorkQueueHooks } from './work-queue.js';

// client-go's workqueue buckets: 10 ns .. 10 s, ×10.
const QUEUE_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10];
const SYNC_BUCKETS = [0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60];

export type CloudCallResult = 'ok' | 'error';

export class CcmMetrics {
  readonly registry: Registry;
  readonly leaderStatus: Gauge<'name'>;
  readonly syncDuration: Histogram<'controller'>;
  readonly syncErrors: Counter<'controller'>;
  readonly cloudCalls: Counter<'method' | 'result'>;
  private readonly queueDepth: Gauge<'name'>;
  private readonly queueAdds: Counter<'name'>;
  private readonly queueRetries: Counter<'name'>;
  private readonly queueWait: Histogram<'name'>;
  private readonly queueWork: Histogram<'name'>;

  constructor(registry: Registry = createRegistry(true)) {
    this.registry = registry;
    const registers = [registry];
    this.leaderStatus = new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. name is the string used to identify the lease.',
      labelNames: ['name'],
      registers,
    });
    this.syncDuration = new Histogram({
      name: 'konnectivity_ccm_sync_duration_seconds',
      help: 'Duration of one sync of a key by a controller, in seconds',
      labelNames: ['controller'],
      buckets: SYNC_BUCKETS,
      registers,
    });
    this.syncErrors = new Counter({
      name: 'konnectivity_ccm_sync_errors_total',
      help: 'Syncs of a controller that failed (the key is retried with backoff)',
      labelNames: ['controller'],
      registers,
    });
    this.cloudCalls = new Counter({
      name: 'konnectivity_ccm_cloud_provider_calls_total',
      help: 'Calls to the cloud provider by method and result (ok, error)',
      labelNames: ['method', 'result'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name'],
      registers,
    });
    this.queueAdds = new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    this.queueRetries = new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    this.queueWait = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested.',
      labelNames: ['name'],
      buckets: QUEUE_BUCKETS,
      registers,
    });
    this.queueWork = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes.',
      labelNames: ['name'],
      buckets: QUEUE_BUCKETS,
      registers,
    });
  }

  /** The metrics of the work queue `name` (label values bound once). */
  queueHooks(name: string): WorkQueueHooks {
    const labels = { name };
    const depth = this.queueDepth.labels(labels);
    const adds = this.queueAdds.labels(labels);
    const retries = this.queueRetries.labels(labels);
    const wait = this.queueWait.labels(labels);
    const work = this.queueWork.labels(labels);
    return {
      added: () => {
        adds.inc();
      },
      depth: (n) => {
        depth.set(n);
      },
      retried: () => {
        retries.inc();
      },
      waited: (s) => {
        wait.observe(s);
      },
      worked: (s) => {
        work.observe(s);
      },
    };
  }

  observeSync(controller: string, seconds: number, failed: boolean): void {
    this.syncDuration.observe({ controller }, seconds);
    if (failed) this.syncErrors.inc({ controller });
  }

  cloudCall(method: string, result: CloudCallResult): void {
    this.cloudCalls.inc({ method, result });
  }
}
