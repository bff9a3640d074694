/**
 * Where the shared test services are. One environment variable each, read in one place:
 * CYCLONE_TEST_REDIS_URL (default the local Redis on 6379) and CYCLONE_TEST_AMQP_URL (default the
 * local RabbitMQ, guest/guest on 5672). Tests that kill or inspect a Redis start their own with
 * `startRedis()` instead.
 */
export function testRedisUrl(): string {
  return process.env.CYCLONE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
}

export function testAmqpUrl(): string {
  return process.env.CYCLONE_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
}
