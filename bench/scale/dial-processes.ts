// The dial row's two processes: a real proxy-agent (this checkout's bin/proxy-agent.js) that
// claims the target's address, and the dial client (./dial-client.js).
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DialFigures } from './sequential-dials.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const AGENT_BIN = join(HERE, '..', '..', '..', 'bin', 'proxy-agent.js');

export interface RealAgent {
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts the agent and resolves once it holds a stream to the server. */
export async function startRealAgent(
  files: { ca: string; agentCert: string; agentKey: string },
  agentPort: number,
  claimedIp: string,
  timeoutMs: number,
): Promise<RealAgent> {
  const child = spawn(
    process.execPath,
    [
      AGENT_BIN,
      '--proxy-server-host=127.0.0.1',
      `--proxy-server-port=${String(agentPort)}`,
      `--ca-cert=${files.ca}`,
      `--agent-cert=${files.agentCert}`,
      `--agent-key=${files.agentKey}`,
      '--agent-id=bench-dial-agent',
      `--agent-identifiers=ipv4=${claimedIp}`,
      '--health-server-host=127.0.0.1',
      '--health-server-port=0',
      '--admin-server-port=0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited(child);
  };
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000)));
  const connected = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`the dial agent did not connect within ${String(timeoutMs)}ms: ${output}`));
    }, timeoutMs);
    createInterface({ input: child.stdout }).on('line', (line) => {
      output = (output + line + '\n').slice(-2000);
      if (line.includes('"connected to proxy-server"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the dial agent exited (${String(code)}): ${output}`));
    });
  });
  try {
    await connected;
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}

/** Runs the dial client to completion and returns its figures. */
export async function runDialClient(
  uds: string,
  address: string,
  count: number,
  deadline: number,
): Promise<DialFigures> {
  const child = spawn(
    process.execPath,
    [join(HERE, 'dial-client.js'), uds, address, String(count), String(deadline)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`the dial client exited with ${String(code)}`);
  return JSON.parse(out) as DialFigures;
}
