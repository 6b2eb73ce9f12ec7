// Sends raw bytes on a fresh connection and collects everything until it closes.
import type net from 'node:net';

export function rawExchange(
  connectTo: () => net.Socket,
  data: Buffer | string,
  /** Gives up (closes from our side) after this long; default: wait for the server. */
  timeoutMs?: number,
): Promise<string> {
  return new Promise((resolve) => {
    const s = connectTo();
    let out = '';
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => s.destroy(), timeoutMs);
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.on('error', () => undefined);
    s.write(data);
  });
}
