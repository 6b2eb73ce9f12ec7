// The TokenAuthenticator's storm behaviour: one review per token at a time, a bound on reviews
// in flight, and no review for an agent that left while it waited.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConcurrencyLimit } from '../../../common/concurrency-limit.js';
import {
  REVIEW_ABANDONED,
  TokenAuthenticator,
  type ReviewOutcome,
} from '../../../common/kube/token-review.js';

const policy = { namespace: 'kube-system', serviceAccount: 'konnectivity-agent', audience: 'aud' };
const ACCEPTED: ReviewOutcome = {
  authenticated: true,
  user: 'system:serviceaccount:kube-system:konnectivity-agent',
  audiences: ['aud'],
  error: '',
};

/** A TokenReview API whose answers the test releases; it records what it was asked. */
function heldReviewer() {
  const asked: string[] = [];
  const waiting: (() => void)[] = [];
  let inFlight = 0;
  let peak = 0;
  const reviewer = (token: string): Promise<ReviewOutcome> => {
    asked.push(token);
    peak = Math.max(peak, ++inFlight);
    return new Promise((resolve) =>
      waiting.push(() => {
        inFlight--;
        resolve(ACCEPTED);
      }),
    );
  };
  const releaseAll = async () => {
    while (waiting.length > 0) {
      for (const release of waiting.splice(0)) release();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { reviewer, asked, releaseAll, peak: () => peak };
}

describe('TokenAuthenticator under a reconnect storm', () => {
  it('sends one review for agents presenting the same token at once, then answers from the cache', async () => {
    const api = heldReviewer();
    const auth = new TokenAuthenticator(api.reviewer, policy);
    const results = [auth.authenticate('Bearer same'), auth.authenticate('Bearer same')];
    await api.releaseAll();
    for (const r of await Promise.all(results)) assert.equal(r.ok, true);
    assert.equal((await auth.authenticate('Bearer same')).ok, true);
    assert.deepEqual(api.asked, ['same']);
  });

  it('keeps at most the limit in flight, and reviews every token once', async () => {
    const api = heldReviewer();
    const auth = new TokenAuthenticator(api.reviewer, policy, { limit: new ConcurrencyLimit(3) });
    const results = Array.from({ length: 10 }, (_, i) => auth.authenticate(`Bearer t${String(i)}`));
    await api.releaseAll();
    for (const r of await Promise.all(results)) assert.equal(r.ok, true);
    assert.equal(api.peak(), 3);
    assert.equal(api.asked.length, 10);
  });

  it('skips the review of an agent that left while queued', async () => {
    const api = heldReviewer();
    const auth = new TokenAuthenticator(api.reviewer, policy, { limit: new ConcurrencyLimit(1) });
    const first = auth.authenticate('Bearer first');
    let present = true;
    const gone = auth.authenticate('Bearer gone', () => present);
    present = false; // its stream closed while the first review ran
    await api.releaseAll();
    assert.equal((await first).ok, true);
    assert.deepEqual(await gone, { ok: false, reason: REVIEW_ABANDONED });
    assert.deepEqual(api.asked, ['first']);
  });
});
