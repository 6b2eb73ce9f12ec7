// gRPC server credentials whose certificate, key and CA can be replaced while the server
// runs. grpc-js's ServerCredentials keeps a list of servers to notify through its protected
// updateSecureContextOptions(); its createSsl() offers neither reload nor a minimum TLS
// version or cipher list, so we subclass it (test/integration/tls-reload covers an upgrade
// that changes this).
import { ServerCredentials } from '@grpc/grpc-js';
import type { SecureContextOptions } from 'node:tls';
import type { TlsFiles } from '../common/tls.js';
import { tlsPolicyOptions, type TlsPolicy } from '../common/tls-policy.js';

export class ReloadableServerCredentials extends ServerCredentials {
  constructor(
    files: TlsFiles,
    private readonly policy: TlsPolicy,
  ) {
    super(
      { requestCert: !!files.ca, rejectUnauthorized: !!files.ca, ...tlsPolicyOptions(policy) },
      contextOptions(files, policy),
    );
  }

  /** New connections get these files; open ones keep theirs. */
  update(files: TlsFiles): void {
    this.updateSecureContextOptions(contextOptions(files, this.policy));
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

function contextOptions(files: TlsFiles, policy: TlsPolicy): SecureContextOptions {
  return {
    cert: files.cert,
    key: files.key,
    ...(files.ca ? { ca: files.ca } : {}),
    ...tlsPolicyOptions(policy),
  };
}
