import assert from 'node:assert/strict';
import { httpRequest, parseMetrics } from './http.js';

/** GETs `<metricsBase>/metrics` (asserting 200 and the Prometheus text type) and parses it into `name{labels}` → value. */
export async function scrapeMetrics(metricsBase: string): Promise<Map<string, number>> {
  const r = await httpRequest(`${metricsBase}/metrics`);
  assert.equal(r.status, 200, `GET ${metricsBase}/metrics`);
  assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
  return parseMetrics(r.text);
}

/**
 * One sample, named as exposed (`name{label="v",…}` with the labels in exposition order);
 * `missing` (NaN unless given) when the process does not export it.
 */
export async function scrapeMetric(metricsBase: string, name: string, missing = NaN): Promise<number> {
  return (await scrapeMetrics(metricsBase)).get(name) ?? missing;
}
