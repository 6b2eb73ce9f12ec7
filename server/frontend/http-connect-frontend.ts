// HTTP/1.1 CONNECT frontend (kube-apiserver's HTTPConnect egress). Node's llhttp parses the
// request head, which gives us 400 for malformed requests, 431 for heads over the limit and a
// headers timeout against slowloris. The answer is written only after the agent's DIAL_RSP,
// and nothing follows "200 Connection Established" until the target speaks.
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { httpStatusFor, type TunnelError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { ServerMetrics } from '../metrics.js';
import type { DialHandle, TunnelBroker } from '../tunnel/broker.js';
import type { FrontendSink } from '../tunnel/frontend-sink.js';
import type { TunnelConnection } from '../tunnel/tunnel-connection.js';
import { checkDialTarget } from './dial-target.js';
import { auditDial } from '../tunnel/audit.js';
import { serverTrace, tracingDials } from '../../common/dial-trace.js';

/** Bytes a client may send before its tunnel is up; past it we stop reading until then. */
const EARLY_DATA_LIMIT = 256 * 1024;
/** How long a finished connection may take to flush to a client that does not read. */
const LINGER_MS = 30_000;

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function httpResponse(status: number, body: string, extra = ''): string {
  const text = body.endsWith('\n') ? body : body + '\n';
  return (
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
    `${extra}Connection: close\r\n\r\n${text}`
  );
}

/** Ends a socket after `text`, and destroys it if the client does not read it in time. */
function endWith(socket: Duplex, text?: string): void {
  if (text === undefined) socket.end();
  else socket.end(text);
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

/** RST where the transport has one (TCP); Unix sockets have none and throw: there, a close. */
function resetOrDestroy(socket: Duplex): void {
  const s = socket as Duplex & { resetAndDestroy?: () => void };
  try {
    if (typeof s.resetAndDestroy === 'function') {
      s.resetAndDestroy();
      return;
    }
  } catch {
    // ERR_INVALID_HANDLE_TYPE on a Unix socket
  }
  socket.destroy();
}

let nextTunnelSeq = 1;

export class HttpConnectFrontend {
  /** Sockets handed to us by 'connect': the HTTP server no longer tracks them. */
  private readonly sockets = new Set<Duplex>();

  constructor(
    private readonly broker: TunnelBroker,
    private readonly metrics: ServerMetrics,
    private readonly log: Logger,
    private readonly keepaliveMs: number,
  ) {}

  attach(server: http.Server): void {
    server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onConnect(req, socket, head);
    });
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.log.debug({ method: req.method }, 'non-CONNECT request refused');
      const body = `method ${req.method ?? ''} not allowed: this is an HTTP CONNECT proxy\n`;
      res.writeHead(405, {
        allow: 'CONNECT',
        'content-type': 'text/plain; charset=utf-8',
        connection: 'close',
      });
      res.end(body);
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const code = err.code ?? '';
      const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      this.log.info({ code, status }, 'bad request from client');
      if (socket.writable)
        endWith(socket, httpResponse(status, `${REASONS[status] ?? 'Bad Request'}: ${code || err.message}`));
      else socket.destroy();
    });
  }

  /** Ends every tunnel at once (server stop). */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  private onConnect(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const log = this.log.child({ tunnel: nextTunnelSeq++ });
    const address = req.url ?? '';
    const target = checkDialTarget(address);
    if (!target.ok) {
      auditDial(
        log,
        { frontend: 'http-connect', address, result: 'refused', error: target.reason },
        'CONNECT refused: bad target',
      );
      endWith(socket, httpResponse(400, target.reason));
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const tunnel = new HttpTunnel(socket, head, address, target.host, log, this.metrics);
    if ('setKeepAlive' in socket && typeof socket.setKeepAlive === 'function' && this.keepaliveMs > 0) {
      (socket as unknown as { setKeepAlive(on: boolean, ms: number): void }).setKeepAlive(
        true,
        this.keepaliveMs,
      );
    }
    tunnel.start(this.broker);
  }
}

class HttpTunnel implements FrontendSink {
  readonly kind = 'http-connect';
  private state: 'dialing' | 'established' | 'done' = 'dialing';
  private early: Buffer[] = [];
  private earlyBytes = 0;
  private clientEnded = false;
  private dial: DialHandle | undefined;
  private conn: TunnelConnection | undefined;

  constructor(
    private readonly socket: Duplex,
    head: Buffer,
    private readonly address: string,
    private readonly host: string,
    readonly log: Logger,
    private readonly metrics: ServerMetrics,
  ) {
    if (head.length > 0) {
      this.early.push(head);
      this.earlyBytes = head.length;
    }
  }

  start(broker: TunnelBroker): void {
    if (tracingDials) serverTrace.mark(this, 'accepted');
    this.metrics.httpConnections.inc();
    const socket = this.socket;
    // Keep reading while the dial is pending: that is how a client that leaves is noticed.
    socket.on('data', (chunk: Buffer) => {
      this.onClientData(chunk);
    });
    socket.on('end', () => {
      this.onClientEnd();
    });
    socket.on('close', () => {
      this.clientGone('client disconnected');
    });
    socket.on('error', (err: Error) => {
      this.log.debug({ error: err.message }, 'client socket error');
      this.clientGone(`client socket error: ${err.message}`);
    });
    socket.on('drain', () => this.conn?.frontendDrained());
    this.dial = broker.dial(this, this.address, this.host, 'tcp');
  }

  private onClientData(chunk: Buffer): void {
    const conn = this.conn;
    if (this.state === 'established' && conn) {
      if (!conn.write(chunk)) {
        this.socket.pause();
        conn.whenWritable(() => this.socket.resume());
      }
      return;
    }
    if (this.state !== 'dialing') return;
    this.early.push(chunk);
    this.earlyBytes += chunk.length;
    if (this.earlyBytes > EARLY_DATA_LIMIT) this.socket.pause();
  }

  private onClientEnd(): void {
    if (this.state === 'established') this.conn?.endWrite();
    else this.clientEnded = true;
  }

  dialSucceeded(conn: TunnelConnection): void {
    if (this.state !== 'dialing') {
      conn.close('client left before the dial completed');
      return;
    }
    this.state = 'established';
    this.conn = conn;
    this.socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (tracingDials) serverTrace.mark(this, 'answered');
    this.log.debug({ address: this.address, agentID: conn.backend.agentID }, 'tunnel established');
    for (const chunk of this.early) conn.write(chunk);
    this.early = [];
    if (this.socket.isPaused()) conn.whenWritable(() => this.socket.resume());
    if (this.clientEnded) conn.endWrite();
  }

  dialFailed(err: TunnelError): void {
    if (this.state !== 'dialing') return;
    this.state = 'done';
    const status = httpStatusFor(err.code);
    this.log.debug({ status }, 'dial failed: answered');
    endWith(this.socket, httpResponse(status, err.message));
    this.metrics.httpConnections.dec();
  }

  deliver(data: Buffer, _wire: Buffer | undefined, written?: () => void): boolean {
    return this.socket.write(data, written);
  }

  endFromAgent(): void {
    if (this.state === 'established') this.socket.end();
  }

  closedByAgent(error: string): void {
    if (this.state !== 'established') return;
    this.state = 'done';
    if (error) {
      // Broken, not finished (agent lost, target reset): a reset, so that the client cannot
      // take a truncated stream for a complete one.
      this.log.debug({ error }, 'closed by agent with an error');
      resetOrDestroy(this.socket);
    } else {
      endWith(this.socket);
    }
    this.metrics.httpConnections.dec();
  }

  private clientGone(reason: string): void {
    if (this.state === 'dialing') this.dial?.cancel();
    else if (this.state === 'established') this.conn?.close(reason);
    if (this.state !== 'done') {
      this.state = 'done';
      this.metrics.httpConnections.dec();
    }
    this.socket.destroy();
  }
}
