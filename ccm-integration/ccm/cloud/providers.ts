// The cloud providers built into konnectivity-ccm, registered by name for --cloud-provider.
// Importing this module registers them; an embedder registers its own with registerCloudProvider.
import { registerCloudProvider } from './cloud-provider.js';
import { createFakeCloud, FAKE_PROVIDER_NAME } from './fake/fake-cloud.js';
import { createKonnectivityProvider } from './konnectivity/provider.js';

registerCloudProvider(FAKE_PROVIDER_NAME, createFakeCloud);
registerCloudProvider('konnectivity', createKonnectivityProvider);
