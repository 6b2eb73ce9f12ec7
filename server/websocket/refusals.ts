// How a gRPC status the agent service ends a stream with reads on the WebSocket transport:
// an HTTP status while the upgrade is still pending, a close code once it is done.
import { GrpcStatus } from '../../proto/grpc-status.js';
import { CloseCode } from '../../proto/websocket.js';

const PERMISSION_DENIED = 7;

/** The HTTP status refusing an upgrade for this gRPC status. */
export function httpStatusForGrpc(code: number): number {
  switch (code) {
    case GrpcStatus.INVALID_ARGUMENT:
      return 400;
    case GrpcStatus.UNAUTHENTICATED:
      return 401;
    case PERMISSION_DENIED:
      return 403;
    case GrpcStatus.UNIMPLEMENTED:
      return 404;
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return 429;
    case GrpcStatus.UNAVAILABLE:
      return 503;
    case GrpcStatus.DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

/** The close code ending an open WebSocket for this gRPC status. */
export function closeCodeForGrpc(code: number): number {
  switch (code) {
    case GrpcStatus.OK:
    case GrpcStatus.CANCELLED:
      return CloseCode.normal;
    case GrpcStatus.UNAVAILABLE:
      return CloseCode.goingAway;
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.UNAUTHENTICATED:
    case PERMISSION_DENIED:
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return CloseCode.policyViolation;
    default:
      return CloseCode.internalError;
  }
}
