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
} as const;

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
    default:
      return 502;
  }
}
