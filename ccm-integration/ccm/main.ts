// konnectivity-ccm binary: flags → CloudControllerManager.start(); SIGTERM → shutdown().
// Exit codes as the other binaries: 2 for a bad flag or configuration (a provider's
// CloudConfigError included), 1 for a failure to start.
import './cloud/providers.js';
import { runMain } from '../../common/main-runner.js';
import { CloudControllerManager } from './cloud-controller-manager.js';
import { ccmConfigFromFlags, ccmFlags } from './options.js';

await runMain('konnectivity-ccm', ccmFlags, async (parsed, log) => {
  const config = ccmConfigFromFlags(parsed.values, log);
  const ccm = new CloudControllerManager(config);
  const started = await ccm.start();
  log.info(started, 'konnectivity-ccm started');
  return ccm;
});
