import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FUZZ_RUNS, fuzzLines, fuzzText, onlyHubErrors } from '@cyclone-sse/testkit';
import { parseForm, parseJson } from '@cyclone-sse/publisher';

test('publish body parsers: JSON and form never throw anything but a 4xx HubError', () => {
  const limits = { maxChannelLength: 255, maxBatch: 50, maxJsonDepth: 16, maxChannelsPerPublish: 64 };
  fc.assert(
    fc.property(
      fc.oneof(
        fc.jsonValue({ maxDepth: 20 }).map((v) => JSON.stringify(v) ?? 'null'),
        fuzzText,
        fc.constantFrom('[{"channel":"a","data":1}]', '{"channels":[],"data":1}'),
      ),
      (body) => {
        const r = onlyHubErrors(() => parseJson(Buffer.from(body), limits));
        if (r === undefined) return;
        for (const input of r.inputs) {
          assert.ok(input.channels.length >= 1);
          assert.equal(typeof input.data, 'string');
        }
      },
    ),
    { numRuns: FUZZ_RUNS },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('channel', 'message', 'event', 'id', 'key'), fuzzLines), { maxLength: 10 }), (fields) => {
      onlyHubErrors(() => parseForm(new URLSearchParams(fields), limits));
    }),
    { numRuns: FUZZ_RUNS },
  );
});
