// HTTP/1.1 CONNECT through the proxy-server, over its Unix socket or mTLS TCP. On 200 the
// socket itself is the tunnel.
import net from 'node:net';
import tls from 'node:tls';
import { ErrorCode, TunnelError, type ErrorCodeValue } from '../../common/errors.js';
import type { DialOptions, FrontendAddress } from './frontend-address.js';
import { watchDial } from './dial-watch.js';

const MAX_RESPONSE_HEAD = 16 * 1024;

function codeForStatus(status: number): ErrorCodeValue {
  if (status === 503) return ErrorCode.NO_AGENT;
  if (status === 504) return ErrorCode.DIAL_TIMEOUT;
  if (status === 400) return ErrorCode.BAD_TARGET;
  if (status === 403) return ErrorCode.DESTINATION_DENIED;
  if (status === 429) return ErrorCode.LIMIT;
  return ErrorCode.DIAL_FAILED;
}

export class ConnectRefusedError extends TunnelError {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(codeForStatus(status), `proxy answered ${status}: ${body.trim()}`);
  }
}

function open(frontend: FrontendAddress): net.Socket {
  if (frontend.uds) return net.connect({ path: frontend.uds, allowHalfOpen: true });
  const t = frontend.tls;
  if (!t || frontend.port === undefined)
    throw new TunnelError(ErrorCode.CONFIG, 'a TCP frontend needs host, port and tls');
  return tls.connect({
    host: frontend.host ?? '127.0.0.1',
    port: frontend.port,
    ca: t.ca,
    cert: t.cert,
    key: t.key,
    servername: t.servername,
  });
}

export function dialHttpConnect(
  frontend: FrontendAddress,
  address: string,
  options: DialOptions = {},
): Promise<net.Socket> {
  const socket = open(frontend);
  socket.setNoDelay(true);
  return new Promise<net.Socket>((resolve, reject) => {
    let head = Buffer.alloc(0);
    let status = 0;
    let settled = false;
    const watch = watchDial(address, options, fail);
    const cleanup = () => {
      settled = true;
      watch.stop();
      socket.removeListener('data', onData);
      socket.removeListener('error', fail);
      socket.removeListener('end', onEnd);
    };
    function fail(err: Error) {
      if (settled) return;
      cleanup();
      socket.destroy();
      reject(err);
    }
    const onEnd = () => {
      if (status !== 0) {
        const body = head.subarray(head.indexOf('\r\n\r\n') + 4).toString();
        fail(new ConnectRefusedError(status, body));
      } else fail(new TunnelError(ErrorCode.TUNNEL_CLOSED, 'proxy closed the connection before answering'));
    };
    function onData(chunk: Buffer) {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD)
          fail(new TunnelError(ErrorCode.PROTOCOL, 'proxy response head too large'));
        return;
      }
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head.toString('latin1', 0, Math.min(end, 64)));
      if (!m) {
        fail(
          new TunnelError(
            ErrorCode.PROTOCOL,
            `not an HTTP response: ${JSON.stringify(head.toString('latin1', 0, 40))}`,
          ),
        );
        return;
      }
      status = Number(m[1]);
      if (status === 200) {
        const rest = head.subarray(end + 4);
        cleanup();
        if (rest.length > 0) socket.unshift(rest);
        resolve(socket);
      }
      // Otherwise wait for the body, until the proxy closes.
    }
    socket.on('data', onData);
    socket.on('error', fail);
    socket.on('end', onEnd);
    if (watch.abortedAlready()) return;
    socket.write(
      `CONNECT ${address} HTTP/1.1\r\nHost: ${address}\r\nUser-Agent: konnectivity-ts-dialer\r\n\r\n`,
    );
  });
}
