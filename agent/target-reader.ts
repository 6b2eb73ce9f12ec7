// Reads target sockets straight into DATA frames (net's `onread`). Every read lands behind
// room for the gRPC prefix and the packet header, so a frame is written around the payload
// instead of the payload being copied into a frame. This is the download path of every
// `kubectl logs`: while data streams, no copy and no allocation per read (there were two).
//
// A socket that is streaming (its last read was large) reads into a frame of its own, which
// the packet then takes whole, and which comes back to a pool once written out. That matters
// for memory, not only time: V8 collects young buffers only after about 32 MiB of them, so
// every buffer allocated per read is held for a while. Any other socket reads into one buffer
// shared by all, and its bytes are copied out at once (into a pooled frame unless few): reads
// run one at a time, each to its callback, so sharing is safe. A frame waiting for a socket's
// next read is held until that read comes, which may be never for a connection that went
// idle, so only a few sockets at a time may hold one; the rest read into the shared buffer.
import type net from 'node:net';
import { DATA_HEADROOM, frameDataInPlace } from '../proto/codec.js';
import { packets, type DataPacket } from '../proto/packet.js';

/**
 * One read's room: twice net's own 64 KiB. Fewer, larger DATA messages cost the server less
 * per byte: first 128 MiB downloads from an agent 50 ms away, gRPC frontend, went from 197-216
 * to 217-233 MB/s (scratch runs). 256 KiB gave 211-263, but the server's RSS beside a stalled
 * reader rose by about 10 MiB, to the edge of the 200 MB goal.
 */
const READ_BYTES = 128 * 1024;
/** From this size a read counts as streaming: the socket's next read goes into its own frame. */
export const STREAMING_READ = READ_BYTES / 2;
/** Reads copied out of the shared buffer from this size go into pooled frames. */
const POOLED_READ = 16 * 1024;
/** Sockets that may hold a frame for their next read at one time. */
export const READ_FRAMES_MAX = 16;

/** Frames of one size, lent out and taken back once their bytes are written. */
class FramePool {
  private readonly free: Buffer[] = [];
  /** Frames out on loan: only these come back, and each only once. */
  private readonly lent = new WeakSet<ArrayBufferLike>();

  constructor(
    /** Payload room; frames have DATA_HEADROOM more. */
    readonly payloadBytes: number,
    private readonly keep: number,
  ) {}

  take(): Buffer {
    const frame = this.free.pop() ?? Buffer.allocUnsafeSlow(DATA_HEADROOM + this.payloadBytes);
    this.lent.add(frame.buffer);
    return frame;
  }

  /** False when `memory` is not a frame lent by this pool (or is back already). */
  giveBack(memory: ArrayBufferLike): boolean {
    if (!this.lent.delete(memory)) return false;
    if (this.free.length < this.keep)
      this.free.push(Buffer.from(memory, 0, DATA_HEADROOM + this.payloadBytes));
    return true;
  }

  get pooled(): number {
    return this.free.length;
  }
}

/** Whole reads; copies of up to a quarter of a read (a frame pins at most four times its data). */
const readFrames = new FramePool(READ_BYTES, 16);
const smallFrames = new FramePool(READ_BYTES / 4, 32);
let framesHeldForReads = 0;

export const framePool = {
  /**
   * Takes back the frame under `wire` once nothing refers to its bytes any longer (written
   * out, and the packet dropped). Anything that is not a lent frame is left to the GC.
   */
  giveBack(wire: Buffer): void {
    if (!readFrames.giveBack(wire.buffer)) smallFrames.giveBack(wire.buffer);
  },
  /** Frames ready for reuse, both sizes. */
  get pooled(): number {
    return readFrames.pooled + smallFrames.pooled;
  },
  /** Sockets holding a frame for their next read. */
  get heldForReads(): number {
    return framesHeldForReads;
  },
};

const shared = Buffer.allocUnsafeSlow(DATA_HEADROOM + READ_BYTES);
const sharedView = shared.subarray(DATA_HEADROOM);

export class TargetReader {
  /** The buffer the next read goes into: `shared`, or this socket's own frame. */
  private buffer: Buffer = shared;
  private streaming = false;
  private closed = false;
  private connectID = 0n;
  private onPacket: (packet: DataPacket) => void = () => {
    throw new Error('target data before the connection started');
  };

  /** For net.connect: reads land in our buffers and come to read(), never to 'data'. */
  readonly onread: net.OnReadOpts = {
    buffer: () => this.nextBuffer(),
    callback: (bytes: number) => {
      this.read(bytes);
      return true;
    },
  };

  /** Reads flow from here on (net starts reading after 'connect', where this is called). */
  start(connectID: bigint, onPacket: (packet: DataPacket) => void): void {
    this.connectID = connectID;
    this.onPacket = onPacket;
  }

  /** The socket is gone: a frame it held for a read that never came frees its place. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.buffer !== shared) framesHeldForReads--;
    // The frame itself is left to the GC: the handle may still point at it.
    this.buffer = shared;
  }

  private nextBuffer(): Buffer {
    if (this.streaming && !this.closed && framesHeldForReads < READ_FRAMES_MAX) {
      framesHeldForReads++;
      this.buffer = readFrames.take();
      return this.buffer.subarray(DATA_HEADROOM);
    }
    this.buffer = shared;
    return sharedView;
  }

  private read(bytes: number): void {
    const source = this.buffer;
    // This read's buffer is spent; the next one comes from nextBuffer(), called right after.
    this.buffer = shared;
    if (source !== shared) framesHeldForReads--;
    this.streaming = bytes >= STREAMING_READ;
    let frame = source;
    // Out of the shared buffer, or a small read: copied out, into a pooled frame unless tiny.
    if (source === shared || !this.streaming) {
      frame =
        bytes < POOLED_READ
          ? Buffer.allocUnsafe(DATA_HEADROOM + bytes)
          : bytes <= smallFrames.payloadBytes
            ? smallFrames.take()
            : readFrames.take();
      source.copy(frame, DATA_HEADROOM, DATA_HEADROOM, DATA_HEADROOM + bytes);
      if (source !== shared) readFrames.giveBack(source.buffer);
    }
    // The packet owns `frame` now; nextBuffer(), called next, never hands it out again.
    const wire = frameDataInPlace(frame, this.connectID, bytes);
    this.onPacket(
      packets.data(this.connectID, frame.subarray(DATA_HEADROOM, DATA_HEADROOM + bytes), '', wire),
    );
  }
}
