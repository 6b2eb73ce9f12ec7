# konnectivity-ts: one image with proxy-server, proxy-agent and konnectivity-ccm.
#
#   docker build -t konnectivity-ts:0.1.0 .                          # default target: proxy-server
#   docker build --target proxy-agent -t konnectivity-ts-agent:0.1.0 .
#
# Every target holds all three programs at /proxy-server, /proxy-agent and /konnectivity-ccm,
# the paths upstream's images use, so manifests that say `command: ["/proxy-agent"]` work
# unchanged; the targets differ only in ENTRYPOINT, for manifests that give args alone.
# The deploy/ manifests set `command` and use one image for all three.

# ---- build: every dependency, then TypeScript compiled to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: `prepare` (the build) runs below, once the sources are in.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY proto/ proto/
COPY common/ common/
COPY server/ server/
COPY agent/ agent/
COPY ccm-integration/ ccm-integration/
COPY quickstart/ quickstart/
RUN npm run build

# ---- runtime: production dependencies, compiled code, .proto files ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: `prepare` would compile again and needs the dev dependencies.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY proto/client.proto proto/agent.proto proto/
COPY bin/ bin/
COPY --from=build /src/dist/proto/ dist/proto/
COPY --from=build /src/dist/common/ dist/common/
COPY --from=build /src/dist/server/ dist/server/
COPY --from=build /src/dist/agent/ dist/agent/
COPY --from=build /src/dist/ccm-integration/ dist/ccm-integration/
COPY --from=build /src/dist/quickstart/ dist/quickstart/
RUN ln -s /app/bin/proxy-server.js /proxy-server \
 && ln -s /app/bin/proxy-agent.js /proxy-agent \
 && ln -s /app/bin/konnectivity-ccm.js /konnectivity-ccm
# A numeric user, so that runAsNonRoot can verify it; the manifests set the same.
USER 65532:65532

FROM runtime AS proxy-agent
ENTRYPOINT ["/proxy-agent"]

FROM runtime AS konnectivity-ccm
ENTRYPOINT ["/konnectivity-ccm"]

FROM runtime AS proxy-server
ENTRYPOINT ["/proxy-server"]
