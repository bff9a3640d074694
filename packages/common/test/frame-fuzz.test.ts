import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeFrame } from '@cyclone-sse/common';
import { FUZZ_RUNS, fuzzLines, fuzzText, onlyHubErrors, parseSse } from '@cyclone-sse/testkit';

test('frame codec: every frame parses back to its input (line breaks normalised), or the event is refused', () => {
  fc.assert(
    fc.property(fuzzLines, fc.option(fuzzText, { nil: undefined }), fc.nat(), (data, event, seq) => {
      const id = `abc-${seq}`;
      const frame = onlyHubErrors(() => encodeFrame(id, data, event));
      if (frame === undefined) {
        assert.ok(event !== undefined && (event === '' || /[\r\n\0]/.test(event) || event.length > 255));
        return;
      }
      const { events } = parseSse(frame as string);
      assert.equal(events.length, 1);
      assert.equal(events[0]!.id, id);
      assert.equal(events[0]!.event, event);
      assert.equal(events[0]!.data, data.replace(/\r\n|\r/g, '\n'));
    }),
    { numRuns: FUZZ_RUNS },
  );
});
