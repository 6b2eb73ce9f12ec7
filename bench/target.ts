// The benchmark's target, in a process of its own so it does not share the load client's CPU.
import { LabTarget } from '../test/support/targets.js';

const target = await new LabTarget('bench').start();
process.stdout.write(`${target.port}\n`);
process.on('SIGTERM', () => {
  void target.stop().then(() => process.exit(0));
});
