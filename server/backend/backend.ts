// One agent stream (/AgentService/Connect): what the broker sends to an agent and the
// backpressure state of that stream. Every connection of the agent is multiplexed on it.
import net from 'node:net';
import { packetBytes, type Packet } from '../../proto/packet.js';
import type { AgentStream, AgentTransportName } from './agent-stream.js';
import type { AgentIdentifiers } from '../../proto/agent-identifiers.js';
import type { Logger } from '../../common/log.js';
import { StreamGate } from '../../common/stream-gate.js';
import type { ServerMetrics } from '../metrics.js';
import type { TunnelConnection } from '../tunnel/tunnel-connection.js';

export type { AgentStream } from './agent-stream.js';

export class Backend {
  /** connectID (assigned by the agent) → connection. */
  readonly connections = new Map<bigint, TunnelConnection>();
  closed = false;
  /** Dials sent to this agent and not yet answered (kept by the broker). */
  pendingDials = 0;
  /** The agent sent DRAIN: no new dials. */
  draining = false;
  readonly connectedAt = new Date();
  /** The identifiers the agent declared at connect (agentIdentifiers metadata). */
  readonly declared: AgentIdentifiers;
  private routed: AgentIdentifiers;
  private cidrs: net.BlockList | undefined;
  private readonly gate: StreamGate;

  constructor(
    readonly agentID: string,
    identifiers: AgentIdentifiers,
    /** Where the stream comes from, for the admin listing. */
    readonly peer: string,
    readonly extensions: ReadonlySet<string>,
    /** flow-control windows per connection: what we grant, and what the agent granted us. */
    readonly windows: { local: number; peer: number },
    private readonly stream: AgentStream,
    readonly log: Logger,
    private readonly metrics: ServerMetrics,
  ) {
    this.gate = new StreamGate(stream);
    this.declared = identifiers;
    this.routed = identifiers;
  }

  /**
   * The identifiers dials are routed to this agent by: those declared, less the claims identity
   * binding refused (server/identity/).
   */
  get identifiers(): AgentIdentifiers {
    return this.routed;
  }

  /** Only through BackendManager.reroute(), which keeps its index in step. */
  setIdentifiers(identifiers: AgentIdentifiers): void {
    this.routed = identifiers;
    this.cidrs = undefined;
  }

  /** How the agent reached us: a gRPC stream or a WebSocket. */
  get transport(): AgentTransportName {
    return this.stream.transport;
  }

  /** The agent connection's round trip, when measured (window auto-tuning). */
  rttMs(): number | undefined {
    return this.stream.link?.rttMs;
  }

  /** The HTTP/2 stream window we grant the agent now (it grows on far links). */
  receiveWindowBytes(): number | undefined {
    return this.stream.link?.windowBytes;
  }

  /** The agent's cidr identifiers as one matcher, built on first use. */
  cidrList(): net.BlockList {
    if (!this.cidrs) {
      this.cidrs = new net.BlockList();
      for (const c of this.identifiers.cidrs) this.cidrs.addSubnet(c.address, c.prefix, c.family);
    }
    return this.cidrs;
  }

  supports(extension: string): boolean {
    return this.extensions.has(extension);
  }

  /**
   * Queues a packet to the agent; false when the stream is congested (see whenWritable).
   * `flushed` runs once it has left for the socket (the dial trace's use).
   */
  send(packet: Packet, flushed?: () => void): boolean {
    if (this.closed) return true;
    this.metrics.packet('to_agent', packet.type);
    return this.gate.send(packetBytes(packet), (written) =>
      this.stream.write(
        packet,
        flushed
          ? () => {
              written();
              flushed();
            }
          : written,
      ),
    );
  }

  /** Calls `fn` once the stream has room again (at once if it has). */
  whenWritable(fn: () => void): void {
    this.gate.whenWritable(fn);
  }

  /** Stops reading from the agent while some frontend cannot take more data. Counted. */
  pauseReads(): void {
    this.gate.pauseReads();
  }

  resumeReads(): void {
    this.gate.resumeReads();
  }

  markClosed(): void {
    this.closed = true;
    this.gate.close();
  }
}
