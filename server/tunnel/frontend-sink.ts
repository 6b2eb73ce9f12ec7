// What the broker needs from a frontend connection (a gRPC Proxy stream or an HTTP CONNECT
// socket): the outcome of its dial and the agent's side of the conversation.
import type { TunnelError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { TunnelConnection } from './tunnel-connection.js';

export interface FrontendSink {
  readonly kind: 'grpc' | 'http-connect';
  readonly log: Logger;
  dialSucceeded(conn: TunnelConnection): void;
  dialFailed(err: TunnelError): void;
  /**
   * Bytes from the target; false when the client is not keeping up (call conn.frontendDrained()).
   * `wire`: the agent's framed DATA packet carrying them, which a gRPC client can take as it is.
   * `written`: runs once they have left for the client (flow-control credit).
   */
  deliver(data: Buffer, wire: Buffer | undefined, written?: () => void): boolean;
  /** The target finished sending (half-close, negotiated with the agent). */
  endFromAgent(): void;
  /** The connection is over on the agent side (CLOSE_RSP, agent gone); `error` may be empty. */
  closedByAgent(error: string): void;
}
