// Backpressure state of one shared stream, the agent stream, on the server and on the agent
// alike: many connections may wait for it to have room, and any of them may hold its reads
// paused (counted, so the stream resumes only when the last one lets go).
//
// "Room" is counted here, message by message as each is written out, not taken from the
// stream's 'drain' event: an HTTP/2 stream emits 'drain' only once its buffer is empty, which
// a steady flow never reaches, so every sender would stop and wait for the whole buffer to
// empty before refilling it. Memory stays bounded: at most SEND_BUFFER_HIGH plus one message.

export const SEND_BUFFER_HIGH = 1024 * 1024;
const SEND_BUFFER_LOW = SEND_BUFFER_HIGH / 2;

/** What the gate needs of a stream: our gRPC calls, server side and client side, have it. */
export interface GatedStream {
  pause(): unknown;
  resume(): unknown;
}

export class StreamGate {
  private readPauses = 0;
  private unsent = 0;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly stream: GatedStream) {}

  /**
   * Writes `bytes` through `write`, which must call its argument once they are written out.
   * False when the buffer is over its high mark: wait with whenWritable().
   */
  send(bytes: number, write: (written: () => void) => void): boolean {
    this.unsent += bytes;
    write(() => {
      this.unsent -= bytes;
      if (this.unsent <= SEND_BUFFER_LOW && this.waiters.length > 0) this.release();
    });
    return this.unsent <= SEND_BUFFER_HIGH;
  }

  /** Calls `fn` once the stream has room again (at once if it has, or once it is closed). */
  whenWritable(fn: () => void): void {
    if (this.closed || this.unsent <= SEND_BUFFER_HIGH) fn();
    else this.waiters.push(fn);
  }

  pauseReads(): void {
    if (this.readPauses++ === 0) this.stream.pause();
  }

  resumeReads(): void {
    if (this.readPauses === 0) return;
    if (--this.readPauses === 0 && !this.closed) this.stream.resume();
  }

  /** The stream is gone: nobody waits on it any longer. */
  close(): void {
    this.closed = true;
    this.release();
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
