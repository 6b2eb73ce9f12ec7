// Agents live milliseconds away from the control plane: the agent stream's HTTP/2 windows,
// and our per-connection credit, must let enough bytes be in flight to fill that distance.
// Checked through a delaying proxy by the bytes in flight it sees, not by timing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../../ccm-integration/dialer/index.js';
import { startCluster, type Cluster, type Mode } from '../support/cluster.js';
import { LabTarget, readAllHash, hashOf } from '../support/targets.js';
import { DelayProxy } from '../support/delay-proxy.js';
import { waitReady } from '../support/processes.js';

// Node's default 64 KiB window would allow about that much in flight per round trip.
const WELL_ABOVE_DEFAULT_WINDOW = 1024 * 1024;

for (const mode of ['http-connect', 'grpc'] as Mode[]) {
  describe(`${mode} frontend, agent 20 ms (round trip) away`, () => {
    let target: LabTarget;
    let cluster: Cluster;
    let delay: DelayProxy;
    before(async () => {
      target = await new LabTarget('lab').start();
      cluster = await startCluster(mode, 'uds', { agents: 0 });
      delay = await new DelayProxy(cluster.server.agentPort, 10).start();
      await cluster.startAgent([`--proxy-server-port=${delay.port}`]);
      await waitReady(cluster.server);
    });
    after(async () => {
      await cluster.stop();
      await delay.stop();
      await target.stop();
    });

    it('keeps megabytes in flight from agent to server (download) and carries them intact', async () => {
      delay.peakInFlight = 0;
      const bytes = 96 * 1024 * 1024;
      const sock = await dial(cluster.frontend, target.address);
      sock.write(`download ${bytes} 21\n`);
      const got = await readAllHash(sock);
      sock.destroy();
      assert.equal(got.hash, hashOf(bytes, 21));
      assert.ok(delay.peakInFlight > WELL_ABOVE_DEFAULT_WINDOW, `peak in flight ${delay.peakInFlight} bytes`);
    });
  });
}
