// One established end-to-end connection: frontend ⇄ broker ⇄ agent stream, identified on the
// agent stream by the connectID the agent assigned. Owns backpressure between the two sides
// and the close handshake.
import { packets } from '../../proto/packet.js';
import { Extension, HALF_CLOSE_MARKER } from '../../proto/metadata.js';
import { ReceiveWindow, SendCredit, tunedWindowLimit, windowUpdate } from '../../proto/flow-control.js';
import type { Backend } from '../backend/backend.js';
import type { FrontendSink } from './frontend-sink.js';
import { serverTrace, tracingDials } from '../../common/dial-trace.js';

/** How long a frontend's CLOSE_REQ waits for the agent's CLOSE_RSP before we answer it ourselves. */
const CLOSE_RSP_WAIT_MS = 5000;

export interface ConnectionOwner {
  forget(conn: TunnelConnection, reason: string): void;
  observeFrontendStall(seconds: number): void;
}

export class TunnelConnection {
  bytesToAgent = 0;
  bytesFromAgent = 0;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private frontendEnded = false;
  private blockingAgent = false;
  private stalledSince = 0;
  private closeTimer: NodeJS.Timeout | undefined;
  /** Set when the agent negotiated per-connection flow control. */
  private readonly credit: SendCredit | undefined;
  private readonly window: ReceiveWindow | undefined;

  constructor(
    private readonly owner: ConnectionOwner,
    readonly backend: Backend,
    readonly connectID: bigint,
    readonly frontend: FrontendSink,
    readonly address: string,
    /** When the dial started (performance.now()), for the audit line. */
    readonly startedAt: number,
  ) {
    if (backend.supports(Extension.flowControl)) {
      this.credit = new SendCredit(backend.windows.peer);
      const local = backend.windows.local;
      this.window = new ReceiveWindow(
        local,
        (bytes) => {
          if (this.state !== 'closed') this.backend.send(windowUpdate(this.connectID, bytes));
        },
        tunedWindowLimit(local),
        () => this.backend.rttMs(),
      );
    }
  }

  private isOpenOrClosing(): boolean {
    return this.state !== 'closed';
  }

  get flowControlled(): boolean {
    return this.credit !== undefined;
  }

  get halfCloseSupported(): boolean {
    return this.backend.supports(Extension.halfClose);
  }

  // ---- frontend → agent ----

  /**
   * Sends client bytes to the agent; false when the agent stream is congested (see
   * whenWritable). `wire`: the client's DATA packet for this connection, forwarded as it came.
   */
  write(data: Buffer, wire?: Buffer): boolean {
    if (this.state !== 'open' || this.frontendEnded) return true;
    if (tracingDials) serverTrace.mark(this.frontend, 'dataFromClient');
    this.bytesToAgent += data.length;
    const streamOk = this.backend.send(packets.data(this.connectID, data, '', wire));
    const creditOk = this.credit ? this.credit.consume(data.length) : true;
    return streamOk && creditOk;
  }

  /** Calls `fn` once this connection may send again: credit left and the stream not congested. */
  whenWritable(fn: () => void): void {
    if (this.credit) this.credit.whenAvailable(() => this.backend.whenWritable(fn));
    else this.backend.whenWritable(fn);
  }

  /** Credit returned by the agent (flow-control extension). */
  onWindowUpdate(bytes: number): void {
    this.credit?.grant(bytes);
  }

  /** The client finished sending. Half-close where the agent supports it, else close (upstream). */
  endWrite(): void {
    if (this.state !== 'open' || this.frontendEnded) return;
    if (tracingDials) serverTrace.mark(this.frontend, 'closeRequested');
    if (!this.halfCloseSupported) {
      // Upstream agent: EOF tears the connection down, on the client's side too.
      this.close('client closed its write side');
      this.frontend.closedByAgent('');
      return;
    }
    this.frontendEnded = true;
    this.backend.send(packets.data(this.connectID, packets.empty, HALF_CLOSE_MARKER));
  }

  /** The frontend is gone: tell the agent and forget the connection now. */
  close(reason: string): void {
    if (this.state === 'closed') return;
    if (tracingDials) serverTrace.mark(this.frontend, 'closeRequested');
    if (this.state === 'open') this.backend.send(packets.closeRequest(this.connectID));
    this.finish(reason);
    if (tracingDials) {
      serverTrace.mark(this.frontend, 'closed');
      serverTrace.finish(this.frontend);
    }
  }

  /** A gRPC client's CLOSE_REQ: tell the agent and wait (bounded) for its CLOSE_RSP. */
  requestClose(): void {
    if (this.state !== 'open') return;
    if (tracingDials) serverTrace.mark(this.frontend, 'closeRequested');
    this.state = 'closing';
    this.backend.send(packets.closeRequest(this.connectID));
    this.closeTimer = setTimeout(() => this.onAgentClose(''), CLOSE_RSP_WAIT_MS);
    this.closeTimer.unref();
  }

  /** The frontend can take data again after deliver() returned false. */
  frontendDrained(): void {
    if (this.stalledSince > 0) {
      this.owner.observeFrontendStall((performance.now() - this.stalledSince) / 1000);
      this.stalledSince = 0;
    }
    if (!this.blockingAgent) return;
    this.blockingAgent = false;
    this.backend.resumeReads();
  }

  // ---- agent → frontend (called by the broker) ----

  /** `wire`: the agent's DATA packet as it came, for a frontend that forwards it unchanged. */
  onAgentData(data: Buffer, wire: Buffer | undefined): void {
    if (this.state === 'closed') return;
    if (tracingDials) serverTrace.mark(this.frontend, 'dataToClient');
    this.bytesFromAgent += data.length;
    if (this.window) {
      if (!this.window.accept(data.length)) {
        this.backend.log.warn(
          { connectID: this.connectID.toString() },
          'agent ignored the flow-control window; connection closed',
        );
        this.close('agent exceeded its flow-control window');
        this.frontend.closedByAgent('agent exceeded its flow-control window');
        return;
      }
      // Flow control: a slow client costs only its own credit; the stream keeps flowing.
      // Credit goes back as each write leaves for the client. Held until the frontend drained,
      // a burst's credit came back only at its end, and a far agent idled a round trip each time.
      const window = this.window;
      const bytes = data.length;
      if (!this.frontend.deliver(data, wire, () => window.delivered(bytes)) && this.stalledSince === 0) {
        this.stalledSince = performance.now();
      }
      return;
    }
    // deliver() may close the connection re-entrantly: read the state again after it.
    if (!this.frontend.deliver(data, wire) && !this.blockingAgent && this.isOpenOrClosing()) {
      // Upstream protocol: one stream for all of this agent's connections, so a client
      // that does not read holds the stream until it drains.
      this.blockingAgent = true;
      if (this.stalledSince === 0) this.stalledSince = performance.now();
      this.backend.pauseReads();
    }
  }

  onAgentEnd(): void {
    if (this.state === 'closed') return;
    this.frontend.endFromAgent();
  }

  onAgentClose(error: string): void {
    if (this.state === 'closed') return;
    this.finish(error || 'closed by agent');
    this.frontend.closedByAgent(error);
    if (tracingDials) {
      serverTrace.mark(this.frontend, 'closed');
      serverTrace.finish(this.frontend, error ? 'error' : 'ok');
    }
  }

  private finish(reason: string): void {
    this.state = 'closed';
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.credit?.release();
    if (this.blockingAgent) {
      this.blockingAgent = false;
      this.backend.resumeReads();
    }
    this.owner.forget(this, reason);
  }
}
