// The WebSocket transport: the same packet stream as an upgrade to /konnectivity/v1/agent
// over HTTP/1.1, for networks that carry nothing else (forward proxies that cannot pass
// HTTP/2, L7 balancers and ingresses that speak HTTP/1.1 to their backends). The gRPC
// metadata go as headers of the upgrade request, the server's come back on the 101. One
// Packet per binary message; WebSocket pings keep the stream alive and measure its round trip.
import type http from 'node:http';
import type net from 'node:net';
import { WebSocket, type RawData } from 'ws';
import type { Packet } from '../../proto/packet.js';
import {
  AGENT_WEBSOCKET_PATH,
  CloseCode,
  closeReason,
  MESSAGE_PREFIX_BYTES,
  messagePacket,
  packetMessage,
} from '../../proto/websocket.js';
import type { CallSettings, ServerRoute, ServerStream, StreamHandlers } from './server-stream.js';
import { alpnFor, serverTlsSocket } from './server-tls.js';

const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

/**
 * Masks every frame with the key 0, which leaves the payload as it is: ws then neither copies
 * nor XORs it here, nor does the server unmask it (in JavaScript, without ws's optional native
 * helper, that cost a third of the CPU of the agent → server direction). RFC 6455 asks for
 * random keys so that script-chosen bytes cannot pose as HTTP to an intermediary that does not
 * know WebSocket (§10.3); this agent speaks only wss://, so every such intermediary sees TLS
 * ciphertext, and a TLS-terminating one has taken part in the upgrade: it knows WebSocket.
 */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}
/** OpenSSL's words for TLS alert 120: the server knows none of the ALPN protocols offered. */
const NO_HTTP1_ALERT = /alert no application protocol/i;
/** Of a refused upgrade's body, this much goes into the error (the server's reason). */
const REFUSAL_BODY_BYTES = 512;

function asBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

export class WebSocketServerStream implements ServerStream {
  private readonly ws: WebSocket;
  private ended = false;
  private responseHeaders: http.IncomingHttpHeaders = {};
  private rtt: number | undefined;
  private pingSentAt: number | undefined;
  private pongTimer: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout | undefined;

  constructor(
    route: ServerRoute,
    private readonly settings: CallSettings,
    metadata: Record<string, string>,
    private readonly handlers: StreamHandlers,
    tunnel?: net.Socket,
  ) {
    const { target } = route;
    const host = target.host ?? '127.0.0.1';
    const authority = `${host.includes(':') ? `[${host}]` : host}:${String(target.port)}`;
    // h2 from --alpn-proto would make the server pick HTTP/2, which this transport does not speak.
    const extra = (target.tls?.alpnProtocols ?? []).filter((p) => p !== 'h2');
    const alpn = alpnFor(extra, 'http/1.1');
    this.ws = new WebSocket(`wss://${authority}${AGENT_WEBSOCKET_PATH}`, {
      createConnection: () => serverTlsSocket(target, alpn, tunnel),
      headers: { ...metadata, 'user-agent': 'konnectivity-ts-agent' },
      perMessageDeflate: false,
      maxPayload: settings.maxMessageBytes + MESSAGE_PREFIX_BYTES,
      followRedirects: false,
      generateMask: zeroMask,
    });
    const ws = this.ws;
    ws.on('upgrade', (res: http.IncomingMessage) => {
      this.responseHeaders = res.headers;
    });
    ws.on('open', () => {
      this.ping();
      if (settings.keepaliveTimeMs > 0) {
        this.keepalive = setInterval(() => {
          this.ping();
        }, settings.keepaliveTimeMs);
        this.keepalive.unref();
      }
      const headers = this.responseHeaders;
      handlers.onHeaders((name) => {
        const v = headers[name];
        return Array.isArray(v) ? v[0] : v;
      });
    });
    ws.on('unexpected-response', (req: http.ClientRequest, res: http.IncomingMessage) => {
      this.refused(req, res);
    });
    ws.on('message', this.onMessage);
    ws.on('pong', this.onPong);
    ws.on('error', (err: Error) => {
      this.finish(
        NO_HTTP1_ALERT.test(err.message)
          ? new Error(
              `${authority} refused HTTP/1.1 in the TLS handshake (no_application_protocol): it takes no ` +
                'WebSocket agents (an upstream proxy-server speaks gRPC only); use --transport=grpc',
            )
          : err,
      );
    });
    ws.on('close', (code: number, reason: Buffer) => {
      const text = reason.length > 0 ? `: ${reason.toString()}` : '';
      this.finish(
        code === CloseCode.normal ? null : new Error(`server closed the WebSocket with ${code}${text}`),
      );
    });
  }

  write(p: Packet, written: (err?: Error | null) => void): void {
    // Packets are written only once the stream is open; after it closed, ws reports the error.
    this.ws.send(packetMessage(p), SEND_OPTIONS, written);
  }

  get open(): boolean {
    return !this.ended && this.ws.readyState === WebSocket.OPEN;
  }

  rttMs(): number | undefined {
    return this.rtt;
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  cancel(): void {
    this.stop();
    this.ws.terminate();
  }

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (this.ended) return;
    if (!isBinary) {
      this.fail(CloseCode.unsupportedData, 'the server sent a text message: packets are binary');
      return;
    }
    let packet: Packet;
    try {
      packet = messagePacket(asBuffer(data));
    } catch (err) {
      this.fail(
        CloseCode.invalidPayload,
        `cannot decode a packet from the server: ${(err as Error).message}`,
      );
      return;
    }
    this.handlers.onPacket(packet);
  };

  /** The server answered the upgrade with something other than 101: why, from its status and body. */
  private refused(req: http.ClientRequest, res: http.IncomingMessage): void {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (body.length < REFUSAL_BODY_BYTES) body += chunk;
    });
    const done = () => {
      const reason = body.trim().slice(0, REFUSAL_BODY_BYTES);
      this.finish(
        new Error(
          `server refused the WebSocket upgrade: HTTP ${String(res.statusCode)} ${res.statusMessage ?? ''}${reason ? `: ${reason}` : ''}`,
        ),
      );
      req.destroy();
    };
    res.once('end', done);
    res.once('error', done);
    res.once('aborted', done);
  }

  private fail(code: number, reason: string): void {
    const err = new Error(reason);
    this.finish(err);
    this.ws.close(code, closeReason(reason));
  }

  /** A measuring ping (round trip), which also has to be answered in time (keepalive). */
  private ping(): void {
    if (this.ended || this.pingSentAt !== undefined || this.ws.readyState !== WebSocket.OPEN) return;
    this.pingSentAt = performance.now();
    this.ws.ping();
    const timeoutMs = this.settings.keepaliveTimeoutMs;
    this.pongTimer = setTimeout(() => {
      this.finish(new Error(`keepalive ping not answered within ${timeoutMs}ms`));
      this.ws.terminate();
    }, timeoutMs);
    this.pongTimer.unref();
  }

  private readonly onPong = (): void => {
    if (this.pingSentAt === undefined) return;
    this.rtt = performance.now() - this.pingSentAt;
    this.pingSentAt = undefined;
    clearTimeout(this.pongTimer);
  };

  private stop(): void {
    this.ended = true;
    clearInterval(this.keepalive);
    clearTimeout(this.pongTimer);
  }

  private finish(err: Error | null): void {
    if (this.ended) return;
    this.stop();
    this.handlers.onEnd(err);
  }
}
