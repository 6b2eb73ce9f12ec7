// Backpressure state of one shared stream, the agent stream, on the server and on the agent
// alike: many connections may wait for it to drain, and any of them may hold its reads paused
// (counted, so the stream resumes only when the last one lets go).

/** What the gate needs of a stream: our gRPC server call and the agent's HTTP/2 stream have it. */
export interface GatedStream {
  readonly writableNeedDrain: boolean;
  pause(): unknown;
  resume(): unknown;
  on(event: 'drain', listener: () => void): unknown;
}

export class StreamGate {
  private readPauses = 0;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly stream: GatedStream) {
    stream.on('drain', () => {
      this.release();
    });
  }

  /** Calls `fn` once the stream has room again (at once if it has, or once it is closed). */
  whenWritable(fn: () => void): void {
    if (this.closed || !this.stream.writableNeedDrain) fn();
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
