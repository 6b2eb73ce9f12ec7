// The reusable gRPC tunnel against a real proxy-server and agent, over a Unix socket and over
// mTLS TCP: many dials on one Proxy stream, concurrent connections intact, a failed and an
// aborted dial that leave the stream working, and a server death that fails what was in flight
// with KNP_TUNNEL_CLOSED, after which the same tunnel object dials again.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { dial, ErrorCode, ReusableGrpcTunnel, TunnelError } from '../../ccm-integration/dialer/index.js';
import { startCluster, type Cluster, type Transport } from '../support/cluster.js';
import { LabTarget, closedPort, deterministicChunks, writeAll } from '../support/targets.js';
import { metric, startServer, waitReady, type LogLine } from '../support/processes.js';
import { waitFor, within } from '../support/wait.js';

const PROXY_STREAMS = 'konnectivity_network_proxy_server_grpc_connections{service_method="Proxy"}';
const DIAL_CLS_FROM_CLIENT =
  'konnectivity_network_proxy_server_stream_packets_total{segment="from_client",packet_type="DIAL_CLS"}';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Sends `payload` (in 64 KiB writes) to the lab target's echo; resolves with as many bytes back. */
async function echo(sock: Duplex, payload: Buffer): Promise<Buffer> {
  const back = new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer) => {
      parts.push(c);
      got += c.length;
      if (got < payload.length) return;
      sock.off('data', onData);
      resolve(Buffer.concat(parts));
    };
    sock.on('data', onData);
    sock.once('error', reject);
  });
  sock.write('echo\n');
  const chunks: Buffer[] = [];
  for (let at = 0; at < payload.length; at += 64 * 1024) chunks.push(payload.subarray(at, at + 64 * 1024));
  await writeAll(sock, chunks);
  return back;
}

/** end(): CLOSE_REQ, then the server's CLOSE_RSP closes the socket. */
async function closeGracefully(sock: Duplex): Promise<void> {
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  sock.end();
  await closed;
}

/** The audit lines of connections to `address` closed after the first `from` log lines. */
function closedConnections(cluster: Cluster, address: string, from: number): LogLine[] {
  return cluster.server.proc.lines
    .slice(from)
    .filter((l) => l.audit === 'dial' && l.result === 'ok' && l.address === address);
}

for (const transport of ['uds', 'mtls'] as Transport[]) {
  describe(`reusable gRPC tunnel over ${transport === 'uds' ? 'a Unix socket' : 'mTLS TCP'}`, () => {
    let cluster: Cluster;
    let target: LabTarget;
    let tunnel: ReusableGrpcTunnel;
    before(async () => {
      target = await new LabTarget('lab').start();
      // A reusable client meets --max-dials-per-second (100 per connection by default); the
      // limit has a test of its own below.
      cluster = await startCluster('grpc', transport, { serverArgs: ['--max-dials-per-second=0'] });
      tunnel = new ReusableGrpcTunnel(cluster.frontend);
    });
    after(async () => {
      tunnel.close();
      await cluster.stop();
      await target.stop();
    });

    it('carries 100 sequential dials on one Proxy stream of one connection', async () => {
      const from = cluster.server.proc.lines.length;
      for (let i = 0; i < 100; i++) {
        const sock = await tunnel.dial(target.address);
        const payload = Buffer.from(`dial ${i}\n`);
        assert.equal((await echo(sock, payload)).toString(), payload.toString());
        await closeGracefully(sock);
      }
      assert.equal(tunnel.streamsOpened, 1);
      assert.equal(await metric(cluster.server.adminPort, PROXY_STREAMS), 1, 'one Proxy stream open');
      const audits = await waitFor('100 audit lines', () => {
        const lines = closedConnections(cluster, target.address, from);
        return lines.length === 100 ? lines : undefined;
      });
      assert.equal(new Set(audits.map((l) => l.stream)).size, 1, 'every dial on the same stream');
      assert.equal(new Set(audits.map((l) => l.connectID)).size, 100, 'a connection of its own each');
      await waitFor(
        'no connection left open',
        async () =>
          (await metric(
            cluster.server.adminPort,
            'konnectivity_network_proxy_server_established_connections',
          )) === 0,
      );
    });

    it('carries 20 concurrent connections, each echoing its own bytes intact', async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const sock = await tunnel.dial(target.address);
          const payload = Buffer.concat([Buffer.from(`conn ${i} `), randomBytes(64 * 1024 + i * 4099)]);
          const back = await echo(sock, payload);
          await closeGracefully(sock);
          return { sent: sha256(payload), received: sha256(back), length: back.length, want: payload.length };
        }),
      );
      for (const r of results) {
        assert.equal(r.length, r.want);
        assert.equal(r.received, r.sent);
      }
      assert.equal(new Set(results.map((r) => r.sent)).size, 20, 'distinct payloads');
      assert.equal(tunnel.streamsOpened, 1);
    });

    it('echoes 4 MiB both ways at once on one connection, on this tunnel and on a single-use dial', async () => {
      // Both directions full at the same time: the stream's windows must not let the two
      // sides block each other (see UDS_WINDOW_BYTES in grpc-tunnel.ts).
      const payload = Buffer.concat([...deterministicChunks(4 * 1024 * 1024, 11)]);
      for (const sock of [
        await tunnel.dial(target.address),
        await dial(cluster.frontend, target.address, { halfClose: false }),
      ]) {
        // A regression stalls for good: fail it rather than hang the run.
        const back = await within(echo(sock, payload), 60_000, 'the 4 MiB echo');
        assert.equal(sha256(back), sha256(payload));
        await closeGracefully(sock);
      }
    });

    it('sends one write larger than a gRPC message in pieces', async () => {
      const payload = Buffer.concat([...deterministicChunks(6 * 1024 * 1024, 12)]);
      const sock = await tunnel.dial(target.address);
      const back = new Promise<Buffer>((resolve, reject) => {
        const parts: Buffer[] = [];
        let got = 0;
        sock.on('data', (c: Buffer) => {
          parts.push(c);
          got += c.length;
          if (got >= payload.length) resolve(Buffer.concat(parts));
        });
        sock.once('error', reject);
      });
      sock.write('echo\n');
      sock.write(payload);
      assert.equal(sha256(await within(back, 60_000, 'the 6 MiB echo')), sha256(payload));
      await closeGracefully(sock);
      assert.equal(tunnel.streamsOpened, 1);
    });

    it('fails a dial to a closed port alone: open connections and later dials go on', async () => {
      const open = await Promise.all([tunnel.dial(target.address), tunnel.dial(target.address)]);
      const port = await closedPort();
      await assert.rejects(tunnel.dial(`127.0.0.1:${port}`), (err: TunnelError) => {
        assert.equal(err.code, ErrorCode.DIAL_FAILED);
        assert.match(err.message, /connection refused/);
        return true;
      });
      for (const [i, sock] of open.entries()) {
        const payload = Buffer.from(`still open ${i}`);
        assert.equal((await echo(sock, payload)).toString(), payload.toString());
        await closeGracefully(sock);
      }
      const later = await tunnel.dial(target.address);
      assert.equal((await echo(later, Buffer.from('later'))).toString(), 'later');
      await closeGracefully(later);
      assert.equal(tunnel.streamsOpened, 1);
    });

    it('sends DIAL_CLS for an aborted dial and stays usable', async () => {
      const admin = cluster.server.adminPort;
      const from = cluster.server.proc.lines.length;
      const abort = new AbortController();
      const dialing = tunnel.dial(target.address, { signal: abort.signal });
      abort.abort();
      await assert.rejects(dialing, (err: TunnelError) => err.code === ErrorCode.DIAL_CANCELLED);
      await waitFor(
        'DIAL_CLS counted by the server',
        async () => (await metric(admin, DIAL_CLS_FROM_CLIENT)) >= 1,
      );
      // Its DIAL_REQ was on its way; the server cancelled that dial (or, had the agent been
      // quicker, the tunnel closed the connection it got): nothing stays open either way.
      await waitFor('the dial forgotten', async () => {
        const cancelled = cluster.server.proc.lines
          .slice(from)
          .some((l) => l.audit === 'dial' && (l.result === ErrorCode.DIAL_CANCELLED || l.result === 'ok'));
        return (
          cancelled &&
          (await metric(admin, 'konnectivity_network_proxy_server_pending_backend_dials')) === 0 &&
          (await metric(admin, 'konnectivity_network_proxy_server_established_connections')) === 0
        );
      });
      const sock = await tunnel.dial(target.address);
      assert.equal((await echo(sock, Buffer.from('after abort'))).toString(), 'after abort');
      await closeGracefully(sock);
      assert.equal(tunnel.streamsOpened, 1);
    });

    it('fails in-flight connections with KNP_TUNNEL_CLOSED when the server dies, and dials again after its restart', async () => {
      const inFlight = await Promise.all([tunnel.dial(target.address), tunnel.dial(target.address)]);
      const errors = inFlight.map((sock) => new Promise<unknown>((resolve) => sock.once('error', resolve)));
      // One of them mid-echo.
      const first = inFlight[0];
      assert.ok(first);
      assert.equal((await echo(first, Buffer.from('before'))).toString(), 'before');
      const old = cluster.server;
      await old.proc.kill('SIGKILL');
      for (const err of await Promise.all(errors)) {
        assert.ok(err instanceof TunnelError, String(err));
        assert.equal(err.code, ErrorCode.TUNNEL_CLOSED);
      }
      // While the server is down a dial fails at once, opening one stream, not a retry loop.
      await assert.rejects(tunnel.dial(target.address), (err: TunnelError) => {
        assert.equal(err.code, ErrorCode.TUNNEL_CLOSED);
        return true;
      });
      assert.equal(tunnel.streamsOpened, 2);
      cluster.server = await startServer([
        ...cluster.serverArgs,
        `--agent-port=${old.agentPort}`,
        ...(transport === 'mtls' ? [`--server-port=${old.frontendPort}`] : []),
      ]);
      await waitReady(cluster.server, 15_000);
      const sock = await tunnel.dial(target.address);
      assert.equal((await echo(sock, Buffer.from('after restart'))).toString(), 'after restart');
      await closeGracefully(sock);
      assert.equal(tunnel.streamsOpened, 3);
    });
  });
}

describe('reusable gRPC tunnel under --max-dials-per-second', () => {
  let cluster: Cluster;
  let target: LabTarget;
  let tunnel: ReusableGrpcTunnel;
  before(async () => {
    target = await new LabTarget('lab').start();
    cluster = await startCluster('grpc', 'uds', { serverArgs: ['--max-dials-per-second=2'] });
    tunnel = new ReusableGrpcTunnel(cluster.frontend);
  });
  after(async () => {
    tunnel.close();
    await cluster.stop();
    await target.stop();
  });

  it('refuses the dials over the limit one by one, and the stream goes on', async () => {
    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => tunnel.dial(target.address)));
    const refused = outcomes.filter(
      (o) => o.status === 'rejected' && /dial rate limit/.test((o.reason as Error).message),
    );
    const opened = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    assert.ok(refused.length >= 1, 'at least one dial refused');
    assert.ok(opened.length >= 1, 'at least one dial through');
    assert.equal(refused.length + opened.length, 6);
    for (const sock of opened) await closeGracefully(sock);
    // Once the bucket refills, the same stream dials again.
    const sock = await waitFor('a dial through after the refill', () =>
      tunnel.dial(target.address).catch(() => undefined),
    );
    assert.equal((await echo(sock, Buffer.from('refilled'))).toString(), 'refilled');
    await closeGracefully(sock);
    assert.equal(tunnel.streamsOpened, 1);
  });
});

describe('reusable gRPC tunnel across two agents', () => {
  let cluster: Cluster;
  let target: LabTarget;
  let tunnel: ReusableGrpcTunnel;
  before(async () => {
    target = await new LabTarget('lab').start();
    cluster = await startCluster('grpc', 'uds', {
      agents: 2,
      serverArgs: ['--max-dials-per-second=0', '-v=2'],
    });
    await waitFor(
      'both agents ready',
      async () =>
        (await metric(
          cluster.server.adminPort,
          'konnectivity_network_proxy_server_ready_backend_connections',
        )) === 2,
    );
    tunnel = new ReusableGrpcTunnel(cluster.frontend);
  });
  after(async () => {
    tunnel.close();
    await cluster.stop();
    await target.stop();
  });

  it('keeps connections apart when both agents pick the same connectID', async () => {
    // Dials go to the least loaded agent, so open ones alternate between the two, and each
    // agent numbers its connections from 1: the second agent's collide with the first's.
    const open: Duplex[] = [];
    for (let i = 0; i < 6; i++) open.push(await tunnel.dial(target.address));
    const aliased = await waitFor('aliases logged', () => {
      const n = cluster.server.proc.lines.filter(
        (l) => l.msg === 'connectID in use or recently closed on this stream: the client gets an alias',
      ).length;
      return n >= 3 ? n : undefined;
    });
    assert.equal(aliased, 3);
    const results = await Promise.all(
      open.map(async (sock, i) => {
        const payload = Buffer.concat([Buffer.from(`agent conn ${i} `), randomBytes(32 * 1024 + i * 511)]);
        const back = await echo(sock, payload);
        await closeGracefully(sock);
        return sha256(back) === sha256(payload);
      }),
    );
    assert.deepEqual(results, [true, true, true, true, true, true]);
    await waitFor(
      'no connection left open',
      async () =>
        (await metric(
          cluster.server.adminPort,
          'konnectivity_network_proxy_server_established_connections',
        )) === 0,
    );
    assert.equal(tunnel.streamsOpened, 1);
  });

  it("does not give a closed connection's id to the next connection on the stream", async () => {
    // Dials one at a time, each closed before the next: both agents now count from 4, and the
    // first time the other agent is picked (ties at random) it answers an id just closed.
    const aliases = () =>
      cluster.server.proc.lines.filter(
        (l) => l.msg === 'connectID in use or recently closed on this stream: the client gets an alias',
      ).length;
    const before = aliases();
    for (let i = 0; i < 40 && aliases() === before; i++) {
      const sock = await tunnel.dial(target.address);
      const payload = Buffer.from(`one at a time ${i}`);
      assert.equal((await echo(sock, payload)).toString(), payload.toString());
      await closeGracefully(sock);
    }
    // Log lines arrive a little after the answers they describe.
    await waitFor('an id held back after its close', () => aliases() > before);
  });
});
