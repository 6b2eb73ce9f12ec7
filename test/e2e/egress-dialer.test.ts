// The egress dialer of an EgressSelectorConfiguration file, against real proxy-server and agent
// processes: GRPC over a Unix socket, HTTPConnect over a Unix socket and over mTLS TCP. Bytes
// echoed with an equal sha256, Node's http and https clients through its agents with keep-alive
// reusing one tunnel connection, refused and aborted dials with the dialer's codes, close().
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { dial as tunnelDial } from '../../ccm-integration/dialer/index.js';
import {
  egressDialer,
  loadEgressSelectorConfiguration,
  type EgressDialer,
  type FrontendDial,
} from '../../ccm-integration/egress-selector/index.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import { closedPort, LabTarget, readAll, writeAll } from '../support/targets.js';
import { waitFor, within } from '../support/wait.js';
import { testPki, type TestPki } from '../support/pki.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The selection "cluster" of a v1beta1 file pointing at the cluster's frontend, the way an operator writes it. */
function writeConfig(dir: string, cluster: Cluster): string {
  const f = cluster.pki.files;
  const { frontend } = cluster;
  const proxyProtocol = frontend.protocol === 'grpc' ? 'GRPC' : 'HTTPConnect';
  const transport = frontend.uds
    ? ['      uds:', `        udsName: ${frontend.uds}`]
    : [
        '      tcp:',
        `        url: https://127.0.0.1:${cluster.server.frontendPort}`,
        '        tlsConfig:',
        `          caBundle: ${f.ca}`,
        `          clientCert: ${f.clientCert}`,
        `          clientKey: ${f.clientKey}`,
      ];
  const path = join(dir, `egress-${proxyProtocol}-${frontend.uds ? 'uds' : 'tcp'}.yaml`);
  writeFileSync(
    path,
    [
      'apiVersion: apiserver.k8s.io/v1beta1',
      'kind: EgressSelectorConfiguration',
      'egressSelections:',
      '- name: cluster',
      '  connection:',
      `    proxyProtocol: ${proxyProtocol}`,
      '    transport:',
      ...transport,
      '- name: controlplane',
      '  connection:',
      '    proxyProtocol: Direct',
      '',
    ].join('\n'),
  );
  return path;
}

/** Sends `payload` to the lab target's echo and returns what came back. */
async function echo(socket: Duplex, payload: Buffer): Promise<Buffer> {
  const back = readAll(socket);
  socket.write('echo\n');
  await writeAll(socket, [payload]);
  socket.end();
  const received = await within(back, 20_000, 'the echo');
  socket.destroy();
  return received;
}

/** An HTTP(S) server only the agent's side reaches, counting the connections it accepts. */
class CountingServer {
  connections = 0;
  port = 0;
  constructor(readonly server: http.Server | https.Server) {
    server.on(server instanceof https.Server ? 'secureConnection' : 'connection', () => this.connections++);
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const hello: http.RequestListener = (req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end(`hello ${req.url ?? ''}`);
};

/**
 * GET through an agent; resolves once the agent has pooled the socket again ('free'), so the
 * next request finds it: sequential requests then share one connection, deterministically.
 */
async function get(
  client: typeof http | typeof https,
  agent: http.Agent,
  port: number,
  path: string,
  extra: https.RequestOptions = {},
): Promise<{ status: number; body: string; reused: boolean }> {
  const freed = once(agent, 'free');
  const done = new Promise<{ status: number; body: string; reused: boolean }>((resolve, reject) => {
    const req = client.request({ host: '127.0.0.1', port, path, agent, ...extra }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
  const result = await within(done, 20_000, `GET ${path}`);
  await within(freed, 20_000, 'the socket back in the pool');
  return result;
}

/**
 * The target closing an idle kept-alive connection must take it out of the pool (the tunnel
 * carries the EOF, the socket closes), and the next request dials a new one.
 */
async function droppedWhenTargetCloses(
  target: CountingServer,
  agent: http.Agent,
  client: typeof http | typeof https,
): Promise<void> {
  const before = target.connections;
  target.server.closeIdleConnections();
  await waitFor('the pool to drop the connection the target closed', () =>
    Object.values(agent.freeSockets).every((sockets) => !sockets?.length),
  );
  const res = await get(client, agent, target.port, '/after-idle-close');
  assert.equal(res.body, 'hello /after-idle-close');
  assert.equal(res.reused, false);
  assert.equal(target.connections - before, 1);
}

describe('egress dialer from an EgressSelectorConfiguration file', () => {
  let dir: string;
  let lab: LabTarget;
  let web: CountingServer;
  let secureWeb: CountingServer;
  let pki: TestPki;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'knp-egress-e2e-'));
    lab = await new LabTarget('lab').start();
    web = await new CountingServer(http.createServer(hello)).start();
    // The target's certificate comes from the test CA, which the https agents are given.
    pki = await testPki();
    const { server } = pki.pki;
    secureWeb = await new CountingServer(
      https.createServer({ cert: server.cert, key: server.key }, hello),
    ).start();
  });
  after(async () => {
    await Promise.all([lab.stop(), web.stop(), secureWeb.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const frontends = [
    { mode: 'grpc', transport: 'uds' },
    { mode: 'http-connect', transport: 'uds' },
    { mode: 'http-connect', transport: 'mtls' },
  ] as const;

  for (const { mode, transport } of frontends) {
    describe(`${mode === 'grpc' ? 'GRPC' : 'HTTPConnect'} over ${transport === 'uds' ? 'uds' : 'mTLS tcp'}`, () => {
      let cluster: Cluster;
      let dialer: EgressDialer;
      let grpcDials = 0;

      before(async () => {
        cluster = await startCluster(mode, transport);
        const config = loadEgressSelectorConfiguration(writeConfig(dir, cluster));
        // The injection point for a shared gRPC tunnel: here the single-use dial, counted.
        const grpcDial: FrontendDial = (frontend, address, options) => {
          grpcDials++;
          return tunnelDial(frontend, address, options);
        };
        dialer = egressDialer(config, 'cluster', { grpcDial });
      });
      after(async () => {
        dialer.close();
        await cluster.stop();
      });

      it('dials the target through the tunnel: bytes echoed with an equal sha256', async () => {
        assert.equal(dialer.proxyProtocol, mode === 'grpc' ? 'GRPC' : 'HTTPConnect');
        const payload = randomBytes(1024 * 1024 + 17);
        const back = await echo(await dialer.dial('127.0.0.1', lab.port, { timeoutMs: 10_000 }), payload);
        assert.equal(back.length, payload.length);
        assert.equal(sha256(back), sha256(payload));
        assert.equal(grpcDials, mode === 'grpc' ? 1 : 0, 'GRPC dials go through the injected grpcDial only');
      });

      it('serves 100 sequential HTTP requests through httpAgent() on one kept-alive connection', async () => {
        const agent = dialer.httpAgent();
        const before = web.connections;
        let reused = 0;
        for (let i = 0; i < 100; i++) {
          const res = await get(http, agent, web.port, `/req-${i}`);
          assert.equal(res.status, 200);
          assert.equal(res.body, `hello /req-${i}`);
          if (res.reused) reused++;
        }
        assert.equal(web.connections - before, 1, 'connections accepted by the target for 100 requests');
        assert.equal(reused, 99);
        await droppedWhenTargetCloses(web, agent, http);
        agent.destroy();
      });

      it('runs TLS inside the tunnel with httpsAgent(), verifying the target certificate', async () => {
        const agent = dialer.httpsAgent({ ca: pki.pki.ca.cert });
        const before = secureWeb.connections;
        for (let i = 0; i < 3; i++) {
          const res = await get(https, agent, secureWeb.port, `/secure-${i}`);
          assert.equal(res.status, 200);
          assert.equal(res.body, `hello /secure-${i}`);
        }
        assert.equal(secureWeb.connections - before, 1, 'TLS connections accepted for 3 requests');
        await droppedWhenTargetCloses(secureWeb, agent, https);
        // A certificate it does not trust fails the request; the tunnel carried the handshake.
        const untrusting = dialer.httpsAgent();
        await assert.rejects(
          within(get(https, untrusting, secureWeb.port, '/untrusted'), 20_000, 'the refused handshake'),
          (err: NodeJS.ErrnoException) => /certificate/i.test(err.message),
        );
        agent.destroy();
        untrusting.destroy();
      });

      it("rejects a dial to a closed port with the dialer's code", async () => {
        const port = await closedPort();
        await assert.rejects(dialer.dial('127.0.0.1', port), {
          name: 'TunnelError',
          code: 'KNP_DIAL_FAILED',
        });
      });

      it('rejects a dial whose signal is aborted, before or while it is pending', async () => {
        await assert.rejects(dialer.dial('127.0.0.1', lab.port, { signal: AbortSignal.abort() }), {
          code: 'KNP_DIAL_CANCELLED',
        });
        const controller = new AbortController();
        const pending = dialer.dial('127.0.0.1', lab.port, { signal: controller.signal });
        controller.abort();
        await assert.rejects(within(pending, 5_000, 'the aborted dial'), { code: 'KNP_DIAL_CANCELLED' });
      });

      it('close() destroys connections handed out and refuses later dials', async () => {
        const own = egressDialer(loadEgressSelectorConfiguration(writeConfig(dir, cluster)), 'cluster');
        const socket = await own.dial('127.0.0.1', lab.port);
        socket.on('error', () => undefined);
        const agent = own.httpAgent();
        await get(http, agent, web.port, '/before-close');
        const pooled = Object.values(agent.freeSockets).flat();
        assert.equal(pooled.length, 1, 'the kept-alive socket in the pool');
        const closed = once(socket, 'close');
        own.close();
        await within(closed, 5_000, 'the handed-out socket closing');
        assert.ok(pooled[0]?.destroyed, 'the pooled socket is destroyed');
        await assert.rejects(own.dial('127.0.0.1', lab.port), {
          code: 'KNP_TUNNEL_CLOSED',
          message: 'egress dialer of selection "cluster" is closed',
        });
        await assert.rejects(get(http, agent, web.port, '/after-close'), { code: 'KNP_TUNNEL_CLOSED' });
      });

      if (mode === 'http-connect' && transport === 'uds') {
        it('dials an IPv6 target with its address in brackets', async (t) => {
          const v6 = new LabTarget('v6');
          try {
            await v6.start('::1');
          } catch {
            t.skip('no IPv6 loopback on this machine');
            return;
          }
          try {
            const back = await echo(await dialer.dial('::1', v6.port), Buffer.from('over ipv6'));
            assert.equal(back.toString(), 'over ipv6');
          } finally {
            await v6.stop();
          }
        });
      }
    });
  }

  describe('GRPC over uds, reusable tunnel (grpcTunnel: reusable)', () => {
    let cluster: Cluster;
    let dialer: EgressDialer;
    before(async () => {
      // The server's default dial rate (100/s per client connection) would pace one shared tunnel.
      cluster = await startCluster('grpc', 'uds', { serverArgs: ['--max-dials-per-second=0'] });
      dialer = egressDialer(loadEgressSelectorConfiguration(writeConfig(dir, cluster)), 'cluster', {
        grpcTunnel: 'reusable',
      });
    });
    after(async () => {
      dialer.close();
      await cluster.stop();
    });

    it('carries 100 sequential HTTP requests, a dial each, over one Proxy stream', async () => {
      const agent = dialer.httpAgent({ keepAlive: false });
      const before = web.connections;
      for (let i = 0; i < 100; i++) {
        const body = await new Promise<string>((resolve, reject) => {
          const req = http.get(
            { host: '127.0.0.1', port: web.port, path: `/one-stream-${i}`, agent },
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (text += c));
              res.on('end', () => resolve(`${res.statusCode ?? 0} ${text}`));
            },
          );
          req.on('error', reject);
        });
        assert.equal(body, `200 hello /one-stream-${i}`);
      }
      assert.equal(web.connections - before, 100, 'a tunnel dial, and a target connection, per request');
      const audits = await waitFor('100 audit lines', () => {
        const lines = cluster.server.proc.lines.filter(
          (l) => l.audit === 'dial' && l.result === 'ok' && l.address === `127.0.0.1:${web.port}`,
        );
        return lines.length >= 100 ? lines : undefined;
      });
      assert.equal(new Set(audits.map((l) => l.stream)).size, 1, 'every dial on the same Proxy stream');
      agent.destroy();
    });
  });

  describe('Direct (a selection listed as Direct, or not listed)', () => {
    it('connects straight to the target, and names a refused port with the dialer code', async () => {
      const path = join(dir, 'direct.yaml');
      writeFileSync(
        path,
        'apiVersion: apiserver.k8s.io/v1\nkind: EgressSelectorConfiguration\negressSelections:\n' +
          '- name: controlplane\n  connection: { proxyProtocol: Direct }\n',
      );
      const config = loadEgressSelectorConfiguration(path);
      for (const selection of ['controlplane', 'etcd'] as const) {
        const dialer = egressDialer(config, selection);
        assert.equal(dialer.proxyProtocol, 'Direct');
        const payload = randomBytes(64 * 1024);
        assert.equal(sha256(await echo(await dialer.dial('127.0.0.1', lab.port), payload)), sha256(payload));
        const res = await get(http, dialer.httpAgent(), web.port, '/direct');
        assert.equal(res.body, 'hello /direct');
        await assert.rejects(dialer.dial('127.0.0.1', await closedPort()), { code: 'KNP_DIAL_FAILED' });
        await assert.rejects(dialer.dial('127.0.0.1', 70000), { code: 'KNP_BAD_TARGET' });
        dialer.close();
      }
    });
  });
});
