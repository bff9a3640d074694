#!/usr/bin/env node
// Prints the client's size as a bundler would ship it: esbuild-minified ESM, gzip -9.
// esbuild comes with tsx (a root devDependency).
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url));
const out = await build({
  entryPoints: [entry],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  write: false,
  logLevel: 'silent',
});
const min = out.outputFiles[0].contents;
console.log(`@cyclone-sse/client: ${min.length} bytes minified, ${gzipSync(min, { level: 9 }).length} bytes minified+gzipped`);
