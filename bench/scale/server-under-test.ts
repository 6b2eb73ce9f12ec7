// The proxy-server being measured: a child process of any checkout's bin/proxy-server.js. Its
// output is drained as it comes and counted by message (a per-agent log line is a figure of
// the bench); the start-up line 'proxy-server started' is read for the agent port.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface ServerStart {
  bin: string;
  args: string[];
  /** Bound on the wait for 'proxy-server started'. */
  timeoutMs: number;
}

const STARTED = 'proxy-server started';
/** The output kept to explain a server that did not start. */
const KEEP_CHARS = 4000;
/** What a line that is not a JSON log line (a crash, a Node warning) counts as. */
export const UNSTRUCTURED = '(not a JSON log line)';

/** The msg of a pino JSON line, read without parsing the whole line. */
export function logMessageOf(line: string): string {
  const m = /"msg":"((?:[^"\\]|\\.)*)"/.exec(line);
  if (!m) return UNSTRUCTURED;
  try {
    return JSON.parse(`"${m[1] ?? ''}"`) as string;
  } catch {
    return m[1] ?? UNSTRUCTURED;
  }
}

/** The agentPort field of the JSON start-up line. */
export function agentPortOf(line: string): number | undefined {
  try {
    const parsed = JSON.parse(line) as { agentPort?: unknown };
    return typeof parsed.agentPort === 'number' ? parsed.agentPort : undefined;
  } catch {
    return undefined;
  }
}

/** Lines by message between two snapshots of ServerUnderTest.messages, most frequent first. */
export function messagesBetween(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
): [message: string, lines: number][] {
  const out: [string, number][] = [];
  for (const [msg, n] of after) {
    const d = n - (before.get(msg) ?? 0);
    if (d > 0) out.push([msg, d]);
  }
  return out.sort((a, b) => b[1] - a[1]);
}

export class ServerUnderTest {
  /** Lines written to stdout and stderr so far. */
  logLines = 0;
  /** Lines so far by log message. */
  readonly messages = new Map<string, number>();
  readonly exited: Promise<void>;
  private exitCode: number | null | undefined;
  private recent = '';
  private onLine: ((line: string) => void) | undefined;

  private constructor(readonly child: ChildProcess) {
    if (child.stdout) this.drain(child.stdout);
    if (child.stderr) this.drain(child.stderr);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        resolve();
      });
      // A process that could not be spawned at all never exits.
      child.once('error', (err) => {
        this.recent += err.message;
        this.exitCode ??= -1;
        resolve();
      });
    });
  }

  private drain(stream: Readable): void {
    let pending = '';
    stream.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.recent = (this.recent + text).slice(-KEEP_CHARS);
      pending += text;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        this.logLines++;
        const msg = logMessageOf(line);
        this.messages.set(msg, (this.messages.get(msg) ?? 0) + 1);
        this.onLine?.(line);
      }
    });
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error('the server process has no pid (it did not start)');
    return pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** The last few KiB of its output. */
  get recentOutput(): string {
    return this.recent;
  }

  /** Spawns the server and resolves when it logs that it started, with its agent port. */
  static async start(options: ServerStart): Promise<{ server: ServerUnderTest; agentPort: number }> {
    const child = spawn(process.execPath, [options.bin, ...options.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    });
    const server = new ServerUnderTest(child);
    try {
      const agentPort = await server.waitStarted(options.timeoutMs);
      return { server, agentPort };
    } catch (err) {
      await server.kill();
      throw err;
    }
  }

  private waitStarted(timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | undefined, port?: number) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.onLine = undefined;
        if (err) reject(err);
        else resolve(port as number);
      };
      this.onLine = (line) => {
        if (!line.includes(STARTED)) return;
        const port = agentPortOf(line);
        if (port === undefined) finish(new Error(`no agentPort in the start-up line: ${line}`));
        else finish(undefined, port);
      };
      const timer = setTimeout(() => {
        finish(new Error(`the server did not log '${STARTED}' within ${timeoutMs}ms:\n${this.recent}`));
      }, timeoutMs);
      void this.exited.then(() => {
        finish(new Error(`the server exited before it started:\n${this.recent}`));
      });
    });
  }

  /** kill -9, resolved once the process is gone (its ports and socket file are free then). */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}
