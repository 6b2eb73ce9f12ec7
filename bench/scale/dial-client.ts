// The dial row's client in a process of its own: the load generator's heap (thousands of
// simulated agents) pauses for GC, and a client inside it would measure those pauses instead
// of the server's. Prints one JSON line with the DialFigures.
// Usage: node dial-client.js <frontend uds> <host:port> <count> <deadline, epoch ms>
import { sequentialDials } from './sequential-dials.js';

const [uds, address, count, deadline] = process.argv.slice(2);
if (!uds || !address || !count || !deadline) {
  process.stderr.write('usage: dial-client.js <frontend uds> <host:port> <count> <deadline epoch ms>\n');
  process.exit(2);
}
const figures = await sequentialDials({ protocol: 'grpc', uds }, address, Number(count), Number(deadline));
process.stdout.write(`${JSON.stringify(figures)}\n`);
