// The dial trace (KNP_TRACE_DIALS): each dial's steps stamped with process.hrtime.bigint(),
// one JSON line per dial per process once it is over. hrtime reads CLOCK_MONOTONIC, one clock
// for every process of a machine: the server's, the agent's and a client's stamps of the same
// dial line up on one timeline (the bench joins them by the dial's random, bench/dial-trace.ts).
// KNP_TRACE_DIALS=1 writes the lines to stdout beside the logs (msg "dial trace"); any other
// value names a file they are appended to. Unset, every call site costs one boolean check:
// `if (tracingDials) ...`, nothing allocated.
import { openSync, writeSync } from 'node:fs';

const setting = process.env.KNP_TRACE_DIALS ?? '';
export const tracingDials = setting !== '' && setting !== '0' && setting !== 'false';

/** A dial's steps in one process, by name, in hrtime nanoseconds. */
interface Stamps {
  random: bigint;
  frontend: string;
  steps: Record<string, bigint>;
}

let fd: number | undefined;

function output(): number {
  fd ??= setting === '1' || setting === 'true' ? 1 : openSync(setting, 'a');
  return fd;
}

/**
 * The open dials of one process, each under whatever object stands for it at the moment (a
 * frontend's dial, a random, a connection). Used only when tracingDials is set.
 */
export class DialTracer<Step extends string> {
  private readonly open = new Map<unknown, Stamps>();

  constructor(private readonly processName: 'server' | 'agent') {}

  /** Stamps `step` now (the first time only) on the dial known as `key`; starts it if new. */
  mark(key: unknown, step: Step): void {
    let dial = this.open.get(key);
    if (!dial) {
      dial = { random: 0n, frontend: '', steps: {} };
      this.open.set(key, dial);
    }
    dial.steps[step] ??= process.hrtime.bigint();
  }

  /** Names the dial: its random on the agent stream (what joins the processes' lines). */
  identify(key: unknown, random: bigint, frontend = ''): void {
    const dial = this.open.get(key);
    if (!dial) return;
    dial.random = random;
    if (frontend) dial.frontend = frontend;
  }

  /** From here on the dial is known as `to` (a connection, once its dial succeeded). */
  rekey(from: unknown, to: unknown): void {
    const dial = this.open.get(from);
    if (!dial) return;
    this.open.delete(from);
    this.open.set(to, dial);
  }

  /** Forgets a dial without a line (a stream that never dialed). */
  drop(key: unknown): void {
    this.open.delete(key);
  }

  /** The dial is over: its line is written and it is forgotten. */
  finish(key: unknown, outcome = 'ok'): void {
    const dial = this.open.get(key);
    if (!dial) return;
    this.open.delete(key);
    const steps: Record<string, string> = {};
    for (const [name, at] of Object.entries(dial.steps)) steps[name] = at.toString();
    const line = {
      msg: 'dial trace',
      process: this.processName,
      pid: process.pid,
      random: dial.random.toString(),
      ...(dial.frontend ? { frontend: dial.frontend } : {}),
      outcome,
      steps,
    };
    writeSync(output(), JSON.stringify(line) + '\n');
  }
}

/** The server's steps, in the order a dial takes them. */
export const SERVER_STEPS = [
  'streamOpened',
  'accepted',
  'dialReqSent',
  'dialReqFlushed',
  'dialRspReceived',
  'answered',
  'dataFromClient',
  'dataToClient',
  'closeRequested',
  'closed',
] as const;
export type ServerStep = (typeof SERVER_STEPS)[number];

/** The agent's steps, in the order a dial takes them. */
export const AGENT_STEPS = [
  'dialReqReceived',
  'targetConnected',
  'dialRspSent',
  'dataFromServer',
  'dataFromTarget',
  'closeReqReceived',
  'closed',
] as const;
export type AgentStep = (typeof AGENT_STEPS)[number];

export const serverTrace = new DialTracer<ServerStep>('server');
export const agentTrace = new DialTracer<AgentStep>('agent');
