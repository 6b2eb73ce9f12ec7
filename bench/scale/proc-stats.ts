// What the server process costs, read from /proc: CPU (utime + stime, in clock ticks) and
// resident memory (VmRSS). Only the server's own process is measured, never the load.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** utime + stime of a /proc/<pid>/stat line, in clock ticks. */
export function parseStatCpuTicks(stat: string): number {
  // The command name (field 2) is in parentheses and may hold spaces or ')': fields are
  // counted from the last ')'. After it come field 3 (state) onwards; utime is 14, stime 15.
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc/<pid>/stat line: "${stat.slice(0, 80)}"`);
  const fields = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isInteger(utime) || !Number.isInteger(stime)) {
    throw new Error(`no utime/stime in /proc/<pid>/stat line: "${stat.slice(0, 80)}"`);
  }
  return utime + stime;
}

/** VmRSS of a /proc/<pid>/status text, in KiB. */
export function parseVmRssKiB(status: string): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error('no VmRSS line in /proc/<pid>/status (has the process exited?)');
  return Number(m[1]);
}

export function readCpuTicks(pid: number): number {
  return parseStatCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

export function readRssKiB(pid: number): number {
  return parseVmRssKiB(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** Clock ticks per second of /proc CPU times (`getconf CLK_TCK`; 100 where it cannot be asked). */
export function clockTicksPerSecond(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

/** CPU seconds a process used between two readCpuTicks() readings. */
export class CpuMeter {
  private startTicks: number;
  constructor(
    private readonly pid: number,
    private readonly ticksPerSecond: number,
  ) {
    this.startTicks = readCpuTicks(pid);
  }

  /** CPU seconds since construction. */
  seconds(): number {
    return (readCpuTicks(this.pid) - this.startTicks) / this.ticksPerSecond;
  }
}
