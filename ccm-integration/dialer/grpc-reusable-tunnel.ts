// A reusable gRPC tunnel: many dials over ONE /ProxyService/Proxy stream on one HTTP/2
// connection, as upstream's konnectivity-client grpcTunnel was before kube-apiserver made it
// single-use. A pending dial is known by its DIAL_REQ random, a connection by its connectID;
// each connection is a GrpcTunnelSocket (grpc-tunnel.ts) that ends with CLOSE_REQ/CLOSE_RSP.
// The stream opens at the first dial, and again at the first dial after it broke (never in
// between: nothing retries on its own). It needs a server that serves many dials per stream,
// as ours does; an upstream v0.33 server ends the stream at its first CLOSE_REQ. No extension
// is asked for: end() closes the connection (CLOSE_REQ), as upstream.
import type { Duplex } from 'node:stream';
import { random63 } from '../../proto/random.js';
import { PacketType, packetBytes, packets, type Packet } from '../../proto/packet.js';
import type { GrpcClientCall } from '../../proto/grpc-client-call.js';
import { dialResponseError, ErrorCode, TunnelError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { StreamGate } from '../../common/stream-gate.js';
import type { DialOptions, FrontendAddress } from './frontend-address.js';
import { watchDial, type DialWatch } from './dial-watch.js';
import {
  CLOSE_WAIT_MS,
  GrpcTunnelSocket,
  proxyCall,
  streamEndError,
  type TunnelSocketLink,
} from './grpc-tunnel.js';

export interface ReusableTunnelOptions {
  log?: Logger;
  /**
   * Ping the server this often (default 30 s; 0: never). The stream lives long: without
   * pings, a server that vanished without a word would be noticed only as dials time out.
   */
  keepaliveTimeMs?: number;
  /** A ping not answered within this breaks the stream (default 10 s). */
  keepaliveTimeoutMs?: number;
}

const DEFAULT_KEEPALIVE_MS = 30_000;
const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;

export class ReusableGrpcTunnel {
  /** The stream new dials go to; undefined until the first dial and after it broke. */
  private current: MultiplexedStream | undefined;
  /** Every stream still carrying something: the current one and retired ones (GOAWAY). */
  private readonly streams = new Set<MultiplexedStream>();
  private opened = 0;
  private closed = false;

  constructor(
    private readonly frontend: FrontendAddress,
    private readonly options: ReusableTunnelOptions = {},
  ) {}

  /** Opens a TCP connection to `address` (host:port) through the proxy, on the shared stream. */
  dial(address: string, options: DialOptions = {}): Promise<Duplex> {
    if (this.closed) return Promise.reject(new TunnelError(ErrorCode.TUNNEL_CLOSED, 'the tunnel is closed'));
    let stream: MultiplexedStream;
    try {
      stream = this.current ?? this.open();
    } catch (err) {
      // Bad TLS material or a header value http2 refuses: a rejected dial, not a throw.
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return stream.dial(address, options);
  }

  /** How many Proxy streams this tunnel has opened: 1 while nothing broke. */
  get streamsOpened(): number {
    return this.opened;
  }

  /** Fails pending dials and destroys open connections (TUNNEL_CLOSED); later dials fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.current = undefined;
    for (const s of [...this.streams])
      s.close(new TunnelError(ErrorCode.TUNNEL_CLOSED, 'the tunnel was closed'));
  }

  private open(): MultiplexedStream {
    const seq = ++this.opened;
    const stream = new MultiplexedStream(
      proxyCall(this.frontend, {
        halfClose: false,
        keepaliveTimeMs: this.options.keepaliveTimeMs ?? DEFAULT_KEEPALIVE_MS,
        keepaliveTimeoutMs: this.options.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS,
      }),
      this.options.log?.child({ tunnelStream: seq }),
      {
        retired: (s) => {
          if (this.current === s) this.current = undefined;
        },
        finished: (s) => {
          if (this.current === s) this.current = undefined;
          this.streams.delete(s);
        },
      },
    );
    this.current = stream;
    this.streams.add(stream);
    return stream;
  }
}

interface StreamOwner {
  /** Takes no new dials (GOAWAY, or broken): the next dial opens a new stream. */
  retired(s: MultiplexedStream): void;
  /** Gone: nothing of it is left. */
  finished(s: MultiplexedStream): void;
}

interface PendingDial {
  address: string;
  watch: DialWatch;
  /** The DIAL_REQ went out (one aborted before it began is never announced). */
  requested: boolean;
  resolve(socket: Duplex): void;
  reject(err: Error): void;
}

/** One Proxy stream and everything on it. It is each of its sockets' link. */
class MultiplexedStream implements TunnelSocketLink {
  /** Every packet to the server goes through the gate, so that all leave in order. */
  private readonly gate: StreamGate;
  private readonly pending = new Map<bigint, PendingDial>();
  /** Open connections, and destroyed ones whose CLOSE_REQ awaits its CLOSE_RSP. */
  private readonly connections = new Map<bigint, GrpcTunnelSocket>();
  private state: 'open' | 'retired' | 'ended' = 'open';

  constructor(
    private readonly call: GrpcClientCall,
    private readonly log: Logger | undefined,
    private readonly owner: StreamOwner,
  ) {
    this.gate = new StreamGate(call.stream);
    call.onPacket = (p) => {
      this.onPacket(p);
    };
    call.onEnd = (err) => {
      this.broken(err);
    };
    // The server is going away: connections on this stream go on, new dials take a new one.
    call.session.once('goaway', () => {
      this.retire('the proxy sent GOAWAY');
    });
    log?.debug('proxy stream opened');
  }

  dial(address: string, options: DialOptions): Promise<Duplex> {
    let random = random63();
    while (this.pending.has(random)) random = random63();
    return new Promise<Duplex>((resolve, reject) => {
      const giveUp = (err: TunnelError) => {
        if (this.pending.get(random) !== dial) return;
        this.pending.delete(random);
        dial.watch.stop();
        // The agent drops the dial; if its answer crossed this, onPacket closes the connection.
        if (dial.requested) this.send(packets.closeDial(random));
        reject(err);
        this.endIfRetiredAndIdle();
      };
      const dial: PendingDial = {
        address,
        watch: watchDial(address, options, giveUp),
        requested: false,
        resolve,
        reject,
      };
      this.pending.set(random, dial);
      if (dial.watch.abortedAlready()) return;
      dial.requested = true;
      this.send(packets.dialRequest(address, random));
    });
  }

  /** Ends the stream with everything on it: pending dials fail, connections are destroyed. */
  close(err: TunnelError): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.owner.finished(this);
    // Each socket's CLOSE_REQ leaves before END_STREAM (which would close them all anyway).
    this.failAll(err, true);
    this.endCall();
  }

  // ---- TunnelSocketLink ----

  send(p: Packet): boolean {
    return this.gate.send(packetBytes(p), (written) => this.call.write(p, written));
  }

  whenWritable(fn: () => void): void {
    this.gate.whenWritable(fn);
  }

  pauseReads(): void {
    this.gate.pauseReads();
  }

  resumeReads(): void {
    this.gate.resumeReads();
  }

  release(socket: GrpcTunnelSocket, awaitingCloseResponse: boolean): void {
    if (this.connections.get(socket.connectID) !== socket) return;
    if (awaitingCloseResponse && this.state !== 'ended') {
      // Kept until its CLOSE_RSP, so that DATA still on its way is dropped, not misrouted.
      setTimeout(() => {
        this.forget(socket);
      }, CLOSE_WAIT_MS).unref();
      return;
    }
    this.forget(socket);
  }

  // ---- from the server ----

  private onPacket(p: Packet): void {
    switch (p.type) {
      case PacketType.DIAL_RSP:
        this.onDialResponse(p.random, p.connectID, p.error);
        return;
      case PacketType.DATA:
        this.connections.get(p.connectID)?.receive(p);
        return;
      case PacketType.CLOSE_RSP: {
        const socket = this.connections.get(p.connectID);
        if (!socket) return;
        this.forget(socket);
        socket.receive(p);
        return;
      }
      case PacketType.DIAL_CLS: {
        const dial = this.takePending(p.random);
        dial?.reject(new TunnelError(ErrorCode.DIAL_FAILED, `the proxy closed the dial to ${dial.address}`));
        this.endIfRetiredAndIdle();
        return;
      }
      default:
        this.log?.debug({ packetType: p.type }, 'unexpected packet from the proxy; ignored');
    }
  }

  private onDialResponse(random: bigint, connectID: bigint, error: string): void {
    const dial = this.takePending(random);
    if (!dial) {
      // A dial given up (timeout, abort) whose answer crossed our DIAL_CLS: the agent has a
      // connection nobody wants. Close it rather than leave it open on both sides.
      if (!error && connectID !== 0n) this.send(packets.closeRequest(connectID));
      return;
    }
    if (error) {
      dial.reject(dialResponseError(error));
      this.endIfRetiredAndIdle();
      return;
    }
    if (connectID === 0n || this.connections.has(connectID)) {
      dial.reject(
        new TunnelError(ErrorCode.PROTOCOL, `proxy answered with a connectID already in use: ${connectID}`),
      );
      this.endIfRetiredAndIdle();
      return;
    }
    const socket = new GrpcTunnelSocket(this, connectID, false);
    this.connections.set(connectID, socket);
    dial.resolve(socket);
  }

  private takePending(random: bigint): PendingDial | undefined {
    const dial = this.pending.get(random);
    if (!dial) return undefined;
    this.pending.delete(random);
    dial.watch.stop();
    return dial;
  }

  private forget(socket: GrpcTunnelSocket): void {
    if (this.connections.get(socket.connectID) !== socket) return;
    this.connections.delete(socket.connectID);
    this.endIfRetiredAndIdle();
  }

  // ---- lifecycle ----

  private retire(why: string): void {
    if (this.state !== 'open') return;
    this.state = 'retired';
    this.log?.debug({ why }, 'proxy stream takes no new dials');
    this.owner.retired(this);
    this.endIfRetiredAndIdle();
  }

  /** A retired stream ends once its last dial and connection are done. */
  private endIfRetiredAndIdle(): void {
    if (this.state !== 'retired' || this.pending.size > 0 || this.connections.size > 0) return;
    this.state = 'ended';
    this.owner.finished(this);
    this.endCall();
  }

  /** END_STREAM once everything queued has left; the server then finishes the call. */
  private endCall(): void {
    this.gate.whenFlushed(() => {
      this.call.end();
      const t = setTimeout(() => this.call.cancel(), CLOSE_WAIT_MS);
      t.unref();
      this.call.stream.once('close', () => clearTimeout(t));
    });
  }

  /** The stream failed or the server ended it: nothing on it can go on. */
  private broken(err: Error | null): void {
    this.gate.close();
    if (this.state === 'ended') return; // we ended it: nothing was left on it
    this.state = 'ended';
    this.owner.finished(this);
    const error = streamEndError(err, 'while it carried dials');
    this.log?.info({ error: error.message }, 'proxy stream broken');
    this.failAll(error, false);
    this.call.cancel();
  }

  /** `streamUsable`: the sockets may still send their CLOSE_REQ. */
  private failAll(err: TunnelError, streamUsable: boolean): void {
    for (const random of [...this.pending.keys()]) this.takePending(random)?.reject(err);
    const sockets = [...this.connections.values()];
    this.connections.clear();
    for (const socket of sockets) {
      if (streamUsable) socket.destroy(err);
      else socket.linkLost(err);
    }
  }
}
