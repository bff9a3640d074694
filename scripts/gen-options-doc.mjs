#!/usr/bin/env node
// Regenerates the options table in README.md and docs/configuration.md from the option table.
import { readFileSync, writeFileSync } from 'node:fs';
import { withOptionsTable } from '@cyclone-sse/common';

for (const file of ['README.md', 'docs/configuration.md']) {
  const before = readFileSync(file, 'utf8');
  const after = withOptionsTable(before);
  if (after !== before) {
    writeFileSync(file, after);
    console.log(`updated ${file}`);
  }
}
