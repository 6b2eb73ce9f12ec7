// The Kubernetes API of the auth phase: the test suite's FakeKubeApi, with a hook that answers
// every TokenReview itself after a simulated API latency, counting the reviews and how many
// were in flight at once (what a restart storms the API server with).
import { FakeKubeApi } from '../../test/support/fake-kube-api.js';
import { reviewToken } from '../../test/support/fake-kube/token-review.js';
import { simToken } from './sim-identity.js';

const TOKEN_REVIEWS = '/apis/authentication.k8s.io/v1/tokenreviews';

export const AGENT_USER = 'system:serviceaccount:kube-system:konnectivity-agent';
export const AUDIENCE = 'system:konnectivity-server';

/** The server flags that turn agent token authentication on against `kubeconfig`. */
export function tokenAuthArgs(kubeconfig: string): string[] {
  return [
    `--kubeconfig=${kubeconfig}`,
    '--agent-namespace=kube-system',
    '--agent-service-account=konnectivity-agent',
    `--authentication-audience=${AUDIENCE}`,
  ];
}

export class TokenReviewCounter {
  total = 0;
  inFlight = 0;
  peak = 0;

  /** Zeroes the counts (a new phase); reviews in flight stay counted as in flight. */
  reset(): void {
    this.total = 0;
    this.peak = this.inFlight;
  }

  async review<T>(answer: () => T, latencyMs: number): Promise<T> {
    this.total++;
    this.inFlight++;
    this.peak = Math.max(this.peak, this.inFlight);
    try {
      if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
      return answer();
    } finally {
      this.inFlight--;
    }
  }
}

/** A fake API knowing one token per agent, its TokenReviews counted by the returned counter. */
export async function startTokenReviewApi(
  agents: number,
  latencyMs: number,
): Promise<{ api: FakeKubeApi; counter: TokenReviewCounter }> {
  const api = await new FakeKubeApi().start();
  for (let i = 0; i < agents; i++) api.tokens.set(simToken(i), { user: AGENT_USER, audiences: [AUDIENCE] });
  const counter = new TokenReviewCounter();
  api.onRequest((req) => {
    if (req.method !== 'POST' || req.path !== TOKEN_REVIEWS) return undefined;
    return counter.review(() => ({ status: 201, body: reviewToken(api.tokens, req.body) }), latencyMs);
  });
  return { api, counter };
}
