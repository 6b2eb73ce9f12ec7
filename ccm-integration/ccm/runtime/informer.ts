// A list+watch cache of one resource over client-node's ListWatch (what makeInformer builds),
// with what client-go's informers have and client-node's lacks:
// - restart after an error, with backoff (client-node's ListWatch stops for good on an error);
// - hasSynced() once the first list is in the cache;
// - update handlers that get (old, new);
// - watch objects deserialized into the same model classes as listed ones (client-node hands
//   watch events over as raw JSON, so timestamps would be strings on one path, Dates on the other).
import type {
  CoreV1Api,
  KubernetesListObject,
  KubernetesObject,
  V1Node,
  V1Service,
} from '@kubernetes/client-node';
import { Backoff } from '../../../common/backoff.js';
import { apiErrorText, type KubeClient } from '../../../common/kube/client.js';
import { errorText, type Logger } from '../../../common/log.js';
import type { Informer } from '../controller.js';

/** "name" for cluster-scoped objects, "namespace/name" for namespaced ones. */
export function objectKey(obj: KubernetesObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

export interface ResourceSource<T extends KubernetesObject> {
  /** e.g. /api/v1/nodes */
  path: string;
  /** client-node model name, e.g. V1Node */
  model: string;
  list(): Promise<KubernetesListObject<T>>;
}

type Deserialize = (data: unknown, model: string) => unknown;
let deserializer: Promise<Deserialize> | undefined;

/**
 * client-node's ObjectSerializer, which its index does not export: the same code that turns
 * listed objects into model classes (no `exports` map, so the file is reachable; pinned ~1.4).
 */
function loadDeserializer(): Promise<Deserialize> {
  deserializer ??= import('@kubernetes/client-node/dist/serializer.js').then(
    ({ ObjectSerializer }) =>
      (data, model) =>
        ObjectSerializer.deserialize(data, model) as unknown,
  );
  return deserializer;
}

type WatchCallback = (phase: string, apiObj: unknown, watchObj?: unknown) => void;

const RESTART_INITIAL_MS = 800;
const RESTART_CAP_MS = 30_000;

export class ListWatchInformer<T extends KubernetesObject> implements Informer<T> {
  private readonly cache = new Map<string, T>();
  private readonly addHandlers: ((obj: T) => void)[] = [];
  private readonly updateHandlers: ((oldObj: T, newObj: T) => void)[] = [];
  private readonly deleteHandlers: ((obj: T) => void)[] = [];
  private readonly backoff = new Backoff(RESTART_INITIAL_MS, RESTART_CAP_MS, 2);
  private listWatch: { start(): Promise<void>; stop(): Promise<void> } | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private synced = false;
  private stopped = false;
  private markSynced: () => void = () => undefined;
  /** Settles when the first list is in, or when the informer stops before that. */
  private readonly syncedOrStopped = new Promise<void>((resolve) => {
    this.markSynced = resolve;
  });

  constructor(
    private readonly kube: KubeClient,
    private readonly source: ResourceSource<T>,
    private readonly log: Logger,
  ) {}

  list(): T[] {
    return [...this.cache.values()];
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  onAdd(handler: (obj: T) => void): void {
    this.addHandlers.push(handler);
  }

  onUpdate(handler: (oldObj: T, newObj: T) => void): void {
    this.updateHandlers.push(handler);
  }

  onDelete(handler: (obj: T) => void): void {
    this.deleteHandlers.push(handler);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once synced (or stopped: then hasSynced() may still be false). */
  whenSynced(): Promise<void> {
    return this.syncedOrStopped;
  }

  /** Starts listing and watching; hasSynced() tells when the first list is in. */
  async start(): Promise<void> {
    if (this.startedOrStopped()) return;
    const deserialize = await loadDeserializer();
    // start() and stop() may have been called while the serializer loaded.
    if (this.startedOrStopped()) return;
    const k8s = this.kube.k8s;
    const { model } = this.source;
    const markWatching = () => {
      // ListWatch starts a watch only after the list is in its cache (and so in ours).
      if (!this.synced) this.log.debug('informer synced');
      this.synced = true;
      this.markSynced();
    };
    const established = () => {
      this.backoff.reset();
    };
    // A Watch that hands over model objects, and tells when the list is done.
    class ModelWatch extends k8s.Watch {
      override async watch(
        path: string,
        query: Record<string, string | number | boolean | undefined>,
        callback: WatchCallback,
        done: (err: unknown) => void,
      ): Promise<AbortController> {
        markWatching();
        const watching = { ended: false };
        const controller = await super.watch(
          path,
          query,
          (phase, obj, raw) => {
            const typed: unknown =
              phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED'
                ? deserialize(obj, model)
                : obj;
            callback(phase, typed, raw);
          },
          (err) => {
            watching.ended = true;
            done(err);
          },
        );
        if (!watching.ended) established();
        return controller;
      }
    }
    const lw = new k8s.ListWatch<T>(
      this.source.path,
      new ModelWatch(this.kube.config),
      () => this.source.list(),
      false,
    );
    lw.on('add', (obj) => {
      this.put(obj);
    });
    lw.on('update', (obj) => {
      this.put(obj);
    });
    lw.on('delete', (obj) => {
      this.remove(obj);
    });
    lw.on('error', (err?: unknown) => {
      this.restartAfterError(err);
    });
    this.listWatch = lw;
    this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.markSynced();
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.listWatch?.stop();
  }

  private startedOrStopped(): boolean {
    return this.listWatch !== undefined || this.stopped;
  }

  private run(): void {
    this.listWatch?.start().catch((err: unknown) => {
      this.restartAfterError(err);
    });
  }

  private restartAfterError(err: unknown): void {
    // Stopping aborts the watch, which ListWatch reports as an error: not one to act on.
    if (this.stopped || this.restartTimer !== undefined) return;
    const delay = this.backoff.next();
    this.log.warn(
      { path: this.source.path, error: apiErrorText(err), retryInMs: delay },
      'list/watch failed',
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.stopped) this.run();
    }, delay);
  }

  private put(obj: T): void {
    const key = objectKey(obj);
    const old = this.cache.get(key);
    this.cache.set(key, obj);
    if (old === undefined) this.notify(this.addHandlers, (h) => h(obj));
    else this.notify(this.updateHandlers, (h) => h(old, obj));
  }

  private remove(obj: T): void {
    const key = objectKey(obj);
    const old = this.cache.get(key);
    this.cache.delete(key);
    this.notify(this.deleteHandlers, (h) => h(old ?? obj));
  }

  /** A handler that throws must not stop the informer or the other handlers. */
  private notify<H>(handlers: H[], call: (h: H) => void): void {
    for (const handler of handlers) {
      try {
        call(handler);
      } catch (err) {
        this.log.error({ path: this.source.path, error: errorText(err) }, 'informer event handler failed');
      }
    }
  }
}

export function nodeInformer(kube: KubeClient, core: CoreV1Api, log: Logger): ListWatchInformer<V1Node> {
  return new ListWatchInformer<V1Node>(
    kube,
    { path: '/api/v1/nodes', model: 'V1Node', list: () => core.listNode() },
    log.child({ informer: 'nodes' }),
  );
}

export function serviceInformer(
  kube: KubeClient,
  core: CoreV1Api,
  log: Logger,
): ListWatchInformer<V1Service> {
  return new ListWatchInformer<V1Service>(
    kube,
    { path: '/api/v1/services', model: 'V1Service', list: () => core.listServiceForAllNamespaces() },
    log.child({ informer: 'services' }),
  );
}
