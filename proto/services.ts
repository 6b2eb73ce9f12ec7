// gRPC service definitions for the two konnectivity methods, wired to the hot-path codec.
import type { ServiceDefinition } from '@grpc/grpc-js';
import { decodePacket, encodePacket } from './codec.js';

export const PROXY_METHOD = '/ProxyService/Proxy';
export const CONNECT_METHOD = '/AgentService/Connect';

function bidi(path: string, originalName: string) {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: encodePacket,
    requestDeserialize: decodePacket,
    responseSerialize: encodePacket,
    responseDeserialize: decodePacket,
    originalName,
  } as const;
}

export const proxyServiceDefinition: ServiceDefinition<{ Proxy: unknown }> = {
  Proxy: bidi(PROXY_METHOD, 'proxy'),
};

export const agentServiceDefinition: ServiceDefinition<{ Connect: unknown }> = {
  Connect: bidi(CONNECT_METHOD, 'connect'),
};
