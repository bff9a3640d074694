import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HubError, encodeFrame, validateChannel } from '@cyclone-sse/common';
import { parseForm, parseJson } from '@cyclone-sse/publisher';
import { parseSse } from '@cyclone-sse/testkit';
import { parseSubscribe } from '../src/routes/subscribe.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const onlyHubErrors = (fn: () => unknown) => {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof HubError) || err.statusCode >= 500) throw err;
    return undefined;
  }
};
const text = fc.string({ unit: 'binary', maxLength: 300 });
const lineish = fc.oneof(text, fc.array(fc.oneof(text, fc.constantFrom('\n', '\r', '\r\n', 'id: 1', 'event: x', ':', 'data: y')), { maxLength: 20 }).map((a) => a.join('')));

test('frame codec: every frame parses back to its input (line breaks normalised), or the event is refused', () => {
  fc.assert(
    fc.property(lineish, fc.option(text, { nil: undefined }), fc.nat(), (data, event, seq) => {
      const id = `abc-${seq}`;
      const frame = onlyHubErrors(() => encodeFrame(id, data, event));
      if (frame === undefined) {
        // CR, LF, NUL break any SSE parser; VT, FF, FS-RS, U+0085, U+2028, U+2029 break splitlines() readers
        assert.ok(event !== undefined && (event === '' || /[\r\n\0\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/.test(event) || event.length > 255));
        return;
      }
      const { events } = parseSse(frame as string);
      assert.equal(events.length, 1);
      assert.equal(events[0]!.id, id);
      assert.equal(events[0]!.event, event);
      assert.equal(events[0]!.data, data.replace(/\r\n|\r/g, '\n'));
    }),
    { numRuns: RUNS },
  );
});

const OPTS = { maxQueryLength: 16384, maxChannelsPerConnection: 64, maxChannelLength: 255, tokenCookie: 't' };

test('subscribe query parser: no exception but a 4xx HubError escapes; accepted channels are valid', () => {
  const query = fc.oneof(
    text,
    fc.array(fc.tuple(fc.constantFrom('channels', 'lastEventId', 'token', 'x', '_'), lineish), { maxLength: 70 }).map((kv) => kv.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')),
    fc.array(fc.string({ maxLength: 12 }), { maxLength: 80 }).map((vs) => vs.map((v) => `channels=${v}`).join('&')),
  );
  fc.assert(
    fc.property(query, fc.dictionary(fc.constantFrom('last-event-id', 'x-requested-with', 'authorization', 'cookie'), text), (q, headers) => {
      const r = onlyHubErrors(() => parseSubscribe({ method: 'GET', url: '/', query: q, headers }, OPTS));
      if (r === undefined) return;
      const req = r as ReturnType<typeof parseSubscribe>;
      assert.ok(req.channels.length >= 1 && req.channels.length <= 64);
      for (const ch of req.channels) assert.equal(validateChannel(ch), ch);
    }),
    { numRuns: RUNS },
  );
});

test('publish body parsers: JSON and form never throw anything but a 4xx HubError', () => {
  const limits = { maxChannelLength: 255, maxBatch: 50, maxJsonDepth: 16, maxChannelsPerPublish: 64 };
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue({ maxDepth: 20 }).map((v) => JSON.stringify(v) ?? 'null'), text, fc.constantFrom('[{"channel":"a","data":1}]', '{"channels":[],"data":1}')), (body) => {
      const r = onlyHubErrors(() => parseJson(Buffer.from(body), limits));
      if (r === undefined) return;
      for (const input of (r as ReturnType<typeof parseJson>).inputs) {
        assert.ok(input.channels.length >= 1);
        assert.equal(typeof input.data, 'string');
      }
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('channel', 'message', 'event', 'id', 'key'), lineish), { maxLength: 10 }), (fields) => {
      onlyHubErrors(() => parseForm(new URLSearchParams(fields), limits));
    }),
    { numRuns: RUNS },
  );
});
