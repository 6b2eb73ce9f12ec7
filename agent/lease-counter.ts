// --count-server-leases: count the proxy-servers by their unexpired Leases (a list+watch
// informer: one watch per agent, not a poll), so an agent behind a load balancer knows how
// many servers to connect to without waiting for a serverCount header to change.
import type * as k8s from '@kubernetes/client-node';
import type { KubeClient } from '../common/kube/client.js';
import { isLeaseValid } from '../common/kube/leases.js';
import { errorText, type Logger } from '../common/log.js';
import { TIMED_OUT, withDeadline } from '../common/deadline.js';

const RESTART_MS = 5000;
const START_TIMEOUT_MS = 10_000;

export class LeaseCounter {
  private informer: (k8s.Informer<k8s.V1Lease> & k8s.ObjectCache<k8s.V1Lease>) | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly labelSelector: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { k8s: mod, config } = this.client;
    const api = config.makeApiClient(mod.CoordinationV1Api);
    const path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/leases`;
    const informer = mod.makeInformer(
      config,
      path,
      () => api.listNamespacedLease({ namespace: this.namespace, labelSelector: this.labelSelector }),
      this.labelSelector,
    );
    informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.log.warn({ error: errorText(err), retryInMs: RESTART_MS }, 'lease watch failed; restarting');
      this.restartLater(informer);
    });
    this.informer = informer;
    try {
      // An API server that accepts and never answers must not hold the agent's start-up.
      if ((await withDeadline(informer.start(), START_TIMEOUT_MS)) === TIMED_OUT) {
        this.log.warn(
          { afterMs: START_TIMEOUT_MS },
          'server leases not listed yet; going by the serverCount header meanwhile',
        );
      }
    } catch (err) {
      // Not fatal: the agent goes by the serverCount header until the watch works.
      this.log.warn({ error: errorText(err), retryInMs: RESTART_MS }, 'cannot list server leases; retrying');
      this.restartLater(informer);
    }
  }

  private restartLater(informer: k8s.Informer<k8s.V1Lease>): void {
    this.restartTimer = setTimeout(() => {
      if (!this.stopped) void informer.start().catch(() => undefined);
    }, RESTART_MS);
  }

  /** Servers with an unexpired Lease now (expiry is checked at every call, not only on events). */
  count(): number {
    if (!this.informer) return 0;
    const now = Date.now();
    let n = 0;
    for (const lease of this.informer.list()) if (isLeaseValid(lease, now)) n++;
    return n;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.informer?.stop();
  }
}
