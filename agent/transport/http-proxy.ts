// Which HTTP proxy, if any, the agent crosses to reach its proxy-server: --proxy-url, else
// HTTPS_PROXY / https_proxy unless NO_PROXY / no_proxy names the server. The server is always
// spoken to over TLS, so the https variables are the ones that apply (as for Go's https URLs).
// Unlike Go's net/http, loopback addresses and "localhost" are not exempted silently: only
// NO_PROXY exempts a server.
import net from 'node:net';

export interface HttpProxy {
  /** http: plain TCP to the proxy; https: TLS to the proxy, then the tunnel inside it. */
  protocol: 'http' | 'https';
  host: string;
  port: number;
  /** Basic credentials from the URL (decoded), sent as Proxy-Authorization. */
  username: string;
  password: string;
  /** The proxy as given, without credentials, for logs. */
  display: string;
}

export class ProxyUrlError extends Error {
  override readonly name = 'ProxyUrlError';
  readonly code = 'KNP_CONFIG';
}

/** Parses http://[user:pass@]host[:port] or https://…; a bare host[:port] is http, as in Go. */
export function parseProxyUrl(text: string): HttpProxy {
  const raw = text.trim();
  if (raw === '') throw new ProxyUrlError('empty proxy URL');
  const withScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ProxyUrlError(`"${redact(raw)}" is not a URL (want http://[user:pass@]host:port)`);
  }
  const scheme = url.protocol.slice(0, -1);
  if (scheme !== 'http' && scheme !== 'https') {
    throw new ProxyUrlError(`scheme "${scheme}" is not supported (want http:// or https://)`);
  }
  if (url.hostname === '') throw new ProxyUrlError(`"${redact(raw)}" names no host`);
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw new ProxyUrlError(`"${redact(raw)}" has a path or query: a proxy URL is scheme://host:port`);
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port);
  const hostPort = `${url.hostname}:${port}`;
  return {
    protocol: scheme,
    host,
    port,
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    display: `${scheme}://${hostPort}`,
  };
}

function redact(raw: string): string {
  return raw.replace(/\/\/[^@/]*@/, '//***@');
}

/**
 * The proxy for the server at host:port: the flag when given (NO_PROXY does not apply to it),
 * else the environment's https proxy unless NO_PROXY exempts the server; undefined: direct.
 */
export function proxyForServer(
  host: string,
  port: number,
  flag: string,
  env: NodeJS.ProcessEnv,
): { proxy: HttpProxy; source: string } | undefined {
  if (flag !== '') return { proxy: parseProxyUrl(flag), source: '--proxy-url' };
  const [name, value] = firstSet(env, 'HTTPS_PROXY', 'https_proxy');
  if (value === undefined) return undefined;
  const [, noProxy] = firstSet(env, 'NO_PROXY', 'no_proxy');
  if (noProxy !== undefined && noProxyMatches(noProxy, host, port)) return undefined;
  let proxy: HttpProxy;
  try {
    proxy = parseProxyUrl(value);
  } catch (err) {
    throw new ProxyUrlError(`${name}: ${(err as Error).message}`);
  }
  return { proxy, source: name };
}

function firstSet(env: NodeJS.ProcessEnv, ...names: string[]): [string, string | undefined] {
  for (const name of names) {
    const v = env[name];
    if (v !== undefined && v !== '') return [name, v];
  }
  return ['', undefined];
}

/**
 * NO_PROXY as Go's golang.org/x/net/http/httpproxy reads it: comma-separated entries, "*" for
 * every host; an IP address or CIDR matches addresses; "example.com" matches it and its
 * subdomains, ".example.com" only subdomains; an entry with ":port" only that port.
 */
export function noProxyMatches(noProxy: string, host: string, port: number): boolean {
  const name = host
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  const ip = net.isIP(name) ? name : undefined;
  for (const part of noProxy.split(',')) {
    let entry = part.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (ip && inCidr(ip, entry)) return true;
      continue;
    }
    let entryPort: number | undefined;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m?.[1] !== undefined && m[2] !== undefined) {
      entry = m[1];
      entryPort = Number(m[2]);
    }
    entry = entry.replace(/^\[|\]$/g, '');
    if (entryPort !== undefined && entryPort !== port) continue;
    if (net.isIP(entry)) {
      if (ip && net.isIP(ip) === net.isIP(entry) && sameAddress(ip, entry)) return true;
      continue;
    }
    const domain = entry.replace(/^\*?\./, '.').replace(/\.$/, '');
    if (domain.startsWith('.')) {
      if (name.endsWith(domain)) return true;
    } else if (name === domain || name.endsWith(`.${domain}`)) {
      return true;
    }
  }
  return false;
}

function sameAddress(a: string, b: string): boolean {
  const list = new net.BlockList();
  const family = net.isIPv6(b) ? 'ipv6' : 'ipv4';
  list.addAddress(b, family);
  return list.check(a, family);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const prefix = Number(bits);
  if (base === undefined || !net.isIP(base) || !Number.isInteger(prefix)) return false;
  const family = net.isIPv6(base) ? 'ipv6' : 'ipv4';
  if ((family === 'ipv6') !== net.isIPv6(ip)) return false;
  const list = new net.BlockList();
  try {
    list.addSubnet(base, prefix, family);
  } catch {
    return false;
  }
  return list.check(ip, family);
}
