// HTTP/2 receive windows of the server's gRPC sessions, sized for throughput. A stream's
// window caps it at window / round-trip time, and every connection of an agent shares one
// stream. grpc-js has no option for its server's windows (they stay at Node's 64 KiB), so we
// reach the session through the call: grpc-js (1.14) keeps the HTTP/2 stream at
// `call.call.stream` when no interceptor is installed. test/integration/http2-windows.test.ts
// checks the windows in effect, so a grpc-js upgrade that moves it fails a test.
import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';

const tuned = new WeakSet<ServerHttp2Session>();

export function sessionOf(call: object): ServerHttp2Session | undefined {
  const inner = (call as { call?: { stream?: ServerHttp2Stream } }).call;
  return inner?.stream?.session as ServerHttp2Session | undefined;
}

/**
 * Widens the receive windows of the session carrying `call`: the connection window, and the
 * initial stream window (SETTINGS_INITIAL_WINDOW_SIZE applies to open streams too, RFC 7540
 * §6.9.2). Once per session. False when the session cannot be reached.
 */
export function widenReceiveWindows(call: object, streamWindow: number): boolean {
  const session = sessionOf(call);
  if (!session) return false;
  if (tuned.has(session) || session.destroyed) return true;
  tuned.add(session);
  const connectionWindow = Math.min(2 ** 31 - 1, streamWindow * 2);
  session.setLocalWindowSize(connectionWindow);
  session.settings({ initialWindowSize: Math.min(2 ** 31 - 1, streamWindow) });
  return true;
}
