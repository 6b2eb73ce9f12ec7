// --tls-min-version and --cipher-suites: Go's names (as kube components take them) mapped to
// Node/OpenSSL options, applied to every TLS listener. Unknown names fail start-up.
import tls from 'node:tls';

export interface TlsPolicy {
  minVersion: tls.SecureVersion;
  /** OpenSSL cipher list; undefined: Node's defaults. */
  ciphers?: string | undefined;
}

export const DEFAULT_TLS_POLICY: TlsPolicy = { minVersion: 'TLSv1.2' };

const VERSIONS: Readonly<Record<string, tls.SecureVersion>> = {
  VersionTLS12: 'TLSv1.2',
  VersionTLS13: 'TLSv1.3',
};
/** Accepted for manifests written for Go, served as TLS 1.2: nothing older is offered. */
const RAISED = new Set(['VersionTLS10', 'VersionTLS11']);

// Go crypto/tls suite name → OpenSSL name. TLS 1.3 suites keep their names.
const SUITES: Readonly<Record<string, string>> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_AES_128_GCM_SHA256: 'TLS_AES_128_GCM_SHA256',
  TLS_AES_256_GCM_SHA384: 'TLS_AES_256_GCM_SHA384',
  TLS_CHACHA20_POLY1305_SHA256: 'TLS_CHACHA20_POLY1305_SHA256',
};
const INSECURE = /RC4|3DES|_NULL_|EXPORT/;
const TLS13_DEFAULT = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

export class TlsPolicyError extends Error {
  override readonly name = 'TlsPolicyError';
}

/** Flag values → policy; `warn` hears about accepted-but-raised versions. */
export function tlsPolicyFromFlags(
  minVersion: string,
  cipherSuites: readonly string[],
  warn: (msg: string) => void,
): TlsPolicy {
  let version: tls.SecureVersion = 'TLSv1.2';
  if (minVersion !== '') {
    const v = VERSIONS[minVersion];
    if (v) version = v;
    else if (RAISED.has(minVersion))
      warn(`--tls-min-version=${minVersion}: TLS below 1.2 is never served; using VersionTLS12`);
    else
      throw new TlsPolicyError(
        `--tls-min-version "${minVersion}" is not one of VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13`,
      );
  }
  const names = cipherSuites.map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) return { minVersion: version };
  const openssl: string[] = [];
  for (const name of names) {
    if (INSECURE.test(name))
      throw new TlsPolicyError(`--cipher-suites: "${name}" is insecure and not supported`);
    const mapped = SUITES[name];
    if (!mapped)
      throw new TlsPolicyError(
        `--cipher-suites: unknown cipher suite "${name}" (use Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)`,
      );
    openssl.push(mapped);
  }
  // As in Go, the list restricts TLS 1.2 only: TLS 1.3 suites stay on unless listed. (Node
  // turns TLS 1.3 off when a cipher list names no TLS 1.3 suite.)
  const listsTls13 = openssl.some((c) => c.startsWith('TLS_'));
  if (!listsTls13) openssl.unshift(TLS13_DEFAULT);
  const ciphers = openssl.join(':');
  if (version === 'TLSv1.3' && !listsTls13) {
    warn(
      '--cipher-suites lists only TLS 1.2 suites but --tls-min-version=VersionTLS13: the list has no effect',
    );
  }
  try {
    tls.createSecureContext({ ciphers, minVersion: version });
  } catch (err) {
    throw new TlsPolicyError(`--cipher-suites: ${(err as Error).message}`);
  }
  return { minVersion: version, ciphers };
}

/** Node TLS options for a listener under this policy. */
export function tlsPolicyOptions(
  policy: TlsPolicy,
): Pick<tls.SecureContextOptions, 'minVersion' | 'ciphers'> {
  return { minVersion: policy.minVersion, ...(policy.ciphers ? { ciphers: policy.ciphers } : {}) };
}
