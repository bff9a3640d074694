import { MemoryBroker, type HistoryOptions } from '../src/index.js';
import { brokerContract } from './broker.contract.js';

brokerContract('MemoryBroker', async (options: HistoryOptions) => {
  // A fake clock: expiry is a jump past the TTL, not a wait.
  let now = Date.now();
  const broker = new MemoryBroker(options, () => now);
  return {
    broker,
    cleanup: () => broker.close(),
    async expireHistory() {
      now += options.historyTtlSeconds * 1000 + 1;
    },
  };
});
