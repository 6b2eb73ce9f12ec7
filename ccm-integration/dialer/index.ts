// Public API of the tunnel dialer: dial(frontend, "host:port") → a connected Duplex.
import type { Duplex } from 'node:stream';
import { dialGrpc } from './grpc-tunnel.js';
import { dialHttpConnect } from './http-connect-tunnel.js';
import type { DialOptions, FrontendAddress } from './frontend-address.js';

export type { DialOptions, FrontendAddress } from './frontend-address.js';
export { GrpcTunnelSocket } from './grpc-tunnel.js';
export { ReusableGrpcTunnel, type ReusableTunnelOptions } from './grpc-reusable-tunnel.js';
export { ConnectRefusedError } from './http-connect-tunnel.js';
export { TunnelError, ErrorCode } from '../../common/errors.js';

/** Opens a TCP connection to `address` (host:port) through the proxy-server at `frontend`. */
export function dial(frontend: FrontendAddress, address: string, options?: DialOptions): Promise<Duplex> {
  return frontend.protocol === 'grpc'
    ? dialGrpc(frontend, address, options)
    : dialHttpConnect(frontend, address, options);
}
