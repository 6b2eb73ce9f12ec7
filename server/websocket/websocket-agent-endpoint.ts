// HTTP/1.1 on the server's agent port: the connections whose TLS handshake chose http/1.1, or
// offered no ALPN at all (nginx's proxy_pass https:// offers none), are handed here by the
// agent listener (server/grpc/server.ts). The one thing served is the agent's WebSocket
// upgrade at /konnectivity/v1/agent; any other path gets 404, another method 405, a plain
// GET there 426. The agent service decides each upgrade as it decides a gRPC stream.
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { AGENT_WEBSOCKET_PATH, MESSAGE_PREFIX_BYTES } from '../../proto/websocket.js';
import type { Logger } from '../../common/log.js';
import type { AgentStream } from '../backend/agent-stream.js';
import { WebSocketAgentStream, type WebSocketStreamOptions } from './websocket-agent-stream.js';
import { KeepaliveSweeper } from '../keepalive.js';

export interface WebSocketEndpointOptions {
  /** Ping an agent on which nothing arrived for this long; 0: never. */
  keepaliveTimeMs: number;
  /** A ping not answered in this long closes the stream. */
  keepaliveTimeoutMs: number;
  /** Keepalive pings a second, all agents together; 0: no limit. */
  keepaliveMaxPingsPerSecond?: number;
  /** Largest message (packet) accepted from an agent; a larger one closes the stream (1009). */
  maxMessageBytes: number;
  /** A request head must be complete within this. */
  headerTimeoutMs: number;
}

type VerifyDone = (ok: boolean, status?: number, message?: string) => void;

function peerOf(socket: Duplex): string {
  const s = socket as Partial<TLSSocket>;
  const address = s.remoteAddress;
  if (!address) return 'unknown';
  return `${address.includes(':') ? `[${address}]` : address}:${String(s.remotePort)}`;
}

function pathOf(url: string | undefined): string {
  const q = (url ?? '').indexOf('?');
  return q < 0 ? (url ?? '') : (url ?? '').slice(0, q);
}

/** Writes a complete HTTP/1.1 answer and closes the connection after it. */
function answer(socket: Duplex, status: number, message: string, extra: Record<string, string> = {}): void {
  const body = `${message}\n`;
  const head = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

export class WebSocketAgentEndpoint {
  private readonly http1: http.Server;
  private readonly wss: WebSocketServer;
  private readonly pending = new WeakMap<http.IncomingMessage, WebSocketAgentStream>();
  private readonly streams = new Set<WebSocketAgentStream>();
  private readonly sockets = new Set<Duplex>();
  private accepting = true;
  private readonly streamOptions: WebSocketStreamOptions;

  constructor(
    private readonly handler: (stream: AgentStream) => void,
    private readonly options: WebSocketEndpointOptions,
    private readonly log: Logger,
  ) {
    this.streamOptions = {
      keepalive: new KeepaliveSweeper({
        intervalMs: options.keepaliveTimeMs,
        timeoutMs: options.keepaliveTimeoutMs,
        maxPingsPerSecond: options.keepaliveMaxPingsPerSecond ?? 0,
      }),
    };
    this.http1 = http.createServer({ maxHeaderSize: 16 * 1024 });
    // An idle connection, or a request head dribbled in, is closed (the socket timeout is
    // lifted once an upgrade request is complete).
    this.http1.timeout = options.headerTimeoutMs;
    this.http1.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.onRequest(req, res);
    });
    this.http1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onUpgrade(req, socket, head);
    });
    this.http1.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      this.log.debug({ error: err.message, code: err.code, peer: peerOf(socket) }, 'bad HTTP/1.1 request');
      if (socket.writable) answer(socket, 400, 'bad request');
      else socket.destroy();
    });
    this.wss = new WebSocketServer({
      noServer: true,
      // The limit is the packet's, as on gRPC; a message holds its 5-byte prefix besides.
      maxPayload: options.maxMessageBytes + MESSAGE_PREFIX_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      // Called once the WebSocket handshake headers are valid: the agent service decides.
      verifyClient: (info: { req: http.IncomingMessage }, done: VerifyDone) => {
        this.verify(info.req, done);
      },
    });
    this.wss.on('headers', (headers: string[], req: http.IncomingMessage) => {
      const stream = this.pending.get(req);
      if (!stream) return;
      for (const [name, value] of Object.entries(stream.responseHeaders)) headers.push(`${name}: ${value}`);
    });
  }

  /** A TLS connection that chose HTTP/1.1 on the agent port. */
  accept(socket: TLSSocket): void {
    if (!this.accepting) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.http1.emit('connection', socket);
  }

  /** Closes every connection at once. */
  destroy(): void {
    this.accepting = false;
    for (const s of [...this.streams]) s.terminate('server stopping');
    for (const s of this.sockets) s.destroy();
    this.wss.close();
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const [status, message, extra] =
      pathOf(req.url) !== AGENT_WEBSOCKET_PATH
        ? [404, `not found: the agent port serves only ${AGENT_WEBSOCKET_PATH}`, {}]
        : req.method !== 'GET'
          ? [405, 'method not allowed: use GET with Upgrade: websocket', { Allow: 'GET' }]
          : [426, 'upgrade required: a WebSocket (Upgrade: websocket)', { Upgrade: 'websocket' }];
    this.log.debug(
      { peer: peerOf(req.socket), method: req.method, url: req.url, status },
      'HTTP/1.1 request refused',
    );
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close', ...extra });
    res.end(`${message}\n`);
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const peer = peerOf(socket);
    if (pathOf(req.url) !== AGENT_WEBSOCKET_PATH) {
      this.log.debug({ peer, url: req.url }, 'upgrade refused: unknown path');
      answer(socket, 404, `not found: agents upgrade at ${AGENT_WEBSOCKET_PATH}`);
      return;
    }
    if (req.method !== 'GET') {
      answer(socket, 405, 'method not allowed: use GET', { Allow: 'GET' });
      return;
    }
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      answer(socket, 400, `unsupported upgrade "${req.headers.upgrade ?? ''}": only websocket`);
      return;
    }
    // The agent service bounds the rest (authentication); the agent gives up on its own.
    (socket as Partial<TLSSocket>).setTimeout?.(0);
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const stream = this.pending.get(req);
      this.pending.delete(req);
      if (!stream) {
        ws.terminate();
        return;
      }
      stream.attach(ws);
    });
  }

  /** A valid WebSocket handshake: hand its stream to the agent service, which settles `done`. */
  private verify(req: http.IncomingMessage, done: VerifyDone): void {
    const stream = new WebSocketAgentStream(
      req,
      req.socket,
      peerOf(req.socket),
      done,
      this.streamOptions,
      this.log,
    );
    this.pending.set(req, stream);
    this.streams.add(stream);
    stream.whenGone(() => this.streams.delete(stream));
    this.handler(stream);
  }
}
