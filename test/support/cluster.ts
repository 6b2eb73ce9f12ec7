// A proxy-server process with one agent process and a lab target: the shape most e2e tests need.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { FrontendAddress } from '../../ccm-integration/dialer/index.js';
import { testPki, type TestPki } from './pki.js';
import { agentArgs, spawnBin, startServer, waitReady, type Proc, type ServerInfo } from './processes.js';
import { LabTarget } from './targets.js';

export type Transport = 'uds' | 'mtls';
export type Mode = 'grpc' | 'http-connect';
/** How the agents reach the server's agent port (--transport). */
export type AgentTransport = 'grpc' | 'websocket';
export const AGENT_TRANSPORTS: readonly AgentTransport[] = ['grpc', 'websocket'];

export interface Cluster {
  pki: TestPki;
  server: ServerInfo;
  agent: Proc | undefined;
  frontend: FrontendAddress;
  serverArgs: string[];
  agentTransport: AgentTransport;
  startAgent(extra?: string[]): Promise<Proc>;
  stop(): Promise<void>;
}

let seq = 0;

/** KNP_AGENT_TRANSPORT=websocket runs every suite that does not choose over that transport. */
function defaultAgentTransport(): AgentTransport {
  const env = process.env.KNP_AGENT_TRANSPORT ?? 'grpc';
  const known = AGENT_TRANSPORTS.find((t) => t === env);
  if (!known)
    throw new Error(`KNP_AGENT_TRANSPORT must be one of ${AGENT_TRANSPORTS.join(', ')}, got "${env}"`);
  return known;
}

export async function startCluster(
  mode: Mode,
  transport: Transport,
  options: { agents?: number; serverArgs?: string[]; agentTransport?: AgentTransport } = {},
): Promise<Cluster> {
  const agentTransport = options.agentTransport ?? defaultAgentTransport();
  const transportArgs = agentTransport === 'grpc' ? [] : [`--transport=${agentTransport}`];
  const pki = await testPki();
  const f = pki.files;
  const uds = join(pki.dir, `frontend-${process.pid}-${seq++}.sock`);
  const serverArgs = [
    `--mode=${mode}`,
    `--cluster-cert=${f.serverCert}`,
    `--cluster-key=${f.serverKey}`,
    `--cluster-ca-cert=${f.ca}`,
    ...(transport === 'uds'
      ? [`--uds-name=${uds}`]
      : [
          '--server-port=0',
          '--server-bind-address=127.0.0.1',
          `--server-cert=${f.serverCert}`,
          `--server-key=${f.serverKey}`,
          `--server-ca-cert=${f.ca}`,
        ]),
    ...(options.serverArgs ?? []),
  ];
  const server = await startServer(serverArgs);
  const frontend: FrontendAddress =
    transport === 'uds'
      ? { protocol: mode, uds }
      : {
          protocol: mode,
          host: '127.0.0.1',
          port: server.frontendPort,
          tls: { ca: readFileSync(f.ca), cert: readFileSync(f.clientCert), key: readFileSync(f.clientKey) },
        };
  const agents: Proc[] = [];
  const cluster: Cluster = {
    pki,
    server,
    agent: undefined,
    frontend,
    serverArgs,
    agentTransport,
    async startAgent(extra = []) {
      const p = spawnBin('proxy-agent', agentArgs(f, server.agentPort, [...transportArgs, ...extra]));
      agents.push(p);
      cluster.agent = p;
      await p.waitLog('proxy-agent started');
      return p;
    },
    async stop() {
      await Promise.all([...agents.map((a) => a.kill()), cluster.server.proc.kill()]);
    },
  };
  for (let i = 0; i < (options.agents ?? 1); i++) await cluster.startAgent();
  if ((options.agents ?? 1) > 0) await waitReady(server);
  return cluster;
}

/** A lab target with a gRPC and an HTTP CONNECT cluster, both on Unix sockets. */
export async function startPair(): Promise<{
  target: LabTarget;
  grpc: Cluster;
  connect: Cluster;
  stop(): Promise<void>;
}> {
  const target = await new LabTarget('lab').start();
  const [grpc, connect] = await Promise.all([
    startCluster('grpc', 'uds'),
    startCluster('http-connect', 'uds'),
  ]);
  return {
    target,
    grpc,
    connect,
    async stop() {
      await Promise.all([grpc.stop(), connect.stop()]);
      await target.stop();
    },
  };
}
