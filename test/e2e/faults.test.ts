// Failures: refused dials, no agent, an agent killed mid-transfer, a server restart, half-close.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { dial, TunnelError, ErrorCode } from '../../ccm-integration/dialer/index.js';
import { startCluster, startPair, type Cluster } from '../support/cluster.js';
import { askLabId, LabTarget, closedPort, readAll } from '../support/targets.js';
import { metric, startServer, waitReady } from '../support/processes.js';
import { waitFor } from '../support/wait.js';
import { rawExchange } from '../support/raw.js';

/** Sends a raw CONNECT on the frontend's Unix socket and returns the whole answer. */
function rawConnect(uds: string, request: string): Promise<string> {
  return rawExchange(() => net.connect(uds), request);
}

describe('failures', () => {
  let target: LabTarget;
  let grpc: Cluster;
  let connect: Cluster;
  let pair: Awaited<ReturnType<typeof startPair>>;
  before(async () => {
    pair = await startPair();
    ({ target, grpc, connect } = pair);
  });
  after(() => pair.stop());

  it('reports a dial to a closed port to the gRPC client as a DIAL_RSP error', async () => {
    const port = await closedPort();
    await assert.rejects(dial(grpc.frontend, `127.0.0.1:${port}`), (err: TunnelError) => {
      assert.equal(err.code, ErrorCode.DIAL_FAILED);
      assert.match(err.message, /dial tcp 127\.0\.0\.1:\d+: connect: connection refused/);
      return true;
    });
  });

  it('answers a CONNECT to a closed port with HTTP/1.1 502 and the dial error', async () => {
    const port = await closedPort();
    const answer = await rawConnect(
      connect.frontend.uds ?? '',
      `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    assert.match(answer, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.match(answer, /connection refused/);
  });

  it('half-close: the client ends its write side and still receives the full response', async () => {
    for (const cluster of [grpc, connect]) {
      const sock = await dial(cluster.frontend, target.address);
      const back = readAll(sock);
      sock.write('echo\n');
      sock.write('x'.repeat(100_000));
      sock.end();
      assert.equal((await back).toString(), 'x'.repeat(100_000), cluster.frontend.protocol);
      sock.destroy();
    }
  });

  it('ends the client connection promptly when the agent dies mid-transfer, leaves no state, and serves again after restart', async () => {
    const sock = await dial(connect.frontend, target.address);
    let received = 0;
    sock.on('data', (c: Buffer) => (received += c.length));
    // Over a Unix socket the end is an EOF (no RST exists there); over TCP a reset.
    const closed = new Promise<void>((resolve) => {
      sock.once('end', () => resolve());
      sock.once('close', () => resolve());
    });
    sock.on('error', () => undefined);
    sock.write(`download ${4 * 1024 * 1024 * 1024} 1\n`);
    await waitFor('8 MiB received', () => received > 8 * 1024 * 1024);
    await connect.agent?.kill('SIGKILL');
    await closed;
    assert.ok(received < 4 * 1024 * 1024 * 1024, 'the transfer was cut short, not completed');
    sock.destroy();
    const admin = connect.server.adminPort;
    await waitFor(
      'established_connections back to 0',
      async () => (await metric(admin, 'konnectivity_network_proxy_server_established_connections')) === 0,
    );
    assert.equal(await metric(admin, 'konnectivity_network_proxy_server_pending_backend_dials'), 0);
    assert.equal(await metric(admin, 'konnectivity_network_proxy_server_ready_backend_connections'), 0);
    await connect.startAgent();
    await waitReady(connect.server);
    assert.equal(await askLabId(connect.frontend, target.address), 'lab\n');
  });

  it('the agent reconnects within its backoff cap after the server restarts', async () => {
    const old = grpc.server;
    await old.proc.kill('SIGKILL');
    grpc.server = await startServer([...grpc.serverArgs, `--agent-port=${old.agentPort}`]);
    // --sync-interval-cap=1s in the test agents: a few caps at most, on a loaded machine.
    await waitReady(grpc.server, 15_000);
    assert.equal(await askLabId(grpc.frontend, target.address), 'lab\n');
  });
});

describe('graceful shutdown', () => {
  let target: LabTarget;
  let cluster: Cluster;
  before(async () => {
    target = await new LabTarget('lab').start();
    cluster = await startCluster('http-connect', 'uds', { serverArgs: ['--graceful-shutdown-timeout=30s'] });
  });
  after(async () => {
    await cluster.stop();
    await target.stop();
  });

  it('on SIGTERM refuses new connections and lets a transfer in progress complete', async () => {
    const bytes = 64 * 1024 * 1024;
    const sock = await dial(cluster.frontend, target.address);
    let received = 0;
    let resume: () => void = () => undefined;
    const paused = new Promise<void>((r) => (resume = r));
    let pausedOnce = false;
    sock.on('data', (c: Buffer) => {
      received += c.length;
      if (received > 1024 * 1024 && !pausedOnce) {
        // Hold the transfer open across the SIGTERM.
        pausedOnce = true;
        sock.pause();
        resume();
      }
    });
    const ended = new Promise<void>((r) => sock.once('end', () => r()));
    sock.write(`download ${bytes} 5\n`);
    await paused;
    cluster.server.proc.child.kill('SIGTERM');
    await cluster.server.proc.waitLog('shutting down: no new connections');
    await assert.rejects(dial(cluster.frontend, target.address, { timeoutMs: 5000 }));
    sock.resume();
    await ended;
    assert.equal(received, bytes);
    sock.destroy();
    assert.equal(await cluster.server.proc.exited, 0);
  });
});

describe('no agent connected', () => {
  let grpc: Cluster;
  let connect: Cluster;
  before(async () => {
    [grpc, connect] = await Promise.all([
      startCluster('grpc', 'uds', { agents: 0 }),
      startCluster('http-connect', 'uds', { agents: 0 }),
    ]);
  });
  after(async () => {
    await Promise.all([grpc.stop(), connect.stop()]);
  });

  it('fails a gRPC dial at once with a DIAL_RSP error', async () => {
    await assert.rejects(dial(grpc.frontend, '127.0.0.1:80', { timeoutMs: 10_000 }), (err: TunnelError) => {
      assert.equal(err.code, ErrorCode.DIAL_FAILED);
      assert.match(err.message, /no agent available/);
      return true;
    });
  });

  it('answers a CONNECT with HTTP/1.1 503', async () => {
    const answer = await rawConnect(
      connect.frontend.uds ?? '',
      'CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.match(answer, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(answer, /no agent available/);
  });

  it('is not ready', async () => {
    const res = await fetch(`http://127.0.0.1:${grpc.server.healthPort}/readyz`);
    assert.equal(res.status, 503);
    assert.equal((await fetch(`http://127.0.0.1:${grpc.server.healthPort}/healthz`)).status, 200);
  });
});
