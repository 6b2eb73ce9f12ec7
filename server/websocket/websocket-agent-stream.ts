// One agent stream over a WebSocket: the AgentStream the agent service and its backend use,
// as GrpcServerCall is over gRPC. It starts as a pending upgrade (the agent service reads the
// request headers, authenticates, then accepts with sendHeaders(): the 101 response carries
// them, or refuses with fail(): an HTTP status), and is then one Packet per binary message.
import type http from 'node:http';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import type { Packet } from '../../proto/packet.js';
import { CloseCode, closeReason, messagePacket, packetMessage } from '../../proto/websocket.js';
import type { Logger } from '../../common/log.js';
import type { AgentLinkStats, AgentStream } from '../backend/agent-stream.js';
import { closeCodeForGrpc, httpStatusForGrpc } from './refusals.js';
import type { KeepaliveSweeper, ReadActivity } from '../keepalive.js';

/** Settles the pending upgrade: 101 with the response headers, or an HTTP refusal. */
export type UpgradeDecision = (accepted: boolean, status?: number, message?: string) => void;

export interface WebSocketStreamOptions {
  /** The endpoint's one keepalive timer for all its streams (pings only quiet ones). */
  keepalive: KeepaliveSweeper;
}

const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

function asBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

export class WebSocketAgentStream implements AgentStream {
  readonly transport = 'websocket' as const;
  onPacket: (p: Packet) => void = () => undefined;
  onEnd: () => void = () => undefined;
  onClose: (reason: string, failed: boolean) => void = () => undefined;
  /** The 101 response's extra headers, set by sendHeaders(). */
  responseHeaders: Readonly<Record<string, string>> = {};
  private ws: WebSocket | undefined;
  private decide: UpgradeDecision | undefined;
  private ended = false;
  private closed = false;
  /** Why the stream ends, when we know better than the close event does. */
  private endReason: { text: string; failed: boolean } | undefined;
  private readonly stats: { rttMs: number | undefined } = { rttMs: undefined };
  private pingSentAt: number | undefined;
  /** Set when a pong arrives: the keepalive sweeper's or none for the first measuring ping. */
  private pongAnswered: (() => void) | undefined;
  /** Bumped per message, so the sweeper pings only a quiet agent. */
  private activity: ReadActivity | undefined;
  private goneListeners: (() => void)[] = [];

  constructor(
    private readonly request: http.IncomingMessage,
    private readonly socket: Duplex,
    readonly peer: string,
    decide: UpgradeDecision,
    private readonly options: WebSocketStreamOptions,
    private readonly log: Logger,
  ) {
    this.decide = decide;
    socket.once('close', this.closedBeforeUpgrade);
  }

  get link(): AgentLinkStats {
    return this.stats;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get writableEnded(): boolean {
    return this.ended;
  }

  /** The verified client certificate of the connection (server/identity reads it). */
  peerCertificate(): tls.PeerCertificate | undefined {
    const socket = this.socket;
    if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return undefined;
    return socket.getPeerCertificate();
  }

  header(name: string): string | undefined {
    const v = this.request.headers[name];
    return Array.isArray(v) ? v[0] : v;
  }

  sendHeaders(metadata: Record<string, string> = {}): void {
    const decide = this.decide;
    if (!decide || this.ended) return;
    this.decide = undefined;
    this.responseHeaders = metadata;
    decide(true);
  }

  /** Calls `fn` once the stream is gone (after onClose): for the endpoint's own list. */
  whenGone(fn: () => void): void {
    if (this.closed) fn();
    else this.goneListeners.push(fn);
  }

  /** The upgrade is done: from here on, packets. */
  attach(ws: WebSocket): void {
    this.socket.removeListener('close', this.closedBeforeUpgrade);
    this.ws = ws;
    ws.on('message', this.onMessage);
    ws.on('pong', this.onPong);
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the connection itself, with the close code the error calls for.
      this.log.warn({ peer: this.peer, error: err.message, code: err.code }, 'agent WebSocket: bad input');
      this.endReason ??= { text: `WebSocket error: ${err.message}`, failed: true };
    });
    ws.on('close', (code: number, reason: Buffer) => {
      const text = reason.length > 0 ? ` ${reason.toString()}` : '';
      const failed = code !== CloseCode.normal && code !== CloseCode.goingAway;
      this.gone(this.endReason ?? { text: `WebSocket closed (${code}${text})`, failed });
    });
    this.ping(); // measures the round trip at once, for the agents listing
    this.activity = this.options.keepalive.watch(this, {
      ping: (answered) => this.ping(answered),
      timedOut: (timeoutMs) => {
        this.log.info({ peer: this.peer, timeoutMs }, 'keepalive ping not answered: closing the WebSocket');
        this.terminate(`keepalive ping not answered within ${timeoutMs}ms`);
      },
    });
  }

  write(p: Packet, written?: () => void): boolean {
    if (this.ended || !this.ws) return true;
    this.ws.send(packetMessage(p), SEND_OPTIONS, written);
    return true;
  }

  end(code = 0, message = ''): void {
    if (this.ended) return;
    this.ended = true;
    const decide = this.decide;
    if (decide) {
      this.decide = undefined;
      decide(false, httpStatusForGrpc(code), message || 'refused');
      this.gone({ text: message || 'refused before the upgrade', failed: code !== 0 });
      return;
    }
    this.ws?.close(closeCodeForGrpc(code), closeReason(message));
  }

  fail(code: number, message: string): void {
    this.endReason ??= { text: message, failed: true };
    this.end(code, message);
    this.gone(this.endReason);
  }

  pause(): void {
    if (this.ws) this.ws.pause();
    else this.socket.pause();
  }

  resume(): void {
    if (this.ws) this.ws.resume();
    else this.socket.resume();
  }

  /** Closes at once (server stop): no close handshake. */
  terminate(reason: string): void {
    this.endReason ??= { text: reason, failed: false };
    this.ended = true;
    if (this.ws) this.ws.terminate();
    else this.socket.destroy();
    this.gone(this.endReason);
  }

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (this.ended) return; // a closing stream drops what still arrives
    if (this.activity) this.activity.read();
    if (!isBinary) {
      this.refuse(CloseCode.unsupportedData, 'text message: packets travel as binary messages');
      return;
    }
    let packet: Packet;
    try {
      packet = messagePacket(asBuffer(data));
    } catch (err) {
      this.refuse(CloseCode.invalidPayload, `cannot decode a packet: ${(err as Error).message}`);
      return;
    }
    try {
      this.onPacket(packet);
    } catch (err) {
      // A bug in the handler: this stream ends, the process and every other stream go on.
      this.refuse(CloseCode.internalError, `internal error: ${(err as Error).message}`);
    }
  };

  /** Closes the stream for bad input from the agent, with a close code that says what. */
  private refuse(code: number, reason: string): void {
    this.log.warn({ peer: this.peer, closeCode: code, reason }, 'agent WebSocket: bad input');
    this.endReason ??= { text: reason, failed: true };
    this.ended = true;
    this.ws?.close(code, closeReason(reason));
    this.gone(this.endReason);
  }

  /** A ping that measures the round trip; `answered` runs when its pong comes. */
  private ping(answered?: () => void): boolean {
    const ws = this.ws;
    if (!ws || this.closed) return false;
    if (this.pingSentAt === undefined) {
      this.pingSentAt = performance.now();
      ws.ping();
    }
    // A keepalive ping while the first is out waits for the same pong.
    if (answered) this.pongAnswered = answered;
    return true;
  }

  private readonly onPong = (): void => {
    if (this.activity) this.activity.read();
    if (this.pingSentAt === undefined) return;
    this.stats.rttMs = performance.now() - this.pingSentAt;
    this.pingSentAt = undefined;
    const answered = this.pongAnswered;
    this.pongAnswered = undefined;
    answered?.();
  };

  private readonly closedBeforeUpgrade = (): void => {
    this.decide = undefined;
    this.ended = true;
    this.gone({ text: 'connection closed before the upgrade', failed: false });
  };

  private gone(why: { text: string; failed: boolean }): void {
    if (this.closed) return;
    this.closed = true;
    this.ended = true;
    this.options.keepalive.forget(this);
    this.onClose(why.text, why.failed);
    for (const fn of this.goneListeners) fn();
    this.goneListeners = [];
  }
}
