// Does a node's kubelet port accept a TCP connection through the tunnel? With the node's own
// agent gone, the proxy-server routes the dial to another agent, which reaches the kubelet
// when the machine still runs. Only an answer about the target counts: a failure to reach
// the proxy-server itself proves nothing about the node and is thrown.
import { ErrorCode, TunnelError } from '../../../../common/errors.js';
import type { EgressDialer } from '../../../egress-selector/egress-dialer-types.js';

/** What an agent answers when the target does not accept, or when no agent could try. */
const TARGET_FAILURES = new Set<string>([ErrorCode.DIAL_FAILED, ErrorCode.DIAL_TIMEOUT, ErrorCode.NO_AGENT]);

/** True when host:port accepted a connection; false when the dial to it failed. */
export async function kubeletAnswers(
  egress: EgressDialer,
  host: string,
  port: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  try {
    const socket = await egress.dial(host, port, { signal, timeoutMs });
    socket.destroy();
    return true;
  } catch (err) {
    // The egress dialer's errors are TunnelErrors (a Direct selection's too: DIAL_FAILED).
    if (signal.aborted || !(err instanceof TunnelError) || !TARGET_FAILURES.has(err.code)) throw err;
    return false;
  }
}
