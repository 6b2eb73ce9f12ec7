// stream_packets_total counts in plain numbers and shows them when scraped, with upstream's
// labels; a packet type we do not know is counted as UNKNOWN rather than lost.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { StreamMetrics } from '../../../common/stream-metrics.js';
import { PacketType } from '../../../proto/packet.js';

const NAME = 'test_stream_packets_total';

async function scraped(registry: Registry): Promise<Map<string, number>> {
  const text = await registry.metrics();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(NAME + '{')) continue;
    const [series, value] = line.split(' ');
    if (series && value) out.set(series.slice(NAME.length), Number(value));
  }
  return out;
}

describe('stream packet metrics', () => {
  it('counts packets by segment and type, and keeps counting across scrapes', async () => {
    const registry = new Registry();
    const m = new StreamMetrics<'from_client' | 'to_agent'>('test_', registry);
    for (let i = 0; i < 3; i++) m.packet('from_client', PacketType.DATA);
    m.packet('from_client', PacketType.DIAL_REQ);
    m.packet('to_agent', PacketType.CLOSE_REQ);
    m.packet('to_agent', 99);
    m.packet('to_agent', -1);
    assert.deepEqual(
      await scraped(registry),
      new Map([
        ['{segment="from_client",packet_type="DIAL_REQ"}', 1],
        ['{segment="from_client",packet_type="DATA"}', 3],
        ['{segment="to_agent",packet_type="CLOSE_REQ"}', 1],
        ['{segment="to_agent",packet_type="UNKNOWN"}', 2],
      ]),
    );
    m.packet('from_client', PacketType.DATA);
    const again = await scraped(registry);
    assert.equal(again.get('{segment="from_client",packet_type="DATA"}'), 4);
    assert.equal(again.get('{segment="to_agent",packet_type="UNKNOWN"}'), 2);
  });
});
