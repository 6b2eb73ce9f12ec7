// Backpressure state of one shared stream, the agent stream, on the server and on the agent
// alike: many connections may wait for it to have room, and any of them may hold its reads
// paused (counted, so the stream resumes only when the last one lets go).
//
// "Room" is counted here, message by message as each is written out, not taken from the
// stream's 'drain' event: an HTTP/2 stream emits 'drain' only once its buffer is empty, which
// a steady flow never reaches, so every sender would stop and wait for the whole buffer to
// empty before refilling it. Memory stays bounded: at most SEND_BUFFER_HIGH plus one message.
//
// The gate also paces what it hands to the stream: WRITE_AHEAD bytes ahead of the write
// completions, the rest waits here, in order. A Node stream that is writing collects every
// later write into one writev whose completion comes only when all of it is out; under a
// steady flow those batches grew to tens of MiB, and flow-control credit, returned as writes
// complete, came back in bursts of as much (the gRPC frontend, an agent 50 ms away: the agent
// idled a round trip after each burst).

export const SEND_BUFFER_HIGH = 1024 * 1024;
const SEND_BUFFER_LOW = SEND_BUFFER_HIGH / 2;
/** Bytes handed to the stream ahead of its write completions (at least one message). */
export const WRITE_AHEAD = 256 * 1024;

/** What the gate needs of a stream: our gRPC calls, server side and client side, have it. */
export interface GatedStream {
  pause(): unknown;
  resume(): unknown;
}

/** Writes one message to the stream; calls `written` once it is written out. */
type Write = (written: () => void) => void;

export class StreamGate {
  private readPauses = 0;
  /** Counted bytes not written out yet: handed to the stream, or queued here. */
  private unsent = 0;
  /** Of those, handed to the stream. */
  private writing = 0;
  /** Messages not yet handed to the stream, from queueHead on (handed ones are cleared). */
  private readonly queue: ({ bytes: number; write: Write } | undefined)[] = [];
  private queueHead = 0;
  private pumping = false;
  private waiters: (() => void)[] = [];
  private flushed: (() => void) | undefined;
  private closed = false;

  constructor(private readonly stream: GatedStream) {}

  /**
   * Writes `bytes` through `write` (now, or once earlier messages are written out), in the
   * order of the calls. False when the buffer is over its high mark: wait with whenWritable().
   * After close(), drops the message.
   */
  send(bytes: number, write: Write): boolean {
    if (this.closed) return true;
    this.unsent += bytes;
    this.queue.push({ bytes, write });
    this.pump();
    return this.unsent <= SEND_BUFFER_HIGH;
  }

  /** Calls `fn` once the stream has room again (at once if it has, or once it is closed). */
  whenWritable(fn: () => void): void {
    if (this.closed || this.unsent <= SEND_BUFFER_HIGH) fn();
    else this.waiters.push(fn);
  }

  /** Calls `fn` once every message sent so far is handed to the stream (to end it after them). */
  whenFlushed(fn: () => void): void {
    if (this.closed || this.queued() === 0) fn();
    else this.flushed = fn;
  }

  pauseReads(): void {
    if (this.readPauses++ === 0) this.stream.pause();
  }

  resumeReads(): void {
    if (this.readPauses === 0) return;
    if (--this.readPauses === 0 && !this.closed) this.stream.resume();
  }

  /** The stream is gone: what is queued is dropped, and nobody waits on it any longer. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.queueHead = 0;
    this.flushed = undefined;
    this.release();
  }

  private queued(): number {
    return this.queue.length - this.queueHead;
  }

  /** Hands queued messages to the stream while it is less than WRITE_AHEAD ahead. */
  private pump(): void {
    if (this.pumping) return; // a write completing at once: the loop below goes on
    this.pumping = true;
    while (this.queued() > 0 && !this.closed) {
      const next = this.queue[this.queueHead];
      if (!next || (this.writing > 0 && this.writing + next.bytes > WRITE_AHEAD)) break;
      // Cleared as it is handed on: a queue slot must not keep a written message alive.
      this.queue[this.queueHead++] = undefined;
      this.writing += next.bytes;
      next.write(() => {
        this.completed(next.bytes);
      });
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    this.pumping = false;
    if (this.queued() === 0 && this.flushed) {
      const fn = this.flushed;
      this.flushed = undefined;
      fn();
    }
  }

  private completed(bytes: number): void {
    this.writing -= bytes;
    this.unsent -= bytes;
    this.pump();
    if (this.unsent <= SEND_BUFFER_LOW && this.waiters.length > 0) this.release();
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
