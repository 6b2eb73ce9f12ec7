// The dial trace of sequential dials (common/dial-trace.ts): server and agent started with
// KNP_TRACE_DIALS=1 write one line per dial; this process stamps the client's side on the
// same clock (process.hrtime.bigint() is CLOCK_MONOTONIC, shared by every process of the
// machine). The lines are joined by the dial's random (server ⇄ agent) and by time (client ⇄
// server: dials are sequential), and each gap of the chain is given as its median and p90.
import type { Duplex } from 'node:stream';
import { dial } from '../ccm-integration/dialer/index.js';
import { startCluster, type Mode } from '../test/support/cluster.js';
import type { LogLine, Proc } from '../test/support/processes.js';
import { waitFor } from '../test/support/wait.js';

interface ClientStamps {
  dial: bigint;
  connected: bigint;
  data: bigint;
  closed: bigint;
}

type Steps = Record<string, string | undefined>;

/** One point of the merged timeline: which process, which step. */
type Point = `${'client' | 'server' | 'agent'}.${string}`;

/** The chain of a sequential dial, gap by gap, in the order the dial takes them. */
const GAPS: readonly { from: Point; to: Point; what: string }[] = [
  { from: 'client.dial', to: 'server.streamOpened', what: 'client dial → Proxy stream opened (gRPC)' },
  { from: 'server.streamOpened', to: 'server.accepted', what: 'stream opened → DIAL_REQ read (gRPC)' },
  { from: 'client.dial', to: 'server.accepted', what: 'client dial → frontend accepted' },
  { from: 'server.accepted', to: 'server.dialReqSent', what: 'accepted → DIAL_REQ written' },
  { from: 'server.dialReqSent', to: 'agent.dialReqReceived', what: 'DIAL_REQ written → agent read it' },
  {
    from: 'server.dialReqSent',
    to: 'server.dialReqFlushed',
    what: '  of which: written → left for the socket',
  },
  {
    from: 'server.dialReqFlushed',
    to: 'agent.dialReqReceived',
    what: '  of which: left → agent read it',
  },
  { from: 'agent.dialReqReceived', to: 'agent.targetConnected', what: 'agent: → target connected' },
  { from: 'agent.targetConnected', to: 'agent.dialRspSent', what: 'target connected → DIAL_RSP written' },
  {
    from: 'agent.dialRspSent',
    to: 'server.dialRspReceived',
    what: 'DIAL_RSP written → server read it',
  },
  { from: 'server.dialRspReceived', to: 'server.answered', what: 'server: DIAL_RSP → frontend answered' },
  { from: 'server.answered', to: 'client.connected', what: 'answered → client has its connection' },
  { from: 'client.connected', to: 'server.dataFromClient', what: 'client → server: first DATA' },
  { from: 'server.dataFromClient', to: 'agent.dataFromServer', what: 'server → agent: first DATA' },
  { from: 'agent.dataFromServer', to: 'agent.dataFromTarget', what: 'agent → target → agent (echo)' },
  { from: 'agent.dataFromTarget', to: 'server.dataToClient', what: 'agent → server: first DATA back' },
  { from: 'server.dataToClient', to: 'client.data', what: 'server → client: first DATA back' },
  { from: 'client.data', to: 'server.closeRequested', what: 'client close → server CLOSE' },
  { from: 'server.closeRequested', to: 'agent.closeReqReceived', what: 'CLOSE_REQ → agent read it' },
  { from: 'server.closeRequested', to: 'server.closed', what: 'server: CLOSE → connection closed' },
  { from: 'agent.closeReqReceived', to: 'agent.closed', what: 'agent: CLOSE → target closed' },
  { from: 'client.dial', to: 'client.data', what: 'client: dial → echo back (total)' },
  { from: 'client.dial', to: 'client.closed', what: 'client: dial → closed (total)' },
];

export interface GapFigures {
  what: string;
  p50us: number | undefined;
  p90us: number | undefined;
}

export interface DialTraceResult {
  mode: Mode;
  dials: number;
  joined: number;
  gaps: GapFigures[];
}

function traceLines(proc: Proc | undefined): LogLine[] {
  return (proc?.lines ?? []).filter((l) => l.msg === 'dial trace' && l.outcome !== undefined);
}

function quantile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** `count` sequential dials (dial, 1-byte echo, close) traced through fresh processes. */
export async function traceSequentialDials(
  mode: Mode,
  address: string,
  count = 300,
): Promise<DialTraceResult> {
  const before = process.env.KNP_TRACE_DIALS;
  process.env.KNP_TRACE_DIALS = '1';
  let c: Awaited<ReturnType<typeof startCluster>>;
  try {
    c = await startCluster(mode, 'uds');
  } finally {
    if (before === undefined) delete process.env.KNP_TRACE_DIALS;
    else process.env.KNP_TRACE_DIALS = before;
  }
  const client: ClientStamps[] = [];
  try {
    for (let i = 0; i < count; i++) client.push(await dialEchoClose(c.frontend, address));
    await waitFor(
      'every dial traced by server and agent',
      () => traceLines(c.server.proc).length >= count && traceLines(c.agent).length >= count,
      20_000,
    );
    return { mode, dials: count, ...join(mode, client, traceLines(c.server.proc), traceLines(c.agent)) };
  } finally {
    await c.stop();
  }
}

async function dialEchoClose(frontend: Parameters<typeof dial>[0], address: string): Promise<ClientStamps> {
  const started = process.hrtime.bigint();
  const s: Duplex = await dial(frontend, address);
  const connected = process.hrtime.bigint();
  const one = new Promise<bigint>((resolve, reject) => {
    s.once('data', () => resolve(process.hrtime.bigint()));
    s.once('error', reject);
  });
  s.write('echo\nx');
  const data = await one;
  s.destroy();
  return { dial: started, connected, data, closed: process.hrtime.bigint() };
}

function join(
  mode: Mode,
  client: ClientStamps[],
  server: LogLine[],
  agent: LogLine[],
): { joined: number; gaps: GapFigures[] } {
  const agentByRandom = new Map(agent.map((l) => [l.random as string, l.steps as Steps]));
  const serverSteps = server.map((l) => ({ random: l.random as string, steps: l.steps as Steps }));
  const samples = GAPS.map(() => [] as number[]);
  let joined = 0;
  // The first dials warm the processes up (JIT, first HTTP/2 connection): left out.
  for (const stamps of client.slice(Math.min(20, Math.floor(client.length / 10)))) {
    const s = serverSteps.find((l) => {
      const at = BigInt(l.steps.accepted ?? '0');
      return at >= stamps.dial && at <= stamps.data;
    });
    const a = s ? agentByRandom.get(s.random) : undefined;
    if (!s || !a) continue;
    joined++;
    const at = (point: Point): bigint | undefined => {
      const [who, step] = point.split('.') as [string, string];
      if (who === 'client') return stamps[step as keyof ClientStamps];
      const text = (who === 'server' ? s.steps : a)[step];
      return text === undefined ? undefined : BigInt(text);
    };
    GAPS.forEach((g, i) => {
      const from = at(g.from);
      const to = at(g.to);
      if (from !== undefined && to !== undefined) samples[i]?.push(Number(to - from) / 1000);
    });
  }
  const gaps = GAPS.map((g, i) => {
    const sorted = (samples[i] ?? []).sort((x, y) => x - y);
    return { what: g.what, p50us: quantile(sorted, 0.5), p90us: quantile(sorted, 0.9) };
  }).filter((g) => mode === 'grpc' || !g.what.endsWith('(gRPC)'));
  return { joined, gaps };
}

/** The gaps of each mode side by side: median and p90 in µs. */
export function dialTraceTable(results: DialTraceResult[]): string {
  const us = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(0));
  const whats = [...new Set(results.flatMap((r) => r.gaps.map((g) => g.what)))];
  return [
    `| sequential dial, gap (µs) | ${results.map((r) => `${r.mode} p50 | ${r.mode} p90`).join(' | ')} |`,
    `|---|${results.map(() => '---|---').join('|')}|`,
    ...whats.map((what) => {
      const cells = results.map((r) => {
        const g = r.gaps.find((x) => x.what === what);
        return `${us(g?.p50us)} | ${us(g?.p90us)}`;
      });
      return `| ${what} | ${cells.join(' | ')} |`;
    }),
    `| dials joined (client, server, agent) | ${results.map((r) => `${r.joined} of ${r.dials} | `).join('')}`,
  ].join('\n');
}
