// A Unix-socket relay to another Unix socket that can be frozen: once frozen, bytes stop moving
// both ways while both connections stay open, as through a hung middlebox. For keepalive tests.
import net from 'node:net';

export interface FreezableRelay {
  /** Stops moving bytes, both ways, on every connection. */
  freeze(): void;
  close(): Promise<void>;
}

export async function freezableRelay(target: string, path: string): Promise<FreezableRelay> {
  let frozen = false;
  const relay = net.createServer((inbound) => {
    const outbound = net.connect(target);
    inbound.on('data', (d) => frozen || outbound.write(d));
    outbound.on('data', (d) => frozen || inbound.write(d));
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(path, resolve));
  return {
    freeze: () => {
      frozen = true;
    },
    close: () => new Promise<void>((resolve) => relay.close(() => resolve())),
  };
}
