// The generic codec: @grpc/proto-loader (protobufjs) reading the .proto contract. It is the
// reference the hand-written hot-path codec (codec.ts) is proven against; it is not used on
// the data path.
import protoLoader from '@grpc/proto-loader';
import { protoDir } from './proto-files.js';

/** A Packet in proto-loader's object form: int64 as decimal strings, enums as names. */
export interface GenericPacket {
  type?: string;
  payload?: string;
  dialRequest?: { protocol?: string; address?: string; random?: string };
  dialResponse?: { error?: string; connectID?: string; random?: string };
  closeRequest?: { connectID?: string };
  closeResponse?: { error?: string; connectID?: string };
  data?: { connectID?: string; error?: string; data?: Buffer };
  closeDial?: { random?: string };
  drain?: Record<string, never>;
}

export interface GenericCodec {
  encode(packet: GenericPacket): Buffer;
  decode(bytes: Buffer): GenericPacket;
}

export function loadGenericCodec(): GenericCodec {
  const definition = protoLoader.loadSync(['client.proto', 'agent.proto'], {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
    includeDirs: [protoDir()],
  });
  const proxy = definition.ProxyService as protoLoader.ServiceDefinition | undefined;
  const method = proxy?.Proxy;
  if (!method) throw new Error('ProxyService.Proxy missing from client.proto');
  return {
    encode: (packet) => method.requestSerialize(packet),
    decode: (bytes): GenericPacket => method.requestDeserialize(bytes),
  };
}
