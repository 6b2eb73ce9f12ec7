// proxy-server binary.
import { runMain } from '../common/main-runner.js';
import { serverConfigFromFlags, serverFlags } from './options.js';
import { ProxyServer } from './proxy-server.js';

await runMain('proxy-server', serverFlags, async (parsed, log) => {
  const config = serverConfigFromFlags(parsed.values, parsed.set, log);
  const server = new ProxyServer(config);
  const bound = await server.start();
  log.info({ serverID: config.serverID, serverCount: config.serverCount, ...bound }, 'proxy-server started');
  return server;
});
