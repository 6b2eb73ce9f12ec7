// A bounded fuzz run against live servers: random and mutated bytes thrown at the HTTP
// CONNECT frontend, the gRPC frontend and the agent port (raw, and as well-framed gRPC
// messages inside real HTTP/2 streams with valid TLS). Seeded, so a failure replays. Then:
// the processes are alive, every gauge is back where it started, memory is near its start,
// and a normal dial still works.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http2 from 'node:http2';
import fc from 'fast-check';
import { frameArb, grpcStream, sendSplit } from '../support/fuzz-inputs.js';
import { CONNECT_METHOD, PROXY_METHOD } from '../../proto/services.js';
import { startPair, type Cluster } from '../support/cluster.js';
import { askLabId, LabTarget, closedPort } from '../support/targets.js';
import { metric } from '../support/processes.js';
import { rawExchange } from '../support/raw.js';
import { waitFor } from '../support/wait.js';

const SEED = 20261124;
const RUNS = 150;

async function gauges(c: Cluster): Promise<Record<string, number>> {
  const p = c.server.adminPort;
  const m = 'konnectivity_network_proxy_server_';
  return {
    established: await metric(p, m + 'established_connections'),
    pending: await metric(p, m + 'pending_backend_dials'),
    http: await metric(p, m + 'http_connections'),
    proxyStreams: await metric(p, m + 'grpc_connections{service_method="Proxy"}'),
    agents: await metric(p, m + 'ready_backend_connections'),
  };
}

describe('bounded fuzz against live servers', () => {
  let pair: Awaited<ReturnType<typeof startPair>>;
  let target: LabTarget;
  let closed: number;
  before(async () => {
    pair = await startPair();
    target = pair.target;
    closed = await closedPort();
  });
  after(() => pair.stop());

  /** Still serves, every gauge back where it started, RSS near its start. */
  async function unharmed(c: Cluster, start: Record<string, number>, rssBefore: number): Promise<void> {
    await stillServes(c);
    await waitFor('gauges back', async () =>
      JSON.stringify(await gauges(c)) === JSON.stringify(start) ? true : undefined,
    );
    const rssAfter = await metric(c.server.adminPort, 'process_resident_memory_bytes');
    assert.ok(rssAfter < rssBefore + 64 * 1024 * 1024, `RSS grew from ${rssBefore} to ${rssAfter}`);
  }

  async function stillServes(c: Cluster): Promise<void> {
    assert.equal(await askLabId(c.frontend, target.address), 'lab\n');
  }

  it('HTTP CONNECT frontend: random and mutated request heads, split at random points', async () => {
    const c = pair.connect;
    const start = await gauges(c);
    const rssBefore = await metric(c.server.adminPort, 'process_resident_memory_bytes');
    const valid = `CONNECT 127.0.0.1:${closed} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const heads = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
        fc
          .tuple(fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 3 }), fc.nat(8))
          .map(([flips, extra]) => {
            const b = Buffer.from(valid + 'x'.repeat(extra));
            for (const [at, v] of flips) b[at % b.length] = v;
            return b;
          }),
      ),
      { seed: SEED, numRuns: RUNS },
    );
    for (let i = 0; i < heads.length; i += 25) {
      await Promise.all(heads.slice(i, i + 25).map((h) => sendSplit(c.frontend.uds ?? '', h)));
    }
    await unharmed(c, start, rssBefore);
  });

  it('gRPC frontend: raw bytes, and random or mutated packets in real HTTP/2 streams', async () => {
    const c = pair.grpc;
    const start = await gauges(c);
    const rssBefore = await metric(c.server.adminPort, 'process_resident_memory_bytes');
    const streams = fc.sample(fc.array(frameArb(closed), { minLength: 1, maxLength: 4 }), {
      seed: SEED,
      numRuns: RUNS,
    });
    const uds = c.frontend.uds ?? '';
    for (let i = 0; i < streams.length; i += 30) {
      const session = http2.connect('http://localhost', { createConnection: () => net.connect(uds) });
      session.on('error', () => undefined);
      await Promise.all(
        streams.slice(i, i + 30).map((frames) => grpcStream(session, PROXY_METHOD, {}, frames)),
      );
      session.destroy();
    }
    await Promise.all(
      fc
        .sample(fc.uint8Array({ maxLength: 500 }), { seed: SEED, numRuns: 30 })
        .map((raw) => rawExchange(() => net.connect(uds), Buffer.from(raw), 1000)),
    );
    await unharmed(c, start, rssBefore);
  });

  it('agent port: raw bytes before TLS, and random or mutated packets from an authenticated agent stream', async () => {
    const c = pair.grpc;
    const start = await gauges(c);
    const f = c.pki.pki;
    const streams = fc.sample(fc.array(frameArb(closed), { minLength: 1, maxLength: 4 }), {
      seed: SEED + 1,
      numRuns: RUNS,
    });
    for (let i = 0; i < streams.length; i += 30) {
      const session = http2.connect(`https://127.0.0.1:${c.server.agentPort}`, {
        ca: f.ca.cert,
        cert: f.agent.cert,
        key: f.agent.key,
        servername: 'localhost',
      });
      session.on('error', () => undefined);
      await Promise.all(
        streams
          .slice(i, i + 30)
          .map((frames, j) => grpcStream(session, CONNECT_METHOD, { agentid: `fuzz-${i + j}` }, frames)),
      );
      session.destroy();
    }
    await Promise.all(
      fc
        .sample(fc.uint8Array({ maxLength: 500 }), { seed: SEED, numRuns: 30 })
        .map((raw) =>
          rawExchange(() => net.connect(c.server.agentPort, '127.0.0.1'), Buffer.from(raw), 1000),
        ),
    );
    await waitFor('gauges back', async () =>
      JSON.stringify(await gauges(c)) === JSON.stringify(start) ? true : undefined,
    );
    await stillServes(c);
  });
});
