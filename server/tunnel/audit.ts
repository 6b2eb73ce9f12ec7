// The audit trail: one info-level line per dial, whatever became of it, always with the same
// fields, so an operator can grep "audit":"dial" and get every dial the server saw.
import type { Logger } from '../../common/log.js';

export interface DialAudit {
  frontend: 'grpc' | 'http-connect';
  /** The dial's target, as the client asked for it. */
  address: string;
  agentID?: string | undefined;
  connectID?: string;
  /** 'ok', 'refused' (never reached an agent), or the error code. */
  result: string;
  error?: string;
  /** From the dial's start; for a connection, to its close. */
  durationMs?: number;
  bytesToAgent?: number;
  bytesFromAgent?: number;
  /** Why a connection closed. */
  reason?: string;
}

export function auditDial(log: Logger, entry: DialAudit, msg: string): void {
  log.info({ audit: 'dial', ...entry }, msg);
}
