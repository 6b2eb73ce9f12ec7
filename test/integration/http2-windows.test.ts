// The server's HTTP/2 receive windows are widened through a private path into grpc-js
// (server/http2-windows.ts). This checks the windows in effect on a real session, so an
// upgrade of grpc-js that moves that path fails here instead of silently capping throughput.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerHttp2Session } from 'node:http2';
import {
  Client,
  Metadata,
  Server,
  ServerCredentials,
  credentials,
  type ServerDuplexStream,
} from '@grpc/grpc-js';
import { agentServiceDefinition, CONNECT_METHOD } from '../../proto/services.js';
import { decodePacket, encodePacket } from '../../proto/codec.js';
import { packets, type Packet } from '../../proto/packet.js';
import { sessionOf, widenReceiveWindows } from '../../server/http2-windows.js';
import { waitFor } from '../support/wait.js';

describe('HTTP/2 receive windows of the server', () => {
  it('are widened on the session of a live grpc-js stream, for the connection and for open streams', async () => {
    const window = 8 * 1024 * 1024;
    let session: ServerHttp2Session | undefined;
    let widened = false;
    const server = new Server();
    server.addService(agentServiceDefinition, {
      Connect: (call: ServerDuplexStream<Packet, Packet>) => {
        widened = widenReceiveWindows(call, window);
        session = sessionOf(call);
        call.on('data', () => undefined);
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      );
    });
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    const call = client.makeBidiStreamRequest<Packet, Packet>(
      CONNECT_METHOD,
      encodePacket,
      decodePacket,
      new Metadata(),
    );
    try {
      call.write(packets.data(1n, Buffer.from('x')));
      await waitFor('handler called', () => session !== undefined);
      assert.equal(widened, true, 'grpc-js no longer exposes call.call.stream: see server/http2-windows.ts');
      const s = session as ServerHttp2Session;
      // The client acknowledges our SETTINGS; then the new initial window is in effect.
      await waitFor('SETTINGS acknowledged', () => !s.pendingSettingsAck);
      assert.equal(s.localSettings.initialWindowSize, window);
      assert.ok(
        (s.state.effectiveLocalWindowSize ?? 0) >= 2 * window - 65_535,
        `connection window ${String(s.state.effectiveLocalWindowSize)}`,
      );
    } finally {
      call.on('error', () => undefined); // CANCELLED by the shutdown below
      call.end();
      client.close();
      server.forceShutdown();
    }
  });
});
