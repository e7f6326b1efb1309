# The service image. npm installs the production dependencies (among them the Bun pinned in
# package.json); the process runs on that Bun (node_modules/.bin/bun), exactly as on the
# project's machines, so the final stage needs no Node.
# BASE: flashsale/base:bookworm is Debian bookworm (debootstrap, imported by ./scripts/containers,
# which builds this as flashsale/app:local with --network host); where a registry is reachable,
# --build-arg BASE=debian:bookworm-slim gives the same.
ARG BASE=flashsale/base:bookworm

FROM ${BASE} AS dependencies
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y ca-certificates nodejs npm \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# build-ca.pem, when the context has one: certificates npm must trust to reach its registry (a
# network that inspects TLS; ./scripts/containers puts the host's bundle there). Only this stage
# sees it: the final image copies node_modules alone.
COPY package.json package-lock.json build-ca*.pem ./
# Debian's npm 9 refuses `npm ci` on this lock (it wants entries for esbuild's other platforms,
# which npm 11 does without); `npm install --no-save` installs the locked versions all the same.
# Scripts run: bun's install script links the platform binary.
RUN if [ -f build-ca.pem ]; then export NODE_EXTRA_CA_CERTS=/app/build-ca.pem; fi \
  && npm install --omit=dev --no-save --no-audit --no-fund --loglevel=error \
  && node_modules/.bin/bun --version \
  && rm -rf /root/.npm build-ca.pem

FROM ${BASE}
RUN useradd --system --create-home --home-dir /home/app app
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY drizzle ./drizzle
COPY src ./src
USER app
ENV NODE_ENV=production
EXPOSE 3000
STOPSIGNAL SIGTERM
CMD ["node_modules/.bin/bun", "src/main.ts"]
