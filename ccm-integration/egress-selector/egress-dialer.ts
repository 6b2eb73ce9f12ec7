// One selection of an EgressSelectorConfiguration as a dialer, the way kube-apiserver uses it:
// Direct is a plain TCP connect; HTTPConnect and GRPC go through the proxy-server frontend the
// selection names (ccm-integration/dialer). The gRPC dial is injectable, so that a shared
// multiplexed tunnel can replace the single-use one without changing callers.
import net from 'node:net';
import tls from 'node:tls';
import type http from 'node:http';
import type https from 'node:https';
import type { Duplex } from 'node:stream';
import {
  dial as tunnelDial,
  ReusableGrpcTunnel,
  type DialOptions,
  type FrontendAddress,
} from '../dialer/index.js';
import { watchDial } from '../dialer/dial-watch.js';
import { ErrorCode, TunnelError } from '../../common/errors.js';
import { errorText } from '../../common/log.js';
import {
  connectionFor,
  type EgressConnection,
  type EgressSelectorConfiguration,
  type EgressTransport,
} from './config.js';
import type { EgressDialer, EgressDialOptions, EgressSelectionName } from './egress-dialer-types.js';
import { TunnelHttpAgent, TunnelHttpsAgent } from './tunnel-http-agent.js';

/** Opens a connection to `address` (host:port) through the frontend: dialer/index.ts `dial`'s shape. */
export type FrontendDial = (
  frontend: FrontendAddress,
  address: string,
  options: DialOptions,
) => Promise<Duplex>;

export interface EgressDialerOptions {
  /**
   * GRPC selections: 'single-use' (default) opens one HTTP/2 connection and stream per dial, as
   * kube-apiserver does, and works with any server; 'reusable' multiplexes every dial over one
   * Proxy stream (ReusableGrpcTunnel), which only our server serves correctly (upstream v0.33
   * ends the stream at the first CLOSE_REQ).
   */
  grpcTunnel?: 'single-use' | 'reusable';
  /** How GRPC selections dial, overriding grpcTunnel (tests, embedders). */
  grpcDial?: FrontendDial;
}

export function egressDialer(
  config: EgressSelectorConfiguration,
  selection: EgressSelectionName,
  options: EgressDialerOptions = {},
): EgressDialer {
  return new SelectionDialer(selection, connectionFor(config, selection), options);
}

/** "host:port", with an IPv6 host in brackets; a host already in brackets is taken as is. */
export function targetAddress(host: string, port: number): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (bare === '') throw new TunnelError(ErrorCode.BAD_TARGET, 'no host to dial');
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new TunnelError(ErrorCode.BAD_TARGET, `port ${port} of ${bare} is not a TCP port`);
  return bare.includes(':') ? `[${bare}]:${port}` : `${bare}:${port}`;
}

type Connect = (host: string, port: number, address: string, options: DialOptions) => Promise<Duplex>;

class SelectionDialer implements EgressDialer {
  readonly proxyProtocol: EgressConnection['proxyProtocol'];
  private readonly connect: Connect;
  private closed = false;
  /** Aborts every pending dial on close(). */
  private readonly pending = new Set<AbortController>();
  /** Connections handed out and still open; close() destroys them. */
  private readonly open = new Set<Duplex>();
  private readonly agents = new Set<http.Agent>();
  private readonly tunnel: ReusableGrpcTunnel | undefined;

  constructor(
    readonly selection: EgressSelectionName,
    connection: EgressConnection,
    options: EgressDialerOptions,
  ) {
    this.proxyProtocol = connection.proxyProtocol;
    if (connection.proxyProtocol === 'Direct') {
      this.connect = dialDirect;
    } else {
      const frontend = frontendAddress(connection.proxyProtocol, connection.transport);
      let through: FrontendDial = tunnelDial;
      if (connection.proxyProtocol === 'GRPC') {
        if (options.grpcDial) through = options.grpcDial;
        else if (options.grpcTunnel === 'reusable') {
          const tunnel = new ReusableGrpcTunnel(frontend);
          this.tunnel = tunnel;
          through = (_frontend, address, dialOptions) => tunnel.dial(address, dialOptions);
        }
      }
      this.connect = (_host, _port, address, dialOptions) => through(frontend, address, dialOptions);
    }
  }

  async dial(host: string, port: number, options: EgressDialOptions = {}): Promise<Duplex> {
    if (this.closed) throw this.closedError();
    const address = targetAddress(host, port);
    const { signal } = options;
    if (signal?.aborted) throw new TunnelError(ErrorCode.DIAL_CANCELLED, `dial to ${address} aborted`);
    // One controller per dial, fed by the caller's signal and by close(): AbortSignal.any on
    // Node 20 keeps every dependent signal of a long-lived source alive.
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.pending.add(controller);
    let socket: Duplex;
    try {
      socket = await this.connect(host.replace(/^\[(.*)\]$/, '$1'), port, address, {
        signal: controller.signal,
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      });
    } catch (err) {
      throw this.isClosed() ? this.closedError(err) : asTunnelError(err, this.proxyProtocol, address);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.pending.delete(controller);
    }
    // close() may have come while the dial was in flight.
    if (this.isClosed()) {
      socket.destroy();
      throw this.closedError();
    }
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
    return socket;
  }

  httpAgent(options?: http.AgentOptions): http.Agent {
    return this.keep(new TunnelHttpAgent((h, p, o) => this.dial(h, p, o), options));
  }

  httpsAgent(options?: https.AgentOptions): https.Agent {
    return this.keep(new TunnelHttpsAgent((h, p, o) => this.dial(h, p, o), options));
  }

  close(): void {
    this.closed = true;
    for (const controller of this.pending) controller.abort();
    for (const agent of this.agents) agent.destroy();
    for (const socket of this.open) socket.destroy();
    this.agents.clear();
    this.tunnel?.close();
  }

  private isClosed(): boolean {
    return this.closed;
  }

  private keep<A extends http.Agent>(agent: A): A {
    if (this.closed) agent.destroy();
    else this.agents.add(agent);
    return agent;
  }

  private closedError(cause?: unknown): TunnelError {
    return new TunnelError(
      ErrorCode.TUNNEL_CLOSED,
      `egress dialer of selection "${this.selection}" is closed`,
      cause === undefined ? undefined : { cause },
    );
  }
}

/** Where the selection's proxy-server frontend is, in the dialer's terms. */
export function frontendAddress(
  protocol: 'HTTPConnect' | 'GRPC',
  transport: EgressTransport,
): FrontendAddress {
  const mode = protocol === 'GRPC' ? 'grpc' : 'http-connect';
  if (transport.kind === 'uds') return { protocol: mode, uds: transport.udsName };
  const { host, port } = transport;
  return {
    protocol: mode,
    host,
    port,
    tls: {
      ca: transport.tls.caBundle ?? systemRoots(),
      cert: transport.tls.clientCert,
      key: transport.tls.clientKey,
      // SNI carries names only; an IP is checked against the certificate's IP SANs.
      ...(net.isIP(host) ? {} : { servername: host }),
    },
  };
}

let roots: Buffer | undefined;
/** No caBundle: Node's default trust roots, as kube-apiserver uses the system's. */
function systemRoots(): Buffer {
  roots ??= Buffer.from(tls.rootCertificates.join('\n'));
  return roots;
}

/** A plain TCP connection for Direct selections, under the same deadline and signal as a tunnel dial. */
function dialDirect(host: string, port: number, address: string, options: DialOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const fail = (err: TunnelError) => {
      watch.stop();
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error) => {
      fail(new TunnelError(ErrorCode.DIAL_FAILED, `dial tcp ${address}: ${err.message}`, { cause: err }));
    };
    const watch = watchDial(address, options, fail);
    socket.once('error', onError);
    socket.once('connect', () => {
      watch.stop();
      socket.off('error', onError);
      resolve(socket);
    });
    watch.abortedAlready();
  });
}

/** The dialer's own errors pass as they are; anything else (the frontend unreachable) gets a code. */
function asTunnelError(err: unknown, protocol: string, address: string): TunnelError {
  if (err instanceof TunnelError) return err;
  const message = errorText(err);
  return new TunnelError(
    ErrorCode.FRONTEND,
    `${protocol} dial to ${address}: proxy-server unreachable: ${message}`,
    {
      cause: err,
    },
  );
}
