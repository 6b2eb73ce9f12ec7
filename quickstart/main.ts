// `npm start`: a proxy-server and one proxy-agent on loopback with throwaway certificates,
// a demo target to reach through the tunnel, and the curl command to try it.
import http from 'node:http';
import { resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../common/log.js';
import { ProxyServer } from '../server/proxy-server.js';
import { ProxyAgent } from '../agent/proxy-agent.js';
import { createPki, writePki } from './pki.js';
import { hideKnownWarnings } from '../common/process-warnings.js';

hideKnownWarnings();

const RUN_DIR = resolve('run');
// KNP_LOCAL_PORTS=0 picks free ports for everything (the smoke test does); otherwise the
// upstream defaults: 8090 HTTP CONNECT, 8091 agents, 8092/8095 server health/metrics, 8093/8094 agent.
const ephemeral = process.env.KNP_LOCAL_PORTS === '0';
const port = (n: number) => (ephemeral ? 0 : n);
const log = createLogger({ component: 'konnectivity-local', level: process.env.KNP_LOG_LEVEL ?? 'warn' });

// Written out for the curl command; the processes here use the PEMs already in memory.
const pki = await createPki();
const files = writePki(pki, resolve(RUN_DIR, 'pki'));
const tls = { cert: Buffer.from(pki.server.cert), key: Buffer.from(pki.server.key) };
const ca = Buffer.from(pki.ca.cert);
const udsPath = resolve(RUN_DIR, 'konnectivity-server.socket');

// Something on the "node side" to reach: in a cluster this is a kubelet, a pod or a service.
const target = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(
    `hello from the node network, reached through konnectivity-ts (${req.method ?? ''} ${req.url ?? ''})\n`,
  );
});
await new Promise<void>((done) => target.listen(0, '127.0.0.1', done));
const targetPort = (target.address() as AddressInfo).port;

const server = new ProxyServer({
  serverID: 'local-server',
  serverCount: 1,
  frontends: [
    { mode: 'grpc', uds: udsPath, udsMode: 0o600, deleteExistingUds: true },
    { mode: 'http-connect', host: '127.0.0.1', port: port(8090), tls: { ...tls, ca } },
  ],
  agent: { host: '127.0.0.1', port: port(8091), tls: { ...tls, ca } },
  health: { host: '127.0.0.1', port: port(8092) },
  admin: { host: '127.0.0.1', port: port(8095) },
  keepaliveTimeMs: 15_000,
  frontendKeepaliveTimeMs: 15_000,
  backendDialTimeoutMs: 10_000,
  gracefulShutdownTimeoutMs: 0,
  log: log.child({ component: 'proxy-server' }),
});
const bound = await server.start().catch((err: unknown) => {
  process.stderr.write(`cannot start the proxy-server: ${String(err)}\n(are ports 8090-8095 free?)\n`);
  process.exit(1);
});

const agent = new ProxyAgent({
  agentID: 'local-agent',
  agentIdentifiers: 'host=localhost&ipv4=127.0.0.1',
  serverHost: '127.0.0.1',
  serverPort: bound.agentPort,
  ca,
  cert: Buffer.from(pki.agent.cert),
  key: Buffer.from(pki.agent.key),
  syncIntervalMs: 500,
  syncIntervalCapMs: 5000,
  keepaliveTimeMs: 3_600_000,
  health: { host: '127.0.0.1', port: port(8093) },
  admin: { host: '127.0.0.1', port: port(8094) },
  log: log.child({ component: 'proxy-agent' }),
});
const agentPorts = await agent.start();
while (!server.readiness().ok) await new Promise((r) => setTimeout(r, 50));

const rel = (p: string) => p.replace(process.cwd() + '/', '');
const connectPort = bound.frontends.find((f) => f.mode === 'http-connect')?.port ?? 0;
process.stdout.write(`
konnectivity-ts is running: a proxy-server and one proxy-agent, on loopback.

  HTTP CONNECT frontend  https://127.0.0.1:${connectPort}  (mTLS, certificates in ${rel(files.dir)}/)
  gRPC frontend          unix:${rel(udsPath)}  (what kube-apiserver's egress selector uses)
  agent port             127.0.0.1:${bound.agentPort}
  server health          http://127.0.0.1:${bound.healthPort ?? 0}/readyz   metrics http://127.0.0.1:${bound.adminPort ?? 0}/metrics
  agent health           http://127.0.0.1:${agentPorts.healthPort ?? 0}/readyz   metrics http://127.0.0.1:${agentPorts.healthPort ?? 0}/metrics

Reach the demo target (a web server on 127.0.0.1:${targetPort}) through the tunnel:

  curl -p --proxy https://127.0.0.1:${connectPort} --proxy-cacert ${rel(files.ca)} \\
       --proxy-cert ${rel(files.clientCert)} --proxy-key ${rel(files.clientKey)} http://127.0.0.1:${targetPort}/

Any host:port the agent can reach works the same way. Ctrl-C stops everything.
`);

let stopping = false;
const stop = () => {
  if (stopping) process.exit(1);
  stopping = true;
  void (async () => {
    await agent.shutdown();
    await server.stop();
    target.close();
    process.exit(0);
  })();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
