// One connection from the agent to a target, multiplexed on a server stream by connectID.
// Backpressure both ways: the target socket is paused while the stream is congested, and
// the stream is paused while the target does not take our writes.
import type net from 'node:net';
import { packets, type Packet } from '../proto/packet.js';
import { HALF_CLOSE_MARKER } from '../proto/metadata.js';
import type { Logger } from '../common/log.js';

/** What an endpoint connection needs from its server stream. */
export interface StreamSender {
  readonly halfClose: boolean;
  send(packet: Packet): boolean;
  whenWritable(fn: () => void): void;
  pauseReads(): void;
  resumeReads(): void;
  forget(conn: EndpointConnection): void;
}

export class EndpointConnection {
  bytesFromTarget = 0;
  bytesToTarget = 0;
  private targetEnded = false;
  private serverEnded = false;
  private blockingStream = false;
  private done = false;

  constructor(
    readonly connectID: bigint,
    private readonly socket: net.Socket,
    private readonly stream: StreamSender,
    private readonly log: Logger,
  ) {}

  start(): void {
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => {
      this.bytesFromTarget += chunk.length;
      if (!this.stream.send(packets.data(this.connectID, chunk))) {
        socket.pause();
        this.stream.whenWritable(() => socket.resume());
      }
    });
    socket.on('end', () => {
      this.targetEnded = true;
      if (this.stream.halfClose && !this.serverEnded) {
        this.stream.send(packets.data(this.connectID, packets.empty, HALF_CLOSE_MARKER));
      } else {
        this.finish('target closed', true);
      }
    });
    socket.on('drain', () => {
      if (this.blockingStream) {
        this.blockingStream = false;
        this.stream.resumeReads();
      }
    });
    socket.on('error', (err: Error) => {
      this.log.debug({ connectID: this.connectID.toString(), error: err.message }, 'target socket error');
    });
    socket.on('close', () => {
      this.finish('target connection closed', true);
    });
  }

  /** DATA from the server. */
  write(data: Buffer): void {
    if (this.done) return;
    this.bytesToTarget += data.length;
    if (!this.socket.write(data) && !this.blockingStream) {
      this.blockingStream = true;
      this.stream.pauseReads();
    }
  }

  /** The client finished sending (half-close extension). */
  endFromServer(): void {
    if (this.done) return;
    this.serverEnded = true;
    this.socket.end();
    if (this.targetEnded) this.finish('both sides finished', true);
  }

  /** CLOSE_REQ from the server, or the stream is gone: close without telling the server. */
  closeFromServer(reason: string): void {
    this.finish(reason, false);
  }

  private finish(reason: string, tellServer: boolean): void {
    if (this.done) return;
    this.done = true;
    if (this.blockingStream) {
      this.blockingStream = false;
      this.stream.resumeReads();
    }
    if (tellServer) this.stream.send(packets.closeResponse(this.connectID));
    this.socket.destroy();
    this.stream.forget(this);
    this.log.debug(
      {
        connectID: this.connectID.toString(),
        reason,
        bytesFromTarget: this.bytesFromTarget,
        bytesToTarget: this.bytesToTarget,
      },
      'endpoint connection closed',
    );
  }
}
