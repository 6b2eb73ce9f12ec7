// A server configuration from command-line flags, on a Unix-socket frontend with the test PKI's
// agent-port certificate: what flag tests need to get past the listener checks.
import { parseFlags } from '../../common/flags/flag-set.js';
import { createLogger } from '../../common/log.js';
import { serverConfigFromFlags, serverFlags } from '../../server/options.js';
import type { ProxyServerConfig } from '../../server/proxy-server.js';
import type { PkiFiles } from '../../quickstart/pki.js';

const quiet = createLogger({ component: 'test', level: 'silent' });

export function serverConfigWith(files: PkiFiles, args: string[]): ProxyServerConfig {
  const r = parseFlags(serverFlags, [
    '--uds-name=/tmp/server-config-test.sock',
    `--cluster-cert=${files.serverCert}`,
    `--cluster-key=${files.serverKey}`,
    ...args,
  ]);
  return serverConfigFromFlags(r.values, r.set, quiet, {});
}
