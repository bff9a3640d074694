import { HubError, type Broker, type Logger, type PublishInput, type PublishResult } from '@cyclone-sse/common';
import { countRefusal, type PublisherMetrics } from './metrics.js';

export type Source = 'http' | 'amqp' | 'redis';

/** Every input (HTTP, AMQP, legacy Redis) goes through here into the broker's sequencer. */
export class PublishService {
  constructor(
    private readonly broker: Broker,
    private readonly metrics: PublisherMetrics,
    private readonly logger: Logger,
  ) {}

  async publish(inputs: PublishInput[], source: Source): Promise<PublishResult[]> {
    const end = this.metrics.duration.startTimer({ source });
    try {
      const results = await this.broker.publish(inputs);
      end();
      for (const r of results)
        this.metrics.publishes.inc({ source, outcome: r.duplicate ? 'duplicate' : 'ok' }, r.duplicate ? 1 : r.ids.length);
      if (this.logger.isDebugEnabled()) {
        this.logger.debug('published', { event: 'published', source, messages: inputs.length, payloads: inputs.map((i) => i.data) });
      }
      return results;
    } catch (err) {
      const refused = err instanceof HubError && err.statusCode < 500;
      const unavailable = err instanceof HubError && err.code === 'BROKER_UNAVAILABLE';
      this.metrics.publishes.inc({ source, outcome: refused ? 'rejected' : unavailable ? 'unavailable' : 'error' }, inputs.length);
      if (refused) countRefusal(this.metrics, err);
      if (err instanceof HubError) throw err;
      throw new HubError('BROKER_UNAVAILABLE', 'the message broker is unavailable; retry later', { cause: err });
    }
  }
}
