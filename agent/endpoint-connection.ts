// One connection from the agent to a target, multiplexed on a server stream by connectID.
// Backpressure both ways: the target socket is paused while the stream is congested (or, with
// flow control, while this connection has no credit); a target that does not take our writes
// withholds this connection's credit (flow control) or pauses the stream (upstream peers).
import type net from 'node:net';
import { packets, type Packet } from '../proto/packet.js';
import { HALF_CLOSE_MARKER } from '../proto/metadata.js';
import { ReceiveWindow, SendCredit, tunedWindowLimit, windowUpdate } from '../proto/flow-control.js';
import type { Logger } from '../common/log.js';
import type { TargetReader } from './target-reader.js';
import { agentTrace, tracingDials } from '../common/dial-trace.js';

/** What an endpoint connection needs from its server stream. */
export interface StreamSender {
  readonly halfClose: boolean;
  readonly flowControl: boolean;
  readonly windows: { readonly local: number; readonly peer: number };
  /** The stream's round trip in ms, when measured (window auto-tuning). */
  rttMs(): number | undefined;
  send(packet: Packet): boolean;
  whenWritable(fn: () => void): void;
  pauseReads(): void;
  resumeReads(): void;
  forget(conn: EndpointConnection): void;
}

/**
 * After the client's half-close, how long the target may stay silent before the connection
 * is closed. A full close and a half-close look the same from here (an EOF), so this bounds
 * what a client that simply left can hold. Upstream closes at the EOF itself.
 */
export const HALF_CLOSED_IDLE_MS = 60_000;

export class EndpointConnection {
  bytesFromTarget = 0;
  bytesToTarget = 0;
  private targetEnded = false;
  private serverEnded = false;
  private blockingStream = false;
  private done = false;
  private halfClosedTimer: NodeJS.Timeout | undefined;
  private readonly credit: SendCredit | undefined;
  private readonly window: ReceiveWindow | undefined;

  constructor(
    readonly connectID: bigint,
    private readonly socket: net.Socket,
    /** The socket's reads (its onread), framed as DATA for this connection. */
    private readonly reader: TargetReader,
    private readonly stream: StreamSender,
    private readonly log: Logger,
  ) {
    if (stream.flowControl) {
      this.credit = new SendCredit(stream.windows.peer);
      const local = stream.windows.local;
      this.window = new ReceiveWindow(
        local,
        (bytes) => {
          if (!this.done) this.stream.send(windowUpdate(this.connectID, bytes));
        },
        tunedWindowLimit(local),
        () => this.stream.rttMs(),
      );
    }
  }

  /** Credit returned by the server (flow-control extension). */
  onWindowUpdate(bytes: number): void {
    this.credit?.grant(bytes);
  }

  start(): void {
    const socket = this.socket;
    this.reader.start(this.connectID, (packet) => {
      if (tracingDials) agentTrace.mark(this, 'dataFromTarget');
      const bytes = packet.data.length;
      this.bytesFromTarget += bytes;
      this.halfClosedTimer?.refresh();
      const streamOk = this.stream.send(packet);
      const creditOk = this.credit ? this.credit.consume(bytes) : true;
      if (!streamOk || !creditOk) {
        socket.pause();
        const resume = () => this.stream.whenWritable(() => socket.resume());
        if (this.credit) this.credit.whenAvailable(resume);
        else resume();
      }
    });
    socket.on('end', () => {
      this.targetEnded = true;
      if (!this.stream.halfClose) this.finish('target closed', true);
      else if (!this.serverEnded)
        this.stream.send(packets.data(this.connectID, packets.empty, HALF_CLOSE_MARKER));
      // Both sides ended: 'close' follows once our last writes to the target are flushed.
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
    if (tracingDials) agentTrace.mark(this, 'dataFromServer');
    this.bytesToTarget += data.length;
    if (this.window) {
      if (!this.window.accept(data.length)) {
        this.log.warn(
          { connectID: this.connectID.toString() },
          'server ignored the flow-control window; connection closed',
        );
        this.finish('server exceeded its flow-control window', true);
        return;
      }
      // Flow control: a slow target costs only its own credit; the stream keeps flowing.
      // Credit goes back as each write to the target completes, as the server's does.
      const window = this.window;
      const bytes = data.length;
      this.socket.write(data, () => {
        window.delivered(bytes);
      });
      return;
    }
    if (!this.socket.write(data) && !this.blockingStream) {
      this.blockingStream = true;
      this.stream.pauseReads();
    }
  }

  /** The client finished sending (half-close extension). */
  endFromServer(): void {
    if (this.done) return;
    if (tracingDials) agentTrace.mark(this, 'closeReqReceived');
    this.serverEnded = true;
    // Not destroy: bytes written just before the EOF may still be queued for the target.
    // 'close' ends the connection when they are flushed and the target has ended too.
    this.socket.end();
    this.halfClosedTimer = setTimeout(() => {
      this.finish('half-closed and the target silent', true);
    }, HALF_CLOSED_IDLE_MS);
    this.halfClosedTimer.unref();
  }

  /** CLOSE_REQ from the server, or the stream is gone: close without telling the server. */
  closeFromServer(reason: string): void {
    this.finish(reason, false);
  }

  private finish(reason: string, tellServer: boolean): void {
    if (this.done) return;
    this.done = true;
    if (this.halfClosedTimer) clearTimeout(this.halfClosedTimer);
    this.credit?.release();
    if (this.blockingStream) {
      this.blockingStream = false;
      this.stream.resumeReads();
    }
    if (tellServer) this.stream.send(packets.closeResponse(this.connectID));
    this.socket.destroy();
    this.reader.close();
    this.stream.forget(this);
    if (tracingDials) {
      agentTrace.mark(this, 'closed');
      agentTrace.finish(this, tellServer ? 'target closed' : 'ok');
    }
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
