// Reads target sockets straight into DATA frames (net's `onread`). Every read lands behind
// room for the gRPC prefix and the packet header, so a frame is written around the payload
// instead of the payload being copied into a frame. This is the download path of every
// `kubectl logs`: while data streams, no copy and no allocation per read (there were two).
//
// A socket that is streaming (its last read was large) reads into a frame of its own, which
// the packet then takes whole, and which comes back to a pool once written out: a steady
// download allocates nothing. That matters for memory, not only time: V8 collects young
// buffers only after about 32 MiB of them, so each allocated 64 KiB is held for a while.
// Any other socket reads into one buffer shared by all, and its bytes are copied out at once:
// reads run one at a time, each to its callback, so sharing is safe, and 10,000 idle
// connections hold no read buffer at all.
import type net from 'node:net';
import { DATA_HEADROOM, frameDataInPlace } from '../proto/codec.js';
import { packets, type DataPacket } from '../proto/packet.js';

/** One read's room, as net's own reads. */
const READ_BYTES = 64 * 1024;
/** From this size a read counts as streaming, and is framed where it lies. */
export const STREAMING_READ = READ_BYTES / 2;
/** From this size a read copied out goes into a pooled frame (pinning at most 4 times its size). */
const POOLED_READ = READ_BYTES / 4;

const FRAME_BYTES = DATA_HEADROOM + READ_BYTES;
/** Frames kept for reuse: enough for the send buffers of a few busy connections. */
const POOLED_FRAMES_MAX = 64;

const shared = Buffer.allocUnsafeSlow(FRAME_BYTES);
const sharedView = shared.subarray(DATA_HEADROOM);

/** Frames for streaming reads, lent out and taken back once their bytes are written. */
class FramePool {
  private readonly free: Buffer[] = [];
  /** Frames out on loan: only these come back, and each only once. */
  private readonly lent = new WeakSet<ArrayBufferLike>();

  take(): Buffer {
    const frame = this.free.pop() ?? Buffer.allocUnsafeSlow(FRAME_BYTES);
    this.lent.add(frame.buffer);
    return frame;
  }

  /**
   * Takes back the frame under `wire` once nothing refers to its bytes any longer (written
   * out, and the packet dropped). Anything that is not a lent frame is left to the GC.
   */
  giveBack(wire: Buffer): void {
    const memory = wire.buffer;
    if (!this.lent.delete(memory) || this.free.length >= POOLED_FRAMES_MAX) return;
    this.free.push(Buffer.from(memory, 0, FRAME_BYTES));
  }

  get pooled(): number {
    return this.free.length;
  }
}

export const framePool = new FramePool();

export class TargetReader {
  /** The buffer the next read goes into: `shared`, or this socket's own while it streams. */
  private buffer: Buffer = shared;
  private streaming = false;
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

  private nextBuffer(): Buffer {
    if (!this.streaming) {
      this.buffer = shared;
      return sharedView;
    }
    this.buffer = framePool.take();
    return this.buffer.subarray(DATA_HEADROOM);
  }

  private read(bytes: number): void {
    const source = this.buffer;
    this.streaming = bytes >= STREAMING_READ;
    let frame = source;
    // Out of the shared buffer, or a small read: copied out, into a pooled frame unless tiny.
    if (source === shared || !this.streaming) {
      frame = bytes >= POOLED_READ ? framePool.take() : Buffer.allocUnsafe(DATA_HEADROOM + bytes);
      source.copy(frame, DATA_HEADROOM, DATA_HEADROOM, DATA_HEADROOM + bytes);
      if (source !== shared) framePool.giveBack(source);
    }
    // The packet owns `frame` now; nextBuffer(), called next, never hands it out again.
    const wire = frameDataInPlace(frame, this.connectID, bytes);
    this.onPacket(
      packets.data(this.connectID, frame.subarray(DATA_HEADROOM, DATA_HEADROOM + bytes), '', wire),
    );
  }
}
