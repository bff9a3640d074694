import type { TestContext } from 'node:test';
import { createLogger, parseConfig, type Broker, type Config } from '@cyclone-sse/common';
import { startAllInOneNode } from '@cyclone-sse/all-in-one';
import type { EdgeNode } from '@cyclone-sse/edge';

export interface TestHub {
  hub: EdgeNode;
  config: Config;
  port: number;
  base: string;
  metricsBase: string;
}

/**
 * Starts an all-in-one hub in this process on free ports (memory broker unless `broker` is
 * given) and stops it when the test ends.
 */
export async function startTestHub(t: TestContext, args: string[] = [], broker?: Broker): Promise<TestHub> {
  const outcome = await parseConfig('all-in-one', ['--port', '0', '--metrics-port', '0', ...args], {});
  if (outcome.kind !== 'config') throw new Error(`bad test config: ${JSON.stringify(outcome)}`);
  const config = outcome.config;
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'error');
  const hub = await startAllInOneNode(config, logger, { broker });
  t.after(() => hub.stop());
  return { hub, config, port: hub.port, base: `http://127.0.0.1:${hub.port}`, metricsBase: `http://127.0.0.1:${hub.metricsPort}` };
}
