// A scripted agent: our own gRPC client on the agent port, with a valid certificate, driven
// by the test to make the server meet what a real agent rarely does.
import { readFileSync } from 'node:fs';
import { Client, Metadata, credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { decodePacket, encodePacket } from '../../proto/codec.js';
import { CONNECT_METHOD } from '../../proto/services.js';
import type { Packet } from '../../proto/packet.js';
import { MetadataKey } from '../../proto/metadata.js';
import type { Cluster } from './cluster.js';
import { httpGet } from './processes.js';
import { waitFor } from './wait.js';

/** Packets from the server, read in order. */
export class PacketQueue {
  private readonly queue: Packet[] = [];
  private waiter: ((p: Packet) => void) | undefined;
  constructor(stream: ClientDuplexStream<Packet, Packet>) {
    stream.on('data', (p: Packet) => {
      const w = this.waiter;
      this.waiter = undefined;
      if (w) w(p);
      else this.queue.push(p);
    });
  }
  /** Packets received and not yet taken. */
  get length(): number {
    return this.queue.length;
  }
  /** The next packet if one is here, without waiting. */
  take(): Packet | undefined {
    return this.queue.shift();
  }
  next(): Promise<Packet> {
    const p = this.queue.shift();
    if (p) return Promise.resolve(p);
    return new Promise((resolve) => (this.waiter = resolve));
  }
}

/** Our own gRPC client on the agent port, with a valid agent certificate, driven by the test. */
export interface ScriptedAgent {
  stream: ClientDuplexStream<Packet, Packet>;
  inbox: PacketQueue;
  close(): void;
}

export async function connectScriptedAgent(
  cluster: Cluster,
  agentID: string,
  extensions = '',
): Promise<ScriptedAgent> {
  const f = cluster.pki.files;
  const client = new Client(
    `127.0.0.1:${cluster.server.agentPort}`,
    credentials.createSsl(readFileSync(f.ca), readFileSync(f.agentKey), readFileSync(f.agentCert)),
  );
  const md = new Metadata();
  md.set('agentid', agentID);
  if (extensions) md.set(MetadataKey.extensions, extensions);
  const stream = client.makeBidiStreamRequest<Packet, Packet>(CONNECT_METHOD, encodePacket, decodePacket, md);
  const inbox = new PacketQueue(stream);
  await waitFor(
    'scripted agent registered',
    async () => (await httpGet(cluster.server.healthPort, '/readyz')).status === 200,
  );
  return {
    stream,
    inbox,
    close: () => {
      stream.on('error', () => undefined); // CANCELLED, our own doing
      stream.cancel();
      client.close();
    },
  };
}
