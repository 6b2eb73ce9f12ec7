// The service controller and the `konnectivity` provider's load balancer, end to end: a real
// proxy-server (gRPC on a Unix socket, --proxy-strategies=destHost), one real agent per node
// that may dial only its own node's address (--allowed-destinations), backends on distinct
// loopback addresses standing in for each node's nodePorts, the fake Kubernetes API, and the
// CCM as a real process listening on pool addresses of 127.0.0.0/8. Every byte from a client
// to a backend goes CCM listener → tunnel → the node's agent → nodePort.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  startCcm,
  writeGrpcUdsEgressConfig,
  writeKonnectivityCloudConfig,
  type CcmInfo,
} from '../support/ccm.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import { FakeKubeApi, type KubeObject } from '../support/fake-kube-api.js';
import { httpGet, type Proc } from '../support/processes.js';
import { deterministicChunks, hashOf, readAll, readAllHash, writeAll } from '../support/targets.js';
import { waitFor } from '../support/wait.js';

const NODES = [
  { name: 'node-a', ip: '127.0.2.11' },
  { name: 'node-b', ip: '127.0.2.12' },
] as const;
type NodeName = (typeof NODES)[number]['name'];
/** The load balancer address pool: two addresses, so that a third Service on one port waits. */
const POOL = ['127.0.3.1', '127.0.3.2'] as const;
const FINALIZER = 'service.kubernetes.io/load-balancer-cleanup';
const LEASE_ARGS = [
  '--leader-elect=true',
  '--leader-elect-lease-duration=2s',
  '--leader-elect-renew-deadline=1500ms',
  '--leader-elect-retry-period=500ms',
];
const MiB = 1024 * 1024;

interface ServiceShape {
  metadata: {
    name: string;
    finalizers?: string[];
    deletionTimestamp?: string;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown> & {
    ports: { name: string; port: number; nodePort: number; protocol?: string }[];
  };
  status?: {
    loadBalancer?: {
      ingress?: { ip?: string; ports?: { port: number; protocol: string; error?: string }[] }[];
    };
  };
}

// ---- node-side servers ------------------------------------------------------------------------

/**
 * A node's "nodePort": answers an HTTP GET with the node's name; "echo\n" echoes what follows
 * until the client ends (half-close), for hashing big transfers.
 */
function webServer(node: string): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (head.subarray(0, 4).toString('latin1') === 'GET ') {
        if (head.indexOf('\r\n\r\n') < 0) return;
        s.off('data', onData);
        const body = `hello from ${node}\n`;
        s.end(
          `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
        return;
      }
      const nl = head.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      const rest = head.subarray(nl + 1);
      if (rest.length > 0) s.write(rest);
      s.pipe(s);
    };
    s.on('data', onData);
    // A client that leaves before asking anything (a health check's dial) is closed on.
    s.once('end', () => {
      if (s.listenerCount('data') > 0) s.end();
    });
  });
}

/** Answers with what the PROXY protocol header told it (as JSON), then closes. */
function proxyAwareServer(): net.Server {
  return net.createServer((s) => {
    s.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const answer = parseProxyHeader(head);
      if (answer === undefined) return;
      s.off('data', onData);
      s.end(JSON.stringify(answer));
    };
    s.on('data', onData);
    s.once('end', () => s.end());
  });
}

interface ProxyHeader {
  version: string;
  source: string;
  sourcePort: number;
  destination: string;
  destinationPort: number;
}

/** A whole v1 or v2 header parsed; undefined while incomplete. */
function parseProxyHeader(buf: Buffer): ProxyHeader | { error: string } | undefined {
  if (buf.subarray(0, 6).toString('latin1') === 'PROXY ') {
    const end = buf.indexOf('\r\n');
    if (end < 0) return undefined;
    const [, , src = '', dst = '', sport = '', dport = ''] = buf.toString('latin1', 0, end).split(' ');
    return {
      version: 'v1',
      source: src,
      sourcePort: Number(sport),
      destination: dst,
      destinationPort: Number(dport),
    };
  }
  if (buf.length < 16) return undefined;
  if (buf.readUInt8(13) !== 0x11)
    return { error: `not TCP over IPv4: ${buf.subarray(0, 16).toString('hex')}` };
  if (buf.length < 28) return undefined;
  const ip = (at: number) => [0, 1, 2, 3].map((i) => buf.readUInt8(at + i)).join('.');
  return {
    version: 'v2',
    source: ip(16),
    sourcePort: buf.readUInt16BE(24),
    destination: ip(20),
    destinationPort: buf.readUInt16BE(26),
  };
}

/** What each node's kube-proxy healthz answers (for externalTrafficPolicy: Local). */
const healthzStatus: Record<NodeName, number> = { 'node-a': 200, 'node-b': 503 };

function healthServer(node: NodeName): http.Server {
  return http.createServer((_req, res) => {
    res.statusCode = healthzStatus[node];
    res.end('{}');
  });
}

type AnyServer = net.Server | http.Server;

function listen(server: AnyServer, host: string, port: number): Promise<number> {
  const sockets = new Set<net.Socket>();
  openSockets.set(server, sockets);
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** Open sockets of each server listen() started, so closeServer() never waits on a client. */
const openSockets = new WeakMap<AnyServer, Set<net.Socket>>();

function closeServer(server: AnyServer): Promise<void> {
  if (server instanceof http.Server) server.closeAllConnections();
  for (const socket of openSockets.get(server) ?? []) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** One server per node on the same port (a nodePort is the same on every node). */
async function onEveryNode<S extends AnyServer>(
  make: (node: NodeName) => S,
): Promise<{ port: number; servers: Map<NodeName, S> }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers = new Map<NodeName, S>();
    try {
      let port = 0;
      for (const node of NODES) {
        const server = make(node.name);
        servers.set(node.name, server);
        port = await listen(server, node.ip, port);
      }
      return { port, servers };
    } catch {
      await Promise.all([...servers.values()].map((s) => closeServer(s).catch(() => undefined)));
    }
  }
  throw new Error('no port free on every node address');
}

/** A port free on both pool addresses now (bound and released). */
async function freePoolPort(): Promise<number> {
  const { port, servers } = await (async () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const held: net.Server[] = [];
      try {
        let p = 0;
        for (const address of POOL) {
          const s = net.createServer();
          held.push(s);
          p = await listen(s, address, p);
        }
        return { port: p, servers: held };
      } catch {
        await Promise.all(held.map((s) => closeServer(s).catch(() => undefined)));
      }
    }
    throw new Error('no port free on the pool addresses');
  })();
  await Promise.all(servers.map((s) => closeServer(s)));
  return port;
}

// ---- clients ------------------------------------------------------------------------------

/** One HTTP request on a connection of its own; the body (a node's greeting). */
function httpVia(host: string, port: number, localAddress?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host, port, path: '/', agent: false, localAddress, headers: { connection: 'close' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body.trim()));
      },
    );
    req.on('error', reject);
  });
}

/** Which node answered each of `count` requests (in batches of 10 at once). */
async function spread(
  host: string,
  port: number,
  count: number,
  localAddress?: string,
): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < count; i += 10) {
    const bodies = await Promise.all(
      Array.from({ length: Math.min(10, count - i) }, () => httpVia(host, port, localAddress)),
    );
    for (const body of bodies) seen.set(body, (seen.get(body) ?? 0) + 1);
  }
  return seen;
}

function connect(host: string, port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress, allowHalfOpen: true }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Resolves true once a connection to host:port is refused. */
async function refused(host: string, port: number): Promise<boolean> {
  try {
    const s = await connect(host, port);
    s.destroy();
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

/** Writes `text` on an echo connection and waits for it back. */
function echoOnce(s: net.Socket, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer) => {
      got += c.toString();
      if (got.length >= text.length) {
        s.off('data', onData);
        s.off('error', reject);
        if (got === text) resolve();
        else reject(new Error(`echo answered ${JSON.stringify(got)}`));
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(text);
  });
}

// ---- the API side -------------------------------------------------------------------------

function nodeObject(name: string, ip: string, labels: Record<string, string> = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
    spec: { providerID: `konnectivity://${name}` },
    status: {
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
      addresses: [
        { type: 'InternalIP', address: ip },
        { type: 'Hostname', address: name },
      ],
    },
  };
}

function serviceObject(
  name: string,
  ports: { name: string; port: number; nodePort: number; protocol?: string }[],
  extra: { spec?: Record<string, unknown>; annotations?: Record<string, string> } = {},
): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: 'default',
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    spec: {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Cluster',
      ports: ports.map((p) => ({ protocol: 'TCP', targetPort: 8080, ...p })),
      ...extra.spec,
    },
  };
}

describe('konnectivity-ccm service load balancers through the tunnel', () => {
  let dir: string;
  let cluster: Cluster;
  let api: FakeKubeApi;
  let ccm: CcmInfo;
  let standby: CcmInfo | undefined;
  let web: { port: number; servers: Map<NodeName, net.Server> };
  let proxyAware: { port: number; servers: Map<NodeName, net.Server> };
  let health: { port: number; servers: Map<NodeName, http.Server> };
  const agents = new Map<NodeName, Proc>();
  const webSockets = new Set<net.Socket>();
  const cleanups: (() => Promise<unknown>)[] = [];

  const svc = (name: string): ServiceShape | undefined =>
    api.get('services', 'default', name) as ServiceShape | undefined;
  const ingressOf = (name: string) => svc(name)?.status?.loadBalancer?.ingress?.[0];
  const waitIngress = (name: string) =>
    waitFor(`${name} has an ingress address`, () => {
      const ingress = ingressOf(name);
      return ingress?.ip ? { ip: ingress.ip, ports: ingress.ports ?? [] } : undefined;
    });
  const eventsFor = (name: string, reason: string): KubeObject[] =>
    api.list('events').filter((e) => {
      const ev = e as unknown as { reason?: string; involvedObject?: { kind?: string; name?: string } };
      return ev.reason === reason && ev.involvedObject?.kind === 'Service' && ev.involvedObject.name === name;
    });
  const waitEvent = (name: string, reason: string) =>
    waitFor(`${reason} event on ${name}`, () => eventsFor(name, reason)[0]);
  /** Changes a stored Service as a user would (a whole object written back, status and finalizers kept). */
  const update = (name: string, change: (s: ServiceShape) => void): void => {
    const current = svc(name);
    assert.ok(current, `no Service ${name}`);
    change(current);
    api.apply(current);
  };
  const metricValue = async (
    info: CcmInfo,
    name: string,
    labels: Record<string, string>,
  ): Promise<number | undefined> => {
    const { body } = await httpGet(info.port, '/metrics');
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    const line = body.split('\n').find((l) => l.startsWith(`${name}{`) && pairs.every((p) => l.includes(p)));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const waitHealth = (service: string, port: number, node: NodeName, value: number) =>
    waitFor(
      `${service}:${port} backend ${node} health ${value}`,
      async () =>
        (await metricValue(ccm, 'konnectivity_ccm_load_balancer_backend_healthy', {
          service: `default/${service}`,
          port: String(port),
          backend: node,
        })) === value,
    );
  const startWeb = async (node: NodeName): Promise<void> => {
    const ip = NODES.find((n) => n.name === node)?.ip ?? '';
    const server = webServer(node);
    server.on('connection', (s) => {
      webSockets.add(s);
      s.once('close', () => webSockets.delete(s));
    });
    await listen(server, ip, web.port);
    web.servers.set(node, server);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'knp-ccm-lb-'));
    cluster = await startCluster('grpc', 'uds', { agents: 0, serverArgs: ['--proxy-strategies=destHost'] });
    cleanups.push(() => cluster.stop());
    for (const node of NODES) {
      const agent = await cluster.startAgent([
        `--agent-id=agent-${node.name}`,
        `--agent-identifiers=host=${node.name}&ipv4=${node.ip}`,
        // Each backend is reachable only through its own node's agent.
        `--allowed-destinations=${node.ip}/32`,
      ]);
      agents.set(node.name, agent);
    }
    web = await onEveryNode(webServer);
    for (const server of web.servers.values()) {
      server.on('connection', (s) => {
        webSockets.add(s);
        s.once('close', () => webSockets.delete(s));
      });
    }
    proxyAware = await onEveryNode(proxyAwareServer);
    health = await onEveryNode(healthServer);
    cleanups.push(async () => {
      for (const s of webSockets) s.destroy();
      await Promise.all(
        [...web.servers.values(), ...proxyAware.servers.values(), ...health.servers.values()].map((s) =>
          closeServer(s).catch(() => undefined),
        ),
      );
    });

    api = await new FakeKubeApi().start();
    cleanups.push(() => api.stop());
    for (const node of NODES) api.apply(nodeObject(node.name, node.ip));
    const egressFile = writeGrpcUdsEgressConfig(dir, cluster.frontend.uds ?? '');
    const cloudConfig = writeKonnectivityCloudConfig(dir, {
      servers: [`http://127.0.0.1:${cluster.server.adminPort}`],
      egressFile,
      extra: [
        'loadBalancer:',
        `  addresses: ["${POOL[0]}-${POOL[1]}"]`,
        '  healthCheckInterval: 300ms',
        '  healthCheckTimeout: 300ms',
        '  drainTimeout: 20s',
      ],
    });
    const ccmArgs = [
      `--kubeconfig=${api.writeKubeconfig(dir)}`,
      '--cloud-provider=konnectivity',
      `--cloud-config=${cloudConfig}`,
      '--controllers=service',
      '--concurrent-service-syncs=2',
      ...LEASE_ARGS,
    ];
    ccm = await startCcm(ccmArgs);
    cleanups.push(() => ccm.proc.kill());
    cleanups.push(() => standby?.proc.kill() ?? Promise.resolve());
    startStandby = async () => {
      standby = await startCcm(ccmArgs);
      return standby;
    };
  });
  let startStandby: () => Promise<CcmInfo>;

  // A failure here has been seen once, under the load of the whole suite, and not since: the
  // processes' own words are what would tell why next time.
  afterEach((t) => {
    // TestContext.passed (Node 20.12+) is not in this @types/node.
    if ((t as { passed?: boolean }).passed !== false) return;
    // Unset if `before` failed part way.
    const started = { cluster: cluster as Cluster | undefined, ccm: ccm as CcmInfo | undefined };
    const procs: [string, Proc | undefined][] = [
      ['proxy-server', started.cluster?.server.proc],
      ...[...agents].map(([node, p]): [string, Proc] => [`agent on ${node}`, p]),
      ['konnectivity-ccm', started.ccm?.proc],
      ['konnectivity-ccm standby', standby?.proc],
    ];
    for (const [name, p] of procs) {
      if (p) process.stderr.write(`--- ${name}, last lines:\n${p.tail()}\n`);
    }
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  let webPort: number;

  it('ensures a load balancer over two nodes: finalizer first, ingress status, Events; Node http, curl and 64 MiB each way go through', async () => {
    webPort = await freePoolPort();
    api.apply(serviceObject('web', [{ name: 'http', port: webPort, nodePort: web.port }]));
    const ingress = await waitIngress('web');
    assert.equal(ingress.ip, POOL[0]);
    assert.deepEqual(ingress.ports, [{ port: webPort, protocol: 'TCP' }]);
    assert.deepEqual(svc('web')?.metadata.finalizers, [FINALIZER]);
    await waitEvent('web', 'EnsuringLoadBalancer');
    await waitEvent('web', 'EnsuredLoadBalancer');
    const writes = api.requests
      .filter((r) => r.method === 'PATCH' && r.path.startsWith('/api/v1/namespaces/default/services/web'))
      .map((r) => r.path);
    assert.deepEqual(writes, [
      '/api/v1/namespaces/default/services/web',
      '/api/v1/namespaces/default/services/web/status',
    ]);
    const byNode = await spread(POOL[0], webPort, 200);
    assert.deepEqual([...byNode.keys()].sort(), ['hello from node-a', 'hello from node-b']);
    assert.equal((byNode.get('hello from node-a') ?? 0) + (byNode.get('hello from node-b') ?? 0), 200);

    const { stdout } = await promisify(execFile)('curl', [
      '-sS',
      '--max-time',
      '20',
      '-H',
      'Connection: close',
      `http://${POOL[0]}:${webPort}/[1-40]`,
    ]);
    const curled = stdout.split('\n').filter(Boolean);
    assert.equal(curled.length, 40);
    assert.deepEqual([...new Set(curled)].sort(), ['hello from node-a', 'hello from node-b']);
    const s = await connect(POOL[0], webPort);
    const back = readAllHash(s);
    s.write('echo\n');
    await writeAll(s, deterministicChunks(64 * MiB, 15));
    s.end();
    const { hash, bytes } = await back;
    assert.equal(bytes, 64 * MiB);
    assert.equal(hash, hashOf(64 * MiB, 15));
    assert.ok(
      ((await metricValue(ccm, 'konnectivity_ccm_load_balancer_bytes_total', {
        service: 'default/web',
        direction: 'to_backend',
      })) ?? 0) > 0,
    );
  });

  it('stops sending new connections to a backend that fails its checks, and uses it again once healthy', async () => {
    const b = web.servers.get('node-b');
    assert.ok(b);
    await closeServer(b);
    await waitHealth('web', webPort, 'node-b', 0);
    const whileDown = await spread(POOL[0], webPort, 40);
    assert.deepEqual([...whileDown.keys()], ['hello from node-a']);

    await startWeb('node-b');
    await waitHealth('web', webPort, 'node-b', 1);
    const seen = new Set<string>();
    await waitFor('node-b answering again', async () => {
      seen.add(await httpVia(POOL[0], webPort));
      return seen.has('hello from node-b');
    });
  });

  it('leaves out a node labelled exclude-from-external-load-balancers, and takes it back', async () => {
    api.apply(
      nodeObject('node-b', NODES[1].ip, {
        'node.kubernetes.io/exclude-from-external-load-balancers': 'true',
      }),
    );
    await waitEvent('web', 'UpdatedLoadBalancer');
    await waitFor(
      'node-b gone from the backends',
      async () =>
        (await metricValue(ccm, 'konnectivity_ccm_load_balancer_backend_healthy', {
          service: 'default/web',
          backend: 'node-b',
        })) === undefined,
    );
    const excluded = await spread(POOL[0], webPort, 30);
    assert.deepEqual([...excluded.keys()], ['hello from node-a']);
    api.apply(nodeObject('node-b', NODES[1].ip));
    await waitHealth('web', webPort, 'node-b', 1);
  });

  it('sends externalTrafficPolicy: Local traffic only to nodes whose healthCheckNodePort answers 200', async () => {
    const port = await freePoolPort();
    api.apply(
      serviceObject('local', [{ name: 'http', port, nodePort: web.port }], {
        spec: { externalTrafficPolicy: 'Local', healthCheckNodePort: health.port },
      }),
    );
    const ingress = await waitIngress('local');
    await waitHealth('local', port, 'node-b', 0);
    assert.deepEqual([...(await spread(ingress.ip, port, 30)).keys()], ['hello from node-a']);

    healthzStatus['node-a'] = 503;
    healthzStatus['node-b'] = 200;
    await waitHealth('local', port, 'node-a', 0);
    await waitHealth('local', port, 'node-b', 1);
    assert.deepEqual([...(await spread(ingress.ip, port, 30)).keys()], ['hello from node-b']);
    healthzStatus['node-a'] = 200;
  });

  it('keeps each client on one node with sessionAffinity: ClientIP', async () => {
    const port = await freePoolPort();
    api.apply(
      serviceObject('sticky', [{ name: 'http', port, nodePort: web.port }], {
        spec: { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } },
      }),
    );
    const ingress = await waitIngress('sticky');
    for (const client of ['127.0.4.1', '127.0.4.2', '127.0.4.3', '127.0.4.4']) {
      const seen = await spread(ingress.ip, port, 20, client);
      assert.equal(seen.size, 1, `${client} was sent to ${[...seen.keys()].join(', ')}`);
    }
  });

  it("tells the backend the client's address with PROXY protocol v1, then v2", async () => {
    const port = await freePoolPort();
    api.apply(
      serviceObject('proxied', [{ name: 'tcp', port, nodePort: proxyAware.port }], {
        annotations: { 'konnectivity.io/load-balancer-proxy-protocol': 'v1' },
      }),
    );
    const ingress = await waitIngress('proxied');
    const ask = async (): Promise<ProxyHeader> => {
      const s = await connect(ingress.ip, port, '127.0.4.9');
      const answer = readAll(s);
      return JSON.parse((await answer).toString()) as ProxyHeader;
    };
    const v1 = await ask();
    assert.equal(v1.version, 'v1');
    assert.equal(v1.source, '127.0.4.9');
    assert.equal(v1.destination, ingress.ip);
    assert.equal(v1.destinationPort, port);
    update('proxied', (s) => {
      s.metadata.annotations = { 'konnectivity.io/load-balancer-proxy-protocol': 'v2' };
    });
    const v2 = await waitFor('a v2 header', async () => {
      const h = await ask();
      return h.version === 'v2' ? h : undefined;
    });
    assert.equal(v2.source, '127.0.4.9');
    assert.equal(v2.destination, ingress.ip);
    assert.equal(v2.destinationPort, port);
  });

  it('moves the listener on a Service port change and keeps the open connections', async () => {
    const held = await connect(POOL[0], webPort);
    held.write('echo\n');
    await echoOnce(held, 'before');
    const newPort = await freePoolPort();
    update('web', (s) => {
      const first = s.spec.ports[0];
      assert.ok(first);
      first.port = newPort;
    });
    await waitFor('status shows the new port', () => ingressOf('web')?.ports?.[0]?.port === newPort);
    assert.match(await httpVia(POOL[0], newPort), /^hello from node-[ab]$/);
    await waitFor('the old port refuses', () => refused(POOL[0], webPort));
    await echoOnce(held, 'after the change');
    held.destroy();
    webPort = newPort;
  });

  it('closes connections from outside loadBalancerSourceRanges at once', async () => {
    const port = await freePoolPort();
    api.apply(
      serviceObject('ranged', [{ name: 'http', port, nodePort: web.port }], {
        spec: { loadBalancerSourceRanges: ['127.0.4.20/32'] },
      }),
    );
    const ingress = await waitIngress('ranged');
    assert.match(await httpVia(ingress.ip, port, '127.0.4.20'), /^hello from node-[ab]$/);
    await assert.rejects(httpVia(ingress.ip, port, '127.0.4.21'), { code: 'ECONNRESET' });
    assert.equal(
      await metricValue(ccm, 'konnectivity_ccm_load_balancer_rejected_connections_total', {
        service: 'default/ranged',
        reason: 'source_range',
      }),
      1,
    );
  });

  it('refuses a UDP port with an Event and serves the TCP port of the same Service', async () => {
    const port = await freePoolPort();
    api.apply(
      serviceObject('dns', [
        { name: 'dns-tcp', port, nodePort: web.port, protocol: 'TCP' },
        { name: 'dns-udp', port, nodePort: web.port, protocol: 'UDP' },
      ]),
    );
    const ingress = await waitIngress('dns');
    assert.deepEqual(ingress.ports, [
      { port, protocol: 'TCP' },
      { port, protocol: 'UDP', error: 'konnectivity.io/UnsupportedProtocol' },
    ]);
    const event = (await waitEvent('dns', 'LoadBalancerPortNotServed')) as {
      type?: string;
      message?: string;
    };
    assert.equal(event.type, 'Warning');
    assert.match(event.message ?? '', new RegExp(`${port}/UDP`));
    assert.match(await httpVia(ingress.ip, port), /^hello from node-[ab]$/);
  });

  it('leaves a Service of another loadBalancerClass alone', async () => {
    const port = await freePoolPort();
    api.apply(
      serviceObject('other', [{ name: 'http', port, nodePort: web.port }], {
        spec: { loadBalancerClass: 'example.com/other' },
      }),
    );
    api.apply(
      serviceObject('after-other', [{ name: 'http', port: await freePoolPort(), nodePort: web.port }]),
    );
    await waitIngress('after-other');
    const other = svc('other');
    assert.equal(other?.metadata.finalizers, undefined);
    assert.equal(other?.status?.loadBalancer?.ingress, undefined);
    assert.equal(eventsFor('other', 'EnsuringLoadBalancer').length, 0);
    assert.ok(await refused(POOL[0], port));
    assert.ok(await refused(POOL[1], port));
  });

  it('makes a Service wait with SyncLoadBalancerFailed while no address has its port free, until one is freed', async () => {
    const port = await freePoolPort();
    for (const name of ['x1', 'x2']) {
      api.apply(serviceObject(name, [{ name: 'http', port, nodePort: web.port }]));
      await waitIngress(name);
    }
    assert.deepEqual([ingressOf('x1')?.ip, ingressOf('x2')?.ip].sort(), [...POOL].sort());
    api.apply(serviceObject('x3', [{ name: 'http', port, nodePort: web.port }]));
    const failed = (await waitEvent('x3', 'SyncLoadBalancerFailed')) as { message?: string };
    assert.match(failed.message ?? '', /no address of loadBalancer\.addresses/);
    assert.equal(ingressOf('x3'), undefined);
    assert.deepEqual(svc('x3')?.metadata.finalizers, [FINALIZER]);
    const freed = ingressOf('x1')?.ip;
    api.delete('services', 'default', 'x1');
    await waitFor('x1 gone', () => svc('x1') === undefined);
    const taken = await waitIngress('x3');
    assert.equal(taken.ip, freed);
    assert.match(await httpVia(taken.ip, port), /^hello from node-[ab]$/);
  });

  it('on deletion stops accepting at once, drains open connections, then removes the finalizer', async () => {
    const held = await connect(POOL[0], webPort);
    held.write('echo\n');
    await echoOnce(held, 'before');
    api.delete('services', 'default', 'web');
    await waitEvent('web', 'DeletingLoadBalancer');
    await waitFor('the listener refuses', () => refused(POOL[0], webPort));
    // Draining: the Service is held by the finalizer while the connection lives.
    await echoOnce(held, 'still served while draining');
    assert.deepEqual(svc('web')?.metadata.finalizers, [FINALIZER]);
    held.end();
    await waitFor('web gone', () => svc('web') === undefined);
    await waitEvent('web', 'DeletedLoadBalancer');
  });

  const leaseHolder = () => api.leases.get('kube-system/cloud-controller-manager')?.spec.holderIdentity;
  const served = async (ip: string, port: number): Promise<boolean> => {
    try {
      return /^hello from node-[ab]$/.test(await httpVia(ip, port));
    } catch {
      return false;
    }
  };
  const stickyAddress = async () => ({
    ip: (await waitIngress('sticky')).ip,
    port: svc('sticky')?.spec.ports[0]?.port ?? 0,
  });
  const connectionsOf = async (info: CcmInfo) =>
    (await metricValue(info, 'konnectivity_ccm_load_balancer_connections_total', {
      service: 'default/sticky',
    })) ?? 0;

  it('has a leader that loses its lease close its listeners, and the standby serve them', async () => {
    const replica = await startStandby();
    await replica.proc.waitLog('waiting for the lease (standby)');
    const { ip, port } = await stickyAddress();
    assert.ok(await served(ip, port));
    // The leader's renewals fail from now on; the standby's writes go through.
    const stopFailing = api.onRequest((req) => {
      const body = req.body as { spec?: { holderIdentity?: string } } | undefined;
      return req.method === 'PUT' &&
        req.path.includes('/leases/') &&
        body?.spec?.holderIdentity === ccm.identity
        ? { status: 500 }
        : undefined;
    });
    try {
      await ccm.proc.waitLog('not leading: load balancers stop serving');
      await waitFor('the standby holds the lease', () => leaseHolder() === replica.identity);
      // Both on this host: the standby can bind only once the old leader has let go.
      await waitFor('the standby serves', () => served(ip, port));
      assert.ok((await connectionsOf(replica)) > 0);
    } finally {
      stopFailing();
    }
  });

  it('has the standby serve the listeners once the leader is killed', async () => {
    const leader = standby;
    assert.ok(leader && leaseHolder() === leader.identity);
    await ccm.proc.waitLog('waiting for the lease (standby)');
    const { ip, port } = await stickyAddress();
    const before = await connectionsOf(ccm);
    await leader.proc.kill('SIGKILL');
    await waitFor('the old leader, now standby, serves', () => served(ip, port));
    assert.equal(leaseHolder(), ccm.identity);
    assert.ok((await connectionsOf(ccm)) > before);
  });
});
