# syntax=docker/dockerfile:1
# The wasmlet node image: `docker build -t wasmlet .` from a checkout. Three stages: production
# dependencies alone, a build of dist/ with the dev dependencies, and the runtime image, which
# holds only the first two's results and runs as the unprivileged user `node` (uid 1000, the
# runAsUser of manifests/). Checked by test/unit/ship/dockerfile.test.ts.

# Production dependencies only (no TypeScript, no Biome, no pinned-Node package).
FROM node:26-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Build: compile src/ to dist/.
FROM node:26-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime.
FROM node:26-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json LICENSE ./
COPY bin ./bin
# The default --data-dir; mount a volume here (the manifests do).
RUN mkdir -p /var/lib/wasmlet && chown node:node /var/lib/wasmlet
USER node
# The kubelet API (HTTPS). /healthz is plain HTTP on 127.0.0.1:10248 unless configured otherwise.
EXPOSE 10250
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.WASMLET_HEALTHZ_PORT || 10248}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/wasmlet.js"]
CMD ["run"]
