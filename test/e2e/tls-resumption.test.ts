// A reconnecting agent resumes its TLS session: the agent keeps the server's session ticket
// and offers it on the next connect, and the server counts resumed handshakes. The agent's
// connection is cut by a TCP balancer in between, so the same server sees the reconnect, and
// the balancer is then pointed at restarted servers: one with the same certificate, key and
// --agent-tls-ticket-key-file resumes the agent's session, one without that flag does not. A
// resumed session whose client certificate has expired since is closed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync as readFile, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { issue } from '../../quickstart/pki.js';
import { utcDay } from '../../server/session-tickets.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import {
  agentArgs,
  metric,
  spawnBin,
  startServer,
  waitMetric,
  type Proc,
  type ServerInfo,
} from '../support/processes.js';
import { TcpBalancer } from '../support/tcp-balancer.js';
import { askLabId, LabTarget } from '../support/targets.js';

const READY = 'konnectivity_network_proxy_server_ready_backend_connections';
const HANDSHAKES = 'konnectivity_network_proxy_server_agent_tls_handshakes_total';
const FAILURES = 'konnectivity_network_proxy_server_agent_tls_handshake_failures_total';

describe('TLS session resumption for reconnecting agents', () => {
  let cluster: Cluster;
  let balancer: TcpBalancer;
  let target: LabTarget;
  let agent: Proc | undefined;
  const restarted: ServerInfo[] = [];
  let secretDir = '';
  let secretFile = '';
  /** The UTC day of the agent's latest ticket: the ticket key changes with the day. */
  let ticketDay = 0;

  /** Another server process with the cluster's certificates, on a Unix socket of its own. */
  async function anotherServer(
    name: string,
    extra: string[] = [],
    keep: (arg: string) => boolean = () => true,
  ): Promise<ServerInfo> {
    const uds = join(cluster.pki.dir, `${name}-${String(process.pid)}.sock`);
    const args = cluster.serverArgs
      .filter(keep)
      .map((a) => (a.startsWith('--uds-name=') ? `--uds-name=${uds}` : a));
    const server = await startServer([...args, ...extra]);
    restarted.push(server);
    return server;
  }

  before(async () => {
    target = await new LabTarget('resumed').start();
    secretDir = mkdtempSync(join(tmpdir(), 'knp-tickets-'));
    secretFile = join(secretDir, 'ticket-key');
    writeFileSync(secretFile, randomBytes(48), { mode: 0o600 });
    cluster = await startCluster('grpc', 'uds', {
      agents: 0,
      serverArgs: [`--agent-tls-ticket-key-file=${secretFile}`],
    });
    balancer = await new TcpBalancer([cluster.server.agentPort]).start();
  });
  after(async () => {
    await agent?.kill();
    await Promise.all(restarted.map((s) => s.proc.kill()));
    await balancer.stop();
    await cluster.stop();
    await target.stop();
    if (secretDir) rmSync(secretDir, { recursive: true, force: true });
  });

  it('resumes after the connection breaks, and the resumed agent serves dials', async () => {
    const port = cluster.server.adminPort;
    agent = spawnBin('proxy-agent', agentArgs(cluster.pki.files, balancer.port, ['--agent-id=resumer']));
    await waitMetric(port, READY, 1);
    assert.equal(await metric(port, `${HANDSHAKES}{resumed="false"}`), 1);
    assert.equal(await metric(port, `${HANDSHAKES}{resumed="true"}`), 0);

    balancer.cutAll();
    await waitMetric(port, `${HANDSHAKES}{resumed="true"}`, 1);
    ticketDay = utcDay(Date.now());
    await waitMetric(port, READY, 1);
    assert.equal(await metric(port, `${HANDSHAKES}{resumed="false"}`), 1, 'no second full handshake');
    assert.equal((await askLabId(cluster.frontend, target.address)).trim(), 'resumed');
  });
  it('resumes on a restarted server with the same files and ticket secret, not on one without the secret', async (t) => {
    assert.ok(agent, 'the agent of the first test');
    // "Restart": a new server process, the balancer pointed at it, the old one gone.
    const second = await anotherServer('second');
    balancer.backends[0] = second.agentPort;
    await cluster.server.proc.kill();
    await waitMetric(second.adminPort, READY, 1);
    if (utcDay(Date.now()) !== ticketDay) {
      t.skip('crossed UTC midnight: the ticket key changed with the day');
      return;
    }
    assert.equal(await metric(second.adminPort, `${HANDSHAKES}{resumed="true"}`), 1);
    assert.equal(await metric(second.adminPort, `${HANDSHAKES}{resumed="false"}`), 0, 'no full handshake');

    const third = await anotherServer('third', [], (a) => !a.startsWith('--agent-tls-ticket-key-file='));
    balancer.backends[0] = third.agentPort;
    await second.proc.kill();
    await waitMetric(third.adminPort, READY, 1);
    assert.equal(await metric(third.adminPort, `${HANDSHAKES}{resumed="false"}`), 1);
    assert.equal(await metric(third.adminPort, `${HANDSHAKES}{resumed="true"}`), 0);
  });

  it('refuses a resumed session whose client certificate has expired since', async () => {
    const server = await anotherServer('expiry');
    const files = cluster.pki.files;
    const shortLived = await issue(cluster.pki.pki.ca, 'short-lived-agent', 'client', 5000);
    const notAfter = Date.parse(new X509Certificate(shortLived.cert).validTo);
    const connect = (session?: Buffer) =>
      new Promise<{ reused: boolean; ticket: Buffer | undefined; closedBy: 'server' | 'us' }>((resolve) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port: server.agentPort,
          ca: readFile(files.ca),
          cert: shortLived.cert,
          key: shortLived.key,
          ALPNProtocols: ['h2'],
          ...(session ? { session } : {}),
        });
        let ticket: Buffer | undefined;
        let reused = false;
        let ours = false;
        let hold: NodeJS.Timeout | undefined;
        socket.on('error', () => undefined);
        socket.on('session', (s: Buffer) => (ticket = s));
        socket.once('secureConnect', () => {
          reused = socket.isSessionReused();
          // Kept open a moment: a server that refuses the session closes it first.
          hold = setTimeout(() => {
            ours = true;
            socket.destroy();
          }, 2000);
        });
        socket.once('close', () => {
          clearTimeout(hold);
          resolve({ reused, ticket, closedBy: ours ? 'us' : 'server' });
        });
      });
    const first = await connect();
    assert.equal(first.reused, false);
    assert.equal(first.closedBy, 'us', 'a valid certificate is served');
    assert.ok(first.ticket, 'a session ticket');
    // Wait for the certificate to expire (a clock, not a race: its notAfter is fixed).
    await new Promise((r) => setTimeout(r, Math.max(0, notAfter - Date.now()) + 1100));
    const failuresBefore = await metric(server.adminPort, FAILURES);
    const second = await connect(first.ticket);
    assert.equal(second.reused, true, 'OpenSSL resumed it without looking at the dates');
    assert.equal(second.closedBy, 'server');
    await waitMetric(server.adminPort, FAILURES, failuresBefore + 1);
    assert.equal(await metric(server.adminPort, `${HANDSHAKES}{resumed="true"}`), 0);
    await server.proc.waitLog('agent refused');
  });
});
