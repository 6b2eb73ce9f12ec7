// Sends raw bytes on a fresh connection and collects everything until it closes.
import type net from 'node:net';

export function rawExchange(connectTo: () => net.Socket, data: Buffer | string): Promise<string> {
  return new Promise((resolve) => {
    const s = connectTo();
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('close', () => resolve(out));
    s.on('error', () => undefined);
    s.write(data);
  });
}
