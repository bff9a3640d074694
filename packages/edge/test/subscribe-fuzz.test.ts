import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { validateChannel } from '@cyclone-sse/common';
import { FUZZ_RUNS, fuzzLines, fuzzText, onlyHubErrors } from '@cyclone-sse/testkit';
import { parseSubscribe } from '../src/routes/subscribe.js';

const OPTS = { maxQueryLength: 16384, maxChannelsPerConnection: 64, maxChannelLength: 255, tokenCookie: 't' };

test('subscribe query parser: no exception but a 4xx HubError escapes; accepted channels are valid', () => {
  const query = fc.oneof(
    fuzzText,
    fc
      .array(fc.tuple(fc.constantFrom('channels', 'lastEventId', 'token', 'x', '_'), fuzzLines), { maxLength: 70 })
      .map((kv) => kv.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')),
    fc.array(fc.string({ maxLength: 12 }), { maxLength: 80 }).map((vs) => vs.map((v) => `channels=${v}`).join('&')),
  );
  fc.assert(
    fc.property(
      query,
      fc.dictionary(fc.constantFrom('last-event-id', 'x-requested-with', 'authorization', 'cookie'), fuzzText),
      (q, headers) => {
        const r = onlyHubErrors(() => parseSubscribe({ method: 'GET', url: '/', query: q, headers }, OPTS));
        if (r === undefined) return;
        assert.ok(r.channels.length >= 1 && r.channels.length <= 64);
        for (const ch of r.channels) assert.equal(validateChannel(ch), ch);
      },
    ),
    { numRuns: FUZZ_RUNS },
  );
});
