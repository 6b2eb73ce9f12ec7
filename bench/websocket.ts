// The agent transports side by side: --transport=websocket beside gRPC, each in fresh server
// and agent processes behind the gRPC frontend on a Unix socket. One stream both ways, dials
// per second, 1 KiB echo over 50 connections, and one stream with the agent 10 ms away.
// `node dist/bench/websocket.js` prints the table alone; bench/main.ts can add the rows
// (agentTransportRows + formatAgentTransportRows).
import { pathToFileURL } from 'node:url';
import { dial } from '../ccm-integration/dialer/index.js';
import { startCluster, AGENT_TRANSPORTS, type AgentTransport } from '../test/support/cluster.js';
import { waitReady } from '../test/support/processes.js';
import * as s from './scenarios.js';
import { startDelay, startTarget } from './helpers.js';

const MB = 1024 * 1024;
const RTT_MS = 10;

export interface TransportFigures {
  downloadMBps: number;
  uploadMBps: number;
  parallelDialsPerSec: number;
  echo50: s.Latency;
  /** One stream with the agent RTT_MS away from the server. */
  delayed: { rttMs: number; downloadMBps: number; uploadMBps: number };
}

/** The figures of one agent transport, each part in processes of its own. */
export async function agentTransportFigures(
  transport: AgentTransport,
  address: string,
  bytes = 256 * MB,
): Promise<TransportFigures> {
  const c = await startCluster('grpc', 'uds', { agentTransport: transport });
  let near: Omit<TransportFigures, 'delayed'>;
  try {
    const d: s.Dialer = (a) => dial(c.frontend, a);
    near = {
      downloadMBps: await s.download(d, address, bytes),
      uploadMBps: await s.upload(d, address, bytes),
      parallelDialsPerSec: await s.parallelDials(d, address, 50, 2000),
      echo50: await s.echoRoundTrips(d, address, 50, 3000),
    };
  } finally {
    await c.stop();
  }
  const far = await startCluster('grpc', 'uds', { agentTransport: transport, agents: 0 });
  const delay = await startDelay(far.server.agentPort, RTT_MS);
  try {
    await far.startAgent([`--proxy-server-port=${delay.port}`]);
    await waitReady(far.server);
    const d: s.Dialer = (a) => dial(far.frontend, a);
    const half = Math.max(MB, bytes / 2);
    return {
      ...near,
      delayed: {
        rttMs: RTT_MS,
        downloadMBps: await s.download(d, address, half),
        uploadMBps: await s.upload(d, address, half),
      },
    };
  } finally {
    await far.stop();
    delay.stop();
  }
}

export async function agentTransportRows(
  address: string,
  bytes?: number,
): Promise<Record<AgentTransport, TransportFigures>> {
  const rows: Partial<Record<AgentTransport, TransportFigures>> = {};
  for (const t of AGENT_TRANSPORTS) rows[t] = await agentTransportFigures(t, address, bytes);
  return rows as Record<AgentTransport, TransportFigures>;
}

/** A markdown table: one row per transport, and WebSocket as a share of gRPC. */
export function formatAgentTransportRows(rows: Record<AgentTransport, TransportFigures>): string {
  const cols: [string, (f: TransportFigures) => number][] = [
    ['download MB/s', (f) => f.downloadMBps],
    ['upload MB/s', (f) => f.uploadMBps],
    ['dials/s (50 wide)', (f) => f.parallelDialsPerSec],
    ['1 KiB echo/s (50 conns)', (f) => f.echo50.perSecond],
    ['echo p99 ms (lower: better)', (f) => f.echo50.p99],
    [`download MB/s @${RTT_MS} ms`, (f) => f.delayed.downloadMBps],
    [`upload MB/s @${RTT_MS} ms`, (f) => f.delayed.uploadMBps],
  ];
  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
  const lines = [
    `| agent transport | ${cols.map(([name]) => name).join(' | ')} |`,
    `| --- |${cols.map(() => ' ---: |').join('')}`,
  ];
  for (const t of AGENT_TRANSPORTS)
    lines.push(`| ${t} | ${cols.map(([, get]) => fmt(get(rows[t]))).join(' | ')} |`);
  lines.push(
    `| websocket / grpc | ${cols.map(([, get]) => `${((get(rows.websocket) / get(rows.grpc)) * 100).toFixed(0)}%`).join(' | ')} |`,
  );
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const target = await startTarget();
  try {
    const bytes = Number(process.env.BENCH_WS_MB ?? 256) * MB;
    console.log(formatAgentTransportRows(await agentTransportRows(target.address, bytes)));
  } finally {
    target.stop();
  }
}
