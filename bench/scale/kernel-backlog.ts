// Loopback drops packets in bursts when thousands of agents connect at once and
// net.core.netdev_max_backlog is the default 1000 (seen for Go and Node servers alike): a
// test artifact, not a server figure. The bench says so, and raises it only when asked
// (--tune-kernel), restoring the old value at exit.
import { readFileSync, writeFileSync } from 'node:fs';

const PATH = '/proc/sys/net/core/netdev_max_backlog';
/** Below this the note is printed. */
export const ENOUGH_BACKLOG = 10_000;
export const TUNED_BACKLOG = 16_384;

export function readNetdevBacklog(): number | undefined {
  try {
    return Number(readFileSync(PATH, 'utf8').trim());
  } catch {
    return undefined;
  }
}

export function backlogNote(current: number): string | undefined {
  if (current >= ENOUGH_BACKLOG) return undefined;
  return (
    `note: ${PATH} is ${current} (< ${ENOUGH_BACKLOG}): loopback bursts of mass connects may drop ` +
    `packets; --tune-kernel raises it to ${TUNED_BACKLOG} for the run`
  );
}

/** Writes TUNED_BACKLOG; returns the function that puts `previous` back. */
export function raiseNetdevBacklog(previous: number): () => void {
  try {
    writeFileSync(PATH, `${TUNED_BACKLOG}\n`);
  } catch (err) {
    throw new Error(`--tune-kernel: cannot write ${PATH}: ${(err as Error).message}`, { cause: err });
  }
  return () => {
    writeFileSync(PATH, `${previous}\n`);
  };
}
