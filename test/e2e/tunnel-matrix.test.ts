// Both frontends, each over a Unix socket and over mTLS TCP, with real server and agent
// processes: HTTP through the tunnel, 256 MiB each way hashed, 200 concurrent connections.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes, createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Duplex } from 'node:stream';
import { dial } from '../../ccm-integration/dialer/index.js';
import { metric } from '../support/processes.js';
import { waitFor } from '../support/wait.js';
import {
  AGENT_TRANSPORTS,
  startCluster,
  type Cluster,
  type Mode,
  type Transport,
} from '../support/cluster.js';
import {
  LabTarget,
  deterministicChunks,
  hashOf,
  readAll,
  readAllHash,
  writeAll,
} from '../support/targets.js';

const BIG = 256 * 1024 * 1024;
const run = promisify(execFile);

const expectedDownload = new Map<number, string>();
function expectedHash(seed: number): string {
  let h = expectedDownload.get(seed);
  if (!h) {
    h = hashOf(BIG, seed);
    expectedDownload.set(seed, h);
  }
  return h;
}

function httpGetThrough(cluster: Cluster, target: LabTarget): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: target.port,
        path: '/hello',
        createConnection: (_opts, cb) => {
          dial(cluster.frontend, target.address).then(
            (s) => cb(null, s),
            (e: unknown) => cb(e as Error, undefined as unknown as Duplex),
          );
          return undefined;
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

for (const agentTransport of AGENT_TRANSPORTS) {
  for (const mode of ['grpc', 'http-connect'] as Mode[]) {
    for (const transport of ['uds', 'mtls'] as Transport[]) {
      // The agent's transport is independent of the frontend's: over WebSocket, each frontend
      // mode and each frontend transport once (the diagonal) keeps the added CI time down.
      if (agentTransport === 'websocket' && (mode === 'grpc') !== (transport === 'uds')) continue;
      describe(`${mode} frontend over ${transport === 'uds' ? 'a Unix socket' : 'mTLS TCP'}, agent over ${agentTransport}`, () => {
        let cluster: Cluster;
        let target: LabTarget;
        before(async () => {
          target = await new LabTarget('lab').start();
          cluster = await startCluster(mode, transport, { agentTransport });
        });
        after(async () => {
          await cluster.stop();
          await target.stop();
        });

        it("carries an HTTP request from Node's http client through the tunnel", async () => {
          const res = await httpGetThrough(cluster, target);
          assert.equal(res.status, 200);
          assert.equal(res.body, 'hello from lab\n');
        });

        if (mode === 'http-connect' && transport === 'mtls') {
          it('carries a curl request through the mTLS CONNECT proxy', async () => {
            const f = cluster.pki.files;
            const { stdout } = await run('curl', [
              '-sS',
              '-p',
              '--max-time',
              '20',
              '--proxy',
              `https://127.0.0.1:${cluster.server.frontendPort}`,
              '--proxy-cacert',
              f.ca,
              '--proxy-cert',
              f.clientCert,
              '--proxy-key',
              f.clientKey,
              `http://${target.address}/`,
            ]);
            assert.equal(stdout, 'hello from lab\n');
          });
        }

        it('downloads 256 MiB from the target with an equal sha256', async () => {
          const sock = await dial(cluster.frontend, target.address);
          sock.write(`download ${BIG} 7\n`);
          const got = await readAllHash(sock);
          sock.destroy();
          assert.equal(got.bytes, BIG);
          assert.equal(got.hash, expectedHash(7));
        });

        it('uploads 256 MiB to the target with an equal sha256', async () => {
          const sock = await dial(cluster.frontend, target.address);
          const answer = readAll(sock);
          sock.write(`upload ${BIG}\n`);
          await writeAll(sock, deterministicChunks(BIG, 8));
          sock.end();
          assert.equal((await answer).toString().trim(), expectedHash(8));
          sock.destroy();
        });

        it('carries 200 concurrent connections with distinct payloads intact', async () => {
          const results = await Promise.all(
            Array.from({ length: 200 }, async (_, i) => {
              const payload = Buffer.concat([Buffer.from(`conn ${i} `), randomBytes(16 * 1024 + i * 97)]);
              const sock = await dial(cluster.frontend, target.address);
              const echoed = readAll(sock);
              sock.write('echo\n');
              await writeAll(sock, [payload]);
              sock.end();
              const back = await echoed;
              sock.destroy();
              const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');
              return h(back) === h(payload);
            }),
          );
          assert.equal(results.filter(Boolean).length, 200);
          // Nothing left behind on either side.
          const agentHealth = cluster.agent?.find('proxy-agent started')?.healthPort as number;
          await waitFor(
            'server and agent connection gauges back to 0',
            async () =>
              (await metric(
                cluster.server.adminPort,
                'konnectivity_network_proxy_server_established_connections',
              )) === 0 &&
              (await metric(agentHealth, 'konnectivity_network_proxy_agent_open_endpoint_connections')) === 0,
          );
        });
      });
    }
  }
}
