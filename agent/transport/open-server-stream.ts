// Opens the agent's packet stream to one proxy-server: through the HTTP proxy's CONNECT
// tunnel when one applies, then the chosen transport over TLS.
import { connectThroughProxy } from './proxy-connect.js';
import { GrpcServerStream } from './grpc-server-stream.js';
import { WebSocketServerStream } from './websocket-server-stream.js';
import type { CallSettings, ServerRoute, ServerStream, StreamHandlers } from './server-stream.js';

export async function openServerStream(
  route: ServerRoute,
  settings: CallSettings,
  metadata: Record<string, string>,
  handlers: StreamHandlers,
  timeoutMs: number,
): Promise<ServerStream> {
  const { target, proxy } = route;
  if (proxy && (target.uds || target.port === undefined)) {
    throw new Error('an HTTP proxy reaches a proxy-server at host:port only');
  }
  const tunnel = proxy
    ? await connectThroughProxy(proxy, target.host ?? '127.0.0.1', target.port ?? 0, {
        ca: route.proxyCa,
        timeoutMs,
      })
    : undefined;
  return route.transport === 'websocket'
    ? new WebSocketServerStream(route, settings, metadata, handlers, tunnel)
    : new GrpcServerStream(route, settings, metadata, handlers, tunnel);
}
