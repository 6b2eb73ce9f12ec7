// Public API of konnectivity-ccm (package export `konnectivity-ts/ccm`): the contracts a
// provider or controller implements, the provider registry, and the CCM itself, so an embedder
// can register its provider and run the CCM in its own process:
//
//   import { registerCloudProvider, CloudControllerManager, ccmConfigFromFlags, ccmFlags } from 'konnectivity-ts/ccm';
//   registerCloudProvider('mine', async (init) => new MyProvider(init));
//   const config = ccmConfigFromFlags(parseFlags(ccmFlags, ['--cloud-provider=mine', ...]).values, log);
//   const ccm = new CloudControllerManager(config);
//   await ccm.start(); ... await ccm.shutdown();
//
// The built-in providers (fake, konnectivity) are registered on import.
import './cloud/providers.js';

export type {
  Controller,
  ControllerContext,
  ControllerOptions,
  EventRecorder,
  EventTarget,
  Informer,
  WorkQueue,
} from './controller.js';
export {
  CloudConfigError,
  cloudProviderFactory,
  registerCloudProvider,
  registeredCloudProviders,
} from './cloud/cloud-provider.js';
export type {
  CloudProvider,
  CloudProviderFactory,
  CloudProviderInit,
  InstanceMetadata,
  InstancesV2,
  LoadBalancer,
} from './cloud/cloud-provider.js';
export { CloudControllerManager } from './cloud-controller-manager.js';
export type { CcmDependencies, CcmStarted } from './cloud-controller-manager.js';
export { ccmConfigFromFlags, ccmFlags, enabledControllers, KNOWN_CONTROLLERS } from './options.js';
export type { CcmConfig, CcmFlagValues, ControllerName, LeaderElectionOptions } from './options.js';
export { builtInControllers } from './controllers/index.js';
export { RateLimitedWorkQueue } from './runtime/work-queue.js';
export { CcmMetrics } from './runtime/metrics.js';
export { parseFlags } from '../../common/flags/flag-set.js';
export { createLogger } from '../../common/log.js';
