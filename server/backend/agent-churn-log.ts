// Agents joining and leaving, logged per agent at debug (-v=2) and summed up at info once per
// period when anything changed: a restart of a server with 10,000 agents is one line of what
// happened, not 20,000 lines of the same thing.
import type { Logger } from '../../common/log.js';

/** Distinct disconnect reasons kept per period; the rest are counted as "other". */
const MAX_REASONS = 8;

export class AgentChurnLog {
  private joined = 0;
  private left = 0;
  private reasons = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    /** How many agents are connected now, for the summary. */
    private readonly connected: () => number,
    private readonly periodMs = 10_000,
  ) {}

  agentJoined(agentLog: Logger, fields: Record<string, unknown>): void {
    agentLog.debug(fields, 'agent connected');
    this.joined++;
    this.arm();
  }

  agentLeft(agentLog: Logger, reason: string, fields: Record<string, unknown>): void {
    agentLog.debug({ reason, ...fields }, 'agent disconnected');
    this.left++;
    const key = this.reasons.has(reason) || this.reasons.size < MAX_REASONS ? reason : 'other';
    this.reasons.set(key, (this.reasons.get(key) ?? 0) + 1);
    this.arm();
  }

  /** Logs the summary now (also at stop, so the last period is not lost). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.joined === 0 && this.left === 0) return;
    this.log.info(
      {
        connected: this.connected(),
        joined: this.joined,
        left: this.left,
        ...(this.reasons.size > 0 ? { leftBecause: Object.fromEntries(this.reasons) } : {}),
        periodSeconds: this.periodMs / 1000,
      },
      'agents joined and left',
    );
    this.joined = 0;
    this.left = 0;
    this.reasons = new Map();
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.periodMs);
    this.timer.unref();
  }
}
