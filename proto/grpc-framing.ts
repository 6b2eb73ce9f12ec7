// gRPC's length-prefixed messages on an HTTP/2 stream, for the peers that speak gRPC over
// node:http2 directly (PROTOCOL-HTTP2.md: 1 byte compressed flag, 4 bytes big-endian length).
import { GRPC_PREFIX_BYTES } from './codec.js';

export class GrpcFramingError extends Error {
  override name = 'GrpcFramingError';
  constructor(
    message: string,
    /** Over the size limit (RESOURCE_EXHAUSTED), rather than compressed (UNIMPLEMENTED). */
    readonly tooLarge: boolean,
  ) {
    super(message);
  }
}

/** Splits a byte stream into gRPC messages; a message split across chunks is joined once. */
export class MessageDeframer {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  /** Bytes the buffered message needs before it can be parsed further. */
  private need = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /**
   * Feeds bytes and hands out every complete message, and the same message with its prefix
   * (`framed`, for forwarding unchanged); throws GrpcFramingError on bad framing.
   */
  push(chunk: Buffer, onMessage: (message: Buffer, framed: Buffer) => void): void {
    if (this.bufferedBytes > 0) {
      this.buffered.push(chunk);
      this.bufferedBytes += chunk.length;
      if (this.bufferedBytes < this.need) return;
      chunk = Buffer.concat(this.buffered, this.bufferedBytes);
      this.buffered = [];
      this.bufferedBytes = 0;
    }
    let pos = 0;
    while (chunk.length - pos >= GRPC_PREFIX_BYTES) {
      if (chunk[pos] !== 0) throw new GrpcFramingError('compressed gRPC messages are not supported', false);
      const len = chunk.readUInt32BE(pos + 1);
      if (len > this.maxMessageBytes)
        throw new GrpcFramingError(
          `gRPC message of ${len} bytes exceeds the limit of ${this.maxMessageBytes}`,
          true,
        );
      const end = pos + GRPC_PREFIX_BYTES + len;
      if (end > chunk.length) {
        this.need = end - pos;
        break;
      }
      onMessage(chunk.subarray(pos + GRPC_PREFIX_BYTES, end), chunk.subarray(pos, end));
      pos = end;
    }
    if (pos < chunk.length) {
      if (chunk.length - pos < GRPC_PREFIX_BYTES) this.need = GRPC_PREFIX_BYTES;
      this.buffered.push(chunk.subarray(pos));
      this.bufferedBytes = chunk.length - pos;
    }
  }

  /** Bytes of a message begun but not finished (a stream that ends here was cut short). */
  get partialBytes(): number {
    return this.bufferedBytes;
  }
}
