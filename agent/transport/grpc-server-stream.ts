// The gRPC transport: /AgentService/Connect as one bidirectional call over HTTP/2 (as
// upstream's agent), with the HTTP/2 windows grown by the link's bandwidth-delay product.
import type net from 'node:net';
import { CONNECT_METHOD } from '../../proto/services.js';
import { GrpcClientCall } from '../../proto/grpc-client-call.js';
import { headerValue } from '../../proto/grpc-status.js';
import type { Packet } from '../../proto/packet.js';
import { HTTP2_WINDOW_GROWTH, Http2LinkTuner } from '../../common/http2-link-tuner.js';
import type { CallSettings, ServerRoute, ServerStream, StreamHandlers } from './server-stream.js';
import { alpnFor, serverTlsSocket } from './server-tls.js';

/** OpenSSL's words for TLS alert 120 (the peer supports none of the offered ALPN protocols). */
const NO_H2_ALERT = /alert no application protocol/i;

function noHttp2(where: string, how: string): Error {
  return new Error(
    `${where} did not agree to HTTP/2 in the TLS handshake (${how}): gRPC needs HTTP/2 end to end; ` +
      'through a proxy or balancer that speaks only HTTP/1.1, use --transport=websocket',
  );
}

export class GrpcServerStream implements ServerStream {
  private readonly call: GrpcClientCall;
  private ended = false;
  /** Grows the HTTP/2 windows with the link's bandwidth-delay product; measures its round trip. */
  private readonly link: Http2LinkTuner;

  constructor(
    route: ServerRoute,
    settings: CallSettings,
    metadata: Record<string, string>,
    handlers: StreamHandlers,
    tunnel?: net.Socket,
  ) {
    // Our own TLS socket, direct or through the proxy's tunnel, so the session is resumed.
    const target = route.target.tls
      ? {
          ...route.target,
          connection: () =>
            serverTlsSocket(route.target, alpnFor(route.target.tls?.alpnProtocols ?? [], 'h2'), tunnel),
        }
      : route.target;
    const call = new GrpcClientCall(target, {
      path: CONNECT_METHOD,
      metadata,
      ...settings,
      userAgent: 'konnectivity-ts-agent',
    });
    this.call = call;
    call.onHeaders = (headers) => {
      handlers.onHeaders((name) => headerValue(headers, name));
    };
    call.onPacket = (p) => {
      handlers.onPacket(p);
    };
    const where = `${route.target.host ?? '127.0.0.1'}:${String(route.target.port)}`;
    const end = (err: Error | null) => {
      if (this.ended) return;
      this.ended = true;
      // A TLS peer that knows no h2 (an HTTP/1.1 proxy or balancer terminating TLS in front
      // of the server) refuses the handshake with alert 120: say what that means here.
      handlers.onEnd(
        err && NO_H2_ALERT.test(err.message) ? noHttp2(where, 'refused with no_application_protocol') : err,
      );
    };
    call.onEnd = end;
    // One that agreed to http/1.1, or to nothing, would answer our HTTP/2 preface with an
    // HTTP/1.1 400: say why instead.
    call.session.once('connect', () => {
      const alpn: unknown = call.session.alpnProtocol;
      if (alpn !== false && alpn !== 'http/1.1') return;
      end(noHttp2(where, `ALPN ${alpn === false ? 'none' : alpn}`));
      call.cancel();
    });
    this.link = new Http2LinkTuner(call.session, {
      windowBytes: settings.windowBytes,
      maxWindowBytes: settings.windowBytes * HTTP2_WINDOW_GROWTH,
    });
    this.link.watch(call.stream);
  }

  write(p: Packet, written: (err?: Error | null) => void): void {
    this.call.write(p, written);
  }

  get open(): boolean {
    return this.call.open;
  }

  rttMs(): number | undefined {
    return this.link.rttMs;
  }

  pause(): void {
    this.call.stream.pause();
  }

  resume(): void {
    this.call.stream.resume();
  }

  cancel(): void {
    this.call.cancel();
  }
}
