# syntax=docker/dockerfile:1
#
# cdc-replicator image: `docker build -t cdc-replicator:0.1.0 .`
# The same image runs every command: `run` (the daemon), `prepare`, `validate`, ...
# Base images are pinned to exact versions so a rebuild of a release tag is the
# same software; bump them deliberately (test/integration/deploy checks the pins).
# Both are build arguments, for machines that reach no image registry:
# scripts/docker-engine.sh passes a locally made Debian + Node.js 20 image
# (docs/DOCKER.md). Without them the build is exactly the upstream one.
ARG BUILD_IMAGE=node:20.20.2-bookworm-slim
ARG RUNTIME_IMAGE=node:20.20.2-bookworm-slim

# --- build: dev dependencies and the TypeScript compiler, discarded afterwards ---
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script to build or run, and a
# slim image has no compiler for the optional native watcher jest pulls in.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and the compiled JavaScript only ---
FROM ${RUNTIME_IMAGE} AS runtime
# CDC_HEALTHCHECK_URL is where HEALTHCHECK asks: change it together with metrics.port.
ENV NODE_ENV=production \
    CDC_HEALTHCHECK_URL=http://127.0.0.1:9464/healthz
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force
COPY --from=build /src/dist ./dist
# The package's bin entry, as `npm install -g` would link it.
RUN chmod 0755 dist/cli/main.js \
    && ln -s /app/dist/cli/main.js /usr/local/bin/cdc-replicator
# The base image's unprivileged `node` user, by number so Kubernetes'
# runAsNonRoot can verify it without resolving names.
USER 1000:1000
EXPOSE 9464
# /healthz answers while the process is alive (readiness is /readyz, for
# orchestrators that route traffic). Node's own fetch: the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch(process.env.CDC_HEALTHCHECK_URL, { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["cdc-replicator"]
CMD ["--help"]
