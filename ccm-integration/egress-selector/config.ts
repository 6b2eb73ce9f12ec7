// kube-apiserver's --egress-selector-config-file (kind EgressSelectorConfiguration), read and
// validated as kube-apiserver does (k8s.io/apiserver ValidateEgressSelectorConfiguration and its
// strict decoder), so that a file it refuses is refused here too, with the field path named.
// TLS material is read at load time: a missing or unreadable file fails the load, not a dial.
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { parse } from 'yaml';
import { ErrorCode } from '../../common/errors.js';
import { errorText } from '../../common/log.js';
import type { EgressSelectionName } from './egress-dialer-types.js';

export type ProxyProtocol = 'Direct' | 'HTTPConnect' | 'GRPC';

export interface TlsMaterial {
  /** PEM CA bundle; undefined: the system's trust roots (as kube-apiserver with no caBundle). */
  caBundle: Buffer | undefined;
  clientCert: Buffer;
  clientKey: Buffer;
  /** The paths they were read from, for messages. */
  files: { caBundle: string | undefined; clientCert: string; clientKey: string };
}

export type EgressTransport =
  | { kind: 'uds'; udsName: string }
  | { kind: 'tcp'; url: string; host: string; port: number; tls: TlsMaterial };

export type EgressConnection =
  { proxyProtocol: 'Direct' } | { proxyProtocol: 'HTTPConnect' | 'GRPC'; transport: EgressTransport };

export interface EgressSelectorConfiguration {
  /** Where it was read from (a path, or what the caller named). */
  source: string;
  apiVersion: string;
  /** Selections the file lists; one it does not list is Direct (see connectionFor). */
  selections: Partial<Record<EgressSelectionName, EgressConnection>>;
}

/** A refused configuration: `field` is the path of the offending field ('' for the whole file). */
export class EgressConfigError extends Error {
  override readonly name = 'EgressConfigError';
  readonly code = ErrorCode.CONFIG;
  constructor(
    readonly field: string,
    readonly reason: string,
    readonly source: string,
    options?: { cause?: unknown },
  ) {
    super(`${field ? `${field}: ` : ''}${reason} (egress selector configuration ${source})`, options);
  }
}

export const SUPPORTED_API_VERSIONS = [
  'apiserver.k8s.io/v1',
  'apiserver.k8s.io/v1beta1',
  'apiserver.k8s.io/v1alpha1',
] as const;
/** The versions whose conversion renames the deprecated selection "master" to "controlplane". */
const VERSIONS_WITH_MASTER = new Set<string>(['apiserver.k8s.io/v1beta1', 'apiserver.k8s.io/v1alpha1']);
const SELECTION_NAMES: readonly EgressSelectionName[] = ['cluster', 'controlplane', 'etcd'];
const PROTOCOLS: readonly ProxyProtocol[] = ['Direct', 'HTTPConnect', 'GRPC'];

/** How a selection reaches its targets: the file's connection, or Direct when it is not listed. */
export function connectionFor(
  config: EgressSelectorConfiguration,
  selection: EgressSelectionName,
): EgressConnection {
  return config.selections[selection] ?? { proxyProtocol: 'Direct' };
}

export function loadEgressSelectorConfiguration(path: string): EgressSelectorConfiguration {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new EgressConfigError('', `cannot read the file: ${errorText(err)}`, path, { cause: err });
  }
  return parseEgressSelectorConfiguration(text, path);
}

export function parseEgressSelectorConfiguration(text: string, source: string): EgressSelectorConfiguration {
  let doc: unknown;
  try {
    // JSON is YAML; duplicate keys are refused, as kube-apiserver's strict decoder does.
    doc = parse(text);
  } catch (err) {
    // The first line names the position; the rest is a drawing of the line.
    const where = errorText(err).split('\n')[0] ?? '';
    throw new EgressConfigError('', `not valid YAML or JSON: ${where}`, source, { cause: err });
  }
  return new ConfigReader(source).read(doc);
}

type Obj = Record<string, unknown>;

/** Walks the decoded document once, refusing at the first problem with its field path. */
class ConfigReader {
  constructor(private readonly source: string) {}

  private fail(field: string, reason: string, cause?: unknown): never {
    throw new EgressConfigError(field, reason, this.source, cause === undefined ? undefined : { cause });
  }

  read(doc: unknown): EgressSelectorConfiguration {
    if (doc === null || doc === undefined)
      this.fail('', 'the file is empty: expected kind: EgressSelectorConfiguration');
    const root = this.object(doc, '', ['apiVersion', 'kind', 'egressSelections']);
    const kind = this.string(root, 'kind', '');
    if (kind !== 'EgressSelectorConfiguration')
      this.fail('kind', `${JSON.stringify(kind)} is not supported: expected EgressSelectorConfiguration`);
    const apiVersion = this.string(root, 'apiVersion', '');
    if (!(SUPPORTED_API_VERSIONS as readonly string[]).includes(apiVersion))
      this.fail(
        'apiVersion',
        `${JSON.stringify(apiVersion)} is not supported: expected one of ${SUPPORTED_API_VERSIONS.join(', ')}`,
      );
    const list = root.egressSelections ?? [];
    if (!Array.isArray(list)) this.fail('egressSelections', 'must be a list');
    const selections: Partial<Record<EgressSelectionName, EgressConnection>> = {};
    const seenAt = new Map<EgressSelectionName, string>();
    list.forEach((item: unknown, i) => {
      const at = `egressSelections[${i}]`;
      const selection = this.object(item, at, ['name', 'connection']);
      const name = this.selectionName(selection, at, apiVersion);
      const earlier = seenAt.get(name);
      if (earlier !== undefined) this.fail(`${at}.name`, `duplicate selection "${name}" (also ${earlier})`);
      seenAt.set(name, `${at}.name`);
      selections[name] = this.connection(selection.connection, `${at}.connection`);
    });
    return { source: this.source, apiVersion, selections };
  }

  private selectionName(selection: Obj, at: string, apiVersion: string): EgressSelectionName {
    const raw = this.string(selection, 'name', at);
    if (raw === 'master' && VERSIONS_WITH_MASTER.has(apiVersion)) return 'controlplane';
    // kube-apiserver compares names in lower case.
    const name = raw.toLowerCase();
    const known = SELECTION_NAMES.find((n) => n === name);
    if (known) return known;
    const hint = name === 'master' ? ` ("master" is only accepted by v1beta1 and v1alpha1)` : '';
    this.fail(
      `${at}.name`,
      raw === ''
        ? `required: one of ${SELECTION_NAMES.join(', ')}`
        : `unsupported selection ${JSON.stringify(raw)}: expected one of ${SELECTION_NAMES.join(', ')}${hint}`,
    );
  }

  private connection(value: unknown, at: string): EgressConnection {
    // A Go struct, not a pointer: a missing connection is an empty one.
    const connection = this.object(value ?? {}, at, ['proxyProtocol', 'transport']);
    const protocol = this.string(connection, 'proxyProtocol', at);
    const known = PROTOCOLS.find((p) => p === protocol);
    if (!known)
      this.fail(
        `${at}.proxyProtocol`,
        protocol === ''
          ? `required: one of ${PROTOCOLS.join(', ')}`
          : `unsupported proxy protocol ${JSON.stringify(protocol)}: expected one of ${PROTOCOLS.join(', ')}`,
      );
    const transport = connection.transport ?? undefined;
    if (known === 'Direct') {
      if (transport !== undefined) this.fail(`${at}.transport`, 'must be absent for proxyProtocol Direct');
      return { proxyProtocol: 'Direct' };
    }
    if (transport === undefined) this.fail(`${at}.transport`, `required for proxyProtocol ${known}`);
    return { proxyProtocol: known, transport: this.transport(transport, known, `${at}.transport`) };
  }

  private transport(value: unknown, protocol: 'HTTPConnect' | 'GRPC', at: string): EgressTransport {
    const transport = this.object(value, at, ['uds', 'tcp']);
    const uds = transport.uds ?? undefined;
    const tcp = transport.tcp ?? undefined;
    if (protocol === 'GRPC') {
      // kube-apiserver dials GRPC over a Unix socket only; with uds set, it ignores tcp.
      if (uds === undefined)
        this.fail(
          `${at}.uds`,
          tcp === undefined
            ? 'required for proxyProtocol GRPC'
            : 'required for proxyProtocol GRPC: kube-apiserver does not support GRPC over tcp (use HTTPConnect for tcp)',
        );
      return this.uds(uds, `${at}.uds`);
    }
    if (uds !== undefined && tcp !== undefined) this.fail(at, 'uds and tcp cannot both be set');
    if (uds !== undefined) return this.uds(uds, `${at}.uds`);
    if (tcp === undefined) this.fail(at, 'one of uds or tcp must be set');
    return this.tcp(tcp, `${at}.tcp`);
  }

  private uds(value: unknown, at: string): EgressTransport {
    const udsName = this.string(this.object(value, at, ['udsName']), 'udsName', at);
    if (udsName === '') this.fail(`${at}.udsName`, 'required: the path of the proxy-server Unix socket');
    return { kind: 'uds', udsName };
  }

  private tcp(value: unknown, at: string): EgressTransport {
    const tcp = this.object(value, at, ['url', 'tlsConfig']);
    const raw = this.string(tcp, 'url', at);
    if (raw === '') this.fail(`${at}.url`, 'required, e.g. https://konnectivity-server:8131');
    let url: URL;
    try {
      url = new URL(raw);
    } catch (err) {
      this.fail(`${at}.url`, `${JSON.stringify(raw)} is not a valid URL`, err);
    }
    const tlsConfig = tcp.tlsConfig ?? undefined;
    if (url.protocol === 'http:') {
      if (tlsConfig !== undefined) this.fail(`${at}.tlsConfig`, 'must be absent for an http:// url');
      // Valid to kube-apiserver's validation, but its tcp connector always speaks TLS (and fails
      // without tlsConfig); ours needs TLS for a tcp frontend too.
      this.fail(
        `${at}.url`,
        `${JSON.stringify(raw)}: plain http:// is not supported: the tcp transport is dialed with TLS, use https:// and tlsConfig`,
      );
    }
    if (url.protocol !== 'https:')
      this.fail(`${at}.url`, `${JSON.stringify(raw)}: supported schemes are http:// and https://`);
    if (tlsConfig === undefined)
      this.fail(
        `${at}.tlsConfig`,
        'required for an https:// url (clientCert and clientKey; caBundle optional)',
      );
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (host === '') this.fail(`${at}.url`, `${JSON.stringify(raw)} has no host`);
    const port = url.port === '' ? 443 : Number(url.port);
    return { kind: 'tcp', url: raw, host, port, tls: this.tls(tlsConfig, `${at}.tlsConfig`) };
  }

  private tls(value: unknown, at: string): TlsMaterial {
    const t = this.object(value, at, ['caBundle', 'clientKey', 'clientCert']);
    const caPath = this.string(t, 'caBundle', at);
    const certPath = this.string(t, 'clientCert', at);
    const keyPath = this.string(t, 'clientKey', at);
    // kube-apiserver requires both halves of the client key pair for https.
    if (certPath === '')
      this.fail(`${at}.clientCert`, 'required for an https:// url (the client certificate file)');
    if (keyPath === '') this.fail(`${at}.clientKey`, 'required for an https:// url (the client key file)');
    const caBundle = caPath === '' ? undefined : this.file(`${at}.caBundle`, caPath);
    if (caBundle) this.certificate(`${at}.caBundle`, caPath, caBundle);
    const clientCert = this.file(`${at}.clientCert`, certPath);
    const clientKey = this.file(`${at}.clientKey`, keyPath);
    const cert = this.certificate(`${at}.clientCert`, certPath, clientCert);
    let key: KeyObject;
    try {
      key = createPrivateKey(clientKey);
    } catch (err) {
      this.fail(`${at}.clientKey`, `${keyPath} is not a PEM private key: ${errorText(err)}`, err);
    }
    if (!cert.checkPrivateKey(key))
      this.fail(`${at}.clientKey`, `${keyPath} is not the key of the certificate in ${certPath}`);
    return {
      caBundle,
      clientCert,
      clientKey,
      files: { caBundle: caPath === '' ? undefined : caPath, clientCert: certPath, clientKey: keyPath },
    };
  }

  private file(field: string, path: string): Buffer {
    try {
      return readFileSync(path);
    } catch (err) {
      this.fail(field, `cannot read ${path}: ${errorText(err)}`, err);
    }
  }

  private certificate(field: string, path: string, pem: Buffer): X509Certificate {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      this.fail(field, `${path} is not a PEM certificate: ${errorText(err)}`, err);
    }
  }

  /** A mapping with only the given keys: unknown fields are refused, as kube-apiserver's strict decoder does. */
  private object(value: unknown, at: string, keys: readonly string[]): Obj {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      this.fail(at, `must be a mapping, not ${describe(value)}`);
    for (const key of Object.keys(value)) {
      if (!keys.includes(key))
        this.fail(join(at, key), `unknown field (expected ${keys.map((k) => JSON.stringify(k)).join(', ')})`);
    }
    return value as Obj;
  }

  /** A string field; absent or null reads as '' (as Go decodes it). */
  private string(obj: Obj, key: string, at: string): string {
    const value = obj[key] ?? '';
    if (typeof value !== 'string') this.fail(join(at, key), `must be a string, not ${describe(value)}`);
    return value;
  }
}

function join(at: string, key: string): string {
  return at === '' ? key : `${at}.${key}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${JSON.stringify(value)}`;
}
