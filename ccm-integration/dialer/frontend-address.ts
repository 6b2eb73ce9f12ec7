// Where a proxy-server frontend is and how to reach it.
export interface FrontendAddress {
  protocol: 'grpc' | 'http-connect';
  /** Unix socket path of the frontend; otherwise host:port over mTLS. */
  uds?: string;
  host?: string;
  port?: number;
  tls?: {
    ca: Buffer;
    cert?: Buffer;
    key?: Buffer;
    /** Name to verify in the server certificate (default: host). */
    servername?: string;
  };
}

export interface DialOptions {
  /** Bound on the whole dial, until the target is connected (default 30 s, as kube-apiserver). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * gRPC frontend: ask for the half-close extension, so that end() only ends our
   * direction (default true; an upstream server ignores the request).
   */
  halfClose?: boolean;
}

export const DEFAULT_DIAL_TIMEOUT_MS = 30_000;
