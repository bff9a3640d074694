#!/usr/bin/env node
// Prints the absolute path of the uWebSockets.js binary the loader picks on this machine (the
// Dockerfile keeps that one and deletes the others); exits 1, with the reason, when none loads.
import { uwsBuild, uwsLoadError } from '../dist/http/uws-loader.js';

const build = uwsBuild();
if (!build) {
  console.error(uwsLoadError());
  process.exit(1);
}
console.log(build.binary);
