// The konnectivity-client equivalent: one HTTP/2 connection and one gRPC stream per dial, as
// kube-apiserver does. DIAL_REQ → DIAL_RSP, then the stream becomes a Duplex socket.
// gRPC is spoken over node:http2 directly: a grpc-js channel (resolver, load balancer,
// subchannel) cost about 0.5 ms of every dial and copies each message twice more, and a
// single bidirectional stream needs none of it.
// The socket (GrpcTunnelSocket) is shared with the reusable tunnel (grpc-reusable-tunnel.ts):
// it reaches its stream only through a TunnelSocketLink.
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

/** Over TCP: wide enough that a download is not capped at 64 KiB per round trip. */
const TCP_WINDOW_BYTES = 4 * 1024 * 1024;
/**
 * Over a Unix socket: less than the socket's buffer (208 KiB by default on Linux). Node's http2
 * stops reading a socket while a write to it is pending; with a wider window, a server sending
 * us a window's worth while we send it as much (an echo, an exec stream, many connections on
 * one stream) left both sides writing into full buffers and neither reading: a deadlock, with
 * 4 MiB echoed through one single-use dial. Within this window the server's writes always fit,
 * so it keeps reading. Loopback needs no more: downloads measured the same as with 4 MiB.
 */
const UDS_WINDOW_BYTES = 64 * 1024;

/**
 * Bytes of one DATA packet at most: one write() of more is sent in pieces. The server refuses
 * a gRPC message over its limit (4 MiB by default) by failing the whole stream.
 */
const MAX_DATA_BYTES = 1024 * 1024;

/** How long a closing socket waits for the server's CLOSE_RSP before giving up on it. */
export const CLOSE_WAIT_MS = 5000;

export interface ProxyCallOptions {
  /** Ask for the half-close extension. */
  halfClose: boolean;
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
}

/** A /ProxyService/Proxy call on an HTTP/2 connection of its own. Throws on a bad address. */
export function proxyCall(frontend: FrontendAddress, options: ProxyCallOptions): GrpcClientCall {
  if (!frontend.uds && (!frontend.tls || frontend.port === undefined))
    throw new TunnelError(ErrorCode.CONFIG, 'a TCP frontend needs host, port and tls');
  return new GrpcClientCall(frontend, {
    path: PROXY_METHOD,
    metadata: options.halfClose ? { [MetadataKey.extensions]: Extension.halfClose } : {},
    windowBytes: frontend.uds ? UDS_WINDOW_BYTES : TCP_WINDOW_BYTES,
    // As grpc-js's default receive limit; the server sends DATA far smaller than this.
    maxMessageBytes: 4 * 1024 * 1024,
    userAgent: 'konnectivity-ts-dialer',
    ...(options.keepaliveTimeMs ? { keepaliveTimeMs: options.keepaliveTimeMs } : {}),
    ...(options.keepaliveTimeoutMs ? { keepaliveTimeoutMs: options.keepaliveTimeoutMs } : {}),
  });
}

/** The error of a proxy stream that ended while a dial or a connection still needed it. */
export function streamEndError(err: Error | null, what: string): TunnelError {
  return err
    ? new TunnelError(ErrorCode.TUNNEL_CLOSED, `proxy stream failed: ${err.message}`, { cause: err })
    : new TunnelError(ErrorCode.TUNNEL_CLOSED, `proxy closed the stream ${what}`);
}

export function dialGrpc(
  frontend: FrontendAddress,
  address: string,
  options: DialOptions = {},
): Promise<Duplex> {
  let call: GrpcClientCall;
  try {
    call = proxyCall(frontend, { halfClose: options.halfClose ?? true });
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
      const socket = new GrpcTunnelSocket(new SingleCallLink(call), p.connectID, halfClose);
      call.onPacket = (q) => {
        socket.receive(q);
      };
      call.onEnd = (err) => {
        socket.streamEnded(err);
      };
      resolve(socket);
    };
    call.onEnd = (err) => {
      fail(streamEndError(err, 'before answering the dial'));
    };
    if (!watch.abortedAlready()) call.write(packets.dialRequest(address, random));
  });
}

/** What a tunnel socket needs of the stream that carries it. */
export interface TunnelSocketLink {
  /** Queues a packet for the server, in order; false when the send buffer is over its high mark. */
  send(p: Packet): boolean;
  /** Calls `fn` once the send buffer has room again. */
  whenWritable(fn: () => void): void;
  /** Stops reading from the stream while this socket's reader is full (counted per socket). */
  pauseReads(): void;
  resumeReads(): void;
  /** The socket is destroyed; `awaitingCloseResponse`: its CLOSE_REQ has no CLOSE_RSP yet. */
  release(socket: GrpcTunnelSocket, awaitingCloseResponse: boolean): void;
}

/** The single-use tunnel's link: the socket is the call's only user and ends it. */
class SingleCallLink implements TunnelSocketLink {
  constructor(private readonly call: GrpcClientCall) {}

  send(p: Packet): boolean {
    this.call.write(p);
    // Not the stream's own 16 KiB mark: 'drain' waits for an empty buffer, so stopping at it
    // would leave the connection idle between refills (common/stream-gate.ts).
    return this.call.stream.writableLength <= SEND_BUFFER_HIGH;
  }

  whenWritable(fn: () => void): void {
    this.call.stream.once('drain', fn);
  }

  pauseReads(): void {
    this.call.stream.pause();
  }

  resumeReads(): void {
    this.call.stream.resume();
  }

  release(_socket: GrpcTunnelSocket, awaitingCloseResponse: boolean): void {
    if (awaitingCloseResponse) {
      // Give the server a moment to answer CLOSE_RSP, then drop the stream either way.
      const t = setTimeout(() => this.call.cancel(), CLOSE_WAIT_MS);
      t.unref();
      this.call.stream.once('close', () => clearTimeout(t));
    }
    this.call.end();
  }
}

/** An established tunnel as a Node Duplex: write → DATA, DATA → read, end → EOF or CLOSE_REQ. */
export class GrpcTunnelSocket extends Duplex {
  private closedByServer = false;
  private closing = false;
  private readPaused = false;

  constructor(
    private readonly link: TunnelSocketLink,
    readonly connectID: bigint,
    readonly halfClose: boolean,
  ) {
    super({ allowHalfOpen: true });
  }

  /** A packet from the server; those of other connections are ignored. */
  receive(p: Packet): void {
    if (p.type === PacketType.DATA && p.connectID === this.connectID) {
      if (this.destroyed) return;
      if (this.halfClose && p.error === HALF_CLOSE_MARKER && p.data.length === 0) {
        this.push(null);
      } else if (p.data.length > 0 && !this.push(p.data) && !this.readPaused) {
        this.readPaused = true;
        this.link.pauseReads();
      }
    } else if (p.type === PacketType.CLOSE_RSP && p.connectID === this.connectID) {
      this.closedByServer = true;
      this.push(null);
      this.destroy(p.error ? new TunnelError(ErrorCode.TUNNEL_CLOSED, p.error) : undefined);
    }
  }

  /** The single-use stream ended: an error destroys the socket, a clean end is an EOF. */
  streamEnded(err: Error | null): void {
    if (err && !this.closedByServer) {
      this.destroy(new TunnelError(ErrorCode.TUNNEL_CLOSED, `proxy stream failed: ${err.message}`));
      return;
    }
    this.closedByServer = true;
    this.push(null);
    if (this.writableFinished) this.destroy();
  }

  /** The stream under this connection is gone: nothing more to send on it. */
  linkLost(err: TunnelError): void {
    this.closedByServer = true;
    this.destroy(err);
  }

  override _read(): void {
    if (this.readPaused) {
      this.readPaused = false;
      this.link.resumeReads();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.closedByServer) {
      cb(new TunnelError(ErrorCode.TUNNEL_CLOSED, 'connection closed by the proxy'));
      return;
    }
    let room = true;
    if (chunk.length <= MAX_DATA_BYTES) room = this.link.send(packets.data(this.connectID, chunk));
    else {
      for (let at = 0; at < chunk.length; at += MAX_DATA_BYTES)
        room = this.link.send(packets.data(this.connectID, chunk.subarray(at, at + MAX_DATA_BYTES)));
    }
    if (room) cb();
    else this.link.whenWritable(() => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.closedByServer) {
      if (this.halfClose) this.link.send(packets.data(this.connectID, packets.empty, HALF_CLOSE_MARKER));
      else this.sendClose();
    }
    cb();
  }

  private sendClose(): void {
    if (this.closing || this.closedByServer) return;
    this.closing = true;
    this.link.send(packets.closeRequest(this.connectID));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const awaiting = !this.closedByServer;
    if (awaiting) this.sendClose();
    // A reader that left with its buffer full must not hold the stream's reads.
    if (this.readPaused) {
      this.readPaused = false;
      this.link.resumeReads();
    }
    this.link.release(this, awaiting);
    cb(err);
  }
}
