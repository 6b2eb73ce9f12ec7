// One simulated agent, as cheap as an agent can be while speaking the real protocol: mTLS with
// ALPN h2, one /AgentService/Connect stream over node:http2, packets through our codec.
// It answers DIAL_REQ by dialing the target, relays DATA both ways, answers CLOSE_REQ, and
// when the stream or connection ends reconnects after common/backoff.ts's delay, offering
// the TLS session it was last given (resumption). No extensions are requested: the server
// treats it as an upstream agent.
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { Backoff } from '../../common/backoff.js';
import { decodePacket, encodeFramedPacket } from '../../proto/codec.js';
import { MessageDeframer } from '../../proto/grpc-framing.js';
import { GrpcStatusError, decodeGrpcMessage, headerValue } from '../../proto/grpc-status.js';
import { MetadataKey } from '../../proto/metadata.js';
import { PacketType, packets, type Packet } from '../../proto/packet.js';

export interface SimAgentConfig {
  host: string;
  port: number;
  /** One per worker: building a context per connect would parse the certificates each time. */
  secureContext: tls.SecureContext;
  agentID: string;
  /** agentidentifiers metadata (URL query form). */
  identifiers: string;
  token?: string | undefined;
  /** The upstream agent's --sync-interval and --sync-interval-cap. */
  syncIntervalMs: number;
  syncIntervalCapMs: number;
}

/** What the swarm counts. */
export interface SimAgentObserver {
  handshake(resumed: boolean): void;
  connected(): void;
  disconnected(): void;
  /** A connect attempt that ended before the server's response headers. */
  failed(reason: string): void;
  dialAnswered(ok: boolean): void;
}

/** As our agent: a server that does not answer with headers in this time is unreachable. */
const HANDSHAKE_TIMEOUT_MS = 15_000;
/** As the upstream agent dials targets. */
const TARGET_DIAL_TIMEOUT_MS = 5_000;
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

// Node hands checkServerIdentity the peer's chain as JS objects (getPeerCertificate(true), with
// three fingerprints per certificate) after every full handshake: about 0.6 ms here, a third of
// the swarm's CPU per connect, taken from the cores the server is measured on. OpenSSL still
// verifies the chain against the CA; only the name check, pointless on loopback, is skipped.
const acceptAnyName = (): undefined => undefined;
const noPeerCertificate = (() => ({})) as unknown as tls.TLSSocket['getPeerCertificate'];

/** One connect attempt and what lives on it. */
interface Link {
  session: http2.ClientHttp2Session;
  stream: http2.ClientHttp2Stream;
  connected: boolean;
  ended: boolean;
  timer: NodeJS.Timeout;
  status: string | undefined;
  nextConnectID: bigint;
  readonly connections: Map<bigint, net.Socket>;
  readonly pendingDials: Map<bigint, net.Socket>;
}

/** A short, countable reason for a failed connect: the error code, the gRPC status, or the message. */
export function failureReason(err: unknown): string {
  if (err instanceof GrpcStatusError) return `gRPC ${err.message.split(':')[0] ?? err.code}`;
  if (err instanceof Error) {
    // A stream cancelled because its connection failed carries that failure as its cause.
    if (err.cause instanceof Error) return failureReason(err.cause);
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code !== '') return code;
    return err.message.slice(0, 60);
  }
  return String(err).slice(0, 60);
}

/** "host:port" or "[v6]:port" → host and port; undefined when malformed. */
export function splitTargetAddress(address: string): { host: string; port: number } | undefined {
  const colon = address.lastIndexOf(':');
  if (colon <= 0) return undefined;
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const port = Number(address.slice(colon + 1));
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host, port };
}

export class SimAgent {
  private link: Link | undefined;
  private tlsSession: Buffer | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly backoff: Backoff;
  private readonly headers: http2.OutgoingHttpHeaders;

  constructor(
    private readonly config: SimAgentConfig,
    private readonly observer: SimAgentObserver,
  ) {
    // As agent/client-set.ts: growth 1.5x, full jitter.
    this.backoff = new Backoff(config.syncIntervalMs, config.syncIntervalCapMs, 1.5, 'full');
    this.headers = {
      ':method': 'POST',
      ':path': '/AgentService/Connect',
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'konnectivity-ts-bench-scale',
      [MetadataKey.agentID]: config.agentID,
      [MetadataKey.agentIdentifiers]: config.identifiers,
      ...(config.token === undefined ? {} : { [MetadataKey.authorization]: `Bearer ${config.token}` }),
    };
  }

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    if (this.link) this.end(this.link, 'stopped');
  }

  private connect(): void {
    const { config } = this;
    const socket = tls.connect({
      host: config.host,
      port: config.port,
      secureContext: config.secureContext,
      ALPNProtocols: ['h2'],
      checkServerIdentity: acceptAnyName,
      ...(this.tlsSession ? { session: this.tlsSession } : {}),
    });
    socket.getPeerCertificate = noPeerCertificate;
    socket.on('session', (session: Buffer) => {
      this.tlsSession = session;
    });
    socket.once('secureConnect', () => {
      this.observer.handshake(socket.isSessionReused());
    });
    const session = http2.connect(`https://${config.host}:${config.port}`, {
      createConnection: () => socket,
      settings: { enablePush: false },
    });
    const stream = session.request(this.headers);
    const link: Link = {
      session,
      stream,
      connected: false,
      ended: false,
      timer: setTimeout(() => {
        this.end(link, `no response headers within ${HANDSHAKE_TIMEOUT_MS}ms`);
      }, HANDSHAKE_TIMEOUT_MS),
      status: undefined,
      nextConnectID: 1n,
      connections: new Map(),
      pendingDials: new Map(),
    };
    this.link = link;
    const deframer = new MessageDeframer(MAX_MESSAGE_BYTES);
    session.on('error', (err: Error) => {
      this.end(link, failureReason(err));
    });
    session.once('close', () => {
      this.end(link, 'connection closed');
    });
    stream.on('error', (err: Error) => {
      this.end(link, failureReason(err));
    });
    stream.once('response', (h) => {
      clearTimeout(link.timer);
      const status = h[':status'];
      const grpcStatus = headerValue(h, 'grpc-status');
      if (status !== 200) this.end(link, `HTTP ${status}`);
      else if (grpcStatus !== undefined) {
        const err = new GrpcStatusError(
          Number(grpcStatus),
          decodeGrpcMessage(headerValue(h, 'grpc-message')),
        );
        this.end(link, failureReason(err));
      } else {
        link.connected = true;
        this.backoff.reset();
        this.observer.connected();
      }
    });
    stream.on('trailers', (t: http2.IncomingHttpHeaders) => {
      const code = headerValue(t, 'grpc-status');
      if (code !== undefined) link.status = failureReason(new GrpcStatusError(Number(code), ''));
    });
    stream.on('data', (chunk: Buffer) => {
      try {
        deframer.push(chunk, (message) => {
          this.onPacket(link, decodePacket(message));
        });
      } catch (err) {
        this.end(link, failureReason(err));
      }
    });
    stream.once('close', () => {
      this.end(link, link.status ?? 'stream closed');
    });
  }

  /** Ends one attempt (connected or not) once, and schedules the next unless stopped. */
  private end(link: Link, reason: string): void {
    if (link.ended) return;
    link.ended = true;
    clearTimeout(link.timer);
    for (const socket of link.pendingDials.values()) socket.destroy();
    for (const socket of link.connections.values()) socket.destroy();
    link.pendingDials.clear();
    link.connections.clear();
    link.session.destroy();
    if (link.connected) this.observer.disconnected();
    else if (!this.stopped) this.observer.failed(reason);
    if (this.link === link) this.link = undefined;
    if (this.stopped) return;
    this.reconnectTimer = setTimeout(() => {
      this.connect();
    }, this.backoff.next());
  }

  private send(link: Link, packet: Packet): void {
    if (link.ended || !link.stream.writable) return;
    link.stream.write(encodeFramedPacket(packet));
  }

  private onPacket(link: Link, p: Packet): void {
    switch (p.type) {
      case PacketType.DIAL_REQ:
        this.dial(link, p.random, p.address, p.protocol);
        return;
      case PacketType.DATA: {
        const socket = link.connections.get(p.connectID);
        if (!socket) this.send(link, packets.closeResponse(p.connectID, 'unrecognized connectID'));
        else if (p.data.length > 0) socket.write(p.data);
        return;
      }
      case PacketType.CLOSE_REQ: {
        const socket = link.connections.get(p.connectID);
        if (!socket) {
          this.send(link, packets.closeResponse(p.connectID, 'Unknown connectID'));
          return;
        }
        link.connections.delete(p.connectID);
        socket.destroy();
        this.send(link, packets.closeResponse(p.connectID));
        return;
      }
      case PacketType.DIAL_CLS: {
        const socket = link.pendingDials.get(p.random);
        link.pendingDials.delete(p.random);
        socket?.destroy();
        return;
      }
      default:
      // DRAIN and anything else: nothing for an agent that never leaves on its own.
    }
  }

  private dial(link: Link, random: bigint, address: string, protocol: string): void {
    const target = splitTargetAddress(address);
    if (protocol !== 'tcp' || !target) {
      this.observer.dialAnswered(false);
      this.send(link, packets.dialResponse(random, 0n, `cannot dial ${protocol} "${address}"`));
      return;
    }
    const socket = net.connect({ host: target.host, port: target.port, noDelay: true });
    socket.setTimeout(TARGET_DIAL_TIMEOUT_MS, () => {
      socket.destroy(new Error(`dial timeout after ${TARGET_DIAL_TIMEOUT_MS}ms`));
    });
    link.pendingDials.set(random, socket);
    socket.once('connect', () => {
      if (link.pendingDials.get(random) !== socket) {
        socket.destroy();
        return;
      }
      link.pendingDials.delete(random);
      socket.setTimeout(0);
      const connectID = link.nextConnectID++;
      link.connections.set(connectID, socket);
      this.observer.dialAnswered(true);
      this.send(link, packets.dialResponse(random, connectID));
      socket.on('data', (data: Buffer) => {
        this.send(link, packets.data(connectID, data));
      });
      socket.once('close', () => {
        // The target went first: tell the server, as the agent does.
        if (link.connections.get(connectID) !== socket) return;
        link.connections.delete(connectID);
        this.send(link, packets.closeResponse(connectID));
      });
    });
    socket.on('error', (err: Error) => {
      // After the connect, 'close' follows and tells the server.
      if (link.pendingDials.get(random) !== socket) return;
      link.pendingDials.delete(random);
      this.observer.dialAnswered(false);
      this.send(link, packets.dialResponse(random, 0n, `dial tcp ${address}: ${err.message}`));
    });
  }
}
