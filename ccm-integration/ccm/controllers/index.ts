// The controllers konnectivity-ccm can run, by the names --controllers uses.
import type { Controller } from '../controller.js';
import { CloudNodeLifecycleController } from './cloud-node-lifecycle.js';
import { CloudNodeController } from './cloud-node.js';
import { ServiceController } from './service.js';

export function builtInControllers(): Controller[] {
  return [new CloudNodeController(), new CloudNodeLifecycleController(), new ServiceController()];
}
