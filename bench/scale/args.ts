// The command line of `npm run bench:scale`. node:util parseArgs reads it; this module turns
// the strings into checked numbers and a phase set, with an error naming the bad option.
import { parseArgs } from 'node:util';

export const PHASES = ['cold', 'idle', 'dials', 'restart', 'auth'] as const;
export type Phase = (typeof PHASES)[number];

export interface ScaleOptions {
  agents: number;
  workers: number;
  idleSeconds: number;
  phases: ReadonlySet<Phase>;
  /** Path of the bin/proxy-server.js to measure. */
  serverBin: string;
  /** Passed through to every server start, after the bench's own flags. */
  serverArgs: string[];
  reviewLatencyMs: number;
  timeoutSeconds: number;
  /** --max-concurrent-token-reviews for the server; undefined: not passed (its default). */
  maxConcurrentTokenReviews: number | undefined;
  /** Sequential dials per dial phase. */
  dials: number;
  tuneKernel: boolean;
  /** Where the JSON result goes. */
  out: string;
  help: boolean;
}

export class ScaleArgsError extends Error {
  override readonly name = 'ScaleArgsError';
}

export const USAGE = `Usage: node dist/bench/scale/main.js [options]
  --agents N                   simulated agents (default 5000)
  --workers W                  worker threads running them (default 2)
  --idle-seconds S             idle CPU window (default 60)
  --phases list                subset of ${PHASES.join(',')} (default all)
  --dials N                    sequential dials per dial phase (default 300)
  --server-bin PATH            the bin/proxy-server.js to measure (default this checkout's)
  --server-arg=FLAG            passed to the server, repeatable (e.g. --server-arg=--keepalive-time=1h)
  --review-latency-ms MS       simulated TokenReview latency (default 20)
  --max-concurrent-token-reviews N   passed to the server in the auth phase (default: not passed)
  --timeout-seconds S          bound on each phase (default 180)
  --tune-kernel                raise net.core.netdev_max_backlog to 16384 for the run, restored at exit
  --out PATH                   JSON result (default bench/results/scale-latest.json)`;

function integer(option: string, text: string, min: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < min) {
    throw new ScaleArgsError(`--${option} must be an integer >= ${min}, not "${text}"`);
  }
  return n;
}

function positiveNumber(option: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new ScaleArgsError(`--${option} must be a number > 0, not "${text}"`);
  }
  return n;
}

export function parsePhases(text: string): Set<Phase> {
  const phases = new Set<Phase>();
  for (const part of text.split(',')) {
    const name = part.trim();
    if (name === '') continue;
    const phase = PHASES.find((p) => p === name);
    if (!phase) throw new ScaleArgsError(`--phases: unknown phase "${name}" (known: ${PHASES.join(', ')})`);
    phases.add(phase);
  }
  if (phases.size === 0) throw new ScaleArgsError(`--phases names no phase (known: ${PHASES.join(', ')})`);
  return phases;
}

export function parseScaleArgs(argv: string[], defaultServerBin: string): ScaleOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        agents: { type: 'string', default: '5000' },
        workers: { type: 'string', default: '2' },
        'idle-seconds': { type: 'string', default: '60' },
        phases: { type: 'string', default: PHASES.join(',') },
        dials: { type: 'string', default: '300' },
        'server-bin': { type: 'string', default: defaultServerBin },
        'server-arg': { type: 'string', multiple: true, default: [] },
        'review-latency-ms': { type: 'string', default: '20' },
        'max-concurrent-token-reviews': { type: 'string' },
        'timeout-seconds': { type: 'string', default: '180' },
        'tune-kernel': { type: 'boolean', default: false },
        out: { type: 'string', default: 'bench/results/scale-latest.json' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new ScaleArgsError((err as Error).message);
  }
  const maxReviews = values['max-concurrent-token-reviews'];
  return {
    agents: integer('agents', values.agents, 1),
    workers: integer('workers', values.workers, 1),
    idleSeconds: positiveNumber('idle-seconds', values['idle-seconds']),
    phases: parsePhases(values.phases),
    dials: integer('dials', values.dials, 1),
    serverBin: values['server-bin'],
    serverArgs: values['server-arg'],
    reviewLatencyMs: integer('review-latency-ms', values['review-latency-ms'], 0),
    maxConcurrentTokenReviews:
      maxReviews === undefined ? undefined : integer('max-concurrent-token-reviews', maxReviews, 0),
    timeoutSeconds: positiveNumber('timeout-seconds', values['timeout-seconds']),
    tuneKernel: values['tune-kernel'],
    out: values.out,
    help: values.help,
  };
}
