# jitgate: one image for every role; the command picks it (serve, bot, proxy, worker, migrate…).
#   docker build -t jitgate .
#   docker run --rm -e DATABASE_URL=… -e REDIS_URL=… -e JITGATE_POLICY=… jitgate proxy
# test/ is never copied (and .dockerignore keeps it out of the build context too).

# Stage 1: the application files the image ships, and nothing else, type-checked. src/ compiles
# on its own (tsconfig.build.json holds src only; test/ is not here), so an import of test code
# fails the build at this step. The dev dependencies tsc needs are removed in the same step:
# what stage 2 copies from here is the application files alone.
FROM node:20-slim AS app
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json manifest.yml ./
COPY bin ./bin
COPY src ./src
COPY drizzle ./drizzle
COPY examples ./examples
RUN npx tsc -p tsconfig.build.json --noEmit && rm -rf node_modules

# Stage 2: production dependencies only, then the files from stage 1.
FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# tsx (a runtime dependency) runs the TypeScript sources; dev tools stay out of the image.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=app /app ./

# Never run as root. 1000 is the `node` user of the official image; numeric, so Kubernetes can
# check runAsNonRoot against it.
USER 1000:1000

# Every module the service roles and CLI commands load must resolve here, with production
# dependencies and without test/: a stray import of test or dev-only code fails the build, not
# a pod's start. The demo's module loads too; its web console's local Sign in with Slack needs
# oidc-provider, a dev dependency, which it loads only then (and names when it is missing).
RUN TSX_DISABLE_CACHE=1 node --import tsx --input-type=module \
  -e "await import('/app/src/cli/server/run-command.ts'); await import('/app/src/demo/run-demo.ts')"

# PORT: /slack/events (bot), /healthz, /readyz; PROXY_PORT: the proxy; ADMIN_PORT: /metrics.
EXPOSE 3000 8080 9090
# No curl in the image: Node asks /healthz on PORT (plain HTTP; with TLS_CERT set use the
# orchestrator's own probes instead).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz',{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/jitgate.js"]
CMD ["serve"]
