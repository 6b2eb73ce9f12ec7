// One bidirectional gRPC call of konnectivity packets on an HTTP/2 connection of its own,
// spoken over node:http2 directly. Both our clients need exactly this: the dialer opens one
// call per dial (as kube-apiserver), the agent one per proxy-server. A grpc-js channel adds a
// resolver, a load balancer and a subchannel pool that neither uses (about 0.5 ms per dial)
// and copies every message twice more (reassembly and the 5-byte prefix) on the data path.
import http2 from 'node:http2';
import net from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { resolve as resolvePath } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Packet } from './packet.js';
import { decodePacket, encodeFramedPacket } from './codec.js';
import { MessageDeframer } from './grpc-framing.js';
import { decodeGrpcMessage, GrpcStatusError, headerValue } from './grpc-status.js';

/** Where the server is: a Unix socket (plain HTTP/2), or host:port over TLS. */
export interface GrpcTarget {
  uds?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  tls?:
    | {
        /** Trusted CAs; undefined: the system's. */
        ca?: Buffer | undefined;
        cert?: Buffer | undefined;
        key?: Buffer | undefined;
        /** Name to verify in the server certificate (default: host). */
        servername?: string | undefined;
        /** ALPN protocols offered before h2 (the agent's --alpn-proto, as upstream). */
        alpnProtocols?: string[] | undefined;
      }
    | undefined;
  /**
   * A TLS connection to host:port of the caller's making, used instead of dialing (the agent
   * runs TLS through an HTTP proxy's CONNECT tunnel); it must offer h2 in its ALPN.
   */
  connection?: (() => Duplex) | undefined;
}

export interface GrpcCallOptions {
  path: string;
  /** Request metadata: lower-case keys, ASCII values. */
  metadata: Record<string, string>;
  /** Receive window of the stream and of the connection. */
  windowBytes: number;
  maxMessageBytes: number;
  userAgent: string;
  /** Ping the server this often and give up on the connection when it does not answer. */
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
}

function statusOf(headers: http2.IncomingHttpHeaders): GrpcStatusError | null {
  const code = Number(headerValue(headers, 'grpc-status'));
  return code === 0
    ? null
    : new GrpcStatusError(code, decodeGrpcMessage(headerValue(headers, 'grpc-message')));
}

function connect(target: GrpcTarget, windowBytes: number): http2.ClientHttp2Session {
  const settings = { initialWindowSize: windowBytes, enablePush: false };
  if (target.uds) {
    const path = resolvePath(target.uds);
    return http2.connect('http://localhost', { settings, createConnection: () => net.connect(path) });
  }
  const { tls, port } = target;
  if (!tls || port === undefined) throw new Error('a TCP gRPC target needs host, port and tls');
  const host = target.host ?? '127.0.0.1';
  const secure = {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    ...(tls.servername ? { servername: tls.servername } : {}),
  };
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (target.connection) return http2.connect(url, { settings, createConnection: target.connection });
  const alpn = tls.alpnProtocols ?? [];
  if (alpn.length === 0) return http2.connect(url, { settings, ...secure });
  // http2.connect always offers just h2: extra protocols need a socket of our own.
  const ALPNProtocols = alpn.includes('h2') ? alpn : [...alpn, 'h2'];
  return http2.connect(url, {
    settings,
    createConnection: () =>
      tlsConnect({
        host,
        port,
        ...secure,
        ...(secure.servername || net.isIP(host) ? {} : { servername: host }),
        ALPNProtocols,
      }),
  });
}

/**
 * The call: packets out with write() (false: wait for the stream's 'drain'), packets in
 * through onPacket, the server's response headers through onHeaders, and onEnd exactly
 * once: null when the server finished with OK, else why the call failed. A status in the
 * trailers is acted on at the stream's end, after every message before it was read.
 */
export class GrpcClientCall {
  readonly session: http2.ClientHttp2Session;
  readonly stream: http2.ClientHttp2Stream;
  private readonly deframer: MessageDeframer;
  private statusError: Error | null | undefined;
  private ended = false;
  private keepalive: NodeJS.Timeout | undefined;
  onPacket: (p: Packet) => void = () => undefined;
  onHeaders: (headers: http2.IncomingHttpHeaders) => void = () => undefined;
  onEnd: (err: Error | null) => void = () => undefined;

  constructor(target: GrpcTarget, options: GrpcCallOptions) {
    this.deframer = new MessageDeframer(options.maxMessageBytes);
    this.session = connect(target, options.windowBytes);
    this.session.on('error', (err: Error) => this.finish(err));
    this.session.once('connect', () => {
      this.session.setLocalWindowSize(options.windowBytes);
      if (options.keepaliveTimeMs) this.startKeepalive(options.keepaliveTimeMs, options.keepaliveTimeoutMs);
    });
    this.session.once('close', () => clearInterval(this.keepalive));
    this.stream = this.session.request({
      ':method': 'POST',
      ':path': options.path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': options.userAgent,
      ...options.metadata,
    });
    this.stream.on('response', (headers) => {
      const status = headers[':status'];
      if (status !== 200) this.finish(new Error(`server answered HTTP ${status} to the gRPC call`));
      else if (headerValue(headers, 'grpc-status') !== undefined) this.statusError = statusOf(headers);
      else this.onHeaders(headers);
    });
    this.stream.on(
      'trailers',
      (trailers: http2.IncomingHttpHeaders) => (this.statusError = statusOf(trailers)),
    );
    this.stream.on('data', (chunk: Buffer) => {
      try {
        this.deframer.push(chunk, (m, framed) => this.onPacket(decodePacket(m, framed)));
      } catch (err) {
        this.finish(err as Error);
        this.cancel();
      }
    });
    this.stream.on('end', () =>
      this.finish(
        this.statusError === undefined
          ? new Error('server ended the stream without a gRPC status')
          : this.statusError,
      ),
    );
    this.stream.on('close', () => {
      this.finish(new Error(`stream closed (HTTP/2 code ${this.stream.rstCode})`));
      this.session.close();
    });
    this.stream.on('error', (err: Error) => this.finish(err));
  }

  /** The connection is up and not closing: what the agent's probe asks. */
  get open(): boolean {
    return !this.ended && !this.session.closed && !this.session.destroyed;
  }

  private startKeepalive(intervalMs: number, timeoutMs = 20_000): void {
    this.keepalive = setInterval(() => {
      // 'close' comes a tick after destroy(): a ping in between would throw.
      if (this.session.destroyed || this.session.closed) {
        clearInterval(this.keepalive);
        return;
      }
      const timer = setTimeout(() => {
        clearInterval(this.keepalive);
        this.session.destroy(new Error(`keepalive ping not answered within ${timeoutMs}ms`));
      }, timeoutMs);
      if (!this.session.ping(() => clearTimeout(timer))) clearTimeout(timer);
    }, intervalMs);
    this.keepalive.unref();
  }

  private finish(err: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(err);
  }

  /** `written` runs once the message has left for the socket. */
  write(p: Packet, written?: (err?: Error | null) => void): boolean {
    return this.stream.write(encodeFramedPacket(p), written);
  }

  /** Our side is done; the connection goes when the server has finished too. */
  end(): void {
    if (!this.stream.writableEnded) this.stream.end();
    this.session.close();
  }

  cancel(): void {
    clearInterval(this.keepalive);
    if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
    this.session.destroy();
  }
}
