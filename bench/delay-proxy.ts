// The benchmark's delay proxy, in a process of its own: in the load client's process it would
// take CPU from the client it measures (argv: target port, one-way delay in ms).
import { DelayProxy } from '../test/support/delay-proxy.js';

const proxy = await new DelayProxy(Number(process.argv[2]), Number(process.argv[3])).start();
process.stdout.write(`${proxy.port}\n`);
process.on('SIGTERM', () => {
  void proxy.stop().then(() => process.exit(0));
});
