# syntax=docker/dockerfile:1
# The example app (example/server.ts) that k8s/ deploys: docker build -t fastify-wsc:0.1.0 .
# Listens on 8080 (/ws, /health, /ready, /api) and 8081 (/metrics); configured by env vars
# (docs/configuration.md) or the config.yaml that WSC_CONFIG names.

ARG NODE_VERSION=20.20

# Build: compile lib/, plugins/, client/ and example/ to dist/ with the dev dependencies (TypeScript).
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY lib ./lib
COPY plugins ./plugins
COPY client ./client
COPY example ./example
RUN npm run build

# Runtime: production dependencies and dist/ only, as the unprivileged `node` user of the base image.
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# package.json stays: the example imports `fastify-wsc` through the package's own exports.
COPY --from=build /app/dist ./dist
# Numeric, so that Kubernetes' runAsNonRoot can verify it (uid 1000 is `node` in the base image).
USER 1000:1000
EXPOSE 8080 8081
# Exec form: node is PID 1 and receives SIGTERM itself, which starts the drain.
CMD ["node", "dist/example/server.js"]
