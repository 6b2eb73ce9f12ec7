// Node HTTP(S) agents whose connections come from an egress dialer: createConnection dials the
// request's host:port through the tunnel (the callback form, since a dial is asynchronous), and
// the agent pools the result, so keep-alive reuses one tunnel connection for many requests.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { ErrorCode, TunnelError } from '../../common/errors.js';
import type { EgressDialOptions } from './egress-dialer-types.js';

export type TargetDial = (host: string, port: number, options?: EgressDialOptions) => Promise<Duplex>;

type Oncreate = (err: Error | null, socket: Duplex) => void;
/** What an Oncreate gets with an error: Node's type wants a socket there too. */
const NO_SOCKET = undefined as unknown as Duplex;

/** What Node's http client and Agent call on a socket, beyond Duplex. */
interface SocketControls {
  setKeepAlive?(enable?: boolean, initialDelay?: number): unknown;
  setNoDelay?(noDelay?: boolean): unknown;
  ref?(): unknown;
  unref?(): unknown;
}

/**
 * A tunnel connection that is not a net.Socket (a gRPC tunnel stream) dressed as one for Node's
 * http client: the Agent calls setKeepAlive, setTimeout, ref and unref on pooled sockets, and
 * an idle timeout must emit 'timeout'. Bytes pass through untouched, with backpressure.
 */
export class TunnelSocket extends Duplex {
  timeout: number | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly inner: Duplex) {
    // As a net.Socket: the peer's EOF ends our side too.
    super({ allowHalfOpen: false });
    inner.on('data', (chunk: Buffer) => {
      this.idleTimer?.refresh();
      if (!this.push(chunk)) inner.pause();
    });
    inner.once('end', () => this.push(null));
    inner.on('error', (err: Error) => this.destroy(err));
    inner.once('close', () => {
      if (!this.destroyed) this.destroy();
    });
  }

  override _read(): void {
    if (this.inner.isPaused()) this.inner.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.idleTimer?.refresh();
    if (this.inner.write(chunk)) callback();
    else this.inner.once('drain', () => callback());
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.inner.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    clearTimeout(this.idleTimer);
    this.inner.destroy();
    callback(err);
  }

  /** As net.Socket: 'timeout' after `ms` without bytes either way; 0 disarms. */
  setTimeout(ms: number, onTimeout?: () => void): this {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.timeout = ms;
    if (ms > 0) {
      this.idleTimer = setTimeout(() => this.emit('timeout'), ms);
      // Like net.Socket's timer: it alone does not keep the process alive.
      this.idleTimer.unref();
      if (onTimeout) this.once('timeout', onTimeout);
    } else if (onTimeout) {
      this.removeListener('timeout', onTimeout);
    }
    return this;
  }

  /** The tunnel's liveness is its frontend connection's business (HTTP/2 pings, TCP keepalive). */
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    (this.inner as SocketControls).setKeepAlive?.(enable, initialDelay);
    return this;
  }

  /** Every write leaves as a tunnel packet at once: there is no Nagle to turn off. */
  setNoDelay(noDelay?: boolean): this {
    (this.inner as SocketControls).setNoDelay?.(noDelay);
    return this;
  }

  ref(): this {
    (this.inner as SocketControls).ref?.();
    return this;
  }

  unref(): this {
    (this.inner as SocketControls).unref?.();
    return this;
  }
}

/**
 * The socket to give Node's http client: a net.Socket itself, anything else wrapped. Tunnel
 * sockets allow half-open connections, but the Agent listens for no 'end' on a pooled socket:
 * the target's EOF must close it as on a plain TCP socket, or the pool keeps a dead connection.
 */
export function asHttpSocket(stream: Duplex): Duplex {
  if (!(stream instanceof net.Socket)) return new TunnelSocket(stream);
  stream.allowHalfOpen = false;
  return stream;
}

/** host and port of the request Node asks a connection for. */
function targetOf(options: http.ClientRequestArgs, defaultPort: number): { host: string; port: number } {
  if (options.socketPath)
    throw new TunnelError(
      ErrorCode.BAD_TARGET,
      `socketPath ${options.socketPath}: a Unix socket cannot be reached through the tunnel`,
    );
  const host = options.host ?? options.hostname ?? 'localhost';
  return { host, port: Number(options.port ?? defaultPort) };
}

function dialFor(
  dial: TargetDial,
  options: http.ClientRequestArgs,
  defaultPort: number,
  connected: (tunnel: Duplex) => Duplex,
  oncreate: Oncreate,
): void {
  let target: { host: string; port: number };
  try {
    target = targetOf(options, defaultPort);
  } catch (err) {
    oncreate(err as Error, NO_SOCKET);
    return;
  }
  dial(target.host, target.port).then(
    (tunnel) => {
      let socket: Duplex;
      try {
        socket = connected(tunnel);
      } catch (err) {
        tunnel.destroy();
        oncreate(err as Error, NO_SOCKET);
        return;
      }
      oncreate(null, socket);
    },
    (err: unknown) => {
      oncreate(err instanceof Error ? err : new Error(String(err)), NO_SOCKET);
    },
  );
}

/** An http.Agent whose sockets are tunnel connections to each request's host:port. */
export class TunnelHttpAgent extends http.Agent {
  constructor(
    private readonly dialTarget: TargetDial,
    options?: http.AgentOptions,
  ) {
    // A new tunnel connection costs a dial through proxy-server and agent: pool by default.
    super({ keepAlive: true, ...options });
  }

  override createConnection(options: http.ClientRequestArgs, oncreate?: Oncreate): undefined {
    dialFor(this.dialTarget, options, 80, asHttpSocket, oncreate ?? (() => undefined));
    return undefined;
  }
}

/**
 * An https.Agent whose TLS runs inside tunnel connections: the handshake, servername and
 * certificate checks are those https.Agent does for a direct connection (its session cache too).
 */
export class TunnelHttpsAgent extends https.Agent {
  constructor(
    private readonly dialTarget: TargetDial,
    options?: https.AgentOptions,
  ) {
    super({ keepAlive: true, ...options });
  }

  override createConnection(options: https.RequestOptions, oncreate?: Oncreate): undefined {
    const overTunnel = (tunnel: Duplex): Duplex => {
      const socket = super.createConnection({ ...options, socket: tunnel } as https.RequestOptions);
      if (!socket) throw new TunnelError(ErrorCode.PROTOCOL, 'https.Agent made no TLS socket');
      // A TLSSocket inherits allowHalfOpen from the stream under it; see asHttpSocket.
      socket.allowHalfOpen = false;
      return socket;
    };
    dialFor(this.dialTarget, options, 443, overTunnel, oncreate ?? (() => undefined));
    return undefined;
  }
}
