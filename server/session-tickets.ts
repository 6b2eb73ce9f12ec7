// TLS session tickets on the agent port that outlive the process. Node's ticket key is random
// per process and its tickets expire after 5 minutes, so a restarted server (or an agent that
// reconnects an hour after connecting) pays a full handshake per agent: the certificate
// signature and chain checks, about 1 ms of the server's ~2 ms TLS cost (measured here with the
// agents' P-256 certificates). Instead the key is derived from the listener's own key material
// with HKDF, per UTC day: every process holding the same key, certificate, client CA and TLS
// policy derives the same ticket key for the day, so agents resume across restarts and across
// servers that share a certificate; nothing is stored. A new key, certificate, CA or policy, or
// the next day, gives a new ticket key (old tickets then just cost a full handshake). Tickets
// live a day, as Go's servers accept them for a week; a resumed session whose client
// certificate has expired since is refused (`expiredClientCertificate`), as Go does.
import { createHash, hkdfSync } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

export const TICKET_LIFETIME_SECONDS = 24 * 60 * 60;
const DAY_MS = 24 * 60 * 60 * 1000;
const LABEL = 'konnectivity-ts agent-port session tickets v1';

/** What a listener's TLS is made of; a change to any of it makes a new ticket key. */
export interface TicketMaterial {
  key: string | Buffer;
  cert: string | Buffer;
  ca?: string | Buffer | undefined;
  /** The TLS policy (versions, suites) in a stable text form. */
  policy: string;
}

function digest(m: TicketMaterial): Buffer {
  const h = createHash('sha256');
  for (const part of [m.cert, m.ca ?? '', m.policy]) {
    const bytes = Buffer.from(part);
    h.update(String(bytes.length)).update(':').update(bytes);
  }
  return h.digest();
}

/** The 48 bytes Node's `ticketKeys` wants (name, HMAC and AES keys) for one UTC day. */
export function ticketKeysFor(m: TicketMaterial, day: number): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(m.key), digest(m), `${LABEL} day ${String(day)}`, 48));
}

/**
 * OpenSSL resumes a session only in the context it was made in. Node's default is a hash of
 * the command line, which changes with any flag; this one changes with the TLS material only.
 */
export function sessionIdContextFor(m: TicketMaterial): string {
  return digest(m).toString('hex').slice(0, 32);
}

/** The UTC day number of a time. */
export function utcDay(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** Options for a listener's secure context: the day's ticket key, the context, the lifetime. */
export function ticketOptions(
  m: TicketMaterial,
  nowMs: number,
): { ticketKeys: Buffer; sessionIdContext: string; sessionTimeout: number } {
  return {
    ticketKeys: ticketKeysFor(m, utcDay(nowMs)),
    sessionIdContext: sessionIdContextFor(m),
    sessionTimeout: TICKET_LIFETIME_SECONDS,
  };
}

/** Puts the next day's key in place at each UTC midnight. */
export class TicketKeyRotation {
  private timer: NodeJS.Timeout | undefined;
  private material: TicketMaterial;

  constructor(
    material: TicketMaterial,
    private readonly apply: (keys: Buffer) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.material = material;
  }

  /** The listener's TLS material changed (a reload): keys from it, from now on. */
  set(material: TicketMaterial): void {
    this.material = material;
  }

  start(): void {
    this.stop();
    const now = this.now();
    const next = (utcDay(now) + 1) * DAY_MS;
    this.timer = setTimeout(
      () => {
        this.apply(ticketKeysFor(this.material, utcDay(this.now())));
        this.start();
      },
      next - now + 1,
    );
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * A resumed session carries the client certificate it was made with, and OpenSSL does not look
 * at its dates again: one that has expired since the ticket was issued is refused here.
 * Returns why, or undefined to go on.
 */
export function expiredClientCertificate(socket: TLSSocket, nowMs: number): string | undefined {
  if (!socket.isSessionReused()) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert.valid_to) return undefined;
  const notAfter = Date.parse(cert.valid_to);
  if (Number.isNaN(notAfter) || nowMs <= notAfter) return undefined;
  return `the resumed session's client certificate expired at ${new Date(notAfter).toISOString()}`;
}
