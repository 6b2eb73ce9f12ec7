// What a connection waiting for a TLS handshake slot sent before its turn (its ClientHello),
// kept for the TLS socket to start from, at a bounded cost. Node makes a new Buffer for every
// read, so keeping the chunks would let a client that sends one byte per TCP segment cost about
// 170 bytes of memory per byte sent: the bytes are copied into one buffer instead, and a client
// that needs more than a few reads, or whose first byte is not a TLS handshake record, is refused.

/**
 * The most a waiting connection may send: a ClientHello fits one TLS record (16 KiB and its
 * 5-byte header) for every client we serve (ours, grpc-go). TLS allows more (a ClientHello over
 * several records, TLS 1.3 early data): this is a policy for clients that must wait, not TLS.
 */
export const MAX_HELLO_BYTES = 16 * 1024 + 5;
/** Reads before the turn: a ClientHello takes one or two TCP segments; a trickle takes many. */
export const MAX_HELLO_READS = 64;
/** TLS record type of a handshake: the first byte every TLS client sends. */
const HANDSHAKE_RECORD = 0x16;

export type HelloRefusal = 'not TLS' | 'too large' | 'too many reads';

export class ClientHelloBuffer {
  private first: Buffer | undefined;
  private joined: Buffer | undefined;
  private length = 0;
  private reads = 0;

  /** Keeps `chunk`; says why the connection must be refused instead, if it must. */
  push(chunk: Buffer): HelloRefusal | undefined {
    if (chunk.length === 0) return undefined;
    if (this.length === 0 && chunk[0] !== HANDSHAKE_RECORD) return 'not TLS';
    if (++this.reads > MAX_HELLO_READS) return 'too many reads';
    if (this.length + chunk.length > MAX_HELLO_BYTES) return 'too large';
    if (this.length === 0) {
      // The usual ClientHello is one chunk, kept as it came; a second one starts the copy.
      this.first = chunk;
    } else {
      if (this.joined === undefined) {
        this.joined = Buffer.allocUnsafeSlow(MAX_HELLO_BYTES);
        this.first?.copy(this.joined, 0);
        this.first = undefined;
      }
      chunk.copy(this.joined, this.length);
    }
    this.length += chunk.length;
    return undefined;
  }

  /** The bytes kept, in order (empty if none), and forgets them. */
  take(): Buffer {
    const bytes = this.joined?.subarray(0, this.length) ?? this.first ?? Buffer.alloc(0);
    this.first = this.joined = undefined;
    this.length = 0;
    return bytes;
  }

  /** Bytes of memory held for the kept bytes (what the bound is about). */
  get retainedBytes(): number {
    return (this.joined?.length ?? 0) + (this.first?.buffer.byteLength ?? 0);
  }
}
