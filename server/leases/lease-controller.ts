// --enable-lease-controller: publish and renew this server's Lease so agents can count the
// servers, and delete expired Leases of servers that are gone (upstream: 30 s leases renewed
// every 15 s, garbage collection every 15 s). The Lease is deleted at shutdown.
import type * as k8s from '@kubernetes/client-node';
import { apiStatus, type KubeClient } from '../../common/kube/client.js';
import { formatLabels, isLeaseValid, leaseName } from '../../common/kube/leases.js';
import { errorText, type Logger } from '../../common/log.js';
import type { ServerMetrics } from '../metrics.js';
import { TIMED_OUT, withDeadline } from '../../common/deadline.js';

const STOP_TIMEOUT_MS = 3000;

export interface LeaseControllerOptions {
  serverID: string;
  namespace: string;
  labels: Record<string, string>;
  durationSeconds: number;
  renewIntervalMs: number;
}

export class LeaseController {
  private readonly api: k8s.CoordinationV1Api;
  /** Lease times are MicroTime: kube-apiserver parses exactly six fractional digits. */
  private readonly microTime: typeof k8s.V1MicroTime;
  private readonly name: string;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(
    client: KubeClient,
    private readonly options: LeaseControllerOptions,
    private readonly metrics: ServerMetrics,
    private readonly log: Logger,
  ) {
    this.api = client.config.makeApiClient(client.k8s.CoordinationV1Api);
    this.microTime = client.k8s.V1MicroTime;
    this.name = leaseName(options.serverID);
  }

  start(): void {
    const tick = () => {
      this.running = this.renew().then(() => this.collect());
      void this.running.finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.options.renewIntervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops renewing and deletes our Lease, so agents stop counting this server at once. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { name } = this;
    try {
      // Bounded: an unreachable API server must not hold the shutdown; the Lease expires anyway.
      const deleted = await withDeadline(
        this.running.then(() => this.api.deleteNamespacedLease({ name, namespace: this.options.namespace })),
        STOP_TIMEOUT_MS,
      );
      if (deleted === TIMED_OUT)
        this.log.warn({ lease: name, error: `no answer within ${STOP_TIMEOUT_MS}ms` }, 'cannot delete lease');
      else this.log.info({ lease: name }, 'lease deleted');
    } catch (err) {
      if (apiStatus(err) !== 404)
        this.log.warn({ lease: name, error: errorText(err) }, 'cannot delete lease');
    }
  }

  private async renew(): Promise<void> {
    const { namespace, labels, durationSeconds, serverID } = this.options;
    const now = new this.microTime();
    try {
      let lease: k8s.V1Lease | undefined;
      try {
        lease = await this.api.readNamespacedLease({ name: this.name, namespace });
      } catch (err) {
        if (apiStatus(err) !== 404) throw err;
      }
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.name, namespace, labels },
            spec: {
              holderIdentity: serverID,
              leaseDurationSeconds: durationSeconds,
              acquireTime: now,
              renewTime: now,
            },
          },
        });
        this.log.info({ lease: this.name, namespace }, 'lease created');
        return;
      }
      lease.metadata = { ...lease.metadata, labels: { ...lease.metadata?.labels, ...labels } };
      lease.spec = {
        ...lease.spec,
        holderIdentity: serverID,
        leaseDurationSeconds: durationSeconds,
        renewTime: now,
      };
      await this.api.replaceNamespacedLease({ name: this.name, namespace, body: lease });
    } catch (err) {
      this.log.warn({ lease: this.name, error: errorText(err) }, 'cannot renew lease; retrying');
    }
  }

  /** Deletes expired leases with our labels: servers that went away without deleting theirs. */
  private async collect(): Promise<void> {
    const { namespace, labels } = this.options;
    try {
      const list = await this.api.listNamespacedLease({ namespace, labelSelector: formatLabels(labels) });
      for (const lease of list.items) {
        const name = lease.metadata?.name;
        if (!name || isLeaseValid(lease)) continue;
        try {
          await this.api.deleteNamespacedLease({
            name,
            namespace,
            body: { preconditions: { resourceVersion: lease.metadata?.resourceVersion } },
          });
          this.metrics.culledLeases.inc();
          this.log.info({ lease: name }, 'expired lease deleted');
        } catch (err) {
          const code = apiStatus(err);
          if (code !== 404 && code !== 409)
            this.log.warn({ lease: name, error: errorText(err) }, 'cannot delete expired lease');
        }
      }
    } catch (err) {
      this.log.warn({ error: errorText(err) }, 'cannot list leases for garbage collection');
    }
  }
}
