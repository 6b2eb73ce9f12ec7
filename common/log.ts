// pino JSON logs. -v maps to the level: 0-1 info, 2-4 debug, 5+ trace (per-packet logs live
// at trace only). One child logger per component and per connection, bound once.
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export function levelForVerbosity(v: number): 'info' | 'debug' | 'trace' {
  if (v >= 5) return 'trace';
  if (v >= 2) return 'debug';
  return 'info';
}

export interface LoggerOptions {
  component: string;
  verbosity?: number;
  /** Overrides verbosity; 'silent' for tests and embedded use. */
  level?: string;
  destination?: NodeJS.WritableStream;
}

/** Log lines held while stdout is not being read; beyond this, new lines are dropped. */
const MAX_PENDING_LOG_BYTES = 16 * 1024 * 1024;

/**
 * Standard output, written from libuv's thread pool: a log line (the server writes one per dial)
 * costs the event loop no write system call, and a reader that stops reading (a full pipe)
 * stalls no connection. Lines that arrive while a write is under way go out together with the
 * next one; pino flushes what is left synchronously when the process exits.
 */
function stdoutDestination(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: false, minLength: 0, maxLength: MAX_PENDING_LOG_BYTES });
}

export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? levelForVerbosity(options.verbosity ?? 0);
  const base = { component: options.component };
  const destination = options.destination ?? (level === 'silent' ? undefined : stdoutDestination());
  return destination
    ? pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, destination)
    : pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime });
}

/** How long an exit waits for stdout to take the last log lines (a stalled reader). */
const EXIT_FLUSH_WAIT_MS = 2000;

/**
 * Exits once the log lines written so far have reached stdout, in order (pino's own flush at
 * exit does not wait for a write already under way).
 */
export function exitAfterFlush(log: Logger, code: number): void {
  const exit = () => process.exit(code);
  setTimeout(exit, EXIT_FLUSH_WAIT_MS);
  try {
    log.flush(exit);
  } catch {
    exit();
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
