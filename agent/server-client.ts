// One /AgentService/Connect stream to one proxy-server: receives DIAL_REQ, DATA, CLOSE_REQ
// and DIAL_CLS, dials targets, and multiplexes their bytes by connectID.
import {
  Client,
  Metadata,
  connectivityState,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientDuplexStream,
} from '@grpc/grpc-js';
import type net from 'node:net';
import { readFileSync } from 'node:fs';
import { PacketType, packets, packetTypeName, type Packet } from '../proto/packet.js';
import { decodePacket, encodePacket } from '../proto/codec.js';
import { CONNECT_METHOD } from '../proto/services.js';
import {
  Extension,
  HALF_CLOSE_MARKER,
  MetadataKey,
  metadataValue,
  parseExtensions,
} from '../proto/metadata.js';
import { parseConnectionWindow, parseWindowUpdate } from '../proto/flow-control.js';
import type { Logger } from '../common/log.js';
import { StreamGate } from '../common/stream-gate.js';
import type { AgentMetrics } from './metrics.js';
import { EndpointConnection, type StreamSender } from './endpoint-connection.js';
import {
  DENIED_CODE,
  TARGET_DIAL_TIMEOUT_MS,
  dialErrorText,
  dialTarget,
  splitHostPort,
} from './target-dialer.js';
import type { DestinationPolicy } from './destination-policy.js';

/** The extensions this agent offers to the server. */
const OFFERED = [Extension.halfClose, Extension.flowControl];
/** A server that does not answer with headers in this time is treated as unreachable. */
const HANDSHAKE_TIMEOUT_MS = 15_000;

export interface ServerClientConfig {
  address: string;
  credentials: ChannelCredentials;
  channelOptions: ChannelOptions;
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
  private nextConnectID = 1n;
  private client: Client | undefined;
  private stream: ClientDuplexStream<Packet, Packet> | undefined;
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
    const client = new Client(config.address, config.credentials, config.channelOptions);
    this.client = client;
    const md = new Metadata();
    md.set(MetadataKey.agentID, config.agentID);
    md.set(MetadataKey.agentIdentifiers, config.agentIdentifiers);
    md.set(MetadataKey.extensions, OFFERED.join(','));
    md.set(MetadataKey.connectionWindow, String(config.connectionWindow));
    if (token) md.set(MetadataKey.authorization, `Bearer ${token}`);
    this.windows.local = config.connectionWindow;
    const stream = client.makeBidiStreamRequest<Packet, Packet>(
      CONNECT_METHOD,
      encodePacket,
      decodePacket,
      md,
    );
    this.stream = stream;
    this.gate = new StreamGate(stream);
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
      stream.on('metadata', (headers: Metadata) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.serverID = metadataValue(headers, MetadataKey.serverID) ?? '';
        const count = Number.parseInt(metadataValue(headers, MetadataKey.serverCount) ?? '1', 10);
        const accepted = parseExtensions(metadataValue(headers, MetadataKey.extensions));
        this.halfClose = accepted.has(Extension.halfClose);
        this.flowControl = accepted.has(Extension.flowControl);
        this.windows.peer = parseConnectionWindow(metadataValue(headers, MetadataKey.connectionWindow));
        this.log = this.log.child({ serverID: this.serverID });
        resolve({ serverID: this.serverID, serverCount: Number.isFinite(count) && count > 0 ? count : 1 });
      });
      stream.on('data', (p: Packet) => {
        this.onPacket(p);
      });
      stream.on('error', (err: Error) => {
        this.config.metrics.serverFailures.labels('from_server').inc();
        if (!settled) fail(err);
        else this.shutdown(`stream error: ${err.message}`);
      });
      stream.on('end', () => {
        if (!settled) fail(new Error('server closed the stream'));
        else this.shutdown('server closed the stream');
      });
    });
  }

  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  // ---- StreamSender ----

  send(packet: Packet): boolean {
    if (this.closed || !this.stream) return true;
    this.config.metrics.packet('to_server', packet.type);
    return this.stream.write(packet);
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
        this.dial(p.random, p.address, p.protocol);
        return;
      case PacketType.CLOSE_REQ: {
        const conn = this.connections.get(p.connectID);
        if (conn) {
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
      return;
    }
    const started = performance.now();
    const socket = dialTarget(
      target.host,
      target.port,
      TARGET_DIAL_TIMEOUT_MS,
      this.config.destinationPolicy,
    );
    this.pendingDials.set(random, socket);
    socket.once('connect', () => {
      if (this.pendingDials.get(random) !== socket || this.closed) {
        socket.destroy();
        return;
      }
      this.pendingDials.delete(random);
      metrics.dialDuration.observe((performance.now() - started) / 1000);
      const connectID = this.nextConnectID++;
      const conn = new EndpointConnection(connectID, socket, this, this.log);
      this.connections.set(connectID, conn);
      metrics.endpointConnections.inc();
      this.send(packets.dialResponse(random, connectID));
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
    });
  }

  /** The stream is open and its connection is READY or IDLE (not failing or shut down). */
  healthy(): boolean {
    if (this.closed || !this.client) return false;
    const state = this.client.getChannel().getConnectivityState(false);
    return state === connectivityState.READY || state === connectivityState.IDLE;
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
    this.client?.close();
    this.gate?.close();
    for (const l of this.closeListeners) l(reason);
  }
}
