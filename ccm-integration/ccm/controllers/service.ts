// The service controller (k8s.io/cloud-provider controllers/service): load balancers for
// Services of type LoadBalancer, from whichever provider --cloud-provider names.
// - Informer handlers only enqueue; --concurrent-service-syncs workers run syncService(key)
//   on the cached Service, one worker per key at a time, retried with per-key backoff.
// - Ensure: Event EnsuringLoadBalancer, the finalizer service.kubernetes.io/load-balancer-cleanup
//   is added before anything is created, ensureLoadBalancer with the eligible nodes, Event
//   EnsuredLoadBalancer, status.loadBalancer patched on the status subresource when it changed.
// - Cleanup (deleted, or no longer type LoadBalancer of our class): DeletingLoadBalancer,
//   ensureLoadBalancerDeleted, the finalizer removed, DeletedLoadBalancer, status cleared.
// - A failure: Event SyncLoadBalancerFailed, and the key is retried with backoff; failed keys are
//   also retried at once when another load balancer has been deleted (it may free what they wait for).
// - Node changes (and every 100 s): updateLoadBalancer for each Service whose eligible node set
//   changed (Events UpdatedLoadBalancer, UnAvailableLoadBalancer, UpdateLoadBalancerFailed).
import type { V1LoadBalancerStatus, V1Node, V1Service } from '@kubernetes/client-node';
import { apiErrorText, apiStatus } from '../../../common/kube/client.js';
import type { Logger } from '../../../common/log.js';
import type { LoadBalancer } from '../cloud/cloud-provider.js';
import type { Controller, ControllerContext, EventTarget, WorkQueue } from '../controller.js';
import { objectKey } from '../runtime/informer.js';
import { pause, untilAborted, waitForSync } from './cloud-node.js';
import {
  LB_FINALIZER,
  hasFinalizer,
  loadBalancerStatusEqual,
  needsCleanup,
  needsUpdate,
  nodeEligible,
  nodesSufficientlyEqual,
  plainStatus,
  shouldSyncUpdatedNode,
  wantsLoadBalancer,
} from './service-rules.js';

/** Upstream's nodeSyncPeriod: node sets are compared this often even without a Node event. */
const NODE_SYNC_PERIOD_MS = 100_000;
/** The node queue holds one key: any number of Node events make one sync of all load balancers. */
const NODE_SYNC_KEY = 'all';

export class ServiceController implements Controller {
  readonly name = 'service';

  async run(ctx: ControllerContext, signal: AbortSignal): Promise<void> {
    const log = ctx.log.child({ controller: this.name });
    const balancer = ctx.cloud.loadBalancer();
    if (!balancer) {
      log.warn('the cloud provider has no load balancers: service does nothing');
      await untilAborted(signal);
      return;
    }
    await new ServiceSync(ctx, balancer, log, signal).run();
  }
}

type Operation = 'ensure' | 'delete';

class ServiceSync {
  private readonly serviceQueue: WorkQueue;
  private readonly nodeQueue: WorkQueue;
  /** Services we have synced, as last seen: for deletions the informer no longer has. */
  private readonly cache = new Map<string, V1Service>();
  /** The eligible nodes each load balancer was last given. */
  private readonly lastSyncedNodes = new Map<string, V1Node[]>();
  /** Keys whose last sync failed. */
  private readonly failing = new Set<string>();
  /** Per key, the tail of its work: a node sync never runs beside a service sync of the same key. */
  private readonly keyTails = new Map<string, Promise<unknown>>();
  private readonly lbClass: string;
  private readonly clusterName: string;

  constructor(
    private readonly ctx: ControllerContext,
    private readonly balancer: LoadBalancer,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {
    this.serviceQueue = ctx.newQueue('service');
    this.nodeQueue = ctx.newQueue('service-nodes');
    this.lbClass = ctx.options.loadBalancerClass;
    this.clusterName = ctx.options.clusterName;
  }

  private isStopped(): boolean {
    return this.signal.aborted;
  }

  async run(): Promise<void> {
    const { ctx, signal } = this;
    ctx.services.onAdd((svc) => {
      if (wantsLoadBalancer(svc, this.lbClass) || needsCleanup(svc, this.lbClass)) this.enqueue(svc);
    });
    ctx.services.onUpdate((oldSvc, svc) => {
      if (needsUpdate(oldSvc, svc, this.lbClass) || needsCleanup(svc, this.lbClass)) this.enqueue(svc);
    });
    // Deletions come through the update that sets deletionTimestamp (the finalizer holds the
    // Service); a Service removed without our finalizer still gets its load balancer deleted.
    ctx.services.onDelete((svc) => {
      if (this.cache.has(objectKey(svc))) this.enqueue(svc);
    });
    const syncNodes = () => this.nodeQueue.add(NODE_SYNC_KEY);
    ctx.nodes.onAdd(syncNodes);
    ctx.nodes.onDelete(syncNodes);
    ctx.nodes.onUpdate((oldNode, node) => {
      if (shouldSyncUpdatedNode(oldNode, node)) syncNodes();
    });
    const stop = () => {
      this.serviceQueue.shutDown();
      this.nodeQueue.shutDown();
    };
    signal.addEventListener('abort', stop, { once: true });
    try {
      if (!(await waitForSync([ctx.services, ctx.nodes], signal))) return;
      for (const svc of ctx.services.list()) {
        if (wantsLoadBalancer(svc, this.lbClass) || needsCleanup(svc, this.lbClass)) this.enqueue(svc);
      }
      const workers = Array.from({ length: this.workerCount() }, () => this.serviceWorker());
      await Promise.all([...workers, this.nodeWorker(), this.syncNodesPeriodically()]);
    } finally {
      signal.removeEventListener('abort', stop);
      stop();
    }
  }

  private workerCount(): number {
    return Math.max(1, this.ctx.options.concurrentServiceSyncs);
  }

  private enqueue(svc: V1Service): void {
    this.serviceQueue.add(objectKey(svc));
  }

  /** Runs `work` after whatever else runs for `key`. */
  private exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.keyTails.get(key) ?? Promise.resolve();
    const result = previous.then(work, work);
    const tail = result.catch(() => undefined);
    this.keyTails.set(key, tail);
    void tail.then(() => {
      if (this.keyTails.get(key) === tail) this.keyTails.delete(key);
    });
    return result;
  }

  private async serviceWorker(): Promise<void> {
    const queue = this.serviceQueue;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const started = performance.now();
      let failed = false;
      try {
        const op = await this.exclusive(key, () => this.syncService(key));
        queue.forget(key);
        this.failing.delete(key);
        if (op === 'delete') this.retryFailing(key);
      } catch (err) {
        failed = true;
        if (!this.isStopped()) {
          this.failing.add(key);
          queue.addRateLimited(key);
          this.log.info(
            { service: key, err: apiErrorText(err), requeues: queue.numRequeues(key) },
            'error processing service, retrying with backoff',
          );
        }
      } finally {
        this.ctx.observeSync('service', (performance.now() - started) / 1000, failed);
        queue.done(key);
      }
    }
  }

  /** A load balancer was deleted: what it held may be what failed Services wait for. */
  private retryFailing(except: string): void {
    for (const key of this.failing) if (key !== except) this.serviceQueue.add(key);
  }

  /** Upstream's syncService: the Service from the cache, or its deletion. Undefined: nothing done. */
  private async syncService(key: string): Promise<Operation | undefined> {
    const svc = this.ctx.services.get(key);
    if (!svc) {
      await this.processServiceDeletion(key);
      return 'delete';
    }
    const cached = this.cache.get(key);
    // Deleted and created again under the same name while we were not looking.
    if (cached && cached.metadata?.uid !== svc.metadata?.uid) {
      await this.processLoadBalancerDelete(cached);
    }
    this.cache.set(key, svc);
    let op: Operation;
    try {
      op = await this.syncLoadBalancerIfNeeded(svc, key);
    } catch (err) {
      this.event(
        svc,
        'Warning',
        'SyncLoadBalancerFailed',
        `Error syncing load balancer: ${apiErrorText(err)}`,
      );
      throw err;
    }
    if (op === 'delete') {
      this.cache.delete(key);
      this.lastSyncedNodes.delete(key);
    }
    return op;
  }

  private async processServiceDeletion(key: string): Promise<void> {
    const cached = this.cache.get(key);
    if (!cached) return;
    this.log.info({ service: key }, 'service has been deleted; cleaning up its load balancer');
    await this.processLoadBalancerDelete(cached);
    this.cache.delete(key);
    this.lastSyncedNodes.delete(key);
  }

  private async processLoadBalancerDelete(svc: V1Service): Promise<void> {
    if (!wantsLoadBalancer(svc, this.lbClass)) return;
    this.event(svc, 'Normal', 'DeletingLoadBalancer', 'Deleting load balancer');
    try {
      await this.balancer.ensureLoadBalancerDeleted(this.clusterName, svc, this.signal);
    } catch (err) {
      this.event(
        svc,
        'Warning',
        'DeleteLoadBalancerFailed',
        `Error deleting load balancer: ${apiErrorText(err)}`,
      );
      throw err;
    }
    this.event(svc, 'Normal', 'DeletedLoadBalancer', 'Deleted load balancer');
  }

  /** Upstream's syncLoadBalancerIfNeeded: ensure, or delete and drop the finalizer; then the status. */
  private async syncLoadBalancerIfNeeded(svc: V1Service, key: string): Promise<Operation> {
    const previous = svc.status?.loadBalancer;
    let next: V1LoadBalancerStatus;
    let op: Operation;
    if (!wantsLoadBalancer(svc, this.lbClass) || needsCleanup(svc, this.lbClass)) {
      op = 'delete';
      next = {};
      let exists: boolean;
      try {
        ({ exists } = await this.balancer.getLoadBalancer(this.clusterName, svc, this.signal));
      } catch (err) {
        throw new Error(`failed to check if load balancer exists before cleanup: ${apiErrorText(err)}`, {
          cause: err,
        });
      }
      if (exists) {
        this.log.info({ service: key }, 'deleting existing load balancer');
        this.event(svc, 'Normal', 'DeletingLoadBalancer', 'Deleting load balancer');
        try {
          await this.balancer.ensureLoadBalancerDeleted(this.clusterName, svc, this.signal);
        } catch (err) {
          throw new Error(`failed to delete load balancer: ${apiErrorText(err)}`, { cause: err });
        }
      }
      // Always: the Service can go once whatever the load balancer held is gone.
      try {
        await this.removeFinalizer(svc);
      } catch (err) {
        throw new Error(`failed to remove load balancer cleanup finalizer: ${apiErrorText(err)}`, {
          cause: err,
        });
      }
      this.event(svc, 'Normal', 'DeletedLoadBalancer', 'Deleted load balancer');
    } else {
      op = 'ensure';
      this.log.info({ service: key }, 'ensuring load balancer');
      this.event(svc, 'Normal', 'EnsuringLoadBalancer', 'Ensuring load balancer');
      // Before anything exists: the Service cannot be deleted without us cleaning up.
      try {
        await this.addFinalizer(svc);
      } catch (err) {
        throw new Error(`failed to add load balancer cleanup finalizer: ${apiErrorText(err)}`, {
          cause: err,
        });
      }
      try {
        next = await this.ensureLoadBalancer(svc, key);
      } catch (err) {
        throw new Error(`failed to ensure load balancer: ${apiErrorText(err)}`, { cause: err });
      }
      this.event(svc, 'Normal', 'EnsuredLoadBalancer', 'Ensured load balancer');
      this.reportPortErrors(svc, next);
    }
    try {
      await this.patchStatus(svc, previous, next);
    } catch (err) {
      // Gone right after the finalizer went: nothing left to write to.
      if (apiStatus(err) !== 404) {
        throw new Error(`failed to update load balancer status: ${apiErrorText(err)}`, { cause: err });
      }
    }
    return op;
  }

  private async ensureLoadBalancer(svc: V1Service, key: string): Promise<V1LoadBalancerStatus> {
    const nodes = this.eligibleNodes();
    if (nodes.length === 0) {
      this.event(svc, 'Warning', 'UnAvailableLoadBalancer', 'There are no available nodes for LoadBalancer');
    }
    this.lastSyncedNodes.set(key, nodes);
    return this.balancer.ensureLoadBalancer(this.clusterName, svc, nodes, this.signal);
  }

  /** Ports the provider could not serve carry an error in the status: each is told as a Warning. */
  private reportPortErrors(svc: V1Service, status: V1LoadBalancerStatus): void {
    for (const ingress of status.ingress ?? []) {
      for (const port of ingress.ports ?? []) {
        if (!port.error) continue;
        this.event(
          svc,
          'Warning',
          'LoadBalancerPortNotServed',
          `Port ${port.port}/${port.protocol} is not served by the load balancer: ${port.error}`,
        );
      }
    }
  }

  private eligibleNodes(): V1Node[] {
    return this.ctx.nodes
      .list()
      .filter(nodeEligible)
      .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  }

  private async addFinalizer(svc: V1Service): Promise<void> {
    if (hasFinalizer(svc)) return;
    this.log.info({ service: objectKey(svc) }, 'adding finalizer to service');
    await this.patchService(svc, { metadata: { finalizers: [LB_FINALIZER] } });
  }

  private async removeFinalizer(svc: V1Service): Promise<void> {
    if (!hasFinalizer(svc)) return;
    this.log.info({ service: objectKey(svc) }, 'removing finalizer from service');
    await this.patchService(svc, { metadata: { '$deleteFromPrimitiveList/finalizers': [LB_FINALIZER] } });
  }

  /** A strategic merge patch of the Service: finalizers merge as a set. */
  private async patchService(svc: V1Service, body: object): Promise<void> {
    const { k8s } = this.ctx.kube;
    await this.ctx.core.patchNamespacedService(
      { name: svc.metadata?.name ?? '', namespace: svc.metadata?.namespace ?? '', body },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
  }

  /** status.loadBalancer on the status subresource, when it changed; a merge patch replaces ingress whole. */
  private async patchStatus(
    svc: V1Service,
    previous: V1LoadBalancerStatus | undefined,
    next: V1LoadBalancerStatus,
  ): Promise<void> {
    if (loadBalancerStatusEqual(previous, next)) return;
    const { k8s } = this.ctx.kube;
    const ingress = plainStatus(next).ingress ?? null;
    this.log.info({ service: objectKey(svc), ingress }, 'patching load balancer status');
    await this.ctx.core.patchNamespacedServiceStatus(
      {
        name: svc.metadata?.name ?? '',
        namespace: svc.metadata?.namespace ?? '',
        body: { status: { loadBalancer: { ingress } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  }

  private event(svc: V1Service, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.ctx.events.event(serviceRef(svc), type, reason, message);
  }

  /** One worker for Node changes: each turn compares every load balancer's node set. */
  private async nodeWorker(): Promise<void> {
    const queue = this.nodeQueue;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        for (const retry of await this.syncNodes()) this.serviceQueue.add(retry);
      } finally {
        queue.forget(key);
        queue.done(key);
      }
    }
  }

  private async syncNodesPeriodically(): Promise<void> {
    while (await pause(NODE_SYNC_PERIOD_MS, this.signal)) this.nodeQueue.add(NODE_SYNC_KEY);
  }

  /** Upstream's syncNodes: the keys whose update failed (the service queue retries them whole). */
  private async syncNodes(): Promise<string[]> {
    const started = performance.now();
    const services = [...this.cache.values()];
    const retry: string[] = [];
    let next = 0;
    const work = async (): Promise<void> => {
      for (let svc = services[next++]; svc && !this.isStopped(); svc = services[next++]) {
        const key = objectKey(svc);
        if (await this.exclusive(key, () => this.nodeSyncService(key))) retry.push(key);
      }
    };
    await Promise.all(Array.from({ length: this.workerCount() }, work));
    this.log.debug(
      { services: services.length, retry: retry.length, ms: Math.round(performance.now() - started) },
      'synced load balancer nodes',
    );
    return retry;
  }

  /** True when the update failed and the Service should be synced again. */
  private async nodeSyncService(key: string): Promise<boolean> {
    const svc = this.ctx.services.get(key) ?? this.cache.get(key);
    if (!svc || !wantsLoadBalancer(svc, this.lbClass) || !this.cache.has(key)) return false;
    const nodes = this.eligibleNodes();
    const before = this.lastSyncedNodes.get(key) ?? [];
    // Stored whether or not the update works: a failure is retried by a full service sync.
    this.lastSyncedNodes.set(key, nodes);
    if (nodesSufficientlyEqual(before, nodes)) return false;
    this.log.info(
      { service: key, nodes: nodes.slice(0, 20).map((n) => n.metadata?.name) },
      'updating load balancer hosts',
    );
    try {
      await this.balancer.updateLoadBalancer(this.clusterName, svc, nodes, this.signal);
    } catch (err) {
      if (this.isStopped()) return false;
      try {
        const { exists } = await this.balancer.getLoadBalancer(this.clusterName, svc, this.signal);
        if (!exists) return false;
      } catch (checkErr) {
        this.log.warn(
          { service: key, err: apiErrorText(checkErr) },
          'cannot check if the load balancer exists',
        );
      }
      const names = nodes.slice(0, 20).map((n) => n.metadata?.name ?? '');
      this.event(
        svc,
        'Warning',
        'UpdateLoadBalancerFailed',
        `Error updating load balancer with new hosts [${names.join(' ')}] [node names limited, total number of nodes: ${nodes.length}], error: ${apiErrorText(err)}`,
      );
      return true;
    }
    if (nodes.length === 0) {
      this.event(svc, 'Warning', 'UnAvailableLoadBalancer', 'There are no available nodes for LoadBalancer');
    } else {
      this.event(svc, 'Normal', 'UpdatedLoadBalancer', 'Updated load balancer with new hosts');
    }
    return false;
  }
}

export function serviceRef(svc: V1Service): EventTarget {
  const meta = svc.metadata;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: meta?.name,
      namespace: meta?.namespace,
      uid: meta?.uid,
      resourceVersion: meta?.resourceVersion,
    },
  };
}
