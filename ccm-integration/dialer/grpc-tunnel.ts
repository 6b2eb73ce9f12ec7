// The konnectivity-client equivalent: one HTTP/2 connection and one gRPC stream per dial, as
// kube-apiserver does. DIAL_REQ → DIAL_RSP, then the stream becomes a Duplex socket.
// gRPC is spoken over node:http2 directly: a grpc-js channel (resolver, load balancer,
// subchannel) cost about 0.5 ms of every dial and copies each message twice more, and a
// single bidirectional stream needs none of it.
import { Duplex } from 'node:stream';
import { random63 } from '../../proto/random.js';
import { PacketType, packets, type Packet } from '../../proto/packet.js';
import { PROXY_METHOD } from '../../proto/services.js';
import { GrpcClientCall } from '../../proto/grpc-client-call.js';
import { headerValue } from '../../proto/grpc-status.js';
import { Extension, HALF_CLOSE_MARKER, MetadataKey, parseExtensions } from '../../proto/metadata.js';
import { dialResponseError, ErrorCode, TunnelError } from '../../common/errors.js';
import type { DialOptions, FrontendAddress } from './frontend-address.js';
import { watchDial } from './dial-watch.js';
import { SEND_BUFFER_HIGH } from '../../common/stream-gate.js';

export { GrpcStatusError } from '../../proto/grpc-status.js';

/** How long a closing socket waits for the server's CLOSE_RSP before dropping the stream. */
const CLOSE_WAIT_MS = 5000;

function proxyCall(frontend: FrontendAddress, halfClose: boolean): GrpcClientCall {
  if (!frontend.uds && (!frontend.tls || frontend.port === undefined))
    throw new TunnelError(ErrorCode.CONFIG, 'a TCP frontend needs host, port and tls');
  return new GrpcClientCall(frontend, {
    path: PROXY_METHOD,
    metadata: halfClose ? { [MetadataKey.extensions]: Extension.halfClose } : {},
    // Wide enough that a download is not capped at 64 KiB per round trip.
    windowBytes: 4 * 1024 * 1024,
    // As grpc-js's default receive limit; the server sends DATA far smaller than this.
    maxMessageBytes: 4 * 1024 * 1024,
    userAgent: 'konnectivity-ts-dialer',
  });
}

export function dialGrpc(
  frontend: FrontendAddress,
  address: string,
  options: DialOptions = {},
): Promise<Duplex> {
  let call: GrpcClientCall;
  try {
    call = proxyCall(frontend, options.halfClose ?? true);
  } catch (err) {
    // Bad TLS material or a header value http2 refuses: a rejected dial, not a throw.
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  const random = random63();
  let halfClose = false;
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    const settle = () => {
      settled = true;
      watch.stop();
    };
    const fail = (err: Error) => {
      if (settled) return;
      settle();
      call.cancel();
      reject(err);
    };
    /** The caller gave up: tell the server (DIAL_CLS) so that the agent drops the dial. */
    const giveUp = (err: TunnelError) => {
      if (settled) return;
      call.write(packets.closeDial(random));
      settle();
      call.end();
      setTimeout(() => call.cancel(), 1000).unref();
      reject(err);
    };
    const watch = watchDial(address, options, giveUp);
    call.onHeaders = (headers) => {
      halfClose = parseExtensions(headerValue(headers, MetadataKey.extensions)).has(Extension.halfClose);
    };
    call.onPacket = (p) => {
      if (settled || p.type !== PacketType.DIAL_RSP || p.random !== random) return;
      if (p.error) {
        fail(dialResponseError(p.error));
        return;
      }
      settle();
      resolve(new GrpcTunnelSocket(call, p.connectID, halfClose));
    };
    call.onEnd = (err) => {
      fail(
        err
          ? new TunnelError(ErrorCode.TUNNEL_CLOSED, `proxy stream failed: ${err.message}`, { cause: err })
          : new TunnelError(ErrorCode.TUNNEL_CLOSED, 'proxy closed the stream before answering the dial'),
      );
    };
    if (!watch.abortedAlready()) call.write(packets.dialRequest(address, random));
  });
}

/** An established tunnel as a Node Duplex: write → DATA, DATA → read, end → EOF or CLOSE_REQ. */
export class GrpcTunnelSocket extends Duplex {
  private closedByServer = false;
  private closing = false;
  private readPaused = false;

  constructor(
    private readonly call: GrpcClientCall,
    readonly connectID: bigint,
    readonly halfClose: boolean,
  ) {
    super({ allowHalfOpen: true });
    call.onPacket = (p) => this.onPacket(p);
    call.onEnd = (err) => {
      if (err && !this.closedByServer) {
        this.destroy(new TunnelError(ErrorCode.TUNNEL_CLOSED, `proxy stream failed: ${err.message}`));
        return;
      }
      this.closedByServer = true;
      this.push(null);
      if (this.writableFinished) this.destroy();
    };
  }

  private onPacket(p: Packet): void {
    if (p.type === PacketType.DATA && p.connectID === this.connectID) {
      if (this.halfClose && p.error === HALF_CLOSE_MARKER && p.data.length === 0) {
        this.push(null);
      } else if (p.data.length > 0 && !this.push(p.data) && !this.readPaused) {
        this.readPaused = true;
        this.call.stream.pause();
      }
    } else if (p.type === PacketType.CLOSE_RSP && p.connectID === this.connectID) {
      this.closedByServer = true;
      this.push(null);
      this.destroy(p.error ? new TunnelError(ErrorCode.TUNNEL_CLOSED, p.error) : undefined);
    }
  }

  override _read(): void {
    if (this.readPaused) {
      this.readPaused = false;
      this.call.stream.resume();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.closedByServer) {
      cb(new TunnelError(ErrorCode.TUNNEL_CLOSED, 'connection closed by the proxy'));
      return;
    }
    this.call.write(packets.data(this.connectID, chunk));
    // Not the stream's own 16 KiB mark: 'drain' waits for an empty buffer, so stopping at it
    // would leave the connection idle between refills (common/stream-gate.ts).
    if (this.call.stream.writableLength <= SEND_BUFFER_HIGH) cb();
    else this.call.stream.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.closedByServer) {
      if (this.halfClose) this.call.write(packets.data(this.connectID, packets.empty, HALF_CLOSE_MARKER));
      else this.sendClose();
    }
    cb();
  }

  private sendClose(): void {
    if (this.closing || this.closedByServer) return;
    this.closing = true;
    this.call.write(packets.closeRequest(this.connectID));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.closedByServer) {
      this.sendClose();
      // Give the server a moment to answer CLOSE_RSP, then drop the stream either way.
      const t = setTimeout(() => this.call.cancel(), CLOSE_WAIT_MS);
      t.unref();
      this.call.stream.once('close', () => clearTimeout(t));
    }
    this.call.end();
    cb(err);
  }
}
