// Reloads a listener's certificate, key and CA when their files change on disk (cert-manager
// and kubelet rotate them in place), so a new certificate is served to the next handshake
// without a restart and without touching open connections. Files are polled, not watched:
// Kubernetes swaps secret volumes by symlink, which inotify watchers miss.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { Logger } from './log.js';
import type { TlsFiles } from './tls.js';

export interface TlsPaths {
  cert: string;
  key: string;
  ca?: string | undefined;
}

export class TlsReloader {
  private timer: NodeJS.Timeout | undefined;
  private current: TlsFiles;
  private readonly listeners: ((files: TlsFiles) => void)[] = [];

  constructor(
    private readonly name: string,
    private readonly paths: TlsPaths,
    initial: TlsFiles,
    private readonly log: Logger,
  ) {
    this.current = initial;
  }

  get files(): TlsFiles {
    return this.current;
  }

  onChange(listener: (files: TlsFiles) => void): void {
    this.listeners.push(listener);
  }

  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      this.check();
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads the files; applies them when they changed and form a usable certificate. */
  check(): void {
    let next: TlsFiles;
    try {
      next = {
        cert: readFileSync(this.paths.cert),
        key: readFileSync(this.paths.key),
        ...(this.paths.ca ? { ca: readFileSync(this.paths.ca) } : {}),
      };
    } catch (err) {
      this.log.warn(
        { listener: this.name, error: (err as Error).message },
        'cannot read TLS files; keeping the loaded ones',
      );
      return;
    }
    const prev = this.current;
    if (next.cert.equals(prev.cert) && next.key.equals(prev.key) && sameCa(next.ca, prev.ca)) return;
    try {
      // A half-written rotation (new cert, old key) must not replace a working pair.
      tls.createSecureContext({ cert: next.cert, key: next.key, ...(next.ca ? { ca: next.ca } : {}) });
    } catch (err) {
      this.log.warn(
        { listener: this.name, error: (err as Error).message },
        'changed TLS files do not load; keeping the loaded ones',
      );
      return;
    }
    this.current = next;
    this.log.info({ listener: this.name, cert: this.paths.cert }, 'TLS certificate reloaded');
    for (const l of this.listeners) l(next);
  }
}

function sameCa(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}
