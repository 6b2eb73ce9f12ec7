// Who simulated agent i is: the swarm presents these, the auth phase registers the tokens.

export function simAgentID(worker: number, index: number): string {
  return `sim-${worker}-${index}`;
}

/** agentidentifiers metadata: a host name no dial asks for, so destHost falls to default. */
export function simIdentifiers(index: number): string {
  return `host=sim-${index}`;
}

/** The ServiceAccount token agent `index` presents. */
export function simToken(index: number): string {
  return `sim-token-${index}`;
}
