// The figures of one bench:scale run (written as JSON under bench/results/) and the table
// printed from them.
import { percentile } from './percentile.js';
import type { DialFigures, DialsBesideAgents } from './sequential-dials.js';
import type { ConnectWait, SwarmTotals } from './swarm.js';

/** What the simulated agents went through in a connect phase. */
export interface LoadFigures {
  swarm: SwarmTotals;
  /**
   * CPU seconds of the bench process (the swarm's workers, mostly) meanwhile: on a small
   * machine the load generator competes with the server for the same cores.
   */
  loadCpuSeconds: number;
}

/** The server's CPU in a connect phase. */
export interface ServerCpuFigures {
  serverCpuSeconds: number;
  /** Server CPU per successful agent connect in the phase. */
  cpuMsPerConnect: number;
}

/** `cpuSeconds` of the server's CPU spent on `connects` agent connects. */
export function serverCpuFigures(cpuSeconds: number, connects: number): ServerCpuFigures {
  return { serverCpuSeconds: cpuSeconds, cpuMsPerConnect: (cpuSeconds * 1000) / Math.max(1, connects) };
}

export interface ColdFigures extends ConnectWait, LoadFigures, ServerCpuFigures {}

export interface MemoryFigures {
  beforeKiB: number;
  afterConnectKiB: number;
  /** After the idle window, when the idle phase ran: what the table shows then. */
  afterIdleKiB?: number;
  kibPerAgent: number;
}

/** The idle window is read in slices this long (the last may be shorter). */
export const IDLE_SLICE_SECONDS = 10;

export interface IdleFigures {
  seconds: number;
  cpuSeconds: number;
  /** Of one core. */
  cpuPercent: number;
  /** The same, per IDLE_SLICE_SECONDS slice of the window, in order. */
  slicePercents: number[];
  /** Agent connects during the window (0 when nothing dropped). */
  reconnects: number;
  logLines: number;
  /** The most frequent log messages of the window, with their line counts. */
  logMessages: [message: string, lines: number][];
}

/** A restart phase; its server CPU is the new server's, from its start until all agents were back. */
export interface RestartFigures extends ConnectWait, LoadFigures, ServerCpuFigures {
  /** From kill -9 until the new server logged that it started. */
  serverStartSeconds: number;
  /** Lines the new server wrote from its start until 2 s after all agents were back. */
  logLines: number;
  /** The most frequent of them, with their line counts. */
  logMessages: [message: string, lines: number][];
}

export interface AuthFigures extends RestartFigures {
  reviews: number;
  peakConcurrentReviews: number;
  /** The limit the server was given or applies by default, as text ("none" without one). */
  reviewLimit: string;
}

export interface ScaleResult {
  when: string;
  node: string;
  agents: number;
  workers: number;
  serverBin: string;
  serverArgs: string[];
  idleSeconds: number;
  dialsPerPhase: number;
  reviewLatencyMs: number;
  netdevMaxBacklog: number | undefined;
  kernelTuned: boolean;
  cold?: ColdFigures;
  memory?: MemoryFigures;
  idle?: IdleFigures;
  dials?: { withAgents?: DialsBesideAgents; oneAgent?: DialFigures };
  restart?: RestartFigures;
  auth?: AuthFigures;
  /** Phases that failed outright, with why. */
  errors: string[];
}

const f2 = (n: number) => n.toFixed(2);
const mib = (kib: number) => (kib / 1024).toFixed(1);

function connected(w: ConnectWait): string {
  const got = `${w.connected} of ${w.wanted}`;
  return w.seconds === undefined
    ? `${got}, not all: ${w.unfinished ?? 'unfinished'}`
    : `${got} in ${f2(w.seconds)} s`;
}

function failures(t: SwarmTotals): string {
  const parts = Object.entries(t.failures)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `${reason} ${n}`);
  return parts.length === 0 ? '0' : parts.join(', ');
}

function load(l: LoadFigures): string {
  const t = l.swarm;
  return (
    `${t.handshakes} TLS handshakes (${t.resumed} resumed), ${f2(l.loadCpuSeconds)} s CPU; ` +
    `connect failures: ${failures(t)}`
  );
}

/** The idle window's slices: the median is the steady state, the highest shows a one-off. */
function slices(percents: readonly number[]): string {
  if (percents.length < 2) return '';
  const sorted = [...percents].sort((a, b) => a - b);
  const lowest = sorted[0] ?? NaN;
  const highest = sorted[sorted.length - 1] ?? NaN;
  return `; ${percents.length} slices of ${IDLE_SLICE_SECONDS} s: median ${f2(percentile(sorted, 0.5))}%, ${f2(lowest)}-${f2(highest)}%`;
}

/** "1006 (1000 'agent connected', 4 'listening')": the two messages that make up most lines. */
function logLines(total: number, messages: [string, number][]): string {
  const top = messages
    .slice(0, 2)
    .map(([msg, n]) => `${n} '${msg.length > 70 ? `${msg.slice(0, 67)}...` : msg}'`);
  return top.length === 0 ? String(total) : `${total} (${top.join(', ')})`;
}

function dials(d: DialFigures): string {
  const base = `${f2(d.p50Ms)} / ${f2(d.p99Ms)} ms (${d.done} of ${d.dials} dials)`;
  return d.firstError === undefined ? base : `${base}; ${d.failed} failed, first: ${d.firstError}`;
}

function serverCpu(f: ServerCpuFigures): string {
  return `${f2(f.serverCpuSeconds)} s, ${f2(f.cpuMsPerConnect)} ms per agent connect`;
}

/** The rows of a restart phase, under `label`: all back, `extra`, log lines, load generator. */
function restartRows(label: string, r: RestartFigures, extra: [string, string][] = []): [string, string][] {
  return [
    [`${label}: all agents back`, `${connected(r)} (server up after ${f2(r.serverStartSeconds)} s)`],
    [`${label}: server CPU until all back`, serverCpu(r)],
    ...extra.map(([k, v]): [string, string] => [`${label}: ${k}`, v]),
    [`${label}: server log lines (start to 2 s after all back)`, logLines(r.logLines, r.logMessages)],
    [`${label}: load generator`, load(r)],
  ];
}

/** The markdown table; a row per figure measured. */
export function scaleTable(r: ScaleResult): string {
  const n = r.agents;
  const rows: [string, string][] = [];
  if (r.cold) {
    rows.push(['agents connected from cold', connected(r.cold)]);
    rows.push(['server CPU for the cold connect', serverCpu(r.cold)]);
    rows.push(['cold connect: load generator', load(r.cold)]);
  }
  if (r.memory) {
    const withKiB = r.memory.afterIdleKiB ?? r.memory.afterConnectKiB;
    const when = r.memory.afterIdleKiB === undefined ? 'just connected' : 'after the idle window';
    rows.push([
      `server RSS before agents / with ${n} agents (${when})`,
      `${mib(r.memory.beforeKiB)} / ${mib(withKiB)} MiB`,
    ]);
    rows.push(['server RSS per agent', `${r.memory.kibPerAgent.toFixed(1)} KiB`]);
  }
  if (r.idle) {
    rows.push([
      `server idle CPU over ${r.idle.seconds} s (${n} agents, no dials)`,
      `${f2(r.idle.cpuPercent)}% of one core${slices(r.idle.slicePercents)} (${r.idle.reconnects} reconnects; log lines: ${logLines(r.idle.logLines, r.idle.logMessages)})`,
    ]);
  }
  if (r.dials?.withAgents) {
    const d = r.dials.withAgents;
    rows.push([`sequential dials p50 / p99, ${n} agents`, dials(d)]);
    rows.push([
      `sequential dials p50 / p99, 1 agent (own server, in turns with the ${n}-agent dials: the same machine load)`,
      dials(d.oneAgentAlongside),
    ]);
    rows.push([
      `during those dials (${f2(d.seconds)} s): ${n}-agent server CPU per dial, load generator CPU`,
      `${f2((d.serverCpuSeconds * 1000) / Math.max(1, d.done))} ms, ${f2((d.loadCpuSeconds / d.seconds) * 100)}% of one core; ` +
        `${d.reconnects} agents reconnected; server log lines: ${logLines(d.logLines, d.logMessages)}`,
    ]);
  }
  if (r.dials?.oneAgent)
    rows.push([
      'sequential dials p50 / p99, 1 agent (own server, before any agents connect)',
      dials(r.dials.oneAgent),
    ]);
  if (r.restart) rows.push(...restartRows('kill -9 and restart', r.restart));
  if (r.auth) {
    rows.push(
      ...restartRows('restart with token auth', r.auth, [
        ['TokenReviews', `${r.auth.reviews} (${f2(r.auth.reviews / n)} per agent)`],
        ['peak concurrent TokenReviews', `${r.auth.peakConcurrentReviews} (limit: ${r.auth.reviewLimit})`],
      ]),
    );
  }
  const title = `bench:scale, ${n} agents on ${r.workers} worker(s), server ${r.serverBin}`;
  return [
    `| ${title} | figure |`,
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v.replaceAll('|', '\\|')} |`),
  ].join('\n');
}
