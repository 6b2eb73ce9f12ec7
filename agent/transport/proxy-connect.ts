// An HTTP CONNECT tunnel through a forward proxy (squid, a corporate proxy) to the
// proxy-server's agent port. The agent then runs TLS to the server inside it, whichever
// transport it speaks: the proxy sees only the CONNECT line and ciphertext.
import net from 'node:net';
import tls from 'node:tls';
import type { HttpProxy } from './http-proxy.js';

/** A proxy response head larger than this is refused (no proxy needs more). */
const MAX_RESPONSE_HEAD = 16 * 1024;

/** The proxy answered the CONNECT with something other than 2xx, or not at all. */
export class ProxyConnectError extends Error {
  override readonly name = 'ProxyConnectError';
  readonly code = 'KNP_PROXY';
  constructor(
    message: string,
    /** The proxy's status line, when it sent one (e.g. "HTTP/1.1 407 Proxy Authentication Required"). */
    readonly statusLine?: string,
  ) {
    super(message);
  }
}

export interface ProxyConnectOptions {
  /** Trusted CAs for an https:// proxy; undefined: the system's. */
  ca?: (string | Buffer)[] | undefined;
  timeoutMs: number;
}

function authority(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** The CONNECT request for host:port (Basic credentials when the proxy URL has them). */
export function connectRequest(proxy: HttpProxy, host: string, port: number): string {
  const target = authority(host, port);
  const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`, 'User-Agent: konnectivity-ts-agent'];
  if (proxy.username !== '' || proxy.password !== '') {
    const basic = Buffer.from(`${proxy.username}:${proxy.password}`).toString('base64');
    lines.push(`Proxy-Authorization: Basic ${basic}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Resolves with a socket to host:port through the proxy, ready for the TLS handshake. */
export function connectThroughProxy(
  proxy: HttpProxy,
  host: string,
  port: number,
  options: ProxyConnectOptions,
): Promise<net.Socket> {
  const where = `proxy ${proxy.display}`;
  const target = authority(host, port);
  return new Promise<net.Socket>((resolve, reject) => {
    const socket: net.Socket =
      proxy.protocol === 'https'
        ? tls.connect({
            host: proxy.host,
            port: proxy.port,
            ...(net.isIP(proxy.host) ? {} : { servername: proxy.host }),
            ...(options.ca ? { ca: options.ca } : {}),
            ALPNProtocols: ['http/1.1'],
          })
        : net.connect({ host: proxy.host, port: proxy.port });
    let head: Buffer = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(() => {
      fail(new ProxyConnectError(`${where}: no answer to CONNECT ${target} within ${options.timeoutMs}ms`));
    }, options.timeoutMs);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD)
          fail(new ProxyConnectError(`${where}: response head to CONNECT over ${MAX_RESPONSE_HEAD} bytes`));
        return;
      }
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine)?.[1];
      if (status === undefined) {
        fail(
          new ProxyConnectError(
            `${where}: not an HTTP answer to CONNECT ${target}: "${statusLine.slice(0, 80)}"`,
          ),
        );
        return;
      }
      if (!status.startsWith('2')) {
        fail(new ProxyConnectError(`${where} refused CONNECT ${target}: ${statusLine}`, statusLine));
        return;
      }
      if (head.length > end + 4) {
        // The server speaks only after our TLS hello: these bytes are the proxy's doing.
        fail(new ProxyConnectError(`${where} sent bytes after its answer to CONNECT ${target}`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      // TLS to the server takes the socket over at once (same tick): its errors surface there.
      socket.on('error', () => undefined);
      resolve(socket);
    };
    const onError = (err: Error) => {
      fail(new ProxyConnectError(`${where}: ${err.message}`));
    };
    const onClose = () => {
      fail(new ProxyConnectError(`${where} closed the connection before answering CONNECT ${target}`));
    };
    socket.once(proxy.protocol === 'https' ? 'secureConnect' : 'connect', () => {
      socket.write(connectRequest(proxy, host, port));
    });
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}
