// The proxy-server's gRPC listeners (frontend /ProxyService/Proxy, agents /AgentService/Connect),
// spoken over node:http2 directly. Both methods are one bidirectional stream of one message
// type, and a grpc-js Server cost us there: ~0.17 ms of every dial, two more copies of every
// message (reassembly and the 5-byte prefix), and no option for its own receive windows (it
// had to be reached through a private path). What a gRPC server owes its peers is kept here:
// keepalive pings, an idle-connection timeout, a message size limit (RESOURCE_EXHAUSTED),
// grpc-timeout, statuses in trailers or trailers-only, UNIMPLEMENTED for other methods, and
// GOAWAY before a graceful stop. Our own clients and grpc-js clients (tests) talk to it.
import http2 from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket, SecureContextOptions } from 'node:tls';
import { listen } from '../../common/listen.js';
import type { Logger } from '../../common/log.js';
import { GrpcStatus } from '../../proto/grpc-status.js';
import { GrpcServerCall } from './call.js';
import { Http2LinkTuner } from '../../common/http2-link-tuner.js';
import { http2Target, KeepaliveSweeper, type ReadActivity } from '../keepalive.js';
import { HandshakeAdmission, type HandshakeAdmissionOptions } from '../handshake-admission.js';

export type GrpcHandler = (call: GrpcServerCall) => void;

export interface GrpcServerOptions {
  /** Receive window of each stream; each connection gets twice that. */
  windowBytes: number;
  /** Grow the windows with the link's bandwidth-delay product up to this (common/http2-link-tuner). */
  maxWindowBytes?: number;
  maxMessageBytes: number;
  /** Ping a connection on which nothing arrived for this long; 0: never. */
  keepaliveTimeMs: number;
  /** A ping not answered in this long closes the connection. */
  keepaliveTimeoutMs: number;
  /** Keepalive pings a second, all connections together; 0: no limit (server/keepalive.ts). */
  keepaliveMaxPingsPerSecond?: number;
  /** A connection without a stream for this long gets GOAWAY; 0: never. */
  idleConnectionMs: number;
  /**
   * TLS connections that choose HTTP/1.1, or offer no ALPN at all, go here (the agent port's
   * WebSocket upgrade); without it they get Node's "403 Missing ALPN Protocol".
   */
  http1?: ((socket: TLSSocket) => void) | undefined;
  /** Every completed TLS handshake (the agent port counts resumed ones). */
  onSecureConnection?: ((socket: TLSSocket) => void) | undefined;
  /** Every failed TLS handshake. */
  onTlsClientError?: ((err: Error) => void) | undefined;
  /**
   * TLS listeners: a bound on handshakes in progress, further connections waiting unread
   * (server/handshake-admission.ts); undefined: every connection is handshaken at once.
   */
  handshakeAdmission?: Omit<HandshakeAdmissionOptions, 'now'> | undefined;
}

export interface TlsListenOptions extends SecureContextOptions {
  /** Client certificates required and verified against `ca`. */
  requestCert: boolean;
}

const MAX_WINDOW = 2 ** 31 - 1;
/** After an idle connection's GOAWAY, how long before it is destroyed if it has not closed. */
const CLOSE_GRACE_MS = 5000;
/**
 * With admission control, a handshake holds a slot until it ends: one that has not finished in
 * this long (a client that stalls mid-handshake) is failed and its connection closed, so that
 * stalled clients cannot hold every slot. Node's default is 120 s.
 */
const ADMITTED_HANDSHAKE_TIMEOUT_MS = 10_000;

export class GrpcServer {
  private readonly listeners: (http2.Http2Server | http2.Http2SecureServer)[] = [];
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly links = new WeakMap<http2.Http2Session, Http2LinkTuner>();
  private readonly activity = new WeakMap<http2.Http2Session, ReadActivity>();
  private readonly keepalive: KeepaliveSweeper;
  private readonly admissions: HandshakeAdmission[] = [];
  private accepting = true;

  constructor(
    private readonly routes: Readonly<Record<string, GrpcHandler>>,
    private readonly options: GrpcServerOptions,
    private readonly log: Logger,
  ) {
    this.keepalive = new KeepaliveSweeper({
      intervalMs: options.keepaliveTimeMs,
      timeoutMs: options.keepaliveTimeoutMs,
      maxPingsPerSecond: options.keepaliveMaxPingsPerSecond ?? 0,
    });
  }

  /** Plain HTTP/2 on a Unix socket (kube-apiserver's egress over UDS). */
  async listenUds(path: string, deleteExisting: boolean, mode?: number): Promise<void> {
    const server = http2.createServer(this.http2Options());
    this.attach(server);
    await listen(server, { uds: path, deleteExisting, mode });
  }

  /** HTTP/2 over TLS on host:port; returns the bound port and a way to replace the certificates. */
  async listenTls(
    host: string,
    port: number,
    tls: TlsListenOptions,
  ): Promise<{
    port: number;
    setSecureContext: (options: SecureContextOptions) => void;
    setTicketKeys: (keys: Buffer) => void;
  }> {
    const http1 = this.options.http1;
    const admission = this.options.handshakeAdmission;
    const server = http2.createSecureServer({
      ...this.http2Options(),
      ...tls,
      ...(admission ? { handshakeTimeout: ADMITTED_HANDSHAKE_TIMEOUT_MS } : {}),
      rejectUnauthorized: tls.requestCert,
      // h2 when offered, else http/1.1; no ALPN also reaches 'unknownProtocol' as HTTP/1.1.
      ...(http1 ? { ALPNCallback: preferHttp2 } : {}),
    });
    if (http1) server.on('unknownProtocol', http1);
    const keepaliveMs = this.options.keepaliveTimeMs;
    if (keepaliveMs > 0) {
      // The kernel's TCP keepalive notices a peer that is gone (host down, cable cut) at no
      // cost to this process: probes after keepaliveMs of silence, then every second, 10 tries
      // (libuv's settings). Go's listeners do the same (15 s); our HTTP/2 pings, paced, are
      // left to find agents whose host answers but whose process does not.
      server.on('connection', (socket: Socket) => socket.setKeepAlive(true, keepaliveMs));
    }
    server.on('secureConnection', (socket: TLSSocket) => {
      // An error on a TLS socket must be handled by the server's user (nodejs/node#35824).
      socket.on('error', (err: Error) => this.log.debug({ error: err.message }, 'TLS connection error'));
      this.options.onSecureConnection?.(socket);
    });
    server.on('tlsClientError', (err: Error, socket: TLSSocket | undefined) => {
      // Per client at debug: a reconnect storm makes hundreds of these (clients that gave up
      // mid-handshake); the agent port counts them in a metric.
      this.log.debug({ error: err.message }, 'TLS handshake with client failed');
      this.options.onTlsClientError?.(err);
      // Node leaves a socket whose handshake timed out open: a client that stalls must not keep it.
      socket?.destroy();
    });
    this.attach(server);
    let listener: NetServer = server;
    if (admission) {
      const gate = new HandshakeAdmission(server, admission);
      this.admissions.push(gate);
      listener = gate.tcp;
    }
    const bound = await listen(listener, { host, port });
    return {
      port: bound.port,
      setSecureContext: (o) => {
        server.setSecureContext(o);
      },
      setTicketKeys: (keys) => {
        server.setTicketKeys(keys);
      },
    };
  }

  /** Graceful stop: no new connections, GOAWAY on open ones; their open streams go on. */
  stopAccepting(): void {
    this.accepting = false;
    for (const a of this.admissions) a.close();
    for (const l of this.listeners) l.close();
    for (const s of this.sessions) s.close();
  }

  /** Closes every listener and connection at once. */
  destroy(): void {
    this.stopAccepting();
    for (const a of this.admissions) a.destroy();
    for (const s of this.sessions) s.destroy();
  }

  private http2Options(): http2.ServerOptions {
    return {
      settings: { initialWindowSize: Math.min(MAX_WINDOW, this.options.windowBytes), enablePush: false },
      // Node's default (10 MB) counts our wide windows' worth of queued data and then refuses
      // streams; grpc-js lifts it the same way. Memory is bounded by the windows instead.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    };
  }

  private attach(server: http2.Http2Server | http2.Http2SecureServer): void {
    server.setTimeout(0);
    server.on('session', (session: http2.ServerHttp2Session) => {
      this.watch(session);
    });
    server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      this.route(stream, headers);
    });
    server.on('sessionError', (err: Error) => this.log.debug({ error: err.message }, 'HTTP/2 session error'));
    this.listeners.push(server);
  }

  /** Per connection: windows, keepalive, the idle timer, and our list for shutdown. */
  private watch(session: http2.ServerHttp2Session): void {
    if (session.destroyed) return; // its socket failed at once: nothing to watch
    if (!this.accepting) {
      session.destroy();
      return;
    }
    this.sessions.add(session);
    session.on('error', (err: Error) => this.log.debug({ error: err.message }, 'HTTP/2 connection error'));
    session.setLocalWindowSize(Math.min(MAX_WINDOW, this.options.windowBytes * 2));
    const maxWindow = this.options.maxWindowBytes ?? 0;
    if (maxWindow > this.options.windowBytes) {
      this.links.set(
        session,
        new Http2LinkTuner(session, { windowBytes: this.options.windowBytes, maxWindowBytes: maxWindow }),
      );
    }

    const target = http2Target(session, (timeoutMs) => {
      this.log.info({ timeoutMs }, 'keepalive ping not answered: closing the connection');
    });
    this.activity.set(session, this.keepalive.watch(session, target));
    let idle: NodeJS.Timeout | undefined;
    let streams = 0;
    const idleMs = this.options.idleConnectionMs;
    const armIdle = () => {
      if (idleMs <= 0) return;
      idle = setTimeout(() => {
        this.log.debug({ idleMs }, 'closing an HTTP/2 connection without streams');
        this.closeGracefully(session);
      }, idleMs);
      idle.unref();
    };
    armIdle();
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      if (streams++ === 0) clearTimeout(idle);
      stream.once('close', () => {
        if (--streams === 0 && !session.closed) armIdle();
      });
    });
    session.once('close', () => {
      this.keepalive.forget(session);
      clearTimeout(idle);
      this.sessions.delete(session);
    });
  }

  private closeGracefully(session: http2.ServerHttp2Session): void {
    if (session.closed || session.destroyed) return;
    session.close();
    setTimeout(() => {
      if (!session.destroyed) session.destroy();
    }, CLOSE_GRACE_MS).unref();
  }

  private route(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined); // a reset stream before its call exists
    if (stream.destroyed) return;
    if (headers[':method'] !== 'POST') {
      stream.respond({ ':status': 405 }, { endStream: true });
      return;
    }
    const contentType = headers['content-type'] ?? '';
    if (contentType !== 'application/grpc' && !contentType.startsWith('application/grpc+')) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const path = headers[':path'] ?? '';
    const handler = Object.hasOwn(this.routes, path) ? this.routes[path] : undefined;
    const socket = stream.session?.socket;
    const address = socket?.remoteAddress;
    const host = address?.includes(':') ? `[${address}]` : address;
    const peer = host ? `${host}:${String(socket?.remotePort)}` : 'unix';
    const call = new GrpcServerCall(stream, headers, peer, this.options.maxMessageBytes);
    call.activity = stream.session && this.activity.get(stream.session);
    const link = stream.session && this.links.get(stream.session);
    if (link) {
      link.watch(stream);
      call.link = link;
    }
    if (!handler) {
      call.end(GrpcStatus.UNIMPLEMENTED, `unknown method ${path}`);
      return;
    }
    const deadline = parseGrpcTimeout(call.header('grpc-timeout'));
    if (deadline !== undefined) {
      const timer = setTimeout(() => call.fail(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded'), deadline);
      stream.once('close', () => clearTimeout(timer));
    }
    handler(call);
  }
}

function preferHttp2({ protocols }: { protocols: string[] }): string | undefined {
  if (protocols.includes('h2')) return 'h2';
  return protocols.includes('http/1.1') ? 'http/1.1' : undefined;
}

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** grpc-timeout: up to 8 digits and a unit (PROTOCOL-HTTP2.md), in ms; undefined: none or malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  const m = value === undefined ? null : /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  const unit = TIMEOUT_UNITS[m[2] ?? ''] ?? 1;
  // setTimeout holds at most 2^31-1 ms; anything longer is as good as none.
  const ms = Math.ceil(Number(m[1]) * unit);
  return ms > 2 ** 31 - 1 ? undefined : ms;
}
