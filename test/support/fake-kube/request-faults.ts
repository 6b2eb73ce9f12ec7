// Errors injected into chosen requests, for tests of retry and error paths: "fail the next N
// requests that match" rules, and hooks that see every request and may answer it themselves.
import type { IncomingHttpHeaders } from 'node:http';
import { failureStatus, reasonFor } from './api-error.js';

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, the raw text when it is not JSON, or undefined when empty. */
  body: unknown;
  /** A watch request (?watch=true|1 or the /watch/ prefix). */
  watch: boolean;
}

/** An answer in place of the real one; without a body, a Status for `status`. */
export interface FakeReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type RequestHook = (req: FakeRequest) => FakeReply | undefined | Promise<FakeReply | undefined>;

interface FailRule {
  method: string;
  pathPrefix: string;
  status: number;
  remaining: number;
  message: string;
}

export class RequestFaults {
  private readonly rules: FailRule[] = [];
  private readonly hooks: RequestHook[] = [];

  /** `method` "*" matches every method; `pathPrefix` is matched against the URL path. */
  failNext(method: string, pathPrefix: string, status: number, count: number, message: string): void {
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new Error(`failNext status must be an HTTP error code (400-599), not ${status}`);
    }
    if (!Number.isInteger(count) || count < 1)
      throw new Error(`failNext count must be at least 1, not ${count}`);
    this.rules.push({ method: method.toUpperCase(), pathPrefix, status, remaining: count, message });
  }

  onRequest(hook: RequestHook): () => void {
    this.hooks.push(hook);
    return () => {
      const i = this.hooks.indexOf(hook);
      if (i >= 0) this.hooks.splice(i, 1);
    };
  }

  /** The injected answer for this request, if any; consumes one use of a matching rule. */
  async reply(req: FakeRequest): Promise<FakeReply | undefined> {
    const rule = this.rules.find(
      (r) => (r.method === '*' || r.method === req.method) && req.path.startsWith(r.pathPrefix),
    );
    if (rule) {
      rule.remaining -= 1;
      if (rule.remaining === 0) this.rules.splice(this.rules.indexOf(rule), 1);
      return { status: rule.status, body: failureStatus(rule.status, reasonFor(rule.status), rule.message) };
    }
    for (const hook of [...this.hooks]) {
      const reply = await hook(req);
      if (reply) return reply;
    }
    return undefined;
  }
}

/** The body to send for a reply: its own, or a Status for its code. */
export function replyBody(reply: FakeReply): unknown {
  return (
    reply.body ??
    failureStatus(reply.status, reasonFor(reply.status), `injected failure: ${reasonFor(reply.status)}`)
  );
}
