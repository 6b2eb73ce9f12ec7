// /ProxyService/Proxy: kube-apiserver's single-use gRPC tunnel. One stream carries one dial:
// DIAL_REQ → DIAL_RSP, then DATA both ways by connectID, then CLOSE_REQ/CLOSE_RSP.
import {
  PacketType,
  packetBytes,
  packets,
  packetTypeName,
  packetTypeNames,
  type Packet,
} from '../../proto/packet.js';
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

export type ProxyCall = GrpcServerCall;

let nextStreamSeq = 1;

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

class ProxyStream implements FrontendSink {
  readonly kind = 'grpc';
  private state: 'idle' | 'dialing' | 'established' | 'done' = 'idle';
  private clientRandom = 0n;
  private dial: DialHandle | undefined;
  private conn: TunnelConnection | undefined;
  private halfClose = false;
  /**
   * Room in our send buffer, counted as each message is written out (common/stream-gate.ts):
   * waiting for 'drain' would return flow-control credit a whole window at a time.
   */
  private readonly gate: StreamGate;
  private waitingForRoom = false;

  constructor(
    private readonly call: ProxyCall,
    private readonly broker: TunnelBroker,
    private readonly metrics: ServerMetrics,
    readonly log: Logger,
    /** The dial-rate bucket of this stream's HTTP/2 connection. */
    private readonly rateLimit: TokenBucket | undefined,
  ) {
    this.gate = new StreamGate(call);
  }

  start(): void {
    this.metrics.grpcConnections.labels('Proxy').inc();
    const requested = parseExtensions(this.call.header(MetadataKey.extensions));
    if (requested.size > 0) {
      this.halfClose = requested.has(Extension.halfClose);
      this.call.sendHeaders({ [MetadataKey.extensions]: this.halfClose ? Extension.halfClose : '' });
    }
    this.call.onPacket = (p) => {
      this.onPacket(p);
    };
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
  private send(p: Packet, written?: () => void): boolean {
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
        const conn = this.conn;
        if (this.state !== 'established' || !conn || p.connectID !== conn.connectID) {
          this.rejectUnknown(p.connectID, PacketType.DATA);
          return;
        }
        if (this.halfClose && p.error === HALF_CLOSE_MARKER && p.data.length === 0) {
          conn.endWrite();
        } else if (p.data.length > 0 && !conn.write(p.data, p.wire)) {
          this.call.pause();
          conn.whenWritable(() => this.call.resume());
        }
        return;
      }
      case PacketType.DIAL_REQ:
        this.onDialRequest(p.address, p.protocol, p.random);
        return;
      case PacketType.CLOSE_REQ:
        if (this.state === 'established' && this.conn && p.connectID === this.conn.connectID) {
          this.conn.requestClose();
        } else {
          this.rejectUnknown(p.connectID, PacketType.CLOSE_REQ);
        }
        return;
      case PacketType.DIAL_CLS:
        if (this.state === 'dialing' && p.random === this.clientRandom) {
          this.dial?.cancel();
          this.finish();
        }
        return;
      default:
        this.metrics.streamError('from_client', 'InvalidArgument', p.type);
        this.log.warn({ packetType: packetTypeName(p) }, 'unexpected packet from client; ignored');
    }
  }

  private onDialRequest(address: string, protocol: string, random: bigint): void {
    if (this.state !== 'idle') {
      this.send(
        packets.dialResponse(random, 0n, 'this stream already carries a dial: open one stream per dial'),
      );
      return;
    }
    this.clientRandom = random;
    if (protocol !== 'tcp') {
      this.refuse(address, `unsupported protocol "${protocol}" (only tcp)`);
      return;
    }
    const target = checkDialTarget(address);
    if (!target.ok) {
      this.refuse(address, target.reason);
      return;
    }
    if (this.rateLimit && !this.rateLimit.take()) {
      this.metrics.dialFailures.labels('limit').inc();
      this.refuse(
        address,
        'dial rate limit of this connection exceeded (--max-dials-per-second); retry later',
      );
      return;
    }
    this.state = 'dialing';
    this.dial = this.broker.dial(this, address, target.host, protocol);
  }

  /** A dial refused before it reaches the broker; audited like the others. */
  private refuse(address: string, reason: string): void {
    auditDial(this.log, { frontend: 'grpc', address, result: 'refused', error: reason }, 'dial refused');
    this.send(packets.dialResponse(this.clientRandom, 0n, reason));
    this.finish();
  }

  /** A packet that names a connection this stream does not own: answered, never forwarded. */
  private rejectUnknown(connectID: bigint, type: number): void {
    this.metrics.streamError('from_client', 'InvalidArgument', type);
    this.log.debug(
      { connectID: connectID.toString(), packetType: packetTypeNames[type] },
      'packet for a connection this stream does not own',
    );
    if (this.state !== 'done') this.send(packets.closeResponse(connectID, 'unknown connectID'));
  }

  dialSucceeded(conn: TunnelConnection): void {
    if (this.state !== 'dialing') {
      conn.close('client left before the dial completed');
      return;
    }
    this.state = 'established';
    this.conn = conn;
    this.send(packets.dialResponse(this.clientRandom, conn.connectID));
  }

  dialFailed(err: TunnelError): void {
    if (this.state !== 'dialing') return;
    this.send(packets.dialResponse(this.clientRandom, 0n, err.message));
    this.finish();
  }

  deliver(data: Buffer, wire: Buffer | undefined, written?: () => void): boolean {
    const conn = this.conn;
    if (!conn) return true;
    // The agent's connectID is the client's: its packet goes on unchanged, without a copy.
    const room = this.send(packets.data(conn.connectID, data, '', wire), written);
    if (!room && !this.waitingForRoom) {
      this.waitingForRoom = true;
      this.gate.whenWritable(() => {
        this.waitingForRoom = false;
        if (this.state !== 'done') conn.frontendDrained();
      });
    }
    return room;
  }

  endFromAgent(): void {
    const conn = this.conn;
    if (!conn) return;
    if (this.halfClose) {
      this.send(packets.data(conn.connectID, packets.empty, HALF_CLOSE_MARKER));
      return;
    }
    // An upstream client cannot be told "no more data": the connection ends, as upstream.
    conn.close('target closed its write side');
    this.closedByAgent('');
  }

  closedByAgent(error: string): void {
    if (this.state !== 'established' || !this.conn) return;
    this.send(packets.closeResponse(this.conn.connectID, error));
    this.finish();
  }

  private clientGone(reason: string): void {
    if (this.state === 'dialing') this.dial?.cancel();
    if (this.state === 'established') this.conn?.close(reason);
    this.finish();
  }

  private finish(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.metrics.grpcConnections.labels('Proxy').dec();
    // The last packets (DATA, CLOSE_RSP) leave before the stream ends.
    this.gate.whenFlushed(() => {
      this.gate.close();
      if (!this.call.writableEnded) this.call.end();
    });
  }
}
