// The agent's packet stream to one proxy-server, whichever transport carries it: a gRPC call
// (/AgentService/Connect over HTTP/2) or a WebSocket (/konnectivity/v1/agent over HTTP/1.1).
// ServerClient (agent/server-client.ts) dispatches packets and holds the send gate once, over
// this; each transport is one small module beside this one.
import type { Packet } from '../../proto/packet.js';
import type { GatedStream } from '../../common/stream-gate.js';
import type { GrpcCallOptions, GrpcTarget } from '../../proto/grpc-client-call.js';
import type { HttpProxy } from './http-proxy.js';

export const TRANSPORT_NAMES = ['grpc', 'websocket'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

/** How the agent's streams to a proxy-server are made (windowBytes: --server-window-size). */
export type CallSettings = Required<
  Pick<GrpcCallOptions, 'windowBytes' | 'maxMessageBytes' | 'keepaliveTimeMs' | 'keepaliveTimeoutMs'>
>;

/** Where the server is, how it is reached, and through which proxy (if any). */
export interface ServerRoute {
  transport: TransportName;
  target: GrpcTarget;
  proxy?: HttpProxy | undefined;
  /** An https:// proxy's certificate is checked against these; undefined: the system's. */
  proxyCa?: (string | Buffer)[] | undefined;
}

/** Reads one response header (keys lower case) of the server's answer to the stream. */
export type HeaderReader = (name: string) => string | undefined;

export interface StreamHandlers {
  /** The server accepted the stream: its response headers (gRPC), or the 101's (WebSocket). */
  onHeaders(header: HeaderReader): void;
  onPacket(p: Packet): void;
  /** Called once: null when the server ended the stream cleanly, else why it failed. */
  onEnd(err: Error | null): void;
}

export interface ServerStream extends GatedStream {
  /** `written` runs once the packet has left for the socket (with an error if it did not). */
  write(p: Packet, written: (err?: Error | null) => void): void;
  /** The stream is up and its connection neither closing nor failed (keepalive included). */
  readonly open: boolean;
  /** The link's round trip in ms, when measured. */
  rttMs(): number | undefined;
  /** Closes at once. */
  cancel(): void;
}
