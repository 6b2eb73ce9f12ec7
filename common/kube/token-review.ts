// Validates a ServiceAccount bearer token with a TokenReview (authentication.k8s.io/v1), the
// way upstream proxy-server authenticates agents: authenticated, audience, namespace and
// service account must all match. Positive answers are cached (2 minutes), keyed by a hash of
// the token, so a reconnect storm does not become a TokenReview storm; agents presenting the
// same token at once share one review; and at most --max-concurrent-token-reviews are in
// flight, the rest queued (a restarted server would otherwise send one per agent at once). For a pod-bound token
// (Kubernetes 1.30+) the review also says which node the pod runs on: that is the agent's
// node for identity binding (server/identity/).
import { createHash } from 'node:crypto';
import type { KubeClient } from './client.js';
import { ConcurrencyLimit, TaskSkipped } from '../concurrency-limit.js';

export interface TokenPolicy {
  namespace: string;
  serviceAccount: string;
  /** Empty: the API server's default audience, not checked. */
  audience: string;
  /**
   * Further accounts admitted besides namespace/serviceAccount, as "<namespace>/<name>"
   * (--agents-allowed-any-identifier: a gateway agent runs as its own account).
   */
  alsoAdmitted?: readonly string[];
}

/** The node and pod a pod-bound token was issued for, from the review's user extra. */
export interface TokenNode {
  name: string;
  uid?: string;
  podName?: string;
  podUID?: string;
}

export interface TokenIdentity {
  user: string;
  /** "<namespace>/<name>" of the service account. */
  serviceAccount: string;
  /** Absent for tokens that are not pod-bound, or from API servers before 1.30. */
  node?: TokenNode;
}

export type ReviewResult = ({ ok: true } & TokenIdentity) | { ok: false; reason: string };

export type TokenReviewer = (token: string, audiences: string[]) => Promise<ReviewOutcome>;

export interface ReviewOutcome {
  authenticated: boolean;
  user: string;
  audiences: string[];
  error: string;
  /** status.user.extra: key → values. */
  extra?: Readonly<Record<string, readonly string[]>>;
}

/** The status.user.extra keys kube-apiserver sets for pod-bound ServiceAccount tokens. */
export const TokenExtra = {
  nodeName: 'authentication.kubernetes.io/node-name',
  nodeUID: 'authentication.kubernetes.io/node-uid',
  podName: 'authentication.kubernetes.io/pod-name',
  podUID: 'authentication.kubernetes.io/pod-uid',
} as const;

const SA_PREFIX = 'system:serviceaccount:';
const always = (): boolean => true;
/**
 * As kube-apiserver's webhook token cache (--authentication-token-webhook-cache-ttl, 2m): long
 * enough that an agent which timed out after its review (a server busy with a restart's
 * handshakes) is not reviewed again when it retries. An admitted stream is never re-checked
 * anyway; this only bounds how long a revoked token can open new streams.
 */
const DEFAULT_CACHE_TTL_MS = 120_000;
/** Accepted tokens remembered: one per agent of a large cluster, ~200 bytes each. */
const CACHE_LIMIT = 50_000;

export interface TokenAuthenticatorOptions {
  /** How long an accepted token is trusted without a new review. */
  cacheTtlMs?: number;
  /** Bounds the reviews in flight; without one, no bound. */
  limit?: ConcurrencyLimit;
}

/** The reason given to an agent that hung up while its review waited for a slot. */
export const REVIEW_ABANDONED = 'the agent left before its token review started';

export class TokenAuthenticator {
  private readonly cache = new Map<string, { accepted: ReviewResult & { ok: true }; until: number }>();
  /**
   * Reviews in flight or queued, by token hash: an agent with the same token joins the first,
   * and the review is skipped only when every agent waiting on it has left.
   */
  private readonly pending = new Map<string, { result: Promise<ReviewResult>; wanted: (() => boolean)[] }>();
  private readonly cacheTtlMs: number;
  private readonly limit: ConcurrencyLimit;

  constructor(
    private readonly review: TokenReviewer,
    private readonly policy: TokenPolicy,
    options: TokenAuthenticatorOptions = {},
  ) {
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
    this.limit = options.limit ?? new ConcurrencyLimit(0);
  }

  /**
   * `authorization` is the raw metadata value ("Bearer <token>"), possibly undefined.
   * `wanted` is asked when a queued review's turn comes: false (the agent hung up) skips it.
   */
  async authenticate(authorization: string | undefined, wanted?: () => boolean): Promise<ReviewResult> {
    if (!authorization) return { ok: false, reason: 'no authorization metadata' };
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match?.[1]) return { ok: false, reason: 'authorization metadata is not "Bearer <token>"' };
    const token = match[1];
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.accepted;
    if (hit) this.cache.delete(key);
    const joined = this.pending.get(key);
    if (joined) {
      joined.wanted.push(wanted ?? always);
      return joined.result;
    }
    const wanters = [wanted ?? always];
    const result = this.reviewOnce(token, key, () => wanters.some((w) => w()));
    this.pending.set(key, { result, wanted: wanters });
    try {
      return await result;
    } finally {
      this.pending.delete(key);
    }
  }

  private async reviewOnce(token: string, key: string, wanted: () => boolean): Promise<ReviewResult> {
    let outcome: ReviewOutcome;
    try {
      const audiences = this.policy.audience ? [this.policy.audience] : [];
      outcome = await this.limit.run(() => this.review(token, audiences), wanted);
    } catch (err) {
      if (err instanceof TaskSkipped) return { ok: false, reason: REVIEW_ABANDONED };
      return { ok: false, reason: `token review failed: ${(err as Error).message}` };
    }
    const result = this.judge(outcome);
    if (result.ok) {
      if (this.cache.size >= CACHE_LIMIT) {
        const oldest = this.cache.keys().next().value;
        if (oldest !== undefined) this.cache.delete(oldest);
      }
      this.cache.set(key, { accepted: result, until: Date.now() + this.cacheTtlMs });
    }
    return result;
  }

  private judge(o: ReviewOutcome): ReviewResult {
    if (!o.authenticated)
      return { ok: false, reason: `token not authenticated: ${o.error || 'no reason given'}` };
    const { audience, namespace, serviceAccount } = this.policy;
    if (audience && !o.audiences.includes(audience)) {
      return { ok: false, reason: `token audiences [${o.audiences.join(',')}] do not include "${audience}"` };
    }
    if (!o.user.startsWith(SA_PREFIX))
      return { ok: false, reason: `user "${o.user}" is not a service account` };
    const [ns, sa, ...rest] = o.user.slice(SA_PREFIX.length).split(':');
    if (rest.length > 0 || !ns || !sa)
      return { ok: false, reason: `malformed service account user "${o.user}"` };
    const account = `${ns}/${sa}`;
    const admitted =
      (ns === namespace && sa === serviceAccount) || this.policy.alsoAdmitted?.includes(account);
    if (!admitted) {
      const also = this.policy.alsoAdmitted?.length
        ? ` (nor one of ${this.policy.alsoAdmitted.join(',')})`
        : '';
      if (ns !== namespace)
        return { ok: false, reason: `service account namespace "${ns}" is not "${namespace}"${also}` };
      return { ok: false, reason: `service account "${sa}" is not "${serviceAccount}"${also}` };
    }
    const node = tokenNode(o.extra ?? {});
    return { ok: true, user: o.user, serviceAccount: account, ...(node ? { node } : {}) };
  }
}

/** The node of a pod-bound token, from the review's status.user.extra; undefined without one. */
export function tokenNode(extra: Readonly<Record<string, readonly string[]>>): TokenNode | undefined {
  const first = (key: string): string | undefined => {
    const v = extra[key]?.[0];
    return v === undefined || v === '' ? undefined : v;
  };
  const name = first(TokenExtra.nodeName);
  if (name === undefined) return undefined;
  const node: TokenNode = { name };
  const uid = first(TokenExtra.nodeUID);
  const podName = first(TokenExtra.podName);
  const podUID = first(TokenExtra.podUID);
  if (uid !== undefined) node.uid = uid;
  if (podName !== undefined) node.podName = podName;
  if (podUID !== undefined) node.podUID = podUID;
  return node;
}

/** A TokenReviewer that asks the Kubernetes API. */
export function apiTokenReviewer(client: KubeClient): TokenReviewer {
  const api = client.config.makeApiClient(client.k8s.AuthenticationV1Api);
  return async (token, audiences) => {
    const review = await api.createTokenReview({
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, ...(audiences.length > 0 ? { audiences } : {}) },
      },
    });
    const s = review.status;
    return {
      authenticated: s?.authenticated === true,
      user: s?.user?.username ?? '',
      audiences: s?.audiences ?? [],
      error: s?.error ?? '',
      extra: s?.user?.extra ?? {},
    };
  };
}
