// The dial row: one after another, dial through the gRPC frontend (our single-use dialer, one
// connection per dial as kube-apiserver), send one byte to the echo target, read it back,
// close. Bounded by a deadline: a dial that hangs ends the phase instead of the bench.
import type { Duplex } from 'node:stream';
import { dial, type FrontendAddress } from '../../ccm-integration/dialer/index.js';
import { percentile } from './percentile.js';

export interface DialFigures {
  /** Dials asked for. */
  dials: number;
  /** Dials that echoed. */
  done: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  /** The first failure, to say why in the table. */
  firstError?: string;
  /** Every dial that echoed, in ms, sorted: chunks of one run are merged from these. */
  samplesMs: number[];
}

/**
 * With N agents: the dials, a one-agent baseline taken in turns with them (the same machine
 * load: the load generator and its N connections run throughout), and what else the server
 * did meanwhile.
 */
export interface DialsBesideAgents extends DialFigures {
  /** Through a server of its own with one agent, in chunks alternating with the N-agent ones. */
  oneAgentAlongside: DialFigures;
  /** Simulated agents that connected again meanwhile (each one a TLS handshake on the server). */
  reconnects: number;
  /** The whole phase, both servers' dials. */
  seconds: number;
  /** CPU of the N-agent server (it is idle while the baseline's chunks run). */
  serverCpuSeconds: number;
  loadCpuSeconds: number;
  logLines: number;
  logMessages: [message: string, lines: number][];
}

const DIAL_TIMEOUT_MS = 30_000;

/** Writes one byte after the target's "echo" command and waits for it to come back. */
function echoOneByte(socket: Duplex, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no echo within ${timeoutMs}ms`));
    }, timeoutMs);
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', done);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onData = () => {
      done();
    };
    const onClose = () => {
      done(new Error('tunnel closed before the echo'));
    };
    socket.on('data', onData);
    socket.once('error', done);
    socket.once('close', onClose);
    socket.write('echo\nx');
  });
}

export async function sequentialDials(
  frontend: FrontendAddress,
  address: string,
  count: number,
  deadline: number,
): Promise<DialFigures> {
  const samples: number[] = [];
  let failed = 0;
  let firstError: string | undefined;
  for (let i = 0; i < count; i++) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const t0 = performance.now();
    let socket: Duplex | undefined;
    try {
      socket = await dial(frontend, address, { timeoutMs: Math.min(DIAL_TIMEOUT_MS, left) });
      await echoOneByte(socket, Math.max(1, Math.min(DIAL_TIMEOUT_MS, deadline - Date.now())));
      samples.push(performance.now() - t0);
    } catch (err) {
      failed++;
      firstError ??= (err as Error).message;
    } finally {
      socket?.destroy();
    }
  }
  samples.sort((a, b) => a - b);
  return {
    dials: count,
    done: samples.length,
    failed,
    samplesMs: samples,
    p50Ms: percentile(samples, 0.5),
    p99Ms: percentile(samples, 0.99),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/** One set of figures from chunks of the same kind of dial. */
export function mergeDialFigures(chunks: DialFigures[]): DialFigures {
  const samples = chunks.flatMap((c) => c.samplesMs).sort((a, b) => a - b);
  const firstError = chunks.find((c) => c.firstError !== undefined)?.firstError;
  return {
    dials: chunks.reduce((n, c) => n + c.dials, 0),
    done: samples.length,
    failed: chunks.reduce((n, c) => n + c.failed, 0),
    ...(firstError === undefined ? {} : { firstError }),
    samplesMs: samples,
    p50Ms: percentile(samples, 0.5),
    p99Ms: percentile(samples, 0.99),
  };
}
