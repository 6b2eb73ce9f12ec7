// /ProxyService/Proxy. kube-apiserver's single-use tunnel sends one dial per stream: DIAL_REQ →
// DIAL_RSP, then DATA both ways by connectID, then CLOSE_REQ/CLOSE_RSP, then it ends the stream.
// A reusable client (upstream's multi-use konnectivity-client, our ReusableGrpcTunnel) sends
// many, pending ones told apart by their random, established ones by connectID: the stream
// keeps state per dial (ProxyDial, the broker's FrontendSink) and lives until the client ends it.
import {
  PacketType,
  packetBytes,
  packets,
  packetTypeName,
  packetTypeNames,
  type DataPacket,
  type Packet,
} from '../../proto/packet.js';
import { random63 } from '../../proto/random.js';
import { Extension, HALF_CLOSE_MARKER, MetadataKey, parseExtensions } from '../../proto/metadata.js';
import type { TunnelError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { ServerMetrics } from '../metrics.js';
import type { DialHandle, TunnelBroker } from '../tunnel/broker.js';
import type { FrontendSink } from '../tunnel/frontend-sink.js';
import type { TunnelConnection } from '../tunnel/tunnel-connection.js';
import { checkDialTarget } from './dial-target.js';
import type { GrpcServerCall } from '../grpc/call.js';
import { StreamGate } from '../../common/stream-gate.js';
import { TokenBucket } from '../../common/rate-limit.js';
import { auditDial } from '../tunnel/audit.js';
import { serverTrace, tracingDials } from '../../common/dial-trace.js';

export type ProxyCall = GrpcServerCall;

let nextStreamSeq = 1;

/** How long a closed connection's id is not given to another on the same stream. */
const ID_REUSE_DELAY_MS = 10_000;

export interface GrpcFrontendOptions {
  /** Dials per second one HTTP/2 connection may start (burst the same); 0: no limit. */
  maxDialsPerSecond?: number;
}

export class GrpcFrontend {
  /** One dial-rate bucket per client HTTP/2 connection, gone with it. */
  private readonly buckets = new WeakMap<object, TokenBucket>();

  constructor(
    private readonly broker: TunnelBroker,
    private readonly metrics: ServerMetrics,
    private readonly log: Logger,
    private readonly options: GrpcFrontendOptions,
  ) {}

  readonly handle = (call: ProxyCall): void => {
    new ProxyStream(
      call,
      this.broker,
      this.metrics,
      this.log.child({ stream: nextStreamSeq++ }),
      this.bucketFor(call),
    ).start();
  };

  private bucketFor(call: ProxyCall): TokenBucket | undefined {
    const rate = this.options.maxDialsPerSecond ?? 0;
    const session = call.session;
    if (rate <= 0 || !session) return undefined;
    let bucket = this.buckets.get(session);
    if (!bucket) {
      bucket = new TokenBucket(rate, rate);
      this.buckets.set(session, bucket);
    }
    return bucket;
  }
}

/** One Proxy stream: its dials and connections, and the packets to and from the client. */
class ProxyStream {
  /** Dials waiting for their agent's answer, by the client's random. */
  private readonly dials = new Map<bigint, ProxyDial>();
  /** Established connections, by the connectID the client knows them by. */
  private readonly connections = new Map<bigint, ProxyDial>();
  /** Client-side ids of closed connections, until they may be given again (see established). */
  private closedIds: Map<bigint, number> | undefined;
  private ended = false;
  halfClose = false;
  /**
   * Room in our send buffer, counted as each message is written out (common/stream-gate.ts):
   * waiting for 'drain' would return flow-control credit a whole window at a time.
   */
  readonly gate: StreamGate;

  constructor(
    private readonly call: ProxyCall,
    private readonly broker: TunnelBroker,
    readonly metrics: ServerMetrics,
    readonly log: Logger,
    /** The dial-rate bucket of this stream's HTTP/2 connection. */
    private readonly rateLimit: TokenBucket | undefined,
  ) {
    this.gate = new StreamGate(call);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  start(): void {
    if (tracingDials) serverTrace.mark(this, 'streamOpened');
    this.metrics.grpcConnections.labels('Proxy').inc();
    const requested = parseExtensions(this.call.header(MetadataKey.extensions));
    if (requested.size > 0) {
      this.halfClose = requested.has(Extension.halfClose);
      this.call.sendHeaders({ [MetadataKey.extensions]: this.halfClose ? Extension.halfClose : '' });
    }
    this.call.onPacket = (p) => {
      this.onPacket(p);
    };
    // The client is done with the stream: everything on it ends (upstream: EOF ends the call).
    this.call.onEnd = () => {
      this.clientGone('client closed the stream');
    };
    this.call.onClose = (reason, failed) => {
      if (failed) this.metrics.streamError('from_client', 'Unknown', undefined);
      this.gate.close();
      this.clientGone(reason);
    };
  }

  /** Every packet to the client goes through the gate, so that all leave in order. */
  send(p: Packet, written?: () => void): boolean {
    this.metrics.packet('to_client', p.type);
    return this.gate.send(packetBytes(p), (sent) =>
      this.call.write(
        p,
        written
          ? () => {
              sent();
              written();
            }
          : sent,
      ),
    );
  }

  private onPacket(p: Packet): void {
    this.metrics.packet('from_client', p.type);
    switch (p.type) {
      case PacketType.DATA: {
        const dial = this.connections.get(p.connectID);
        if (!dial) {
          this.rejectUnknown(p.connectID, PacketType.DATA);
          return;
        }
        dial.fromClient(p);
        return;
      }
      case PacketType.DIAL_REQ:
        this.onDialRequest(p.address, p.protocol, p.random);
        return;
      case PacketType.CLOSE_REQ: {
        const dial = this.connections.get(p.connectID);
        if (dial) dial.closeRequested();
        else this.rejectUnknown(p.connectID, PacketType.CLOSE_REQ);
        return;
      }
      case PacketType.DIAL_CLS: {
        const dial = this.dials.get(p.random);
        if (dial) dial.cancel();
        else this.log.debug({ random: p.random.toString() }, 'DIAL_CLS for no pending dial; ignored');
        return;
      }
      default:
        this.metrics.streamError('from_client', 'InvalidArgument', p.type);
        this.log.warn({ packetType: packetTypeName(p) }, 'unexpected packet from client; ignored');
    }
  }

  private onDialRequest(address: string, protocol: string, random: bigint): void {
    if (this.dials.has(random)) {
      // Its answer would be taken for the pending dial's: refused, and that one goes on.
      this.metrics.streamError('from_client', 'InvalidArgument', PacketType.DIAL_REQ);
      this.refuse(random, address, `a dial with random ${random} is already pending on this stream`);
      return;
    }
    if (protocol !== 'tcp') {
      this.refuse(random, address, `unsupported protocol "${protocol}" (only tcp)`);
      return;
    }
    const target = checkDialTarget(address);
    if (!target.ok) {
      this.refuse(random, address, target.reason);
      return;
    }
    if (this.rateLimit && !this.rateLimit.take()) {
      this.metrics.dialFailures.labels('limit').inc();
      this.refuse(
        random,
        address,
        'dial rate limit of this connection exceeded (--max-dials-per-second); retry later',
      );
      return;
    }
    const dial = new ProxyDial(this, random);
    if (tracingDials) {
      // The stream's first dial carries its opening stamp (a single-use tunnel's only one).
      serverTrace.rekey(this, dial);
      serverTrace.mark(dial, 'accepted');
    }
    this.dials.set(random, dial);
    dial.start(this.broker.dial(dial, address, target.host, protocol));
  }

  /** A dial refused before it reaches the broker; audited like the others. */
  private refuse(random: bigint, address: string, reason: string): void {
    auditDial(this.log, { frontend: 'grpc', address, result: 'refused', error: reason }, 'dial refused');
    this.send(packets.dialResponse(random, 0n, reason));
  }

  /** A packet that names a connection this stream does not own: answered, never forwarded. */
  private rejectUnknown(connectID: bigint, type: number): void {
    this.metrics.streamError('from_client', 'InvalidArgument', type);
    this.log.debug(
      { connectID: connectID.toString(), packetType: packetTypeNames[type] },
      'packet for a connection this stream does not own',
    );
    if (!this.ended) this.send(packets.closeResponse(connectID, 'unknown connectID'));
  }

  /** The dial is over without a connection (failed or cancelled). */
  dialDone(dial: ProxyDial): void {
    if (this.dials.get(dial.random) === dial) this.dials.delete(dial.random);
  }

  /**
   * The dial became a connection: the id the client will know it by. The agent's connectID
   * where it is free on this stream (then DATA passes through unchanged). connectIDs are per
   * agent, so two agents may both pick one: the second gets a stream-local alias. An id is not
   * given again for a while after its connection closed: DATA the client sent before it read
   * the CLOSE_RSP would reach the new connection.
   */
  established(dial: ProxyDial, agentConnectID: bigint): bigint {
    this.dialDone(dial);
    let id = agentConnectID;
    while (id === 0n || this.connections.has(id) || this.recentlyClosed(id)) id = random63();
    if (id !== agentConnectID) {
      this.log.debug(
        { connectID: agentConnectID.toString(), clientConnectID: id.toString() },
        'connectID in use or recently closed on this stream: the client gets an alias',
      );
    }
    this.connections.set(id, dial);
    return id;
  }

  connectionDone(dial: ProxyDial): void {
    const id = dial.clientConnectID;
    if (this.connections.get(id) !== dial) return;
    this.connections.delete(id);
    // Held back until then, in closing order; the oldest expire first.
    const now = performance.now();
    this.closedIds ??= new Map();
    for (const [old, until] of this.closedIds) {
      if (until > now) break;
      this.closedIds.delete(old);
    }
    this.closedIds.delete(id);
    this.closedIds.set(id, now + ID_REUSE_DELAY_MS);
  }

  private recentlyClosed(id: bigint): boolean {
    const until = this.closedIds?.get(id);
    return until !== undefined && until > performance.now();
  }

  private clientGone(reason: string): void {
    if (this.ended) return;
    if (tracingDials) serverTrace.drop(this);
    const dials = [...this.dials.values(), ...this.connections.values()];
    this.dials.clear();
    this.connections.clear();
    for (const d of dials) d.clientGone(reason);
    this.finish();
  }

  private finish(): void {
    this.ended = true;
    this.metrics.grpcConnections.labels('Proxy').dec();
    // The last packets (DATA, CLOSE_RSP) leave before the stream ends.
    this.gate.whenFlushed(() => {
      this.gate.close();
      if (!this.call.writableEnded) this.call.end();
    });
  }
}

/**
 * One dial of a Proxy stream, then its connection: what the broker and the TunnelConnection
 * talk to. Packets to the client go through the stream, under the id the client knows.
 */
class ProxyDial implements FrontendSink {
  readonly kind = 'grpc';
  readonly log: Logger;
  private state: 'dialing' | 'established' | 'done' = 'dialing';
  private handle: DialHandle | undefined;
  private conn: TunnelConnection | undefined;
  /** The connectID the client knows; the agent's unless aliased (see ProxyStream.established). */
  clientConnectID = 0n;
  /** Aliased: packets cannot pass through as they came, their connectID differs. */
  private aliased = false;
  private waitingForRoom = false;

  constructor(
    private readonly stream: ProxyStream,
    readonly random: bigint,
  ) {
    this.log = stream.log;
  }

  start(handle: DialHandle): void {
    this.handle = handle;
  }

  /** DIAL_CLS: the client gave up waiting. */
  cancel(): void {
    if (this.state !== 'dialing') return;
    this.state = 'done';
    this.stream.dialDone(this);
    this.handle?.cancel();
  }

  fromClient(p: DataPacket): void {
    const conn = this.conn;
    if (this.state !== 'established' || !conn) return;
    if (this.stream.halfClose && p.error === HALF_CLOSE_MARKER && p.data.length === 0) {
      conn.endWrite();
    } else if (p.data.length > 0 && !conn.write(p.data, this.aliased ? undefined : p.wire)) {
      // One stream for all of this client's connections: it waits until this one has room.
      const gate = this.stream.gate;
      gate.pauseReads();
      conn.whenWritable(() => {
        gate.resumeReads();
      });
    }
  }

  /** CLOSE_REQ: the agent is asked, and its CLOSE_RSP answers the client (closedByAgent). */
  closeRequested(): void {
    this.conn?.requestClose();
  }

  clientGone(reason: string): void {
    if (this.state === 'dialing') this.handle?.cancel();
    else if (this.state === 'established') this.conn?.close(reason);
    this.state = 'done';
  }

  dialSucceeded(conn: TunnelConnection): void {
    if (this.state !== 'dialing') {
      conn.close('client left before the dial completed');
      return;
    }
    this.state = 'established';
    this.conn = conn;
    this.clientConnectID = this.stream.established(this, conn.connectID);
    this.aliased = this.clientConnectID !== conn.connectID;
    this.stream.send(packets.dialResponse(this.random, this.clientConnectID));
    if (tracingDials) serverTrace.mark(this, 'answered');
  }

  dialFailed(err: TunnelError): void {
    if (this.state !== 'dialing') return;
    this.state = 'done';
    this.stream.dialDone(this);
    this.stream.send(packets.dialResponse(this.random, 0n, err.message));
  }

  deliver(data: Buffer, wire: Buffer | undefined, written?: () => void): boolean {
    const conn = this.conn;
    if (!conn) return true;
    // Not aliased, the agent's packet goes on unchanged, without a copy.
    const room = this.stream.send(
      packets.data(this.clientConnectID, data, '', this.aliased ? undefined : wire),
      written,
    );
    if (!room && !this.waitingForRoom) {
      this.waitingForRoom = true;
      this.stream.gate.whenWritable(() => {
        this.waitingForRoom = false;
        if (this.state === 'established') conn.frontendDrained();
      });
    }
    return room;
  }

  endFromAgent(): void {
    const conn = this.conn;
    if (!conn || this.state !== 'established') return;
    if (this.stream.halfClose) {
      this.stream.send(packets.data(this.clientConnectID, packets.empty, HALF_CLOSE_MARKER));
      return;
    }
    // An upstream client cannot be told "no more data": the connection ends, as upstream.
    conn.close('target closed its write side');
    this.closedByAgent('');
  }

  closedByAgent(error: string): void {
    if (this.state !== 'established') return;
    this.state = 'done';
    this.stream.connectionDone(this);
    if (!this.stream.isEnded) this.stream.send(packets.closeResponse(this.clientConnectID, error));
  }
}
