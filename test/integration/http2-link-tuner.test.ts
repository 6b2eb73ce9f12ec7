// The HTTP/2 windows of an agent connection grow with the link's bandwidth-delay product
// (common/http2-link-tuner.ts). Checked on a real HTTP/2 connection through the delaying
// proxy by the windows in effect (the peer's view of our SETTINGS and connection window) and
// the measured round trip, not by timing a transfer.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { Http2LinkTuner } from '../../common/http2-link-tuner.js';
import { DelayProxy } from '../support/delay-proxy.js';
import { deterministicChunks, hashOf } from '../support/targets.js';
import { waitFor } from '../support/wait.js';

describe('HTTP/2 link tuner', () => {
  it('grows the receive windows of a connection 40 ms away while it is window-bound, up to its limit', async () => {
    const start = 256 * 1024;
    const limit = 4 * start;
    const total = 8 * 1024 * 1024;
    let tuner: Http2LinkTuner | undefined;
    let serverSession: http2.ServerHttp2Session | undefined;
    const server = http2.createServer({ settings: { initialWindowSize: start } });
    server.on('session', (session) => {
      serverSession = session;
      session.setLocalWindowSize(2 * start);
      tuner = new Http2LinkTuner(session, { windowBytes: start, maxWindowBytes: limit });
    });
    const received = new Promise<string>((resolve) => {
      server.on('stream', (stream) => {
        tuner?.watch(stream);
        const hash = createHash('sha256');
        stream.on('data', (c: Buffer) => hash.update(c));
        stream.on('end', () => {
          stream.respond({ ':status': 200 }, { endStream: true });
          resolve(hash.digest('hex'));
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const delay = await new DelayProxy(port, 20).start();
    const client = http2.connect(`http://127.0.0.1:${delay.port}`);
    client.on('error', () => undefined);
    try {
      const req = client.request({ ':method': 'POST', ':path': '/upload' });
      req.on('error', () => undefined);
      req.resume();
      for (const chunk of deterministicChunks(total, 5)) {
        if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      }
      req.end();
      assert.equal(await received, hashOf(total, 5), 'bytes intact');
      const t = tuner as Http2LinkTuner;
      assert.ok((t.rttMs ?? 0) >= 40, `round trip ${String(t.rttMs)} ms through a 40 ms delay`);
      assert.equal(t.windowBytes, limit, 'a window-bound transfer grows the window to its limit');
      // What the client was told: the stream window in SETTINGS, the connection window by WINDOW_UPDATE.
      await waitFor('SETTINGS acknowledged', () => !serverSession?.pendingSettingsAck || undefined);
      assert.equal(client.remoteSettings.initialWindowSize, limit);
      assert.equal(serverSession?.state.effectiveLocalWindowSize, 2 * limit);
    } finally {
      client.destroy();
      await delay.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
