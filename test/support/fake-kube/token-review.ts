// authentication.k8s.io/v1 TokenReview answers from a table of known tokens: unknown and
// expired tokens and audience mismatches are refused with the messages kube-apiserver uses.
import { isObject } from './json.js';

export interface FakeToken {
  /** "system:serviceaccount:<ns>:<name>" */
  user: string;
  audiences: string[];
  expired?: boolean;
  groups?: string[];
  /** Returned as status.user.extra, e.g. {"authentication.kubernetes.io/node-name": ["node-1"]}. */
  extra?: Record<string, string[]>;
}

export function reviewToken(tokens: ReadonlyMap<string, FakeToken>, body: unknown): Record<string, unknown> {
  const spec = isObject(body) && isObject(body.spec) ? body.spec : {};
  const token = typeof spec.token === 'string' ? spec.token : '';
  const wanted = Array.isArray(spec.audiences) ? spec.audiences.filter((a) => typeof a === 'string') : [];
  const t = tokens.get(token);
  let status: Record<string, unknown>;
  if (!t || t.expired) {
    status = { authenticated: false, error: t ? 'token has expired' : 'invalid bearer token' };
  } else if (wanted.length > 0 && !wanted.some((a) => t.audiences.includes(a))) {
    status = { authenticated: false, error: 'token audiences is invalid for the target audiences' };
  } else {
    const audiences = wanted.length > 0 ? wanted.filter((a) => t.audiences.includes(a)) : t.audiences;
    const user: Record<string, unknown> = { username: t.user };
    if (t.groups) user.groups = t.groups;
    if (t.extra) user.extra = t.extra;
    status = { authenticated: true, user, audiences };
  }
  return { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec, status };
}
