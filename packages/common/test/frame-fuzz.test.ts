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
        // CR, LF, NUL break any SSE parser; VT, FF, FS-RS, U+0085, U+2028, U+2029 break splitlines() readers
        assert.ok(
          event !== undefined && (event === '' || /[\r\n\0\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/.test(event) || event.length > 255),
        );
        return;
      }
      const { events } = parseSse(frame);
      assert.equal(events.length, 1);
      assert.equal(events[0]!.id, id);
      assert.equal(events[0]!.event, event);
      assert.equal(events[0]!.data, data.replace(/\r\n|\r/g, '\n'));
    }),
    { numRuns: FUZZ_RUNS },
  );
});
