// Listening on TCP or a Unix socket, with upstream's --delete-existing-uds-file and socket mode.
import { chmodSync, lstatSync, unlinkSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { TunnelError, ErrorCode } from './errors.js';

export interface ListenTarget {
  /** Unix socket path; when set, host/port are ignored. */
  uds?: string;
  host?: string;
  port?: number;
  /** Remove a stale socket file first (upstream default true). */
  deleteExisting?: boolean;
  /** File mode of the socket (upstream 0770). */
  mode?: number;
  /** Pending-connection queue; default LISTEN_BACKLOG. */
  backlog?: number;
}

/**
 * As Go listens: the kernel caps it at net.core.somaxconn (4096 on current kernels). Node's
 * default of 511 overflowed when thousands of agents reconnected at once (SYN cookies,
 * retransmits, TLS handshake timeouts).
 */
export const LISTEN_BACKLOG = 4096;

/** Prepares a UDS path: removes an existing socket (only a socket) when asked. */
export function prepareUds(path: string, deleteExisting: boolean): void {
  mkdirSync(dirname(path), { recursive: true });
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!deleteExisting) {
    throw new TunnelError(
      ErrorCode.CONFIG,
      `${path} already exists (pass --delete-existing-uds-file to replace it)`,
    );
  }
  if (!st.isSocket())
    throw new TunnelError(ErrorCode.CONFIG, `${path} exists and is not a socket; not removing it`);
  unlinkSync(path);
}

export async function listen(
  server: Server,
  target: ListenTarget,
): Promise<{ port: number; address: string }> {
  if (target.uds) prepareUds(target.uds, target.deleteExisting ?? true);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    const backlog = target.backlog ?? LISTEN_BACKLOG;
    if (target.uds) server.listen({ path: target.uds, backlog }, done);
    else server.listen({ port: target.port ?? 0, host: target.host || undefined, backlog }, done);
  });
  if (target.uds) {
    if (target.mode !== undefined) chmodSync(target.uds, target.mode);
    return { port: 0, address: target.uds };
  }
  const a = server.address() as AddressInfo;
  return { port: a.port, address: a.address };
}
