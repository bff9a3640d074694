#!/usr/bin/env -S node --max-semi-space-size=1
// cyclone-sse-edge: runs the SSE edge (dist/main.js) with cyclone-sse's V8 flags (the shebang's; V8_FLAGS_BY_COMPONENT['edge'] in
// packages/common/src/runtime/v8-flags.ts is the list, a test keeps the two equal).
// Committed so that the first `npm ci` links the bin before `prepare` has compiled dist/.
const entry = new URL('../dist/main.js', import.meta.url);
try {
  const { launch } = await import('@cyclone-sse/common/v8-flags');
  await launch(entry, 'edge');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  console.error(`cyclone-sse-edge: not built yet (${err.message}); run \`npm run build\` in the repository first`);
  process.exit(1);
}
