// A raw gRPC client of the frontend, for tests that drive /ProxyService/Proxy packet by packet
// (the dialer hides the protocol; these tests need it).
import { resolve } from 'node:path';
import { Client, Metadata, credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { decodePacket, encodePacket } from '../../proto/codec.js';
import { PROXY_METHOD } from '../../proto/services.js';
import type { Packet } from '../../proto/packet.js';

export type ProxyCall = ClientDuplexStream<Packet, Packet>;

/** One client HTTP/2 connection to a frontend's Unix socket. */
export function frontendClient(uds: string): Client {
  return new Client(`unix:${resolve(uds)}`, credentials.createInsecure());
}

/** A new Proxy stream on that connection. */
export function proxyStream(client: Client): ProxyCall {
  return client.makeBidiStreamRequest<Packet, Packet>(
    PROXY_METHOD,
    encodePacket,
    decodePacket,
    new Metadata(),
  );
}

/** The next packet from the server, or the stream's error. */
export function nextPacket(call: ProxyCall): Promise<Packet> {
  return new Promise((resolve, reject) => {
    call.once('data', resolve);
    call.once('error', reject);
  });
}
