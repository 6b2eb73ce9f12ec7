// The konnectivity-client equivalent: one HTTP/2 connection and one gRPC stream per dial, as
// kube-apiserver does. DIAL_REQ → DIAL_RSP, then the stream becomes a Duplex socket.
// gRPC is spoken over node:http2 directly: a grpc-js channel (resolver, load balancer,
// subchannel) cost about 0.5 ms of every dial and copies each message twice more, and a
// single bidirectional stream needs none of it.
import http2 from 'node:http2';
import net from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { Duplex } from 'node:stream';
import { random63 } from '../../proto/random.js';
import { PacketType, packets, type Packet } from '../../proto/packet.js';
import { decodePacket, encodeFramedPacket } from '../../proto/codec.js';
import { PROXY_METHOD } from '../../proto/services.js';
import { decodeGrpcMessage, MessageDeframer } from '../../proto/grpc-framing.js';
import { Extension, HALF_CLOSE_MARKER, MetadataKey, parseExtensions } from '../../proto/metadata.js';
import { dialResponseError, ErrorCode, TunnelError } from '../../common/errors.js';
import type { DialOptions, FrontendAddress } from './frontend-address.js';
import { watchDial } from './dial-watch.js';

/** How long a closing socket waits for the server's CLOSE_RSP before dropping the stream. */
const CLOSE_WAIT_MS = 5000;
/** Receive window of the stream and the connection: a download is not capped at 64 KiB per round trip. */
const WINDOW_BYTES = 4 * 1024 * 1024;
/** As grpc-js's default receive limit; the server sends DATA far smaller than this. */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const USER_AGENT = 'konnectivity-ts-dialer';

const STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** A gRPC status other than OK, worded as grpc-js words it ("8 RESOURCE_EXHAUSTED: …"). */
export class GrpcStatusError extends Error {
  override name = 'GrpcStatusError';
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${STATUS_NAMES[code] ?? 'UNKNOWN'}: ${details}`);
  }
}

function header(headers: http2.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function statusOf(headers: http2.IncomingHttpHeaders): GrpcStatusError | null {
  const code = Number(header(headers, 'grpc-status'));
  return code === 0 ? null : new GrpcStatusError(code, decodeGrpcMessage(header(headers, 'grpc-message')));
}

function connect(frontend: FrontendAddress): http2.ClientHttp2Session {
  const settings = { initialWindowSize: WINDOW_BYTES, enablePush: false };
  if (frontend.uds) {
    const path = resolvePath(frontend.uds);
    return http2.connect('http://localhost', { settings, createConnection: () => net.connect(path) });
  }
  const tls = frontend.tls;
  if (!tls || frontend.port === undefined)
    throw new TunnelError(ErrorCode.CONFIG, 'a TCP frontend needs host, port and tls');
  const host = frontend.host ?? '127.0.0.1';
  return http2.connect(`https://${host.includes(':') ? `[${host}]` : host}:${frontend.port}`, {
    settings,
    ca: tls.ca,
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    ...(tls.servername ? { servername: tls.servername } : {}),
  });
}

/**
 * One gRPC call to /ProxyService/Proxy on its own HTTP/2 connection: packets in and out,
 * the server's response headers, and one `status` event (null: OK) when the call is over.
 */
class ProxyCall {
  readonly session: http2.ClientHttp2Session;
  readonly stream: http2.ClientHttp2Stream;
  private readonly deframer = new MessageDeframer(MAX_MESSAGE_BYTES);
  private ended = false;
  /** The status from trailers (or a trailers-only answer), acted on at 'end', after all data was read. */
  private statusError: Error | null | undefined;
  onPacket: (p: Packet) => void = () => undefined;
  onHeaders: (headers: http2.IncomingHttpHeaders) => void = () => undefined;
  /** Once: null when the server finished with OK, else why the call failed. */
  onEnd: (err: Error | null) => void = () => undefined;

  constructor(frontend: FrontendAddress, halfClose: boolean) {
    this.session = connect(frontend);
    this.session.on('error', (err: Error) => this.finish(err));
    this.session.once('connect', () => this.session.setLocalWindowSize(WINDOW_BYTES));
    this.stream = this.session.request({
      ':method': 'POST',
      ':path': PROXY_METHOD,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': USER_AGENT,
      ...(halfClose ? { [MetadataKey.extensions]: Extension.halfClose } : {}),
    });
    this.stream.on('response', (headers) => {
      const status = headers[':status'];
      if (status !== 200) this.finish(new Error(`proxy answered HTTP ${status} to the gRPC call`));
      else if (header(headers, 'grpc-status') !== undefined) this.statusError = statusOf(headers);
      else this.onHeaders(headers);
    });
    this.stream.on(
      'trailers',
      (trailers: http2.IncomingHttpHeaders) => (this.statusError = statusOf(trailers)),
    );
    this.stream.on('data', (chunk: Buffer) => {
      try {
        this.deframer.push(chunk, (m) => this.onPacket(decodePacket(m)));
      } catch (err) {
        this.finish(err as Error);
        this.cancel();
      }
    });
    this.stream.on('end', () =>
      this.finish(
        this.statusError === undefined
          ? new Error('proxy ended the stream without a gRPC status')
          : this.statusError,
      ),
    );
    this.stream.on('close', () => {
      this.finish(new Error(`proxy stream closed (HTTP/2 code ${this.stream.rstCode})`));
      this.session.close();
    });
    this.stream.on('error', (err: Error) => this.finish(err));
  }

  private finish(err: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(err);
  }

  write(p: Packet): boolean {
    return this.stream.write(encodeFramedPacket(p));
  }

  /** Our side is done; the connection goes when the server has finished too. */
  end(): void {
    if (!this.stream.writableEnded) this.stream.end();
    this.session.close();
  }

  cancel(): void {
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
    this.session.destroy();
  }
}

export function dialGrpc(
  frontend: FrontendAddress,
  address: string,
  options: DialOptions = {},
): Promise<Duplex> {
  const call = new ProxyCall(frontend, options.halfClose ?? true);
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
      halfClose = parseExtensions(header(headers, MetadataKey.extensions)).has(Extension.halfClose);
    };
    call.onPacket = (p) => {
      if (p.type !== PacketType.DIAL_RSP || p.random !== random) return;
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
    private readonly call: ProxyCall,
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
    if (this.call.write(packets.data(this.connectID, chunk))) cb();
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
