# The service image: Node only installs the dependencies; the process runs on the Bun pinned
# in package.json (node_modules/.bin/bun), exactly as on the project's machines.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && npm cache clean --force
COPY . .
USER node
EXPOSE 3000
STOPSIGNAL SIGTERM
CMD ["node_modules/.bin/bun", "src/main.ts"]
