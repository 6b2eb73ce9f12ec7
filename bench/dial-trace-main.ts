// `node dist/bench/dial-trace-main.js [count]`: the dial trace table alone (a minute, not the
// whole bench), to look at one change. `npm run bench` prints the same table.
import { startTarget } from './helpers.js';
import { dialTraceTable, traceSequentialDials, type DialTraceResult } from './dial-trace.js';

const count = Number(process.argv[2] ?? 300);
const target = await startTarget();
try {
  const results: DialTraceResult[] = [];
  for (const mode of ['grpc', 'http-connect'] as const) {
    results.push(await traceSequentialDials(mode, target.address, count));
  }
  process.stdout.write(dialTraceTable(results) + '\n');
} finally {
  target.stop();
}
process.exit(0);
