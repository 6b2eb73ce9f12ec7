// --server-count-source: how many servers the agent wants a stream to, as upstream's
// ClientSet.ServerCount combines the Lease count and the serverCount header.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClientSet, type ClientSetConfig, type ServerCountSource } from '../../../agent/client-set.js';

function wanted(source: ServerCountSource, leases: number | undefined): number {
  // targetCount reads only these fields; the header count starts at 1 (no response yet).
  const config = {
    syncIntervalMs: 1000,
    syncIntervalCapMs: 10_000,
    serverCountSource: source,
    countedServers: leases === undefined ? undefined : () => leases,
  } as ClientSetConfig;
  return new ClientSet(config).targetCount;
}

describe('server count source', () => {
  it("'default' follows the Leases when they are counted, else the header", () => {
    assert.equal(wanted('default', undefined), 1);
    assert.equal(wanted('default', 3), 3);
    assert.equal(wanted('default', 0), 1, 'no Lease seen yet: the header count');
  });
  it("'max' takes the larger source, at least 1", () => {
    assert.equal(wanted('max', undefined), 1);
    assert.equal(wanted('max', 0), 1);
    assert.equal(wanted('max', 4), 4);
  });
});
