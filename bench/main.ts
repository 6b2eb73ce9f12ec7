// `npm run bench`: proxy-server, proxy-agent and the target each in a process of their own,
// this process as the load client; every figure beside plain loopback TCP to the same target,
// measured in the same run. Prints a table and writes bench/results/latest.json.
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { dial } from '../ccm-integration/dialer/index.js';
import { startCluster, type Cluster } from '../test/support/cluster.js';
import { metric } from '../test/support/processes.js';
import { waitFor } from '../test/support/wait.js';
import { waitReady } from '../test/support/processes.js';
import * as s from './scenarios.js';
import { startDelay, startTarget } from './helpers.js';
import { benchCcmBalancer, ccmBalancerTable, type CcmBalancerResult } from './ccm-balancer.js';
import { agentTransportRows, formatAgentTransportRows } from './websocket.js';
import { dialTraceTable, traceSequentialDials, type DialTraceResult } from './dial-trace.js';

const MB = 1024 * 1024;
const BYTES = 256 * MB;
const IDLE_CONNS = Number(process.env.BENCH_IDLE_CONNS ?? 10_000);

function rssKiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

interface Figures {
  downloadMBps: number;
  uploadMBps: number;
  sequential: s.Latency;
  /** The same sequential dials on one reusable gRPC tunnel (gRPC only). */
  reusableSequential?: s.Latency;
  parallelDialsPerSec: number;
  echo50: s.Latency;
  echo1000: s.Latency;
  rss?: {
    serverIdleKiB: number;
    agentIdleKiB: number;
    serverKiBPerConn: number;
    agentKiBPerConn: number;
    conns: number;
  };
  fairness?: { otherMBps: number | null; peakRssMiB: number };
  /** One stream through a link that delays each direction by rtt/2, by round trip in ms. */
  delayed?: Record<number, { downloadMBps: number; uploadMBps: number }>;
}

const DELAYED_BYTES = 128 * MB;
const RTTS = [10, 50];

/** The tunnel with the agent `rtt` ms (round trip) away from the server. */
async function tunnelAcross(mode: 'grpc' | 'http-connect', rtt: number, address: string) {
  const c = await startCluster(mode, 'uds', { agents: 0 });
  const delay = await startDelay(c.server.agentPort, rtt);
  try {
    await c.startAgent([`--proxy-server-port=${delay.port}`]);
    await waitReady(c.server);
    const d: s.Dialer = (a) => dial(c.frontend, a);
    return {
      downloadMBps: await s.download(d, address, DELAYED_BYTES),
      uploadMBps: await s.upload(d, address, DELAYED_BYTES),
    };
  } finally {
    await c.stop();
    delay.stop();
  }
}

/** Plain TCP to the target through the same kind of delay. */
async function tcpAcross(rtt: number, address: string) {
  const delay = await startDelay(Number(address.split(':')[1]), rtt);
  try {
    const via = `127.0.0.1:${delay.port}`;
    return {
      downloadMBps: await s.download(s.plainTcp, via, DELAYED_BYTES),
      uploadMBps: await s.upload(s.plainTcp, via, DELAYED_BYTES),
    };
  } finally {
    delay.stop();
  }
}

async function common(d: s.Dialer, address: string): Promise<Figures> {
  const downloadMBps = await s.download(d, address, BYTES);
  const uploadMBps = await s.upload(d, address, BYTES);
  const sequential = await s.sequentialDials(d, address, 500);
  const parallelDialsPerSec = await s.parallelDials(d, address, 50, 2000);
  const echo50 = await s.echoRoundTrips(d, address, 50, 3000);
  const echo1000 = await s.echoRoundTrips(d, address, 1000, 3000);
  return { downloadMBps, uploadMBps, sequential, parallelDialsPerSec, echo50, echo1000 };
}

/**
 * Sequential dials as `common` runs them, all on one reusable gRPC tunnel (one stream of one
 * connection), in fresh processes. Its server takes any number of dials per second on that
 * connection: --max-dials-per-second (100 by default) would cap the row at 100/s.
 */
async function reusableSequential(address: string): Promise<s.Latency> {
  const c = await startCluster('grpc', 'uds', { serverArgs: ['--max-dials-per-second=0'] });
  const tunnel = s.reusableGrpc(c.frontend);
  try {
    return await s.sequentialDials(tunnel.dial, address, 500);
  } finally {
    tunnel.close();
    await c.stop();
  }
}

/** RSS idle (measured at start) and the growth per idle open connection. */
async function idleMemory(
  c: Cluster,
  d: s.Dialer,
  address: string,
  idle: { server: number; agent: number },
): Promise<Figures['rss']> {
  const serverPid = c.server.proc.child.pid;
  const agentPid = c.agent?.child.pid;
  const serverBefore = rssKiB(serverPid);
  const agentBefore = rssKiB(agentPid);
  const open: Duplex[] = [];
  for (let i = 0; i < IDLE_CONNS; i += 100) {
    open.push(
      ...(await Promise.all(Array.from({ length: Math.min(100, IDLE_CONNS - i) }, () => d(address)))),
    );
  }
  await waitFor(
    'idle connections established',
    async () =>
      (await metric(c.server.adminPort, 'konnectivity_network_proxy_server_established_connections')) >=
      IDLE_CONNS,
    60_000,
  );
  const serverKiB = rssKiB(serverPid);
  const agentKiB = rssKiB(agentPid);
  for (const sock of open) sock.destroy();
  await waitFor(
    'idle connections closed',
    async () =>
      (await metric(c.server.adminPort, 'konnectivity_network_proxy_server_established_connections')) === 0,
    60_000,
  );
  return {
    serverIdleKiB: idle.server,
    agentIdleKiB: idle.agent,
    serverKiBPerConn: (serverKiB - serverBefore) / IDLE_CONNS,
    agentKiBPerConn: (agentKiB - agentBefore) / IDLE_CONNS,
    conns: IDLE_CONNS,
  };
}

/** One connection whose reader stalls, another moving 256 MiB through the same agent. */
async function fairness(c: Cluster, d: s.Dialer, address: string): Promise<Figures['fairness']> {
  const stalled = await d(address);
  stalled.pause();
  stalled.write(`source ${4 * 1024 * MB}\n`);
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssKiB(c.server.proc.child.pid) + rssKiB(c.agent?.child.pid));
  }, 50);
  try {
    // null: the other connection stalled behind the first (upstream behaviour).
    const otherMBps = await Promise.race([
      s.download(d, address, BYTES),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 30_000).unref()),
    ]);
    return { otherMBps, peakRssMiB: peak / 1024 };
  } finally {
    clearInterval(sampler);
    stalled.destroy();
  }
}

const target = await startTarget();
const results: Record<string, Figures> = {};
try {
  for (const mode of ['grpc', 'http-connect'] as const) {
    const c = await startCluster(mode, 'uds');
    try {
      const d: s.Dialer = (a) => dial(c.frontend, a);
      const idle = { server: rssKiB(c.server.proc.child.pid), agent: rssKiB(c.agent?.child.pid) };
      const f = await common(d, target.address);
      f.rss = await idleMemory(c, d, target.address, idle);
      results[`${mode} (UDS)`] = f;
    } finally {
      await c.stop();
    }
    const f = results[`${mode} (UDS)`] as Figures;
    // Fresh processes: the row shows what a stalled reader beside a transfer costs, not what
    // 10,000 idle connections left in the heap and the allocator before it.
    const fresh = await startCluster(mode, 'uds');
    try {
      f.fairness = await fairness(fresh, (a) => dial(fresh.frontend, a), target.address);
    } finally {
      await fresh.stop();
    }
    if (mode === 'grpc') f.reusableSequential = await reusableSequential(target.address);
    f.delayed = {};
    for (const rtt of RTTS) f.delayed[rtt] = await tunnelAcross(mode, rtt, target.address);
  }
  const tcp = await common(s.plainTcp, target.address);
  tcp.delayed = {};
  for (const rtt of RTTS) tcp.delayed[rtt] = await tcpAcross(rtt, target.address);
  results['plain loopback TCP'] = tcp;
} catch (err) {
  target.stop();
  throw err;
}

const cols = Object.keys(results);
const fmt = (n: number, digits = 0) => n.toFixed(digits);
const row = (name: string, f: (r: Figures) => string) =>
  `| ${name} | ${cols.map((c) => f(results[c] as Figures)).join(' | ')} |`;
const lat = (l: s.Latency) => `${fmt(l.perSecond)}/s, p50 ${fmt(l.p50, 2)} ms, p99 ${fmt(l.p99, 2)} ms`;
const table = [
  `| figure | ${cols.join(' | ')} |`,
  `|---|${cols.map(() => '---').join('|')}|`,
  row('one stream, download MB/s', (r) => fmt(r.downloadMBps)),
  row('one stream, upload MB/s', (r) => fmt(r.uploadMBps)),
  row('sequential dials (dial, 1-byte echo, close)', (r) => lat(r.sequential)),
  row('sequential dials, reusable gRPC tunnel (dial, 1-byte echo, close)', (r) =>
    r.reusableSequential ? lat(r.reusableSequential) : '-',
  ),
  row('50-way parallel dials /s', (r) => fmt(r.parallelDialsPerSec)),
  row('1 KiB echo round trips, 50 connections', (r) => lat(r.echo50)),
  row('1 KiB echo round trips, 1000 connections', (r) => lat(r.echo1000)),
  row('RSS idle, server / agent (MiB)', (r) =>
    r.rss ? `${fmt(r.rss.serverIdleKiB / 1024)} / ${fmt(r.rss.agentIdleKiB / 1024)}` : '-',
  ),
  row(`KiB per idle open connection (${IDLE_CONNS}), server / agent`, (r) =>
    r.rss ? `${fmt(r.rss.serverKiBPerConn, 1)} / ${fmt(r.rss.agentKiBPerConn, 1)}` : '-',
  ),
  row('fairness: 256 MiB beside a stalled reader, MB/s', (r) =>
    r.fairness ? (r.fairness.otherMBps === null ? 'stalled' : fmt(r.fairness.otherMBps)) : '-',
  ),
  row('fairness: peak RSS server + agent, fresh processes (MiB)', (r) =>
    r.fairness ? fmt(r.fairness.peakRssMiB) : '-',
  ),
  ...RTTS.flatMap((rtt) => [
    row(`download MB/s, agent ${rtt} ms RTT away (TCP: through the same delay)`, (r) =>
      fmt(r.delayed?.[rtt]?.downloadMBps ?? 0),
    ),
    row(`upload MB/s, agent ${rtt} ms RTT away (TCP: through the same delay)`, (r) =>
      fmt(r.delayed?.[rtt]?.uploadMBps ?? 0),
    ),
  ]),
];
process.stdout.write(table.join('\n') + '\n');

// The CCM's load balancer (a Service's data path through the tunnel) beside the proxy alone.
let balancer: CcmBalancerResult | undefined;
let agentTransports: Awaited<ReturnType<typeof agentTransportRows>> | undefined;
const dialTrace: DialTraceResult[] = [];
try {
  // Where a sequential dial's time goes, step by step (KNP_TRACE_DIALS, fresh processes).
  for (const mode of ['grpc', 'http-connect'] as const) {
    dialTrace.push(await traceSequentialDials(mode, target.address));
  }
  process.stdout.write('\n' + dialTraceTable(dialTrace) + '\n');
  balancer = await benchCcmBalancer({ target: target.address });
  process.stdout.write('\n' + ccmBalancerTable(balancer) + '\n');
  // The agent's transports side by side, each in fresh processes (gRPC frontend over UDS).
  agentTransports = await agentTransportRows(target.address);
  process.stdout.write('\n' + formatAgentTransportRows(agentTransports) + '\n');
} finally {
  target.stop();
}
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/latest.json',
  JSON.stringify(
    {
      when: new Date().toISOString(),
      node: process.version,
      bytes: BYTES,
      results,
      balancer,
      agentTransports,
      dialTrace,
    },
    (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
    2,
  ),
);
process.exit(0);
