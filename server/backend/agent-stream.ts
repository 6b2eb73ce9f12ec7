// One agent's packet stream as the agent service and its backend see it, whichever way the
// agent came in: a gRPC call (/AgentService/Connect, server/grpc/call.ts) or a WebSocket
// (server/websocket/websocket-agent-stream.ts). Authentication, metadata, the send gate,
// flow control and the broker are written once against this.
import type { Packet } from '../../proto/packet.js';
import type { GatedStream } from '../../common/stream-gate.js';

export type AgentTransportName = 'grpc' | 'websocket';

/** What the link measured: its round trip and, on HTTP/2, the receive window now in effect. */
export interface AgentLinkStats {
  readonly rttMs: number | undefined;
  readonly windowBytes?: number | undefined;
}

export interface AgentStream extends GatedStream {
  readonly transport: AgentTransportName;
  /** ip:port of the agent (or of the balancer in front of it). */
  readonly peer: string;
  readonly link: AgentLinkStats | undefined;
  /** The stream is gone (reset, connection lost, or failed). */
  readonly isClosed: boolean;
  /** Our side is finished. */
  readonly writableEnded: boolean;
  onPacket: (p: Packet) => void;
  /** The agent will send nothing more. */
  onEnd: () => void;
  /** The stream is gone, whatever the reason: called once, last. */
  onClose: (reason: string, failed: boolean) => void;
  /** A request metadata value: gRPC metadata, or a header of the upgrade request. */
  header(name: string): string | undefined;
  /** Accepts the agent: response headers (gRPC) or the 101 response (WebSocket) with these. */
  sendHeaders(metadata?: Record<string, string>): void;
  /** `written` runs once the packet has left for the socket. */
  write(p: Packet, written?: () => void): boolean;
  /** Finishes the stream; `code` is a gRPC status (OK by default). */
  end(code?: number, message?: string): void;
  /** Ends the stream for something the agent did wrong; `code` is a gRPC status. */
  fail(code: number, message: string): void;
}
