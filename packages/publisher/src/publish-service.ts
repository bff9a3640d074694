import { HubError, type Broker, type Logger, type PublishInput, type PublishResult } from '@cyclone-sse/common';
import { countRefusal, OUTCOMES, SOURCES, type PublisherMetrics } from './metrics.js';

export type Source = 'http' | 'amqp' | 'redis';
type Outcome = (typeof OUTCOMES)[number];

/** Every input (HTTP, AMQP, legacy Redis) goes through here into the broker's sequencer. */
export class PublishService {
  // The metric children of every (source, outcome), looked up once: a labelled inc() hashes its
  // labels on every call, and this runs once per publish.
  private readonly counters: Record<Source, Record<Outcome, { inc(n?: number): void }>>;
  private readonly durations: Record<Source, { observe(seconds: number): void }>;
  /** The logger's level when `debug` was last computed (winston's check allocates per call). */
  private debugLevel: string | undefined;
  private debug = false;

  constructor(
    private readonly broker: Broker,
    private readonly metrics: PublisherMetrics,
    private readonly logger: Logger,
  ) {
    const counters = {} as Record<Source, Record<Outcome, { inc(n?: number): void }>>;
    const durations = {} as Record<Source, { observe(seconds: number): void }>;
    for (const source of SOURCES) {
      counters[source] = {} as Record<Outcome, { inc(n?: number): void }>;
      for (const outcome of OUTCOMES) counters[source][outcome] = metrics.publishes.labels(source, outcome);
      durations[source] = metrics.duration.labels(source);
    }
    this.counters = counters;
    this.durations = durations;
  }

  async publish(inputs: PublishInput[], source: Source): Promise<PublishResult[]> {
    const started = performance.now();
    const count = this.counters[source];
    try {
      const results = await this.broker.publish(inputs);
      this.durations[source].observe((performance.now() - started) / 1000);
      for (const r of results) {
        if (r.duplicate) count.duplicate.inc(1);
        else count.ok.inc(r.ids.length);
      }
      if (this.debugEnabled()) {
        this.logger.debug('published', { event: 'published', source, messages: inputs.length, payloads: inputs.map((i) => i.data) });
      }
      return results;
    } catch (err) {
      const refused = err instanceof HubError && err.statusCode < 500;
      const unavailable = err instanceof HubError && err.code === 'BROKER_UNAVAILABLE';
      count[refused ? 'rejected' : unavailable ? 'unavailable' : 'error'].inc(inputs.length);
      if (refused) countRefusal(this.metrics, err);
      if (err instanceof HubError) throw err;
      throw new HubError('BROKER_UNAVAILABLE', 'the message broker is unavailable; retry later', { cause: err });
    }
  }

  private debugEnabled(): boolean {
    const level = this.logger.level;
    if (level !== this.debugLevel) {
      this.debugLevel = level;
      this.debug = this.logger.isDebugEnabled();
    }
    return this.debug;
  }
}
