// A vanished peer is noticed by the kernel's TCP keepalive on both ends of the agent link, as
// with Go's listeners and dialers upstream. The check reads the kernel's own view of the two
// sockets: /proc/net/tcp shows which timer each one has armed (2: keepalive).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { GrpcServer } from '../../server/grpc/server.js';
import { serverTlsSocket } from '../../agent/transport/server-tls.js';
import { createLogger } from '../../common/log.js';
import { testPki, type TestPki } from '../support/pki.js';
import { waitFor } from '../support/wait.js';

const log = createLogger({ component: 'test', level: 'silent' });
const KEEPALIVE_TIMER = 2;
const ESTABLISHED = 0x01;

/** The timer a loopback IPv4 TCP socket has armed, from the kernel's table; undefined: no such socket. */
function armedTimer(localPort: number, remotePort: number): number | undefined {
  const hexPort = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const [local, remote, state, , timer] = [f[1], f[2], f[3], f[4], f[5]];
    if (!local || !remote || !state || !timer) continue;
    if (!local.endsWith(`:${hexPort(localPort)}`) || !remote.endsWith(`:${hexPort(remotePort)}`)) continue;
    if (parseInt(state, 16) !== ESTABLISHED) continue;
    return parseInt(timer.split(':')[0] ?? '', 16);
  }
  return undefined;
}

describe('TCP keepalive on the agent link', () => {
  let pki: TestPki;
  const servers: GrpcServer[] = [];
  const sockets: TLSSocket[] = [];

  before(async () => {
    pki = await testPki();
  });
  after(() => {
    for (const s of sockets) s.destroy();
    for (const s of servers) s.destroy();
  });

  async function agentPort(keepaliveTimeMs: number): Promise<number> {
    const server = new GrpcServer(
      {},
      {
        windowBytes: 65_535,
        maxMessageBytes: 65_536,
        keepaliveTimeMs,
        keepaliveTimeoutMs: 1000,
        idleConnectionMs: 0,
      },
      log,
    );
    servers.push(server);
    const { port } = await server.listenTls('127.0.0.1', 0, {
      cert: pki.pki.server.cert,
      key: pki.pki.server.key,
      ca: pki.pki.ca.cert,
      requestCert: true,
    });
    return port;
  }

  async function connectAgent(port: number): Promise<{ local: number }> {
    const socket = serverTlsSocket(
      {
        host: '127.0.0.1',
        port,
        tls: {
          ca: Buffer.from(pki.pki.ca.cert),
          cert: Buffer.from(pki.pki.agent.cert),
          key: Buffer.from(pki.pki.agent.key),
        },
      },
      ['h2'],
    );
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const local = socket.localPort;
    assert.ok(local, 'the agent socket has a local port');
    return { local };
  }

  it('both ends arm the kernel keepalive timer', async () => {
    const port = await agentPort(15_000);
    const { local } = await connectAgent(port);
    await waitFor('the server side of the connection', () => armedTimer(port, local) !== undefined);
    assert.equal(armedTimer(port, local), KEEPALIVE_TIMER, 'server side');
    assert.equal(armedTimer(local, port), KEEPALIVE_TIMER, 'agent side');
  });

  it('a server with --keepalive-time=0 leaves its side without one', async () => {
    const port = await agentPort(0);
    const { local } = await connectAgent(port);
    await waitFor('the server side of the connection', () => armedTimer(port, local) !== undefined);
    assert.equal(armedTimer(port, local), 0, 'server side');
    assert.equal(armedTimer(local, port), KEEPALIVE_TIMER, 'agent side');
  });
});
