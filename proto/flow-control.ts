// Per-connection flow control between our server and our agent (the `flow-control`
// extension). Upstream multiplexes every connection of an agent on one stream without it, so
// one client that stops reading stalls all of them. With it, each side grants the other
// CONNECTION_WINDOW bytes per connection; the receiver returns credit as bytes leave it (not
// when they arrive), in DATA packets with no data and error "WINDOW <bytes>". A sender out of
// credit pauses that connection's source only; the shared stream is never paused.
import { packets, type DataPacket } from './packet.js';

export const CONNECTION_WINDOW = 2 * 1024 * 1024;
/** Credit is returned in batches of at least this, to keep control packets rare. */
export const WINDOW_UPDATE_THRESHOLD = CONNECTION_WINDOW / 4;

const PREFIX = 'WINDOW ';

export function windowUpdate(connectID: bigint, bytes: number): DataPacket {
  return packets.data(connectID, packets.empty, PREFIX + String(bytes));
}

/** The credit a WINDOW packet returns, or undefined when the DATA packet is not one. */
export function parseWindowUpdate(p: DataPacket): number | undefined {
  if (p.data.length !== 0 || !p.error.startsWith(PREFIX)) return undefined;
  const n = Number(p.error.slice(PREFIX.length));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** Sender side: bytes we may still send on one connection. */
export class SendCredit {
  private credit = CONNECTION_WINDOW;
  private waiters: (() => void)[] = [];

  /** Accounts for sent bytes; false when the credit is used up (pause the source). */
  consume(bytes: number): boolean {
    this.credit -= bytes;
    return this.credit > 0;
  }

  grant(bytes: number): void {
    this.credit += bytes;
    if (this.credit <= 0 || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  whenAvailable(fn: () => void): void {
    if (this.credit > 0) fn();
    else this.waiters.push(fn);
  }

  /** Releases waiters when the connection ends. */
  release(): void {
    this.credit = Number.MAX_SAFE_INTEGER;
    this.grant(0);
  }
}

/** Receiver side: bytes that have left us and whose credit is still to be returned. */
export class ReceiveWindow {
  private unacked = 0;
  private held = 0;

  constructor(private readonly sendUpdate: (bytes: number) => void) {}

  /** Bytes handed on without backpressure. */
  delivered(bytes: number): void {
    this.unacked += bytes;
    if (this.unacked >= WINDOW_UPDATE_THRESHOLD) {
      this.sendUpdate(this.unacked);
      this.unacked = 0;
    }
  }

  /** Bytes handed on into a full buffer: their credit waits for drained(). */
  hold(bytes: number): void {
    this.held += bytes;
  }

  drained(): void {
    const n = this.held;
    this.held = 0;
    if (n > 0) this.delivered(n);
  }
}
