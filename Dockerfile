# syntax=docker/dockerfile:1
# cyclone-sse: one image for every binary.
#   default (CMD)            cyclone-sse            all-in-one, in-memory broker unless --redis-url
#                            (node --max-semi-space-size=1 packages/all-in-one/bin/cyclone-sse.js)
#   node --max-semi-space-size=1 packages/edge/bin/cyclone-sse-edge.js              cyclone-sse-edge
#   node --max-semi-space-size=16 packages/publisher/bin/cyclone-sse-publisher.js   cyclone-sse-publisher
# Node 24 on Debian 13 (glibc 2.41): the upstream uWebSockets.js v20.57.0 build (docs/runtime.md).
# The Helm chart (deploy/helm/cyclone-sse) overrides CMD with `args`, so tini stays PID 1.
#
#   docker build -t cyclone-sse .
#   docker run --rm -p 8888:8888 cyclone-sse
#
# deploy/helm/test/dockerfile.test.ts replays the runtime stage's install steps without Docker.

ARG NODE_IMAGE=node:24-trixie-slim

# ---- build: full install (dev dependencies for tsc), compile every workspace -------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
# Manifests first, so the dependency layer is reused while only sources change.
COPY packages/common/package.json packages/common/
COPY packages/client/package.json packages/client/
COPY packages/publisher/package.json packages/publisher/
COPY packages/edge/package.json packages/edge/
COPY packages/all-in-one/package.json packages/all-in-one/
COPY packages/testkit/package.json packages/testkit/
# --ignore-scripts: the root `prepare` (tsc -b) would run before the sources are copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
# Sources and tsconfig files of every workspace (.dockerignore drops tests, dist, node_modules).
COPY packages/ packages/
RUN npm run build

# ---- runtime: production dependencies of the shipped workspaces + compiled output ---------------
FROM ${NODE_IMAGE} AS runtime
# tini as PID 1: forwards SIGTERM to node (which drains: readiness 503, streams end with retry:)
# and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
# Every workspace manifest is needed for `npm ci` to accept the lockfile; only the shipped
# workspaces (common, client, publisher, edge, all-in-one) are installed (no testkit/playwright).
COPY package.json package-lock.json ./
COPY packages/common/package.json packages/common/
COPY packages/client/package.json packages/client/
COPY packages/publisher/package.json packages/publisher/
COPY packages/edge/package.json packages/edge/
COPY packages/all-in-one/package.json packages/all-in-one/
COPY packages/testkit/package.json packages/testkit/
# --ignore-scripts: typescript is not installed here, so the root `prepare` (tsc -b) cannot run.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
      -w packages/common -w packages/client -w packages/publisher -w packages/edge -w packages/all-in-one \
 && npm cache clean --force
COPY --from=build /src/packages/common/bin packages/common/bin
COPY --from=build /src/packages/common/dist packages/common/dist
# the browser client and demo page the edges serve at /client.js and /demo
COPY --from=build /src/packages/client/dist packages/client/dist
COPY --from=build /src/packages/client/demo packages/client/demo
COPY --from=build /src/packages/publisher/bin packages/publisher/bin
COPY --from=build /src/packages/publisher/dist packages/publisher/dist
COPY --from=build /src/packages/edge/bin packages/edge/bin
COPY --from=build /src/packages/edge/dist packages/edge/dist
COPY --from=build /src/packages/all-in-one/bin packages/all-in-one/bin
COPY --from=build /src/packages/all-in-one/dist packages/all-in-one/dist
# Keep only the uWebSockets.js binary the loader picks here (two builds, ~36 binaries installed).
RUN keep="$(node packages/common/bin/uws-binary.js)" \
 && test -f "$keep" \
 && find "$PWD/node_modules" "$PWD/packages" -name 'uws_*.node' ! -path "$keep" -delete
RUN groupadd --system --gid 10001 cyclone \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cyclone
USER 10001:10001
# 8888: subscribe (edge) / publish (publisher); 9090: /metrics, /livez, /readyz
EXPOSE 8888 9090
ENTRYPOINT ["/usr/bin/tini", "--"]
# The V8 flags differ per component (V8_FLAGS_BY_COMPONENT in packages/common/src/runtime/v8-flags.ts;
# the bin shims pass the same in their shebang, packages/all-in-one/test/bins.test.ts keeps them
# equal), so they are on each command line, not in one NODE_OPTIONS. `node packages/*/bin/x.js`
# without them still works: the shim re-runs the entry in a child node with its flags.
CMD ["node", "--max-semi-space-size=1", "packages/all-in-one/bin/cyclone-sse.js", "--listen", "0.0.0.0", "--metrics-listen", "0.0.0.0"]
