// What a controller of konnectivity-ccm is given, and what it must do: the contract between
// the runtime (runtime/) and the controllers (controllers/).
import type { CoreV1Api, V1Node, V1Service } from '@kubernetes/client-node';
import type { Logger } from '../../common/log.js';
import type { KubeClient } from '../../common/kube/client.js';
import type { CloudProvider } from './cloud/cloud-provider.js';

/** A list+watch cache of one resource. Keys are "name" (cluster-scoped) or "namespace/name". */
export interface Informer<T> {
  list(): T[];
  get(key: string): T | undefined;
  /** Handlers run after the cache holds the change. 'update' gets (old, new). */
  onAdd(handler: (obj: T) => void): void;
  onUpdate(handler: (oldObj: T, newObj: T) => void): void;
  onDelete(handler: (obj: T) => void): void;
  hasSynced(): boolean;
  /** Resolves once the first list is in the cache. */
  whenSynced(): Promise<void>;
}

/**
 * A rate-limited work queue, as client-go's: a key is never processed by two workers at once;
 * a key added while being processed is processed again after done().
 */
export interface WorkQueue<K = string> {
  add(key: K): void;
  /** Adds after the key's next backoff delay (per-key exponential: 5 ms doubling to 1000 s). */
  addRateLimited(key: K): void;
  addAfter(key: K, delayMs: number): void;
  /** Resets the key's backoff after a success. */
  forget(key: K): void;
  /** How many times the key has been rate-limited since its last forget(). */
  numRequeues(key: K): number;
  /** The next key; undefined once the queue is shut down. */
  get(): Promise<K | undefined>;
  done(key: K): void;
  shutDown(): void;
  readonly length: number;
}

export interface EventTarget {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

/** Events on the objects a controller acts on (core/v1 Events, source "cloud-controller-manager"). */
export interface EventRecorder {
  event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void;
}

export interface ControllerOptions {
  clusterName: string;
  nodeMonitorPeriodMs: number;
  nodeStatusUpdateFrequencyMs: number;
  concurrentServiceSyncs: number;
  /** --concurrent-node-syncs: workers of the cloud-node controller. */
  concurrentNodeSyncs: number;
  /** --load-balancer-class; '' when not set. */
  loadBalancerClass: string;
}

export interface ControllerContext {
  readonly kube: KubeClient;
  readonly core: CoreV1Api;
  readonly nodes: Informer<V1Node>;
  readonly services: Informer<V1Service>;
  readonly events: EventRecorder;
  readonly cloud: CloudProvider;
  readonly options: ControllerOptions;
  readonly log: Logger;
  /** A new work queue whose depth, adds and retries are exported as metrics under `name`. */
  newQueue(name: string): WorkQueue;
  /** Records one sync of `controller`: its duration and whether it failed (metrics). */
  observeSync(controller: string, seconds: number, failed: boolean): void;
}

export interface Controller {
  /** As --controllers names it: cloud-node, cloud-node-lifecycle, service. */
  readonly name: string;
  /** Runs until `signal` aborts (leadership lost or shutdown), then stops its workers and resolves. */
  run(ctx: ControllerContext, signal: AbortSignal): Promise<void>;
}
