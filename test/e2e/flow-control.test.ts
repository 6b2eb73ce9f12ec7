// Per-connection flow control between our server and our agent: one client that stops
// reading must not hold back the other connections of the same agent.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../../ccm-integration/dialer/index.js';
import { startCluster, type Cluster, type Mode } from '../support/cluster.js';
import { LabTarget, hashOf, readAllHash } from '../support/targets.js';
import { waitFor, within } from '../support/wait.js';

for (const mode of ['http-connect', 'grpc'] as Mode[]) {
  describe(`flow control through the ${mode} frontend`, () => {
    let target: LabTarget;
    let cluster: Cluster;
    before(async () => {
      target = await new LabTarget('lab').start();
      cluster = await startCluster(mode, 'uds');
    });
    after(async () => {
      await cluster.stop();
      await target.stop();
    });

    it('a stalled reader does not hold back another connection of the same agent', async () => {
      const stalled = await dial(cluster.frontend, target.address);
      let stalledBytes = 0;
      stalled.on('data', (c: Buffer) => {
        stalledBytes += c.length;
        stalled.pause();
      });
      stalled.write(`source ${4 * 1024 * 1024 * 1024}\n`);
      await waitFor('the stalled connection to receive its first bytes', () => stalledBytes > 0);

      const bytes = 64 * 1024 * 1024;
      const other = await dial(cluster.frontend, target.address);
      other.write(`download ${bytes} 11\n`);
      // Without per-connection flow control this never completes: bound it so it fails instead.
      const got = await within(
        readAllHash(other),
        60_000,
        'the second connection completing beside a stalled one',
      );
      assert.equal(got.bytes, bytes);
      assert.equal(got.hash, hashOf(bytes, 11));
      other.destroy();
      stalled.destroy();
    });
  });
}
