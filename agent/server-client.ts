// One agent stream to one proxy-server (/AgentService/Connect over gRPC, or its WebSocket
// equivalent: agent/transport/): receives DIAL_REQ, DATA, CLOSE_REQ and DIAL_CLS, dials
// targets, and multiplexes their bytes by connectID.
import type net from 'node:net';
import { readFileSync } from 'node:fs';
import { PacketType, packetBytes, packets, packetTypeName, type Packet } from '../proto/packet.js';
import { Extension, HALF_CLOSE_MARKER, MetadataKey, parseExtensions } from '../proto/metadata.js';
import type { GrpcTarget } from '../proto/grpc-client-call.js';
import { parseConnectionWindow, parseWindowUpdate } from '../proto/flow-control.js';
import type { Logger } from '../common/log.js';
import { StreamGate } from '../common/stream-gate.js';
import type { CallSettings, ServerStream, StreamHandlers, TransportName } from './transport/server-stream.js';
import type { HttpProxy } from './transport/http-proxy.js';
import { openServerStream } from './transport/open-server-stream.js';
import type { AgentMetrics } from './metrics.js';
import { EndpointConnection, type StreamSender } from './endpoint-connection.js';
import { framePool, TargetReader } from './target-reader.js';
import {
  DENIED_CODE,
  TARGET_DIAL_TIMEOUT_MS,
  dialErrorText,
  dialTarget,
  splitHostPort,
} from './target-dialer.js';
import type { DestinationPolicy } from './destination-policy.js';
import { agentTrace, tracingDials } from '../common/dial-trace.js';

/** The extensions this agent offers to the server. */
const OFFERED = [Extension.halfClose, Extension.flowControl];
/** A server that does not answer with headers in this time is treated as unreachable. */
const HANDSHAKE_TIMEOUT_MS = 15_000;

export type { CallSettings } from './transport/server-stream.js';

export interface ServerClientConfig {
  /** host:port, for logs. */
  address: string;
  target: GrpcTarget;
  call: CallSettings;
  /** --transport: gRPC (default) or WebSocket. */
  transport?: TransportName | undefined;
  /** --proxy-url or HTTPS_PROXY: the HTTP proxy the streams cross (CONNECT). */
  proxy?: HttpProxy | undefined;
  /** CAs an https:// proxy's certificate is checked against; undefined: the system's. */
  proxyCa?: (string | Buffer)[] | undefined;
  agentID: string;
  agentIdentifiers: string;
  /** flow-control: the window we grant the server per connection. */
  connectionWindow: number;
  /** ServiceAccount token file, read on every connect (projected tokens rotate). */
  tokenPath?: string | undefined;
  destinationPolicy?: DestinationPolicy | undefined;
  log: Logger;
  metrics: AgentMetrics;
}

export interface ServerIdentity {
  serverID: string;
  serverCount: number;
}

export class ServerClient implements StreamSender {
  readonly connections = new Map<bigint, EndpointConnection>();
  halfClose = false;
  flowControl = false;
  /** flow-control windows per connection: what we grant, and what the server granted us. */
  readonly windows = { local: 0, peer: 0 };
  serverID = '';
  private readonly pendingDials = new Map<bigint, net.Socket>();
  /** performance.now() of the latest DIAL_REQ: a draining agent waits a grace after it. */
  lastDialAt = 0;
  private nextConnectID = 1n;
  private stream: ServerStream | undefined;
  private gate: StreamGate | undefined;
  private closed = false;
  private closeListeners: ((reason: string) => void)[] = [];
  private log: Logger;

  constructor(private readonly config: ServerClientConfig) {
    this.log = config.log;
  }

  /** Opens the stream; resolves with the server's identity from its response headers. */
  connect(): Promise<ServerIdentity> {
    const { config } = this;
    let token: string | undefined;
    if (config.tokenPath) {
      try {
        token = readFileSync(config.tokenPath, 'utf8').trim();
      } catch (err) {
        return Promise.reject(
          new Error(
            `cannot read --service-account-token-path ${config.tokenPath}: ${(err as Error).message}`,
          ),
        );
      }
      if (!token)
        return Promise.reject(new Error(`--service-account-token-path ${config.tokenPath} is empty`));
    }
    const metadata: Record<string, string> = {
      [MetadataKey.agentID]: config.agentID,
      [MetadataKey.agentIdentifiers]: config.agentIdentifiers,
      [MetadataKey.extensions]: OFFERED.join(','),
      [MetadataKey.connectionWindow]: String(config.connectionWindow),
    };
    if (token) metadata[MetadataKey.authorization] = `Bearer ${token}`;
    this.windows.local = config.connectionWindow;
    return new Promise<ServerIdentity>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        fail(new Error(`no answer from ${config.address} within ${HANDSHAKE_TIMEOUT_MS}ms`));
      }, HANDSHAKE_TIMEOUT_MS);
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.shutdown(err.message);
        reject(err);
      };
      const handlers: StreamHandlers = {
        onHeaders: (header) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.serverID = header(MetadataKey.serverID) ?? '';
          const count = Number.parseInt(header(MetadataKey.serverCount) ?? '1', 10);
          const accepted = parseExtensions(header(MetadataKey.extensions));
          this.halfClose = accepted.has(Extension.halfClose);
          this.flowControl = accepted.has(Extension.flowControl);
          this.windows.peer = parseConnectionWindow(header(MetadataKey.connectionWindow));
          this.log = this.log.child({ serverID: this.serverID });
          resolve({ serverID: this.serverID, serverCount: Number.isFinite(count) && count > 0 ? count : 1 });
        },
        onPacket: (p) => {
          this.onPacket(p);
        },
        onEnd: (err) => {
          if (err) this.config.metrics.serverFailures.labels('from_server').inc();
          const reason = err ? `stream error: ${err.message}` : 'server closed the stream';
          if (!settled) fail(err ?? new Error(reason));
          else this.shutdown(reason);
        },
      };
      const route = {
        transport: config.transport ?? 'grpc',
        target: config.target,
        proxy: config.proxy,
        proxyCa: config.proxyCa,
      };
      openServerStream(route, config.call, metadata, handlers, HANDSHAKE_TIMEOUT_MS).then(
        (stream) => {
          // Set before any event of the stream can arrive (those come from the socket).
          this.stream = stream;
          this.gate = new StreamGate(stream);
          if (this.closed) stream.cancel();
        },
        (err: unknown) => {
          fail(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  // ---- StreamSender ----

  send(packet: Packet): boolean {
    const { stream, gate } = this;
    // Both are set together in connect().
    if (this.closed || !stream || !gate) return true;
    this.config.metrics.packet('to_server', packet.type);
    // A target read framed in place: its frame goes back to the pool once written out.
    const frame = packet.type === PacketType.DATA ? packet.wire : undefined;
    return gate.send(packetBytes(packet), (written) =>
      stream.write(
        packet,
        frame
          ? (err?: Error | null) => {
              written();
              if (!err) framePool.giveBack(frame);
            }
          : written,
      ),
    );
  }

  whenWritable(fn: () => void): void {
    if (this.gate) this.gate.whenWritable(fn);
    else fn();
  }

  pauseReads(): void {
    this.gate?.pauseReads();
  }

  resumeReads(): void {
    this.gate?.resumeReads();
  }

  forget(conn: EndpointConnection): void {
    if (this.connections.get(conn.connectID) === conn) {
      this.connections.delete(conn.connectID);
      this.config.metrics.endpointConnections.dec();
    }
  }

  // ---- packets from the server ----

  private onPacket(p: Packet): void {
    this.config.metrics.packet('from_server', p.type);
    switch (p.type) {
      case PacketType.DATA: {
        const conn = this.connections.get(p.connectID);
        if (!conn) {
          this.log.debug({ connectID: p.connectID.toString() }, 'DATA for an unknown connection');
          this.send(packets.closeResponse(p.connectID, 'unrecognized connectID'));
          return;
        }
        if (p.data.length > 0) conn.write(p.data);
        else if (this.halfClose && p.error === HALF_CLOSE_MARKER) conn.endFromServer();
        else if (this.flowControl) {
          const credit = parseWindowUpdate(p);
          if (credit !== undefined) conn.onWindowUpdate(credit);
        }
        return;
      }
      case PacketType.DIAL_REQ:
        this.lastDialAt = performance.now();
        if (tracingDials) {
          agentTrace.mark(p.random, 'dialReqReceived');
          agentTrace.identify(p.random, p.random);
        }
        this.dial(p.random, p.address, p.protocol);
        return;
      case PacketType.CLOSE_REQ: {
        const conn = this.connections.get(p.connectID);
        if (conn) {
          if (tracingDials) agentTrace.mark(conn, 'closeReqReceived');
          conn.closeFromServer('server requested close');
          this.send(packets.closeResponse(p.connectID));
        } else {
          this.send(packets.closeResponse(p.connectID, 'Unknown connectID'));
        }
        return;
      }
      case PacketType.DIAL_CLS: {
        const socket = this.pendingDials.get(p.random);
        if (socket) {
          this.pendingDials.delete(p.random);
          socket.destroy();
          if (tracingDials) agentTrace.finish(p.random, 'cancelled');
          this.log.debug({ random: p.random.toString() }, 'pending dial cancelled by the server');
        }
        return;
      }
      default:
        this.config.metrics.stream.error('from_server', 'InvalidArgument', p.type);
        this.log.warn({ packetType: packetTypeName(p) }, 'unexpected packet from server; ignored');
    }
  }

  private dial(random: bigint, address: string, protocol: string): void {
    const { metrics } = this.config;
    const target = splitHostPort(address);
    if (protocol !== 'tcp' || !target) {
      const error =
        protocol !== 'tcp' ? `unsupported protocol "${protocol}"` : `invalid address "${address}"`;
      metrics.dialFailures.labels('unknown').inc();
      this.send(packets.dialResponse(random, 0n, error));
      if (tracingDials) agentTrace.finish(random, 'failed');
      return;
    }
    const started = performance.now();
    const reader = new TargetReader();
    const socket = dialTarget(
      target.host,
      target.port,
      TARGET_DIAL_TIMEOUT_MS,
      reader.onread,
      this.config.destinationPolicy,
    );
    this.pendingDials.set(random, socket);
    socket.once('connect', () => {
      if (this.pendingDials.get(random) !== socket || this.closed) {
        socket.destroy();
        return;
      }
      this.pendingDials.delete(random);
      if (tracingDials) agentTrace.mark(random, 'targetConnected');
      metrics.dialDuration.observe((performance.now() - started) / 1000);
      const connectID = this.nextConnectID++;
      const conn = new EndpointConnection(connectID, socket, reader, this, this.log);
      this.connections.set(connectID, conn);
      metrics.endpointConnections.inc();
      this.send(packets.dialResponse(random, connectID));
      if (tracingDials) {
        agentTrace.mark(random, 'dialRspSent');
        agentTrace.rekey(random, conn);
      }
      conn.start();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (this.pendingDials.get(random) !== socket) return;
      this.pendingDials.delete(random);
      const text = dialErrorText(address, target.host, err);
      if (err.code === DENIED_CODE) {
        metrics.destinationDenied.inc();
        this.log.info({ address, error: text }, 'dial refused by destination policy');
      } else {
        metrics.dialFailures.labels(err.code === 'ETIMEDOUT' ? 'timeout' : 'unknown').inc();
        this.log.debug({ address, error: text }, 'dial failed');
      }
      this.send(packets.dialResponse(random, 0n, text));
      if (tracingDials) agentTrace.finish(random, 'failed');
    });
  }

  get pendingDialCount(): number {
    return this.pendingDials.size;
  }

  /** The stream is open and its connection neither closing nor failed (keepalive included). */
  healthy(): boolean {
    return !this.closed && this.stream?.open === true;
  }

  rttMs(): number | undefined {
    return this.stream?.rttMs();
  }

  /** Tells the server this agent is going away: it sends no new dials here (DRAIN). */
  drain(): void {
    if (this.closed) return;
    this.send(packets.drain());
    this.log.info('DRAIN sent: the server routes no new dials here');
  }

  /** Closes the stream and every connection on it. */
  shutdown(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const socket of this.pendingDials.values()) socket.destroy();
    this.pendingDials.clear();
    for (const conn of [...this.connections.values()]) conn.closeFromServer(reason);
    this.stream?.cancel();
    this.gate?.close();
    for (const l of this.closeListeners) l(reason);
  }
}
