// --proxy-strategies: the ordered list of ways the server chooses an agent for a dial.
//   default      any ready agent (the least loaded; ties at random)
//   destHost     the agents whose host/ipv4/ipv6 identifier equals the dial's host, or whose
//                cidr identifier contains it (upstream parses cidr but never routes by it)
//   defaultRoute the agents that declared default-route=true
export const STRATEGIES = ['default', 'destHost', 'defaultRoute'] as const;
export type ProxyStrategy = (typeof STRATEGIES)[number];

export class StrategyError extends Error {
  override readonly name = 'StrategyError';
}

export function parseProxyStrategies(text: string): ProxyStrategy[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new StrategyError('--proxy-strategies cannot be empty');
  const out: ProxyStrategy[] = [];
  for (const name of names) {
    const known = STRATEGIES.find((s) => s === name);
    if (!known)
      throw new StrategyError(
        `invalid proxy strategies: unknown strategy "${name}" (want ${STRATEGIES.join(', ')})`,
      );
    if (out.includes(known)) throw new StrategyError(`--proxy-strategies lists "${name}" twice`);
    out.push(known);
  }
  return out;
}
