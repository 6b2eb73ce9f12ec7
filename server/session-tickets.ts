// TLS session tickets on the agent port that outlive the process. Node's ticket key is random
// per process and its tickets expire after 5 minutes, so a restarted server pays a full
// handshake per agent: the certificate signature and chain checks, about 1 ms of the server's
// ~2 ms TLS cost (measured here with the agents' P-256 certificates). Given a secret shared by
// the server replicas (--agent-tls-ticket-key-file: random bytes, never the serving key, whose
// many holders could otherwise forge tickets carrying any client certificate), the ticket key is
// derived from it with HKDF, per UTC day, salted with the listener's certificate, client CA and
// TLS policy: agents resume across restarts and across replicas that share the secret and the
// material; a reload or the next day gives a new key (old tickets then cost a full handshake).
// Node holds one key at a time, so a ticket lasts until the next UTC midnight (24 h at most).
// A resumed session whose client certificate has expired since is closed
// (`expiredClientCertificate`): OpenSSL does not look at its dates again.
import { createHash, hkdfSync } from 'node:crypto';

export const TICKET_LIFETIME_SECONDS = 24 * 60 * 60;
/** A ticket secret shorter than this is refused: it must be random bytes, not a password. */
export const MIN_SECRET_BYTES = 32;
const DAY_MS = 24 * 60 * 60 * 1000;
const LABEL = 'konnectivity-ts agent-port session tickets v1';

/** The shared secret and what the listener's TLS is made of; a change to any makes a new key. */
export interface TicketMaterial {
  /** The operator's random secret (--agent-tls-ticket-key-file). */
  secret: Buffer;
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
  return Buffer.from(hkdfSync('sha256', m.secret, digest(m), `${LABEL} day ${String(day)}`, 48));
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
  day: number,
): { ticketKeys: Buffer; sessionIdContext: string; sessionTimeout: number } {
  return {
    ticketKeys: ticketKeysFor(m, day),
    sessionIdContext: sessionIdContextFor(m),
    sessionTimeout: TICKET_LIFETIME_SECONDS,
  };
}

/** Puts each day's key in place at UTC midnight. */
export class TicketKeyRotation {
  private timer: NodeJS.Timeout | undefined;
  private material: TicketMaterial;

  /** `appliedDay`: the day of the key the listener was created with. */
  constructor(
    material: TicketMaterial,
    private appliedDay: number,
    private readonly apply: (keys: Buffer) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.material = material;
  }

  /** The listener's TLS material changed (a reload, which applied that day's key itself). */
  set(material: TicketMaterial, day: number): void {
    this.material = material;
    this.appliedDay = day;
  }

  /** Applies today's key if the listener holds another day's, then waits for the next midnight. */
  start(): void {
    this.stop();
    const now = this.now();
    const today = utcDay(now);
    if (today !== this.appliedDay) {
      this.appliedDay = today;
      this.apply(ticketKeysFor(this.material, today));
    }
    this.timer = setTimeout(
      () => {
        this.start();
      },
      (today + 1) * DAY_MS - now + 1,
    );
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** What the expiry check reads of a TLS socket. */
export interface ResumedSocket {
  isSessionReused(): boolean;
  getPeerCertificate(): { valid_to?: string };
}

/**
 * A resumed session carries the client certificate it was made with (the leaf only), and
 * OpenSSL does not look at its dates again: one that has expired since the ticket was issued is
 * closed here, after the handshake (Go declines such a ticket and does a full handshake; Node
 * has no hook for that). Our agent never offers a ticket made with another certificate than its
 * current one. Returns why, or undefined to go on.
 */
export function expiredClientCertificate(socket: ResumedSocket, nowMs: number): string | undefined {
  if (!socket.isSessionReused()) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert.valid_to) return undefined; // no client certificate (no --cluster-ca-cert)
  const notAfter = Date.parse(cert.valid_to);
  if (Number.isNaN(notAfter)) {
    return `the resumed session's client certificate has an unreadable expiry "${cert.valid_to}"`;
  }
  if (nowMs <= notAfter) return undefined;
  return `the resumed session's client certificate expired at ${new Date(notAfter).toISOString()}`;
}
