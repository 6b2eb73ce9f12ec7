// The tunnel broker: routes packets between frontends and agent streams. It owns the
// pending dials (our random → dial) and, through each Backend, the established connections
// (connectID → connection). Frontends and backends never talk to each other directly.
import { random63 } from '../../proto/random.js';
import { PacketType, packets, packetTypeName, type Packet } from '../../proto/packet.js';
import { HALF_CLOSE_MARKER } from '../../proto/metadata.js';
import { parseWindowUpdate } from '../../proto/flow-control.js';
import { dialResponseError, ErrorCode, TunnelError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { Backend } from '../backend/backend.js';
import type { BackendManager } from '../backend/backend-manager.js';
import type { DialFailureReason, ServerMetrics } from '../metrics.js';
import type { FrontendSink } from './frontend-sink.js';
import { TunnelConnection, type ConnectionOwner } from './tunnel-connection.js';
import { auditDial } from './audit.js';
import { serverTrace, tracingDials } from '../../common/dial-trace.js';

interface PendingDial {
  random: bigint;
  backend: Backend;
  frontend: FrontendSink;
  address: string;
  startedAt: number;
  timer: NodeJS.Timeout | undefined;
}

type FailedDial = Pick<PendingDial, 'frontend' | 'address' | 'startedAt'> & { backend?: Backend | undefined };

export interface DialHandle {
  /** The frontend gave up (DIAL_CLS, disconnect): the agent is told, the dial forgotten. */
  cancel(): void;
}

export interface BrokerOptions {
  /** Bound on a pending dial; 0 disables (upstream's default). */
  dialTimeoutMs: number;
  /** Dials waiting for DIAL_RSP, all agents together; over it a dial fails at once. 0: no limit. */
  maxPendingDials?: number;
  /** Open plus pending connections through one agent; over it a dial fails at once. 0: no limit. */
  maxConnectionsPerAgent?: number;
}

export class TunnelBroker implements ConnectionOwner {
  private readonly pending = new Map<bigint, PendingDial>();
  private established = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly backends: BackendManager,
    private readonly metrics: ServerMetrics,
    private readonly log: Logger,
    private readonly options: BrokerOptions,
  ) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  get establishedCount(): number {
    return this.established;
  }

  /** Starts a dial for a frontend. The outcome arrives on the sink, never synchronously. */
  dial(frontend: FrontendSink, address: string, host: string, protocol: string): DialHandle {
    const startedAt = performance.now();
    const refuse = (err: TunnelError, reason: DialFailureReason, backend?: Backend) => {
      queueMicrotask(() => {
        this.failDial({ frontend, address, startedAt, backend }, err, reason);
      });
      return { cancel: () => undefined };
    };
    const maxPending = this.options.maxPendingDials ?? 0;
    if (maxPending > 0 && this.pending.size >= maxPending) {
      return refuse(
        new TunnelError(ErrorCode.LIMIT, `too many pending dials (limit ${maxPending}); retry later`),
        'limit',
      );
    }
    const picked = this.backends.pick(host);
    if (!picked.ok) return refuse(new TunnelError(ErrorCode.NO_AGENT, picked.reason), 'no_agent');
    const backend = picked.backend;
    const maxPerAgent = this.options.maxConnectionsPerAgent ?? 0;
    if (maxPerAgent > 0 && backend.connections.size + backend.pendingDials >= maxPerAgent) {
      return refuse(
        new TunnelError(
          ErrorCode.LIMIT,
          `agent ${backend.agentID} carries its limit of ${maxPerAgent} connections; retry later`,
        ),
        'limit',
        backend,
      );
    }
    let random = random63();
    while (this.pending.has(random)) random = random63();
    const dial: PendingDial = { random, backend, frontend, address, startedAt, timer: undefined };
    if (this.options.dialTimeoutMs > 0) {
      dial.timer = setTimeout(() => this.dialTimedOut(random), this.options.dialTimeoutMs);
      dial.timer.unref();
    }
    this.pending.set(random, dial);
    backend.pendingDials++;
    this.metrics.pendingDials.set(this.pending.size);
    frontend.log.debug(
      { address, agentID: backend.agentID, strategy: picked.strategy, random: random.toString() },
      'dial sent to agent',
    );
    if (tracingDials) {
      serverTrace.identify(frontend, random, frontend.kind);
      backend.send(packets.dialRequest(address, random, protocol), () => {
        serverTrace.mark(frontend, 'dialReqFlushed');
      });
      serverTrace.mark(frontend, 'dialReqSent');
    } else {
      backend.send(packets.dialRequest(address, random, protocol));
    }
    return { cancel: () => this.cancelDial(random) };
  }

  /** A dial that did not become a connection: audited, then the frontend is told. */
  private failDial(dial: FailedDial, err: TunnelError, reason: DialFailureReason): void {
    this.auditFailure(dial, err, reason);
    dial.frontend.dialFailed(err);
  }

  /** Counted, and one audit line at info level (successful dials get theirs when they close). */
  private auditFailure(dial: FailedDial, err: TunnelError, reason: DialFailureReason): void {
    if (tracingDials) serverTrace.finish(dial.frontend, err.code);
    this.dialFailure(reason);
    auditDial(
      dial.frontend.log,
      {
        frontend: dial.frontend.kind,
        address: dial.address,
        agentID: dial.backend?.agentID,
        result: err.code,
        error: err.message,
        durationMs: Math.round(performance.now() - dial.startedAt),
      },
      'dial failed',
    );
  }

  private cancelDial(random: bigint): void {
    const dial = this.takePending(random);
    if (!dial) return;
    dial.backend.send(packets.closeDial(random));
    // The frontend itself gave up: nothing to tell it.
    this.auditFailure(
      dial,
      new TunnelError(ErrorCode.DIAL_CANCELLED, 'the client gave up the dial'),
      'frontend_close',
    );
  }

  private dialTimedOut(random: bigint): void {
    const dial = this.takePending(random);
    if (!dial) return;
    dial.backend.send(packets.closeDial(random));
    this.failDial(
      dial,
      new TunnelError(
        ErrorCode.DIAL_TIMEOUT,
        `dial to ${dial.address} through agent ${dial.backend.agentID} timed out after ${this.options.dialTimeoutMs}ms`,
      ),
      'timeout',
    );
  }

  private takePending(random: bigint): PendingDial | undefined {
    const dial = this.pending.get(random);
    if (!dial) return undefined;
    this.pending.delete(random);
    dial.backend.pendingDials--;
    if (dial.timer) clearTimeout(dial.timer);
    this.metrics.pendingDials.set(this.pending.size);
    return dial;
  }

  private dialFailure(reason: DialFailureReason): void {
    this.metrics.dialFailures.labels(reason).inc();
  }

  /** Every packet an agent sends arrives here. Bad packets cost one log line, never the stream. */
  handleAgentPacket(backend: Backend, packet: Packet): void {
    this.metrics.packet('from_agent', packet.type);
    switch (packet.type) {
      case PacketType.DATA: {
        const conn = backend.connections.get(packet.connectID);
        if (!conn) {
          backend.log.debug(
            { connectID: packet.connectID.toString() },
            'DATA for an unknown connection; dropped',
          );
          return;
        }
        if (packet.error === HALF_CLOSE_MARKER && packet.data.length === 0 && conn.halfCloseSupported) {
          conn.onAgentEnd();
        } else if (packet.error !== '' && conn.flowControlled) {
          const credit = parseWindowUpdate(packet);
          if (credit !== undefined) conn.onWindowUpdate(credit);
          else conn.onAgentData(packet.data, undefined);
        } else {
          conn.onAgentData(packet.data, packet.wire);
        }
        return;
      }
      case PacketType.DIAL_RSP:
        this.onDialResponse(backend, packet.random, packet.connectID, packet.error);
        return;
      case PacketType.CLOSE_RSP:
      case PacketType.CLOSE_REQ: {
        const conn = backend.connections.get(packet.connectID);
        const error = packet.type === PacketType.CLOSE_RSP ? packet.error : '';
        if (conn) conn.onAgentClose(error);
        else backend.log.debug({ connectID: packet.connectID.toString() }, 'close for an unknown connection');
        return;
      }
      case PacketType.DIAL_CLS: {
        const dial = this.pending.get(packet.random);
        if (dial?.backend !== backend) return;
        this.takePending(packet.random);
        this.failDial(
          dial,
          new TunnelError(ErrorCode.DIAL_FAILED, 'the agent closed the dial'),
          'backend_close',
        );
        return;
      }
      case PacketType.DRAIN:
        if (!backend.draining) backend.log.info('agent is draining: no new dials to it');
        this.backends.setDraining(backend);
        return;
      case PacketType.DIAL_REQ:
      case PacketType.UNKNOWN:
        this.metrics.streamError('from_agent', 'InvalidArgument', packet.type);
        backend.log.warn({ packetType: packetTypeName(packet) }, 'unexpected packet from agent; ignored');
        return;
    }
  }

  private onDialResponse(backend: Backend, random: bigint, connectID: bigint, error: string): void {
    const dial = this.pending.get(random);
    if (dial?.backend !== backend) {
      this.dialFailure('unrecognized_response');
      backend.log.info(
        { random: random.toString(), connectID: connectID.toString() },
        'DIAL_RSP for an unknown or cancelled dial',
      );
      // The agent opened a connection nobody waits for: have it closed.
      if (!error && connectID !== 0n) backend.send(packets.closeRequest(connectID));
      return;
    }
    if (tracingDials) serverTrace.mark(dial.frontend, 'dialRspReceived');
    this.takePending(random);
    if (error) {
      this.failDial(dial, dialResponseError(error), 'endpoint');
      return;
    }
    if (backend.connections.has(connectID) || connectID === 0n) {
      this.metrics.streamError('from_agent', 'InvalidArgument', PacketType.DIAL_RSP);
      backend.log.warn({ connectID: connectID.toString() }, 'agent reused a connectID; dial failed');
      this.failDial(
        dial,
        new TunnelError(ErrorCode.PROTOCOL, `agent answered with invalid connectID ${connectID}`),
        'unrecognized_response',
      );
      return;
    }
    const conn = new TunnelConnection(this, backend, connectID, dial.frontend, dial.address, dial.startedAt);
    backend.connections.set(connectID, conn);
    this.established++;
    this.metrics.established.set(this.established);
    this.metrics.dialDuration.observe((performance.now() - dial.startedAt) / 1000);
    dial.frontend.dialSucceeded(conn);
  }

  /** ConnectionOwner: a connection ended, whichever side ended it. */
  forget(conn: TunnelConnection, reason: string): void {
    if (conn.backend.connections.get(conn.connectID) !== conn) return;
    conn.backend.connections.delete(conn.connectID);
    this.established--;
    this.metrics.established.set(this.established);
    auditDial(
      conn.frontend.log,
      {
        frontend: conn.frontend.kind,
        address: conn.address,
        agentID: conn.backend.agentID,
        connectID: conn.connectID.toString(),
        result: 'ok',
        durationMs: Math.round(performance.now() - conn.startedAt),
        bytesToAgent: conn.bytesToAgent,
        bytesFromAgent: conn.bytesFromAgent,
        reason,
      },
      'connection closed',
    );
    if (this.established === 0 && this.pending.size === 0) this.notifyIdle();
  }

  observeFrontendStall(seconds: number): void {
    this.metrics.frontendWriteDuration.observe(seconds);
  }

  /** An agent stream ended: fail its pending dials and end its connections at once. */
  backendGone(backend: Backend, reason: string): void {
    backend.markClosed();
    for (const dial of [...this.pending.values()]) {
      if (dial.backend !== backend) continue;
      this.takePending(dial.random);
      this.failDial(
        dial,
        new TunnelError(ErrorCode.TUNNEL_CLOSED, `agent disconnected: ${reason}`),
        'backend_close',
      );
    }
    for (const conn of [...backend.connections.values()]) conn.onAgentClose(`agent disconnected: ${reason}`);
    if (this.established === 0 && this.pending.size === 0) this.notifyIdle();
  }

  /** Resolves when no connection or dial is open (graceful shutdown). */
  whenIdle(): Promise<void> {
    if (this.established === 0 && this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
