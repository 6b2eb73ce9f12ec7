// Reads certificate, key and CA files into Buffers with errors that name the flag.
import { readFileSync } from 'node:fs';
import { TunnelError, ErrorCode } from './errors.js';
import type { TlsPaths } from './tls-reload.js';

export function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TunnelError(ErrorCode.CONFIG, `cannot read --${flag} ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** When set, peers must present a certificate signed by it. */
  ca?: Buffer;
  /** Where they were read from, for reloading; absent when given in memory. */
  paths?: TlsPaths;
}
