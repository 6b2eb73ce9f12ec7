// Watch streams: newline-delimited JSON events on a chunked 200 response, as the real API
// server sends them.
// - resourceVersion absent or "0": an ADDED event for each current object, then live changes
//   (with sendInitialEvents=true and allowWatchBookmarks=true, a BOOKMARK carrying the
//   k8s.io/initial-events-end annotation follows the initial events);
// - resourceVersion N: every retained change after N, then live changes; when changes after N
//   were dropped from the bounded history, an ERROR event with a 410 Expired Status, then the
//   stream ends (client-node's informer then lists again);
// - a change that makes an object start (stop) matching the selectors is sent as ADDED
//   (DELETED), as the watch cache does;
// - timeoutSeconds ends the stream after that long.
import type http from 'node:http';
import { ApiError, errors } from './api-error.js';
import type { Change, KubeObject, ObjectStore } from './object-store.js';
import { apiVersionOf, resourceKey, type ResourceType } from './resources.js';
import type { Selector } from './selectors.js';

export interface WatchOptions {
  resource: ResourceType;
  /** Undefined: every namespace. */
  namespace: string | undefined;
  selector: Selector;
  resourceVersion: string | null;
  timeoutSeconds: number | undefined;
  sendInitialEvents: boolean;
  allowWatchBookmarks: boolean;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export class WatchHub {
  /** Open streams and what stops each one's delivery. */
  private readonly open = new Map<http.ServerResponse, () => void>();

  constructor(private readonly store: ObjectStore) {}

  get count(): number {
    return this.open.size;
  }

  /** Ends every open watch stream, as an API server restart or a load balancer would. */
  closeAll(): void {
    for (const [res, detach] of this.open) {
      detach();
      res.end();
    }
  }

  destroyAll(): void {
    for (const [res, detach] of this.open) {
      detach();
      res.destroy();
    }
  }

  /** The resourceVersion a watch resumes after; undefined for "now"; ApiError 400 when malformed. */
  static startVersion(resourceVersion: string | null): number | undefined {
    if (resourceVersion === null || resourceVersion === '' || resourceVersion === '0') return undefined;
    if (!/^\d+$/.test(resourceVersion))
      throw errors.badRequest(`invalid resource version: "${resourceVersion}"`);
    return Number(resourceVersion);
  }

  serve(options: WatchOptions, res: http.ServerResponse): void {
    const from = WatchHub.startVersion(options.resourceVersion);
    const { resource, namespace, selector } = options;
    const matches = (o: KubeObject): boolean =>
      (namespace === undefined || o.metadata.namespace === namespace) && selector(o);
    const send = (type: EventType, object: unknown): void => {
      if (!res.writableEnded) res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const key = resourceKey(resource);
    const forward = (c: Change): void => {
      if (resourceKey(c.resource) !== key) return;
      const type = visibleType(c, matches);
      if (type) send(type, c.object);
    };

    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from === undefined) {
      for (const o of this.store.list(resource, namespace, selector)) send('ADDED', o);
      if (options.sendInitialEvents && options.allowWatchBookmarks) {
        send('BOOKMARK', {
          apiVersion: apiVersionOf(resource),
          kind: resource.kind,
          metadata: {
            resourceVersion: String(this.store.resourceVersion),
            annotations: { 'k8s.io/initial-events-end': 'true' },
          },
        });
      }
    } else {
      let replay: Change[];
      try {
        replay = this.store.changesSince(from);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        send('ERROR', err.toStatus());
        res.end();
        return;
      }
      for (const c of replay) forward(c);
    }
    const unsubscribe = this.store.subscribe(forward);
    const timer =
      options.timeoutSeconds === undefined
        ? undefined
        : setTimeout(() => res.end(), options.timeoutSeconds * 1000);
    const detach = (): void => {
      unsubscribe();
      clearTimeout(timer);
      this.open.delete(res);
    };
    this.open.set(res, detach);
    res.on('close', detach);
  }
}

/** What a watcher with a filter sees of a change: objects entering or leaving the filter. */
function visibleType(c: Change, matches: (o: KubeObject) => boolean): EventType | undefined {
  const now = matches(c.object);
  if (c.type !== 'MODIFIED') return now ? c.type : undefined;
  const before = c.previous !== undefined && matches(c.previous);
  if (now) return before ? 'MODIFIED' : 'ADDED';
  return before ? 'DELETED' : undefined;
}
