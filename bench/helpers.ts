// The benchmark's helper processes: each prints its port on its first line of output.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export interface Helper {
  port: number;
  stop: () => void;
}

/** Runs one of the bench's scripts (compiled, next to this one) in a process of its own. */
export async function helper(name: string, args: string[] = []): Promise<Helper> {
  const script = join(dirname(fileURLToPath(import.meta.url)), name);
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => {
    createInterface({ input: child.stdout }).once('line', resolve);
  });
  return { port: Number(port.trim()), stop: () => child.kill('SIGTERM') };
}

export async function startTarget(): Promise<{ address: string; stop: () => void }> {
  const t = await helper('target.js');
  return { address: `127.0.0.1:${String(t.port)}`, stop: t.stop };
}

/** A delay proxy (test/support/delay-proxy.ts) in front of `port`, delaying each way by rtt / 2. */
export function startDelay(port: number, rtt: number): Promise<Helper> {
  return helper('delay-proxy.js', [String(port), String(rtt / 2)]);
}
