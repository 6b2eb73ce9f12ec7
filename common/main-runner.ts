// Shared start-up of the two binaries: parse flags, build a logger, start, and turn SIGTERM
// and SIGINT into a graceful stop. Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage.
import { FlagError, parseFlags, usage, type FlagTable, type ParseResult } from './flags/flag-set.js';
import { createLogger, errorText, exitAfterFlush, type Logger } from './log.js';
import { hideKnownWarnings } from './process-warnings.js';

export interface Runnable {
  shutdown(): Promise<void>;
}

export async function runMain<T extends FlagTable>(
  command: string,
  table: T,
  start: (parsed: ParseResult<T>, log: Logger) => Promise<Runnable>,
): Promise<void> {
  hideKnownWarnings();
  let parsed: ParseResult<T>;
  try {
    parsed = parseFlags(table, process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${command}: ${errorText(err)}\nRun '${command} --help' for usage.\n`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(usage(command, table) + '\n');
    process.exit(0);
  }
  const verbosity = (parsed.values as Record<string, unknown>).v;
  const log = createLogger({ component: command, verbosity: typeof verbosity === 'number' ? verbosity : 0 });
  for (const w of parsed.warnings) log.warn(w);
  let running: Runnable;
  try {
    running = await start(parsed, log);
  } catch (err) {
    const bad = err instanceof FlagError || (err as { code?: string }).code === 'KNP_CONFIG';
    log.fatal({ error: errorText(err) }, bad ? 'invalid configuration' : 'failed to start');
    process.stderr.write(`${command}: ${errorText(err)}\n`);
    exitAfterFlush(log, bad ? 2 : 1);
    return;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'signal received');
    running.shutdown().then(
      () => {
        log.info('stopped');
        exitAfterFlush(log, 0);
      },
      (err: unknown) => {
        log.error({ error: errorText(err) }, 'shutdown failed');
        exitAfterFlush(log, 1);
      },
    );
  };
  process.on('SIGTERM', () => {
    stop('SIGTERM');
  });
  process.on('SIGINT', () => {
    stop('SIGINT');
  });
}
