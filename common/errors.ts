// One error class with stable codes: callers and tests match on `code`, never on text.
export const ErrorCode = {
  NO_AGENT: 'KNP_NO_AGENT',
  DIAL_TIMEOUT: 'KNP_DIAL_TIMEOUT',
  DIAL_FAILED: 'KNP_DIAL_FAILED',
  DIAL_CANCELLED: 'KNP_DIAL_CANCELLED',
  BAD_TARGET: 'KNP_BAD_TARGET',
  PROTOCOL: 'KNP_PROTOCOL',
  TUNNEL_CLOSED: 'KNP_TUNNEL_CLOSED',
  FRONTEND: 'KNP_FRONTEND',
  CONFIG: 'KNP_CONFIG',
  DESTINATION_DENIED: 'KNP_DESTINATION_DENIED',
  LIMIT: 'KNP_LIMIT',
} as const;

/**
 * Our agent words a dial refused by its destination policy with this text in DIAL_RSP, so our
 * server can answer 403 instead of 502 (the protocol has no error codes).
 */
export const DESTINATION_DENIED = 'destination denied by agent policy';

/** The error a DIAL_RSP error text stands for: a destination-policy refusal, or a failed dial. */
export function dialResponseError(text: string): TunnelError {
  return new TunnelError(
    text.includes(DESTINATION_DENIED) ? ErrorCode.DESTINATION_DENIED : ErrorCode.DIAL_FAILED,
    text,
  );
}

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export class TunnelError extends Error {
  override readonly name = 'TunnelError';
  constructor(
    readonly code: ErrorCodeValue,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The HTTP status the CONNECT frontend answers for a failed dial. */
export function httpStatusFor(code: ErrorCodeValue): number {
  switch (code) {
    case ErrorCode.NO_AGENT:
      return 503;
    case ErrorCode.BAD_TARGET:
      return 400;
    case ErrorCode.DIAL_TIMEOUT:
      return 504;
    case ErrorCode.DESTINATION_DENIED:
      return 403;
    case ErrorCode.LIMIT:
      return 429;
    default:
      return 502;
  }
}
