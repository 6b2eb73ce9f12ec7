// Every simulated agent holds a socket in this process and one in the server, each process
// under its own `ulimit -n` (the server inherits ours), and a dial holds a few more for a
// moment: N agents need about N + 200 descriptors per process.
import { readFileSync } from 'node:fs';

/** The soft "Max open files" of a /proc/<pid>/limits text; Infinity for "unlimited". */
export function parseOpenFileLimit(limits: string): number {
  const m = /^Max open files\s+(\S+)\s+/m.exec(limits);
  if (!m) throw new Error('no "Max open files" line in /proc/self/limits');
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

export function readOpenFileLimit(): number {
  return parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'));
}

export function descriptorsNeeded(agents: number): number {
  return agents + 200;
}

/** Why `agents` cannot run under `limit` descriptors, or undefined when they can. */
export function fdLimitProblem(agents: number, limit: number): string | undefined {
  const needed = descriptorsNeeded(agents);
  if (needed <= limit) return undefined;
  const most = limit - 200;
  return (
    `--agents ${agents} needs about ${needed} open files (1 per agent + 200, in this process and in the server) but ulimit -n is ${limit}: ` +
    `raise it (ulimit -n ${needed}) or run at most ${most} agents`
  );
}
