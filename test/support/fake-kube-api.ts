// A small in-process Kubernetes API server for tests. It speaks the real REST protocol (JSON
// over HTTP, Status errors, resourceVersion conflicts, selectors, watch streams), so the real
// @kubernetes/client-node talks to it unchanged. It serves:
//   POST /apis/authentication.k8s.io/v1/tokenreviews   (answers from `tokens`)
//   every resource of the table in fake-kube/resources.ts (nodes, services, pods, events,
//   endpoints, configmaps, secrets, leases, endpointslices, events.k8s.io events, ...; add
//   more with `register`): list, watch, get, create, update, patch (JSON, merge and
//   strategic merge), delete with finalizers, deletecollection, and /status where the real
//   resource has it. The rules each part follows are at the top of its module in fake-kube/.
//   Discovery (/api, /apis, /api/v1, /apis/<g>/<v>, /version) for kubectl.
//
// Usage in tests:
//   const api = await new FakeKubeApi().start();          // t.after(() => api.stop())
//   const kubeconfig = api.writeKubeconfig(dir);           // for loadKubeClient or a child process
//   api.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: {}, status: {} });
//   api.get('nodes', 'n1'); api.get('services', 'default', 'web'); api.list('services', 'default');
//   api.delete('services', 'default', 'web');             // as a user would: finalizers hold it
//   api.remove('nodes', 'n1');                             // gone at once, whatever its finalizers
//   api.failNext('PATCH', '/api/v1/nodes/n1/status', 500); // the next such request gets a 500 Status
//   api.onRequest((req) => (req.watch ? { status: 503 } : undefined)); // any answer, any request
//   await api.waitFor('n1 tainted', () => taintsOf(api.get('nodes', 'n1')).length > 0 || undefined);
//   api.dropWatches(); api.compactHistory();               // informers re-watch; next re-watch gets 410
// With client-node 1.4 a patch goes out as application/json-patch+json unless the call says
// otherwise: pass `setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)` (or
// MergePatch) as the call's second argument; see test/integration/fake-kube-api.test.ts.
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError, errors, failureStatus } from './fake-kube/api-error.js';
import { discovery } from './fake-kube/discovery.js';
import { clone, parseBody } from './fake-kube/json.js';
import { ObjectStore, type Change, type KubeObject } from './fake-kube/object-store.js';
import { RequestFaults, replyBody, type RequestHook } from './fake-kube/request-faults.js';
import {
  DEFAULT_RESOURCES,
  qualifiedName,
  ResourceRegistry,
  type ResourceType,
} from './fake-kube/resources.js';
import { RestHandler } from './fake-kube/rest-handler.js';
import { reviewToken, type FakeToken } from './fake-kube/token-review.js';
import { WatchHub } from './fake-kube/watch-stream.js';
import { waitFor } from './wait.js';

export type { FakeToken } from './fake-kube/token-review.js';
export type { Change, ChangeType, KubeObject, ObjectMeta } from './fake-kube/object-store.js';
export type { ResourceType } from './fake-kube/resources.js';
export type { FakeReply, FakeRequest, RequestHook } from './fake-kube/request-faults.js';

export interface LeaseObject {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    resourceVersion: string;
    uid: string;
    creationTimestamp: string;
  };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
  };
}

export interface FakeKubeApiOptions {
  /** Changes kept for watches that resume from a resourceVersion; older ones get 410. Default 10,000. */
  historyLimit?: number;
  /** Resources to serve beside DEFAULT_RESOURCES. */
  resources?: ResourceType[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** The query string without "?". */
  query: string;
}

/** (name) for a cluster-scoped resource, (namespace, name) for a namespaced one. */
export type ObjectRef = [name: string] | [namespace: string, name: string];

const TOKEN_REVIEWS = '/apis/authentication.k8s.io/v1/tokenreviews';

function send(
  res: http.ServerResponse,
  code: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(code, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function isWatchUrl(url: URL): boolean {
  const w = url.searchParams.get('watch');
  return w === 'true' || w === '1' || /^\/apis?\/(?:[^/]+\/)?v[^/]*\/watch\//.test(url.pathname);
}

function lenientBody(raw: Buffer): unknown {
  try {
    return parseBody(raw);
  } catch {
    return raw.toString('utf8');
  }
}

export class FakeKubeApi {
  readonly tokens = new Map<string, FakeToken>();
  /** namespace/name → lease: the live store of coordination.k8s.io leases (read it, do not write it). */
  readonly leases: Map<string, LeaseObject>;
  readonly requests: RecordedRequest[] = [];
  /** The bearer token clients must present. */
  readonly clientToken = 'fake-api-client-token';
  readonly resources: ResourceRegistry;
  port = 0;
  private readonly store: ObjectStore;
  private readonly rest: RestHandler;
  private readonly watches: WatchHub;
  private readonly faults = new RequestFaults();
  private readonly server = http.createServer((req, res) => {
    this.handle(req, res);
  });

  constructor(options: FakeKubeApiOptions = {}) {
    this.resources = new ResourceRegistry([...DEFAULT_RESOURCES, ...(options.resources ?? [])]);
    this.store = new ObjectStore(this.resources, options.historyLimit ?? 10_000);
    this.rest = new RestHandler(this.store, this.resources);
    this.watches = new WatchHub(this.store);
    this.leases = this.store.mapOf(this.resources.fromName('leases.coordination.k8s.io')) as unknown as Map<
      string,
      LeaseObject
    >;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    this.port = addr.port;
    return this;
  }

  /** Closes every connection and watch; safe to call twice. */
  async stop(): Promise<void> {
    this.watches.destroyAll();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Writes a kubeconfig for this server into `dir`; returns its path. Plain HTTP on loopback:
   * client-node allows it only with insecure-skip-tls-verify.
   */
  writeKubeconfig(dir: string, name = `kubeconfig-${this.port}`): string {
    const path = join(dir, name);
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: fake\n  cluster:\n    server: http://127.0.0.1:${this.port}\n    insecure-skip-tls-verify: true`,
        'users:',
        `- name: tester\n  user:\n    token: ${this.clientToken}`,
        'contexts:',
        '- name: fake\n  context:\n    cluster: fake\n    user: tester',
        'current-context: fake',
        '',
      ].join('\n'),
    );
    return path;
  }

  count(method: string, prefix: string): number {
    return this.requests.filter((r) => r.method === method && r.path.startsWith(prefix)).length;
  }

  // ---- seeding and reading the store ----------------------------------------------------------

  /** Serves one more resource (a CRD, apps/v1 deployments, ...). */
  register(resource: ResourceType): void {
    this.resources.register(resource);
  }

  /**
   * Creates or replaces an object whole, status included, as another client would have
   * written it: a new resourceVersion and an ADDED or MODIFIED event for watchers, uid and
   * creationTimestamp kept from a stored object. Needs apiVersion, kind, metadata.name (and
   * metadata.namespace when namespaced). Returns a copy of what is stored.
   */
  apply(obj: object): KubeObject {
    return clone(this.store.put(JSON.parse(JSON.stringify(obj)) as unknown));
  }

  /** A copy of the object, or undefined. `resource` is "nodes" or "leases.coordination.k8s.io". */
  get(resource: string, ...ref: ObjectRef): KubeObject | undefined {
    const { r, namespace, name } = this.locate(resource, ref);
    const o = this.store.get(r, namespace, name);
    return o && clone(o);
  }

  /** Copies of the objects, sorted by namespace and name, in one namespace or all. */
  list(resource: string, namespace?: string): KubeObject[] {
    return this.store.list(this.resources.fromName(resource), namespace).map((o) => clone(o));
  }

  /**
   * Deletes as a client would: an object with finalizers gets a deletionTimestamp and stays
   * until they are removed. False when there was no such object.
   */
  delete(resource: string, ...ref: ObjectRef): boolean {
    const { r, namespace, name } = this.locate(resource, ref);
    if (!this.store.get(r, namespace, name)) return false;
    this.store.delete(r, namespace, name);
    return true;
  }

  /** Removes an object at once, finalizers or not (DELETED event). False when there was none. */
  remove(resource: string, ...ref: ObjectRef): boolean {
    const { r, namespace, name } = this.locate(resource, ref);
    return this.store.forceRemove(r, namespace, name) !== undefined;
  }

  /** The current resourceVersion (the last one handed out). */
  get resourceVersion(): string {
    return String(this.store.resourceVersion);
  }

  /** Retained changes (oldest first), of one resource or all. The objects are shared: read only. */
  changes(resource?: string): Change[] {
    const all = this.store.changes();
    if (resource === undefined) return [...all];
    const r = this.resources.fromName(resource);
    return all.filter((c) => c.resource.group === r.group && c.resource.plural === r.plural);
  }

  /** Calls `listener` on every change as it is stored; returns the unsubscribe function. */
  onChange(listener: (change: Change) => void): () => void {
    return this.store.subscribe(listener);
  }

  /** Waits until `check` returns something other than undefined/false (test/support/wait.ts). */
  waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs?: number): Promise<T> {
    return waitFor(what, check, timeoutMs);
  }

  // ---- faults -------------------------------------------------------------------------------

  /**
   * The next `count` requests with `method` ("*" for any) whose path starts with `pathPrefix`
   * get a Status error `status` (reason from the code: 409 Conflict, 500 InternalError, ...).
   * Checked after authentication, before anything else, in the order the rules were added.
   */
  failNext(method: string, pathPrefix: string, status: number, count = 1, message?: string): void {
    this.faults.failNext(method, pathPrefix, status, count, message ?? `injected failure (${status})`);
  }

  /**
   * `hook` sees every authenticated request (after failNext rules); returning a reply answers
   * it instead of the fake (a reply without body is a Status for its code), undefined lets it
   * through. It may be async, to hold a request. Returns the function that removes the hook.
   */
  onRequest(hook: RequestHook): () => void {
    return this.faults.onRequest(hook);
  }

  /** Ends every open watch stream: clients re-watch from the last resourceVersion they saw. */
  dropWatches(): void {
    this.watches.closeAll();
  }

  /** Watch streams open now. */
  get openWatches(): number {
    return this.watches.count;
  }

  /** Forgets the change history: resuming a watch from any earlier resourceVersion gets 410. */
  compactHistory(): void {
    this.store.compact();
  }

  // ---- leases, as the first users of this fake write them ------------------------------------

  /** Sets a lease directly (as another server would), renewed `ageSeconds` ago. */
  putLease(
    namespace: string,
    name: string,
    labels: Record<string, string>,
    durationSeconds: number,
    ageSeconds = 0,
  ): void {
    // MicroTime: six fractional digits, as kube-apiserver requires.
    const at = new Date(Date.now() - ageSeconds * 1000).toISOString().replace('Z', '000Z');
    this.apply({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace, labels },
      spec: { holderIdentity: name, leaseDurationSeconds: durationSeconds, acquireTime: at, renewTime: at },
    });
  }

  /** Deletes a lease directly (as an operator or another server would). */
  deleteLease(namespace: string, name: string): void {
    this.remove('leases.coordination.k8s.io', namespace, name);
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  private locate(
    resource: string,
    ref: ObjectRef,
  ): { r: ResourceType; namespace: string | undefined; name: string } {
    const r = this.resources.fromName(resource);
    if (ref.length === 2) {
      const [namespace, name] = ref;
      if (!r.namespaced && namespace) {
        throw new Error(
          `${qualifiedName(r)} is cluster-scoped: pass only the name, not namespace "${namespace}"`,
        );
      }
      return { r, namespace: r.namespaced ? namespace : undefined, name };
    }
    if (r.namespaced) throw new Error(`${qualifiedName(r)} is namespaced: pass the namespace and the name`);
    return { r, namespace: undefined, name: ref[0] };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.respond(req, res, Buffer.concat(chunks)).catch((err: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err instanceof ApiError) send(res, err.code, err.toStatus());
        else send(res, 500, failureStatus(500, 'InternalError', `fake API server: ${String(err)}`));
      });
    });
  }

  private async respond(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: url.pathname, query: url.search.slice(1) });
    if (req.headers.authorization !== `Bearer ${this.clientToken}`) throw errors.unauthorized();
    const reply = await this.faults.reply({
      method,
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body: lenientBody(raw),
      watch: isWatchUrl(url),
    });
    if (reply) {
      send(res, reply.status, replyBody(reply), reply.headers);
      return;
    }
    if (url.pathname === TOKEN_REVIEWS && method === 'POST') {
      let body: unknown;
      try {
        body = parseBody(raw);
      } catch {
        throw errors.badRequest('body is not JSON');
      }
      send(res, 201, reviewToken(this.tokens, body));
      return;
    }
    if (method === 'GET') {
      const doc = discovery(url.pathname, this.resources.all(), `127.0.0.1:${this.port}`);
      if (doc !== undefined) {
        send(res, 200, doc);
        return;
      }
    }
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const result = this.rest.handle(method, url, contentType, raw);
    if ('watch' in result) this.watches.serve(result.watch, res);
    else send(res, result.code, result.body);
  }
}
