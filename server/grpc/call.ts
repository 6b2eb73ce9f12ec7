// One bidirectional gRPC call of konnectivity packets, server side, on a node:http2 stream:
// request metadata in, response headers out, messages both ways, and a status at the end.
// See server/grpc/server.ts for why the server speaks gRPC over node:http2 itself.
import http2 from 'node:http2';
import type { Packet } from '../../proto/packet.js';
import { decodePacket, encodeFramedPacket } from '../../proto/codec.js';
import { GrpcFramingError, MessageDeframer } from '../../proto/grpc-framing.js';
import { encodeGrpcMessage, GrpcStatus, headerValue } from '../../proto/grpc-status.js';
import type { GatedStream } from '../../common/stream-gate.js';
import type { Http2LinkTuner } from '../../common/http2-link-tuner.js';
import type { ReadActivity } from '../keepalive.js';

const { NGHTTP2_NO_ERROR } = http2.constants;

/**
 * The handler sets onPacket, onEnd (the client will send nothing more) and onClose (the
 * stream is gone, whatever the reason: called once, last). It answers with write() (false:
 * wait for 'drain') and finishes with end(status).
 */
export class GrpcServerCall implements GatedStream {
  /** For agent streams (server/backend/agent-stream.ts): this one came over gRPC. */
  readonly transport = 'grpc' as const;
  onPacket: (p: Packet) => void = () => undefined;
  onEnd: () => void = () => undefined;
  /** `failed`: a stream error, or the client broke the protocol (see fail()). */
  onClose: (reason: string, failed: boolean) => void = () => undefined;
  /** The connection's window tuner, on listeners that grow windows (the agent port). */
  link: Http2LinkTuner | undefined;
  /** Bumped on every read, so the connection's keepalive knows it is alive (server/keepalive.ts). */
  activity: ReadActivity | undefined;
  private readonly deframer: MessageDeframer;
  private headersSent = false;
  /** Our side is finished: a status was sent or the stream is gone. */
  private ended = false;
  private closed = false;
  private status: { code: number; message: string } = { code: GrpcStatus.OK, message: '' };
  /** Reset the stream (NO_ERROR) once the status is on its way: see fail(). */
  private resetAfterStatus = false;

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    /** ip:port of the client, or "unix" for a Unix socket. */
    readonly peer: string,
    maxMessageBytes: number,
  ) {
    this.deframer = new MessageDeframer(maxMessageBytes);
    stream.on('data', (chunk: Buffer) => {
      this.onData(chunk);
    });
    stream.on('end', () => {
      if (!this.ended) this.onEnd();
    });
    stream.on('aborted', () => {
      this.gone('stream aborted (reset by the client, or its connection lost)', false);
    });
    stream.on('error', (err: Error) => {
      this.gone(`stream error: ${err.message}`, true);
    });
    stream.on('close', () => {
      this.gone('stream closed', false);
    });
    stream.on('wantTrailers', () => {
      stream.sendTrailers({
        'grpc-status': String(this.status.code),
        ...(this.status.message ? { 'grpc-message': encodeGrpcMessage(this.status.message) } : {}),
      });
      this.statusSent();
    });
  }

  /** A request metadata value (keys are lower case on the wire). */
  header(name: string): string | undefined {
    return headerValue(this.headers, name);
  }

  /** The HTTP/2 connection this call is on, for per-connection state such as rate limits. */
  get session(): http2.Http2Session | undefined {
    return this.stream.session;
  }

  get writableEnded(): boolean {
    return this.ended;
  }

  /** The stream is gone (reset, connection lost, or failed). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Sends the response headers now, with our metadata; otherwise they go with the first message. */
  sendHeaders(metadata: Record<string, string> = {}): void {
    if (this.headersSent || this.ended || this.stream.destroyed) return;
    this.headersSent = true;
    this.stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', ...metadata },
      { waitForTrailers: true },
    );
  }

  /** `written` runs once the message has left for the socket (not on a destroyed stream). */
  write(p: Packet, written?: () => void): boolean {
    if (this.ended || this.stream.destroyed) return true;
    this.sendHeaders();
    return this.stream.write(encodeFramedPacket(p), written);
  }

  /** Finishes the call with a status: in trailers, or trailers-only if nothing was sent yet. */
  end(code: number = GrpcStatus.OK, message = ''): void {
    if (this.ended) return;
    this.ended = true;
    // Destroyed a moment ago (connection lost), its 'close' not yet delivered: nothing to send.
    if (this.closed || this.stream.destroyed) return;
    if (!this.headersSent) {
      this.headersSent = true;
      this.stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': String(code),
          ...(message ? { 'grpc-message': encodeGrpcMessage(message) } : {}),
        },
        { endStream: true },
      );
      this.statusSent();
    } else {
      this.status = { code, message };
      this.stream.end();
    }
  }

  /**
   * Ends the call for something the client did wrong, and asks it to stop sending (RST_STREAM
   * NO_ERROR after a complete response, RFC 9113 §8.1): what it sends from here is dropped.
   */
  fail(code: number, message: string): void {
    if (!this.ended) this.resetAfterStatus = true;
    this.end(code, message);
    this.gone(message, true);
  }

  private statusSent(): void {
    if (!this.resetAfterStatus) return;
    // A tick later, so the RST_STREAM is queued behind the status and not instead of it.
    setImmediate(() => {
      if (!this.stream.closed) this.stream.close(NGHTTP2_NO_ERROR);
    });
  }

  pause(): void {
    if (!this.closed) this.stream.pause();
  }

  resume(): void {
    if (!this.closed) this.stream.resume();
  }

  on(event: 'drain', listener: () => void): this {
    this.stream.on(event, listener);
    return this;
  }

  private onData(chunk: Buffer): void {
    if (this.activity) this.activity.read();
    if (this.ended) return; // a failed call drops what still arrives
    try {
      this.deframer.push(chunk, (message, framed) => {
        if (this.ended) return;
        let packet: Packet;
        try {
          packet = decodePacket(message, framed);
        } catch (err) {
          this.fail(GrpcStatus.INTERNAL, `cannot decode a packet: ${(err as Error).message}`);
          return;
        }
        this.onPacket(packet);
      });
    } catch (err) {
      if (err instanceof GrpcFramingError) {
        this.fail(err.tooLarge ? GrpcStatus.RESOURCE_EXHAUSTED : GrpcStatus.UNIMPLEMENTED, err.message);
      } else {
        // A bug in the handler: this call ends, the process and every other call go on.
        this.fail(GrpcStatus.INTERNAL, `internal error: ${(err as Error).message}`);
      }
    }
  }

  private gone(reason: string, failed: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.ended = true;
    this.onClose(reason, failed);
  }
}
