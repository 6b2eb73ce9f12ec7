// Real proxy-server and proxy-agent child processes (bin/*), bound to port 0; the ports are
// read back from their JSON start-up logs. Every child is killed when the test process ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { WaitAbort, waitFor } from './wait.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const live = new Set<ChildProcess>();
const killAll = () => {
  for (const c of live) c.kill('SIGKILL');
};
process.on('exit', killAll);
// A test process stopped by a signal (a CI timeout, ^C) takes its children with it too.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

export interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export class Proc {
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  /** Log lines as read; parsed only when someone looks (a benchmark's load generator reads
   * thousands of audit lines it never inspects). */
  private readonly raw: string[] = [];
  private readonly parsed: LogLine[] = [];

  constructor(readonly child: ChildProcess) {
    live.add(child);
    if (child.stdout) {
      createInterface({ input: child.stdout }).on('line', (line) => {
        this.raw.push(line);
      });
    }
    child.stderr?.on('data', (d: Buffer) => this.stderr.push(d.toString()));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code) => {
        live.delete(child);
        resolve(code);
      });
    });
  }

  /** Every JSON log line so far (a non-JSON line becomes { msg: line }). */
  get lines(): readonly LogLine[] {
    for (let i = this.parsed.length; i < this.raw.length; i++) {
      const line = this.raw[i] ?? '';
      try {
        this.parsed.push(JSON.parse(line) as LogLine);
      } catch {
        this.parsed.push({ msg: line });
      }
    }
    return this.parsed;
  }

  /** The last `n` lines it wrote to stdout, then what it wrote to stderr: for a failed test's report. */
  tail(n = 40): string {
    const err = this.stderr.join('').trimEnd();
    return [...this.raw.slice(-n), ...(err ? ['--- stderr', err.slice(-4000)] : [])].join('\n');
  }

  find(msg: string): LogLine | undefined {
    return this.lines.find((l) => l.msg === msg);
  }

  waitLog(msg: string, timeoutMs = 20_000): Promise<LogLine> {
    return waitFor(
      `log "${msg}"`,
      () => this.find(msg) ?? (this.child.exitCode !== null ? fail(this) : undefined),
      timeoutMs,
    );
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }

  output(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n') + this.stderr.join('');
  }
}

function fail(p: Proc): never {
  throw new WaitAbort(`process exited (${String(p.child.exitCode)}):\n${p.output()}`);
}

export function spawnBin(
  bin: 'proxy-server' | 'proxy-agent',
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Proc {
  // KNP_NODE_ARGS: extra node flags for the children, e.g. "--cpu-prof" when profiling.
  const nodeArgs = (process.env.KNP_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'bin', `${bin}.js`), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Proc(child);
}

export interface ServerInfo {
  proc: Proc;
  agentPort: number;
  healthPort: number;
  adminPort: number;
  frontendPort: number;
}

export async function startServer(args: string[]): Promise<ServerInfo> {
  const proc = spawnBin('proxy-server', [
    '--agent-port=0',
    '--health-port=0',
    '--admin-port=0',
    '--health-bind-address=127.0.0.1',
    '--agent-bind-address=127.0.0.1',
    ...args,
  ]);
  const started = await proc.waitLog('proxy-server started');
  const frontends = started.frontends as { port?: number }[];
  return {
    proc,
    agentPort: started.agentPort as number,
    healthPort: started.healthPort as number,
    adminPort: started.adminPort as number,
    frontendPort: frontends[0]?.port ?? 0,
  };
}

export function agentArgs(
  files: { ca: string; agentCert: string; agentKey: string },
  agentPort: number,
  extra: string[] = [],
): string[] {
  return [
    '--proxy-server-host=127.0.0.1',
    `--proxy-server-port=${agentPort}`,
    `--ca-cert=${files.ca}`,
    `--agent-cert=${files.agentCert}`,
    `--agent-key=${files.agentKey}`,
    '--health-server-host=127.0.0.1',
    '--health-server-port=0',
    '--admin-server-port=0',
    '--sync-interval=100ms',
    '--sync-interval-cap=1s',
    ...extra,
  ];
}

export async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

/** Waits until a metric (as metric() reads it) equals `expected`. */
export function waitMetric(port: number, name: string, expected: number, timeoutMs = 20_000): Promise<true> {
  return waitFor(
    `${name} = ${expected}`,
    async () => (await metric(port, name)) === expected || undefined,
    timeoutMs,
  );
}

/** Reads one metric value (no labels, or the exact label set given) from a /metrics endpoint. */
export async function metric(port: number, name: string): Promise<number> {
  const { body } = await httpGet(port, '/metrics');
  for (const line of body.split('\n')) {
    if (line.startsWith(name + ' ') || line.startsWith(name + '{')) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  throw new Error(`metric ${name} not found`);
}

export function waitReady(server: ServerInfo, timeoutMs = 20_000): Promise<true> {
  return waitFor(
    'server ready (an agent connected)',
    async () => (await httpGet(server.healthPort, '/readyz')).status === 200 || undefined,
    timeoutMs,
  );
}
