// The deadline and the AbortSignal of one pending dial, for both dialers: `giveUp` hears why
// the caller stopped waiting; `stop()` when the dial settles.
import { ErrorCode, TunnelError } from '../../common/errors.js';
import { DEFAULT_DIAL_TIMEOUT_MS, type DialOptions } from './frontend-address.js';

export interface DialWatch {
  stop(): void;
  /** Gives up at once if the signal was aborted before the dial began; true then. */
  abortedAlready(): boolean;
}

export function watchDial(
  address: string,
  options: DialOptions,
  giveUp: (err: TunnelError) => void,
): DialWatch {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const timer = setTimeout(() => {
    giveUp(new TunnelError(ErrorCode.DIAL_TIMEOUT, `dial to ${address} timed out after ${timeoutMs}ms`));
  }, timeoutMs);
  const onAbort = () => {
    giveUp(new TunnelError(ErrorCode.DIAL_CANCELLED, `dial to ${address} aborted`));
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  return {
    stop: () => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    },
    abortedAlready: () => {
      if (!options.signal?.aborted) return false;
      onAbort();
      return true;
    },
  };
}
