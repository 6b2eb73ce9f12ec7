// Agents behind real proxies from Debian's packages (.ci/run installs them): squid as the
// corporate forward proxy (CONNECT to the agent port only; once with Basic auth), and nginx as
// a TLS-terminating HTTP/1.1 reverse proxy in front of the agent port. 256 MiB each way,
// hash-equal, through each; a restart of squid; gRPC over nginx's HTTP/1.1 path failing with
// a clear log line while WebSocket works: the reason the WebSocket transport exists.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../../ccm-integration/dialer/index.js';
import { noProxyMatches, parseProxyUrl } from '../../agent/transport/http-proxy.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import {
  askLabId,
  deterministicChunks,
  hashOf,
  LabTarget,
  readAll,
  readAllHash,
  writeAll,
} from '../support/targets.js';
import { agentArgs, httpGet, spawnBin, waitMetric, type Proc } from '../support/processes.js';
import { Squid, squidMissing } from '../support/squid.js';
import { Nginx, nginxMissing } from '../support/nginx.js';
import { waitFor } from '../support/wait.js';

const BIG = 256 * 1024 * 1024;
const READY = 'konnectivity_network_proxy_server_ready_backend_connections';
const CONNECTED = 'connected to proxy-server';
const CANNOT = 'cannot connect to proxy-server';

/** 256 MiB from the target and 256 MiB to it, through the cluster's tunnel, hash-checked. */
async function bothWays(cluster: Cluster, target: LabTarget, seed: number): Promise<void> {
  const down = await dial(cluster.frontend, target.address);
  down.write(`download ${BIG} ${seed}\n`);
  const got = await readAllHash(down);
  down.destroy();
  assert.equal(got.bytes, BIG);
  assert.equal(got.hash, hashOf(BIG, seed), 'download hash');
  const up = await dial(cluster.frontend, target.address);
  const answer = readAll(up);
  up.write(`upload ${BIG}\n`);
  await writeAll(up, deterministicChunks(BIG, seed + 1));
  up.end();
  assert.equal((await answer).toString().trim(), hashOf(BIG, seed + 1), 'upload hash');
  up.destroy();
}

const missing = squidMissing() ?? nginxMissing();

describe('agents behind HTTP proxies', { skip: missing }, () => {
  let cluster: Cluster;
  let target: LabTarget;
  const agents: Proc[] = [];

  /** An agent with these flags and environment (no proxy variables unless given). */
  const agent = (extra: string[], env: NodeJS.ProcessEnv = {}): Proc => {
    const noProxyEnv = { HTTPS_PROXY: '', https_proxy: '', NO_PROXY: '', no_proxy: '' };
    const p = spawnBin('proxy-agent', agentArgs(cluster.pki.files, cluster.server.agentPort, extra), {
      ...noProxyEnv,
      ...env,
    });
    agents.push(p);
    return p;
  };
  const stopAgents = async () => {
    await Promise.all(agents.splice(0).map((a) => a.kill()));
    await waitMetric(cluster.server.adminPort, READY, 0);
  };

  before(async () => {
    target = await new LabTarget('lab').start();
    cluster = await startCluster('http-connect', 'uds', { agents: 0 });
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.kill()));
    await cluster.stop();
    await target.stop();
  });

  describe('squid, a forward proxy that allows CONNECT to the agent port only', () => {
    let squid: Squid;
    before(async () => {
      squid = await new Squid({ connectPort: cluster.server.agentPort }).start();
    });
    after(async () => {
      await stopAgents();
      await squid.stop();
    });

    it('carries 256 MiB each way, hash-equal, for a WebSocket agent behind it', async () => {
      const p = agent(['--transport=websocket', `--proxy-url=${squid.url()}`]);
      assert.ok(await p.waitLog('reaching the proxy-server through an HTTP proxy'));
      await p.waitLog(CONNECTED);
      await bothWays(cluster, target, 17);
      await stopAgents();
      await waitFor('the CONNECT in squid access log', () =>
        squid.accessLog().includes(`CONNECT 127.0.0.1:${cluster.server.agentPort}`),
      );
    });

    it('takes a gRPC agent too, from HTTPS_PROXY: loopback is not exempted', async () => {
      const before = squid.accessLog().split('\n').length;
      const p = agent([], { HTTPS_PROXY: squid.url() });
      const line = await p.waitLog('reaching the proxy-server through an HTTP proxy');
      assert.equal(line.from, 'HTTPS_PROXY');
      await p.waitLog(CONNECTED);
      assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
      await stopAgents();
      await waitFor('a new CONNECT in the access log', () => squid.accessLog().split('\n').length > before);
    });

    it('goes direct when NO_PROXY names the server', async () => {
      const p = agent(['--transport=websocket'], {
        https_proxy: 'http://127.0.0.1:1',
        no_proxy: 'example.com, 127.0.0.0/8',
      });
      await p.waitLog(CONNECTED);
      assert.equal(p.find('reaching the proxy-server through an HTTP proxy'), undefined);
      await stopAgents();
    });

    it('logs a refused CONNECT with its status line and retries with the backoff', async () => {
      // The proxy allows the agent port only: another port is refused with 403.
      const p = agent(['--transport=websocket', `--proxy-url=${squid.url()}`, '--proxy-server-port=1']);
      const refusals = await waitFor('two refusals', () => {
        const lines = p.lines.filter((l) => l.msg === CANNOT);
        return lines.length >= 2 ? lines : undefined;
      });
      for (const l of refusals)
        assert.match(String(l.error), /refused CONNECT 127\.0\.0\.1:1: HTTP\/1\.1 403 Forbidden/);
      // Full jitter: each wait is drawn below a window that grows.
      assert.ok(Number(refusals[1]?.backoffWindowMs) > Number(refusals[0]?.backoffWindowMs), 'backoff grows');
      for (const l of refusals)
        assert.ok(Number(l.retryInMs) < Number(l.backoffWindowMs), 'wait within its window');
      await stopAgents();
    });

    it('reconnects a WebSocket agent after squid restarts', async () => {
      const p = agent(['--transport=websocket', `--proxy-url=${squid.url()}`]);
      await p.waitLog(CONNECTED);
      await waitMetric(cluster.server.adminPort, READY, 1);
      await squid.restart();
      await p.waitLog('lost connection to proxy-server');
      await waitFor(
        'connected again',
        () => p.lines.filter((l) => l.msg === CONNECTED).length >= 2 || undefined,
      );
      assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
      await stopAgents();
    });
  });

  describe('squid as an https:// proxy', () => {
    let squid: Squid;
    before(async () => {
      const f = cluster.pki.files;
      squid = await new Squid({
        connectPort: cluster.server.agentPort,
        tls: { cert: f.serverCert, key: f.serverKey },
      }).start();
    });
    after(async () => {
      await stopAgents();
      await squid.stop();
    });

    it('runs TLS to the proxy (checked against --ca-cert), then TLS to the server inside it', async () => {
      const p = agent(['--transport=websocket', `--proxy-url=${squid.url()}`]);
      await p.waitLog(CONNECTED);
      assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
      await stopAgents();
    });
  });

  describe('squid with Basic auth (basic_ncsa_auth, an htpasswd file)', () => {
    const user = 'node-agent';
    const password = 'p@ss:w0rd/+';
    let squid: Squid;
    before(async () => {
      squid = await new Squid({ connectPort: cluster.server.agentPort, users: { [user]: password } }).start();
    });
    after(async () => {
      await stopAgents();
      await squid.stop();
    });

    it('authenticates with the credentials of the proxy URL, for both transports', async () => {
      for (const transport of ['grpc', 'websocket']) {
        const p = agent([`--transport=${transport}`, `--proxy-url=${squid.url({ user, password })}`]);
        await p.waitLog(CONNECTED);
        assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
        await stopAgents();
      }
    });

    it('logs 407 with its status line, never the password, and keeps retrying', async () => {
      const p = agent(['--transport=websocket', `--proxy-url=${squid.url({ user, password: 'wrong' })}`]);
      const refusals = await waitFor('two refusals', () => {
        const lines = p.lines.filter((l) => l.msg === CANNOT);
        return lines.length >= 2 ? lines : undefined;
      });
      for (const l of refusals) assert.match(String(l.error), /HTTP\/1\.1 407 Proxy Authentication Required/);
      assert.doesNotMatch(p.output(), /wrong|p@ss/);
      await stopAgents();
    });
  });

  describe('nginx, a TLS-terminating HTTP/1.1 reverse proxy in front of the agent port', () => {
    let nginx: Nginx;
    before(async () => {
      const f = cluster.pki.files;
      nginx = await new Nginx({
        upstreamPort: cluster.server.agentPort,
        cert: f.serverCert,
        key: f.serverKey,
        clientCert: f.agentCert,
        clientKey: f.agentKey,
        ca: f.ca,
        serverName: 'localhost',
      }).start();
    });
    after(async () => {
      await stopAgents();
      await nginx.stop();
    });

    it('carries 256 MiB each way, hash-equal, for a WebSocket agent', async () => {
      const p = agent([
        '--transport=websocket',
        `--proxy-server-port=${nginx.port}`,
        '--agent-id=behind-nginx',
      ]);
      await p.waitLog(CONNECTED);
      const { body } = await httpGet(cluster.server.adminPort, '/agents');
      const listed = (JSON.parse(body) as { agents: { agentID: string; transport: string }[] }).agents;
      assert.deepEqual(
        listed.map((a) => [a.agentID, a.transport]),
        [['behind-nginx', 'websocket']],
      );
      await bothWays(cluster, target, 27);
      await stopAgents();
    });

    it('fails a gRPC agent there with a log line that says why and what to use', async () => {
      const p = agent([`--proxy-server-port=${nginx.port}`]);
      const line = await p.waitLog(CANNOT);
      assert.match(String(line.error), /HTTP\/2|ALPN|no application protocol/i);
      assert.match(String(line.error), /--transport=websocket/);
      assert.equal(p.find(CONNECTED), undefined);
      await stopAgents();
    });
  });
});

describe('proxy selection, as Go reads the environment', () => {
  it('matches NO_PROXY entries: *, IPs, CIDRs, domains, subdomains and ports', () => {
    const cases: [string, string, number, boolean][] = [
      ['*', 'anything', 443, true],
      ['127.0.0.1', '127.0.0.1', 8091, true],
      ['127.0.0.0/8', '127.0.0.5', 8091, true],
      ['10.0.0.0/8', '127.0.0.5', 8091, false],
      ['example.com', 'example.com', 8091, true],
      ['example.com', 'proxy.example.com', 8091, true],
      ['.example.com', 'example.com', 8091, false],
      ['.example.com', 'proxy.example.com', 8091, true],
      ['*.example.com', 'proxy.example.com', 8091, true],
      ['example.com:8091', 'example.com', 8091, true],
      ['example.com:443', 'example.com', 8091, false],
      ['[::1]:8091', '::1', 8091, true],
      ['::1', '::1', 8091, true],
      ['other.org, ,  EXAMPLE.com ', 'example.com', 1, true],
      ['', 'localhost', 8091, false],
      ['example.com', 'localhost', 8091, false],
    ];
    for (const [noProxy, host, port, expected] of cases) {
      assert.equal(noProxyMatches(noProxy, host, port), expected, `${noProxy} vs ${host}:${port}`);
    }
  });

  it('parses proxy URLs with credentials, default ports and bare host:port', () => {
    const p = parseProxyUrl('http://user%40corp:p%3Ass@proxy.corp:3128');
    assert.deepEqual(
      [p.protocol, p.host, p.port, p.username, p.password, p.display],
      ['http', 'proxy.corp', 3128, 'user@corp', 'p:ss', 'http://proxy.corp:3128'],
    );
    assert.equal(parseProxyUrl('https://proxy.corp').port, 443);
    assert.equal(parseProxyUrl('proxy.corp:8080').protocol, 'http');
    assert.equal(parseProxyUrl('http://[::1]:3128').host, '::1');
    assert.throws(() => parseProxyUrl('socks5://proxy:1080'), /scheme "socks5" is not supported/);
  });
});
