// proxy-agent binary.
import { runMain } from '../common/main-runner.js';
import { agentConfigFromFlags, agentFlags } from './options.js';
import { ProxyAgent } from './proxy-agent.js';

await runMain('proxy-agent', agentFlags, async (parsed, log) => {
  const agent = new ProxyAgent(agentConfigFromFlags(parsed.values, log));
  await agent.start();
  return agent;
});
