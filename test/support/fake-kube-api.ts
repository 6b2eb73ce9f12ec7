// A small in-process Kubernetes API server for tests: it speaks the real REST protocol (JSON
// over HTTP, Status objects, resourceVersion conflicts, label selectors) for the two
// resources we use, so the real @kubernetes/client-node talks to it unchanged:
//   POST /apis/authentication.k8s.io/v1/tokenreviews
//   /apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]  (list, watch, get, create,
//   replace, delete; watch replays changes after the resourceVersion it is given)
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FakeToken {
  /** "system:serviceaccount:<ns>:<name>" */
  user: string;
  audiences: string[];
  expired?: boolean;
}

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

const TOKEN_REVIEWS = '/apis/authentication.k8s.io/v1/tokenreviews';
const LEASES = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/]+))?$/;

export class FakeKubeApi {
  readonly tokens = new Map<string, FakeToken>();
  /** namespace/name → lease */
  readonly leases = new Map<string, LeaseObject>();
  readonly requests: { method: string; path: string }[] = [];
  /** The bearer token clients must present. */
  readonly clientToken = 'fake-api-client-token';
  private readonly server = http.createServer((req, res) => {
    this.handle(req, res);
  });
  private version = 1;
  /** Every lease change, for watches that start from a resourceVersion. */
  private readonly events: { rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: LeaseObject }[] = [];
  private readonly watchers = new Set<{
    ns: string;
    selector: [string, string][];
    res: http.ServerResponse;
  }>();
  port = 0;

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    this.port = addr.port;
    return this;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.destroy();
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

  /** Sets a lease directly (as another server would), renewed `ageSeconds` ago. */
  putLease(
    namespace: string,
    name: string,
    labels: Record<string, string>,
    durationSeconds: number,
    ageSeconds = 0,
  ): void {
    const now = new Date(Date.now() - ageSeconds * 1000).toISOString();
    const existed = this.leases.has(`${namespace}/${name}`);
    const lease: LeaseObject = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name,
        namespace,
        labels,
        resourceVersion: String(this.version++),
        uid: name,
        creationTimestamp: now,
      },
      spec: { holderIdentity: name, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now },
    };
    this.leases.set(`${namespace}/${name}`, lease);
    this.emit(existed ? 'MODIFIED' : 'ADDED', lease);
  }

  /** Deletes a lease directly (as an operator or another server would). */
  deleteLease(namespace: string, name: string): void {
    const lease = this.leases.get(`${namespace}/${name}`);
    if (!lease) return;
    this.leases.delete(`${namespace}/${name}`);
    this.emit('DELETED', {
      ...lease,
      metadata: { ...lease.metadata, resourceVersion: String(this.version++) },
    });
  }

  private emit(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: LeaseObject): void {
    const event = { rv: Number(object.metadata.resourceVersion), type, object };
    this.events.push(event);
    for (const w of this.watchers) this.send(w, event);
  }

  private send(
    w: { ns: string; selector: [string, string][]; res: http.ServerResponse },
    e: { type: string; object: LeaseObject },
  ): void {
    if (e.object.metadata.namespace !== w.ns) return;
    if (!w.selector.every(([k, v]) => e.object.metadata.labels?.[k] === v)) return;
    w.res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
  }

  count(method: string, prefix: string): number {
    return this.requests.filter((r) => r.method === method && r.path.startsWith(prefix)).length;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const method = req.method ?? 'GET';
      this.requests.push({ method, path: url.pathname });
      if (req.headers.authorization !== `Bearer ${this.clientToken}`) {
        status(res, 401, 'Unauthorized', 'Unauthorized');
        return;
      }
      let body: unknown;
      try {
        body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
      } catch {
        status(res, 400, 'BadRequest', 'body is not JSON');
        return;
      }
      if (url.pathname === TOKEN_REVIEWS && method === 'POST') {
        this.tokenReview(res, body);
        return;
      }
      const m = LEASES.exec(url.pathname);
      if (m?.[1]) {
        this.lease(res, method, m[1], m[2], url.searchParams, body);
        return;
      }
      status(res, 404, 'NotFound', `the server could not find the requested resource ${url.pathname}`);
    });
  }

  private tokenReview(res: http.ServerResponse, body: unknown): void {
    const spec = (body as { spec?: { token?: string; audiences?: string[] } } | undefined)?.spec ?? {};
    const t = this.tokens.get(spec.token ?? '');
    const wanted = spec.audiences ?? [];
    let statusField: Record<string, unknown>;
    if (!t || t.expired) {
      statusField = { authenticated: false, error: t ? 'token has expired' : 'invalid bearer token' };
    } else if (wanted.length > 0 && !wanted.some((a) => t.audiences.includes(a))) {
      statusField = { authenticated: false, error: 'token audiences is invalid for the target audiences' };
    } else {
      const audiences = wanted.length > 0 ? wanted.filter((a) => t.audiences.includes(a)) : t.audiences;
      statusField = { authenticated: true, user: { username: t.user }, audiences };
    }
    json(res, 201, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec,
      status: statusField,
    });
  }

  private lease(
    res: http.ServerResponse,
    method: string,
    ns: string,
    name: string | undefined,
    query: URLSearchParams,
    body: unknown,
  ): void {
    const key = `${ns}/${name ?? ''}`;
    if (!name && method === 'GET' && query.get('watch') === 'true') {
      const w = { ns, selector: parseSelector(query.get('labelSelector') ?? ''), res };
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      const from = Number(query.get('resourceVersion') ?? '0');
      for (const e of this.events) if (e.rv > from) this.send(w, e);
      this.watchers.add(w);
      res.on('close', () => this.watchers.delete(w));
      return;
    }
    if (!name && method === 'GET') {
      const selector = parseSelector(query.get('labelSelector') ?? '');
      const items = [...this.leases.values()].filter(
        (l) => l.metadata.namespace === ns && selector.every(([k, v]) => l.metadata.labels?.[k] === v),
      );
      json(res, 200, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'LeaseList',
        metadata: { resourceVersion: String(this.version) },
        items,
      });
      return;
    }
    if (!name && method === 'POST') {
      const lease = body as LeaseObject;
      const k = `${ns}/${lease.metadata.name}`;
      if (this.leases.has(k)) {
        status(
          res,
          409,
          'AlreadyExists',
          `leases.coordination.k8s.io "${lease.metadata.name}" already exists`,
        );
        return;
      }
      this.store(k, ns, lease);
      json(res, 201, this.leases.get(k));
      return;
    }
    const existing = this.leases.get(key);
    if (!existing) {
      status(res, 404, 'NotFound', `leases.coordination.k8s.io "${name ?? ''}" not found`);
      return;
    }
    if (method === 'GET') json(res, 200, existing);
    else if (method === 'PUT') {
      const lease = body as LeaseObject;
      if (lease.metadata.resourceVersion !== existing.metadata.resourceVersion) {
        status(
          res,
          409,
          'Conflict',
          'the object has been modified; please apply your changes to the latest version',
        );
        return;
      }
      this.store(key, ns, lease);
      json(res, 200, this.leases.get(key));
    } else if (method === 'DELETE') {
      this.leases.delete(key);
      json(res, 200, { apiVersion: 'v1', kind: 'Status', status: 'Success', code: 200 });
    } else status(res, 405, 'MethodNotAllowed', `${method} is not supported`);
  }

  private store(key: string, ns: string, lease: LeaseObject): void {
    const prev = this.leases.get(key);
    const stored: LeaseObject = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        ...lease.metadata,
        namespace: ns,
        resourceVersion: String(this.version++),
        uid: prev?.metadata.uid ?? lease.metadata.name,
        creationTimestamp: prev?.metadata.creationTimestamp ?? new Date().toISOString(),
      },
      spec: lease.spec,
    };
    this.leases.set(key, stored);
    this.emit(prev ? 'MODIFIED' : 'ADDED', stored);
  }
}

function parseSelector(text: string): [string, string][] {
  return text
    .split(',')
    .filter(Boolean)
    .map((term) => {
      const [k = '', v = ''] = term.split('=');
      return [k.trim(), v.trim()];
    });
}

function json(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function status(res: http.ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { apiVersion: 'v1', kind: 'Status', status: 'Failure', message, reason, code });
}
