// The konnectivity-client equivalent: one gRPC stream (and one channel) per dial, as
// kube-apiserver does. DIAL_REQ → DIAL_RSP, then the stream becomes a Duplex socket.
import { resolve as resolvePath } from 'node:path';
import { Duplex } from 'node:stream';
import { Client, Metadata, credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { random63 } from '../../proto/random.js';
import { PacketType, packets, type Packet } from '../../proto/packet.js';
import { decodePacket, encodePacket } from '../../proto/codec.js';
import { PROXY_METHOD } from '../../proto/services.js';
import {
  Extension,
  HALF_CLOSE_MARKER,
  MetadataKey,
  metadataValue,
  parseExtensions,
} from '../../proto/metadata.js';
import { dialResponseError, ErrorCode, TunnelError } from '../../common/errors.js';
import type { DialOptions, FrontendAddress } from './frontend-address.js';
import { watchDial } from './dial-watch.js';

type Call = ClientDuplexStream<Packet, Packet>;

/** How long a closing socket waits for the server's CLOSE_RSP before dropping the stream. */
const CLOSE_WAIT_MS = 5000;

function grpcClient(frontend: FrontendAddress): Client {
  // Own subchannel per dial (as kube-apiserver), and a receive window wide enough that a
  // download is not capped at 64 KiB per round trip.
  const options = {
    'grpc.use_local_subchannel_pool': 1,
    'grpc-node.flow_control_window': 4 * 1024 * 1024,
    'grpc.enable_channelz': 0,
    'grpc.enable_retries': 0,
  };
  if (frontend.uds)
    return new Client(`unix:${resolvePath(frontend.uds)}`, credentials.createInsecure(), options);
  const tls = frontend.tls;
  if (!tls || frontend.port === undefined)
    throw new TunnelError(ErrorCode.CONFIG, 'a TCP frontend needs host, port and tls');
  const host = frontend.host ?? '127.0.0.1';
  return new Client(
    `${host.includes(':') ? `[${host}]` : host}:${frontend.port}`,
    credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null),
    tls.servername ? { ...options, 'grpc.ssl_target_name_override': tls.servername } : options,
  );
}

export function dialGrpc(
  frontend: FrontendAddress,
  address: string,
  options: DialOptions = {},
): Promise<Duplex> {
  const client = grpcClient(frontend);
  const md = new Metadata();
  if (options.halfClose ?? true) md.set(MetadataKey.extensions, Extension.halfClose);
  const call: Call = client.makeBidiStreamRequest(PROXY_METHOD, encodePacket, decodePacket, md);
  const random = random63();
  let halfClose = false;
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    const settle = () => {
      settled = true;
      watch.stop();
      call.removeListener('data', onPacket);
    };
    const fail = (err: Error) => {
      if (settled) return;
      settle();
      call.cancel();
      client.close();
      reject(err);
    };
    /** The caller gave up: tell the server (DIAL_CLS) so that the agent drops the dial. */
    const giveUp = (err: TunnelError) => {
      if (settled) return;
      call.write(packets.closeDial(random));
      settle();
      call.end();
      setTimeout(() => {
        call.cancel();
        client.close();
      }, 1000).unref();
      reject(err);
    };
    const watch = watchDial(address, options, giveUp);
    const onPacket = (p: Packet) => {
      if (p.type !== PacketType.DIAL_RSP || p.random !== random) return;
      if (p.error) {
        fail(dialResponseError(p.error));
        return;
      }
      settle();
      resolve(new GrpcTunnelSocket(client, call, p.connectID, halfClose));
    };
    call.on('metadata', (headers: Metadata) => {
      halfClose = parseExtensions(metadataValue(headers, MetadataKey.extensions)).has(Extension.halfClose);
    });
    call.on('data', onPacket);
    call.on('error', (err: Error) => {
      fail(new TunnelError(ErrorCode.TUNNEL_CLOSED, `proxy stream failed: ${err.message}`, { cause: err }));
    });
    call.on('end', () => {
      fail(new TunnelError(ErrorCode.TUNNEL_CLOSED, 'proxy closed the stream before answering the dial'));
    });
    if (!watch.abortedAlready()) call.write(packets.dialRequest(address, random));
  });
}

/** An established tunnel as a Node Duplex: write → DATA, DATA → read, end → EOF or CLOSE_REQ. */
export class GrpcTunnelSocket extends Duplex {
  private closedByServer = false;
  private closing = false;
  private readPaused = false;

  constructor(
    private readonly client: Client,
    private readonly call: Call,
    readonly connectID: bigint,
    readonly halfClose: boolean,
  ) {
    super({ allowHalfOpen: true });
    call.on('data', (p: Packet) => {
      this.onPacket(p);
    });
    call.on('error', (err: Error) => {
      if (!this.closedByServer)
        this.destroy(new TunnelError(ErrorCode.TUNNEL_CLOSED, `proxy stream failed: ${err.message}`));
    });
    call.on('end', () => {
      this.closedByServer = true;
      this.push(null);
      if (this.writableFinished) this.destroy();
    });
  }

  private onPacket(p: Packet): void {
    if (p.type === PacketType.DATA && p.connectID === this.connectID) {
      if (this.halfClose && p.error === HALF_CLOSE_MARKER && p.data.length === 0) {
        this.push(null);
      } else if (p.data.length > 0 && !this.push(p.data) && !this.readPaused) {
        this.readPaused = true;
        this.call.pause();
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
      this.call.resume();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.closedByServer) {
      cb(new TunnelError(ErrorCode.TUNNEL_CLOSED, 'connection closed by the proxy'));
      return;
    }
    if (this.call.write(packets.data(this.connectID, chunk))) cb();
    else this.call.once('drain', () => cb());
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
      this.call.once('status', () => clearTimeout(t));
    }
    this.call.end();
    this.client.close();
    cb(err);
  }
}
