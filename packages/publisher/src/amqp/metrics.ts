import { Counter, Gauge, type Registry } from '@cyclone-sse/common';

export type AmqpMetrics = ReturnType<typeof createAmqpMetrics>;

/** Why a delivery was dead-lettered: the HubError code of the failed validation. */
export const POISON_REASONS = [
  'INVALID_CHANNEL',
  'PAYLOAD_TOO_LARGE',
  'INVALID_BODY',
  'INVALID_EVENT',
  'INVALID_ID',
  'RESERVED_EVENT',
  'INVALID_DATA',
] as const;

/** Metrics of the AMQP input; every series exists (at zero) from the start. */
export function createAmqpMetrics(registry: Registry) {
  const p = 'cyclone_sse_publisher_amqp_';
  const registers = [registry];
  const deadLetters = new Counter({
    name: `${p}dead_letters_total`,
    help: 'deliveries rejected to the dead-letter exchange (poison), by reason',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of POISON_REASONS) deadLetters.inc({ reason }, 0);
  return {
    acks: new Counter({ name: `${p}acks_total`, help: 'deliveries acknowledged after the broker sequenced them', registers }),
    deadLetters,
    redeliveries: new Counter({ name: `${p}redeliveries_total`, help: 'deliveries received with the redelivered flag', registers }),
    reconnects: new Counter({ name: `${p}reconnects_total`, help: 'reconnect attempts after a lost or failed AMQP connection', registers }),
    connected: new Gauge({ name: `${p}connected`, help: '1 while connected to RabbitMQ and consuming', registers }),
    bindings: new Gauge({ name: `${p}bindings`, help: 'bindings of the publish queue this process maintains', registers }),
  };
}
