// The REST surface of the generic resources: URL → (resource, namespace, name, subresource),
// then list / watch / get / create / update / patch / delete / deletecollection on the store.
//   /api/v1/[watch/][namespaces/<ns>/]<plural>[/<name>[/status]]
//   /apis/<group>/<version>/[watch/][namespaces/<ns>/]<plural>[/<name>[/status]]
// A namespaced plural without a namespace is the cluster-wide list and watch.
import { errors, successStatus } from './api-error.js';
import { isObject, parseBody } from './json.js';
import { applyJsonPatch } from './json-patch.js';
import { applyMergePatch } from './merge-patch.js';
import { ObjectStore, type KubeObject, type Preconditions, type Subresource } from './object-store.js';
import { apiVersionOf, type ResourceRegistry, type ResourceType } from './resources.js';
import { parseFieldSelector, parseLabelSelector, type Selector } from './selectors.js';
import { applyStrategicMergePatch } from './strategic-merge-patch.js';
import { WatchHub, type WatchOptions } from './watch-stream.js';

export const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
];

export interface Route {
  resource: ResourceType;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
  /** The deprecated /watch/ path prefix. */
  watchPrefix: boolean;
}

export type RestResult = { code: number; body: unknown } | { watch: WatchOptions };

export function parseRoute(pathname: string, registry: ResourceRegistry): Route | undefined {
  const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/(.+)$/.exec(pathname);
  if (!m) return undefined;
  const group = m[2] ?? '';
  const version = m[1] ?? m[3] ?? '';
  let segments: string[];
  try {
    segments = (m[4] ?? '').replace(/\/$/, '').split('/').map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const watchPrefix = segments[0] === 'watch';
  if (watchPrefix) segments.shift();
  let namespace: string | undefined;
  if (segments[0] === 'namespaces' && segments.length >= 3) {
    if (!registry.fromPath(group, version, segments[2] ?? '')?.namespaced) return undefined;
    namespace = segments[1];
    segments = segments.slice(2);
  }
  const [plural = '', name, subresource, ...rest] = segments;
  const resource = registry.fromPath(group, version, plural);
  if (!resource || rest.length > 0 || name === '') return undefined;
  if (resource.namespaced && namespace === undefined && name !== undefined) return undefined;
  return { resource, namespace, name, subresource, watchPrefix };
}

function withoutTypeMeta(o: KubeObject): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'apiVersion' && k !== 'kind'));
}

function both(a: Selector, b: Selector): Selector {
  return (o) => a(o) && b(o);
}

function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw errors.badRequest(`${name} must be a non-negative integer, not "${v}"`);
  return Number(v);
}

function requireBody(raw: Buffer): unknown {
  let body: unknown;
  try {
    body = parseBody(raw);
  } catch (err) {
    throw errors.badRequest(`the request body is not valid JSON: ${(err as Error).message}`);
  }
  if (body === undefined) throw errors.badRequest('the request has no body');
  return body;
}

export class RestHandler {
  constructor(
    private readonly store: ObjectStore,
    private readonly registry: ResourceRegistry,
  ) {}

  handle(method: string, url: URL, contentType: string, raw: Buffer): RestResult {
    const route = parseRoute(url.pathname, this.registry);
    if (!route) throw errors.noRoute(url.pathname);
    const q = url.searchParams;
    if (q.has('dryRun') && method !== 'GET') {
      throw errors.badRequest('dryRun is not supported by this fake API server');
    }
    return route.name === undefined
      ? this.collection(method, route, q, raw)
      : this.item(method, route, route.name, q, contentType, raw);
  }

  private selector(route: Route, q: URLSearchParams): Selector {
    return both(
      parseLabelSelector(q.get('labelSelector')),
      parseFieldSelector(q.get('fieldSelector'), route.resource.selectableFields),
    );
  }

  private watchOptions(route: Route, q: URLSearchParams, selector: Selector): { watch: WatchOptions } {
    const resourceVersion = q.get('resourceVersion');
    WatchHub.startVersion(resourceVersion); // throws 400 before the 200 goes out
    return {
      watch: {
        resource: route.resource,
        namespace: route.namespace,
        selector,
        resourceVersion,
        timeoutSeconds: intParam(q, 'timeoutSeconds'),
        sendInitialEvents: q.get('sendInitialEvents') === 'true',
        allowWatchBookmarks: q.get('allowWatchBookmarks') === 'true',
      },
    };
  }

  private isWatch(route: Route, q: URLSearchParams): boolean {
    const w = q.get('watch');
    return route.watchPrefix || w === 'true' || w === '1';
  }

  private collection(method: string, route: Route, q: URLSearchParams, raw: Buffer): RestResult {
    const { resource: r, namespace } = route;
    const clusterWideOfNamespaced = r.namespaced && namespace === undefined;
    switch (method) {
      case 'GET': {
        const selector = this.selector(route, q);
        if (this.isWatch(route, q)) return this.watchOptions(route, q, selector);
        return { code: 200, body: this.list(r, namespace, selector, q) };
      }
      case 'POST':
        if (clusterWideOfNamespaced) throw errors.methodNotAllowed(method, `${r.plural} without a namespace`);
        return { code: 201, body: this.store.create(r, namespace, requireBody(raw)) };
      case 'DELETE': {
        if (clusterWideOfNamespaced) throw errors.methodNotAllowed(method, `${r.plural} without a namespace`);
        const selector = this.selector(route, q);
        const deleted = this.store
          .list(r, namespace, selector)
          .map((o) => this.store.delete(r, o.metadata.namespace, o.metadata.name).object);
        return { code: 200, body: this.listBody(r, deleted) };
      }
      default:
        throw errors.methodNotAllowed(method, r.plural);
    }
  }

  private listBody(r: ResourceType, items: KubeObject[], meta: Record<string, unknown> = {}): unknown {
    return {
      apiVersion: apiVersionOf(r),
      kind: `${r.kind}List`,
      metadata: { resourceVersion: String(this.store.resourceVersion), ...meta },
      items: items.map(withoutTypeMeta),
    };
  }

  /** A list, paged by `limit`/`continue` (the token is the last key of the previous page). */
  private list(
    r: ResourceType,
    namespace: string | undefined,
    selector: Selector,
    q: URLSearchParams,
  ): unknown {
    const keyOf = (o: KubeObject) => ObjectStore.key(r, o.metadata.namespace, o.metadata.name);
    let items = this.store.list(r, namespace, selector);
    const token = q.get('continue');
    if (token) {
      let after: unknown;
      try {
        after = (JSON.parse(Buffer.from(token, 'base64url').toString()) as { after?: unknown }).after;
      } catch {
        after = undefined;
      }
      if (typeof after !== 'string') throw errors.badRequest(`continue key is not valid: "${token}"`);
      items = items.filter((o) => keyOf(o) > after);
    }
    const limit = intParam(q, 'limit');
    if (limit === undefined || limit === 0 || items.length <= limit) return this.listBody(r, items);
    const page = items.slice(0, limit);
    const last = page[page.length - 1];
    const next = Buffer.from(JSON.stringify({ after: last ? keyOf(last) : '' })).toString('base64url');
    return this.listBody(r, page, { continue: next, remainingItemCount: items.length - limit });
  }

  private item(
    method: string,
    route: Route,
    name: string,
    q: URLSearchParams,
    contentType: string,
    raw: Buffer,
  ): RestResult {
    const { resource: r, namespace } = route;
    if (route.subresource !== undefined && (route.subresource !== 'status' || !r.status)) {
      throw errors.noRoute(`${r.plural}/${route.subresource}`);
    }
    const sub: Subresource = route.subresource === 'status' ? 'status' : undefined;
    switch (method) {
      case 'GET': {
        if (this.isWatch(route, q)) {
          const byName: Selector = (o) => isObject(o) && isObject(o.metadata) && o.metadata.name === name;
          return this.watchOptions(route, q, both(byName, this.selector(route, q)));
        }
        return { code: 200, body: this.store.mustGet(r, namespace, name) };
      }
      case 'PUT': {
        const existed = this.store.get(r, namespace, name) !== undefined;
        const body = this.store.update(r, namespace, name, requireBody(raw), sub);
        return { code: existed ? 200 : 201, body };
      }
      case 'PATCH': {
        if (!PATCH_TYPES.includes(contentType)) throw errors.unsupportedMediaType(contentType, PATCH_TYPES);
        const apply = this.patcher(contentType, r.kind, requireBody(raw));
        return { code: 200, body: this.store.patch(r, namespace, name, apply, sub) };
      }
      case 'DELETE': {
        if (sub) throw errors.methodNotAllowed(method, `${r.plural}/status`);
        const { preconditions } = this.deleteOptions(raw, q);
        const { object, removed } = this.store.delete(r, namespace, name, preconditions);
        const body = removed
          ? successStatus({ name, group: r.group, kind: r.plural, uid: object.metadata.uid })
          : object;
        return { code: 200, body };
      }
      default:
        throw errors.methodNotAllowed(method, `${r.plural}/${name}`);
    }
  }

  private patcher(contentType: string, kind: string, patch: unknown): (stored: KubeObject) => unknown {
    switch (contentType) {
      case 'application/json-patch+json':
        return (stored) => applyJsonPatch(stored, patch);
      case 'application/merge-patch+json':
        if (!isObject(patch)) throw errors.badRequest('a merge patch must be a JSON object');
        return (stored) => applyMergePatch(stored, patch);
      case 'application/strategic-merge-patch+json':
        return (stored) => applyStrategicMergePatch(stored, patch, kind);
      default:
        throw errors.unsupportedMediaType(contentType, PATCH_TYPES);
    }
  }

  private deleteOptions(raw: Buffer, q: URLSearchParams): { preconditions: Preconditions } {
    let body: unknown;
    try {
      body = parseBody(raw);
    } catch (err) {
      throw errors.badRequest(`the request body is not valid JSON: ${(err as Error).message}`);
    }
    const options = isObject(body) ? body : {};
    const policy = q.get('propagationPolicy') ?? options.propagationPolicy;
    if (
      policy !== undefined &&
      policy !== null &&
      !['Orphan', 'Background', 'Foreground'].includes(policy as string)
    ) {
      throw errors.unprocessable(
        `propagationPolicy: Unsupported value: ${JSON.stringify(policy)}: supported values: "Foreground", "Background", "Orphan"`,
      );
    }
    const pre = isObject(options.preconditions) ? options.preconditions : {};
    const preconditions: Preconditions = {};
    if (typeof pre.uid === 'string') preconditions.uid = pre.uid;
    if (typeof pre.resourceVersion === 'string') preconditions.resourceVersion = pre.resourceVersion;
    return { preconditions };
  }
}
