// The concurrency limits (TokenReviews, agent TLS handshakes) report through observers that
// ServerMetrics builds: what they are told must reach the scraped series.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ServerMetrics } from '../../../server/metrics.js';
import { createRegistry } from '../../../common/metrics.js';

const PREFIX = 'konnectivity_network_proxy_server_';

/** Every unlabelled series of the registry, by name without the prefix. */
async function values(registry: ReturnType<typeof createRegistry>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await registry.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#') || line.includes('{')) continue;
    const [name, value] = line.split(' ');
    if (name?.startsWith(PREFIX)) out.set(name.slice(PREFIX.length), Number(value));
  }
  return out;
}

describe('ServerMetrics observers', () => {
  it('feed the TokenReview and handshake gauges and counters', async () => {
    const registry = createRegistry(false);
    const metrics = new ServerMetrics(registry);
    const reviews = metrics.tokenReviewObserver();
    reviews.changed(2, 5);
    reviews.queued();
    const handshakes = metrics.agentHandshakeObserver();
    handshakes.changed(3, 7);
    handshakes.queued();
    handshakes.queued();
    handshakes.expired();
    const v = await values(registry);
    assert.equal(v.get('token_reviews_in_flight'), 2);
    assert.equal(v.get('token_reviews_waiting'), 5);
    assert.equal(v.get('token_reviews_queued_total'), 1);
    assert.equal(v.get('agent_tls_handshakes_in_progress'), 3);
    assert.equal(v.get('agent_tls_handshakes_waiting'), 7);
    assert.equal(v.get('agent_tls_handshakes_queued_total'), 2);
    assert.equal(v.get('agent_tls_handshakes_expired_total'), 1);
  });
});
