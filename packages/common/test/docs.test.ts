import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withOptionsTable } from '@cyclone-sse/common';

for (const file of ['README.md', 'docs/configuration.md']) {
  test(`${file} carries the options table generated from the option table`, () => {
    const text = readFileSync(fileURLToPath(new URL(`../../../${file}`, import.meta.url)), 'utf8');
    assert.equal(text, withOptionsTable(text), `run npm run docs:options to regenerate ${file}`);
  });
}
