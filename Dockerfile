# syntax=docker/dockerfile:1
# cyclone-sse: one image for every binary.
#   default (CMD)            cyclone-sse            all-in-one, in-memory broker unless --redis-url
#   node packages/edge/dist/main.js           cyclone-sse-edge
#   node packages/publisher/dist/main.js      cyclone-sse-publisher
# The Helm chart (deploy/helm/cyclone-sse) overrides CMD with `args`, so tini stays PID 1.
#
#   docker build -t cyclone-sse .
#   docker run --rm -p 8888:8888 cyclone-sse
#
# deploy/helm/test/dockerfile.test.ts replays the runtime stage's install steps without Docker.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: full install (dev dependencies for tsc), compile every workspace -------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
# Manifests first, so the dependency layer is reused while only sources change.
COPY packages/common/package.json packages/common/
COPY packages/client/package.json packages/client/
COPY packages/publisher/package.json packages/publisher/
COPY packages/edge/package.json packages/edge/
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
# A 1 MiB young-generation semi-space: an edge holds many long-lived connections; V8's default
# (up to 16 MiB) mostly keeps connect-storm garbage resident. `npm run bench` measured ~1/3 less
# RSS per connection at no visible CPU cost (docs/benchmarks.md).
ENV NODE_OPTIONS=--max-semi-space-size=1
WORKDIR /app
# Every workspace manifest is needed for `npm ci` to accept the lockfile; only the shipped
# workspaces (common, client, publisher, edge) are installed (no testkit/playwright).
COPY package.json package-lock.json ./
COPY packages/common/package.json packages/common/
COPY packages/client/package.json packages/client/
COPY packages/publisher/package.json packages/publisher/
COPY packages/edge/package.json packages/edge/
COPY packages/testkit/package.json packages/testkit/
# --ignore-scripts: typescript is not installed here, so the root `prepare` (tsc -b) cannot run.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
      -w packages/common -w packages/client -w packages/publisher -w packages/edge \
 && npm cache clean --force
# Keep only the uWebSockets.js binary for this platform and Node ABI (the package ships ~18).
RUN keep="uws_$(node -p 'process.platform + "_" + process.arch + "_" + process.versions.modules').node" \
 && test -f "node_modules/uWebSockets.js/binaries/$keep" \
 && find node_modules/uWebSockets.js/binaries -name 'uws_*.node' ! -name "$keep" -delete
COPY --from=build /src/packages/common/dist packages/common/dist
# the browser client and demo page the edges serve at /client.js and /demo
COPY --from=build /src/packages/client/dist packages/client/dist
COPY --from=build /src/packages/client/demo packages/client/demo
COPY --from=build /src/packages/publisher/dist packages/publisher/dist
COPY --from=build /src/packages/edge/dist packages/edge/dist
RUN groupadd --system --gid 10001 cyclone \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cyclone
USER 10001:10001
# 8888: subscribe (edge) / publish (publisher); 9090: /metrics, /livez, /readyz
EXPOSE 8888 9090
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "packages/edge/dist/all-in-one.js", "--listen", "0.0.0.0", "--metrics-listen", "0.0.0.0"]
