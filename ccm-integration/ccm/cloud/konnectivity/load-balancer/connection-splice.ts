// Bytes between a client and its backend connection, both ways, as the proxy moves them:
// backpressure through pipe() (a side that cannot take more pauses the other's reads),
// half-close (an EOF from one side ends the other's writes and nothing more), and a side that
// fails or is torn down takes the other with it. A side that closed cleanly (read its EOF and
// wrote its own) leaves the other to finish flushing and close by itself.
import type { Duplex } from 'node:stream';

export interface SpliceCounters {
  toBackend: { inc(n: number): void };
  toClient: { inc(n: number): void };
}

/** Resolves once both sides are closed. */
export function splice(client: Duplex, backend: Duplex, counters: SpliceCounters): Promise<void> {
  client.on('data', (chunk: Buffer) => {
    counters.toBackend.inc(chunk.length);
  });
  backend.on('data', (chunk: Buffer) => {
    counters.toClient.inc(chunk.length);
  });
  client.pipe(backend);
  backend.pipe(client);
  // Errors are what 'close' reports here; without a listener an 'error' would throw.
  client.on('error', () => undefined);
  backend.on('error', () => undefined);
  const closed = (side: Duplex) =>
    new Promise<void>((resolve) => {
      if (side.destroyed) resolve();
      else side.once('close', resolve);
    });
  const tearDownWith = (side: Duplex, other: Duplex) => {
    side.once('close', () => {
      const clean = side.readableEnded && side.writableFinished;
      if (!clean) other.destroy();
    });
  };
  tearDownWith(client, backend);
  tearDownWith(backend, client);
  return Promise.all([closed(client), closed(backend)]).then(() => undefined);
}
