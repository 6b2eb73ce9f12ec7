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

export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? levelForVerbosity(options.verbosity ?? 0);
  const base = { component: options.component };
  return options.destination
    ? pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, options.destination)
    : pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime });
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
