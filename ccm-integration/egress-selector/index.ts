// Public API of the egress selector (package export `konnectivity-ts/egress`): load kube-apiserver's
// EgressSelectorConfiguration and dial through one of its selections, as kube-apiserver does.
export {
  loadEgressSelectorConfiguration,
  parseEgressSelectorConfiguration,
  connectionFor,
  EgressConfigError,
  SUPPORTED_API_VERSIONS,
} from './config.js';
export type {
  EgressSelectorConfiguration,
  EgressConnection,
  EgressTransport,
  ProxyProtocol,
  TlsMaterial,
} from './config.js';
export { egressDialer, frontendAddress, targetAddress } from './egress-dialer.js';
export type { EgressDialerOptions, FrontendDial } from './egress-dialer.js';
export type { EgressDialer, EgressDialOptions, EgressSelectionName } from './egress-dialer-types.js';
export { TunnelError, ErrorCode } from '../../common/errors.js';
