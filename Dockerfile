# jitgate: one image for every role (serve, bot, proxy, worker); pick the role with the command.
FROM node:20-slim

ENV NODE_ENV=production
WORKDIR /app

COPY package.json package-lock.json ./
# tsx runs the TypeScript sources; dev tools (tests, lint, drizzle-kit) stay out of the image.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY bin ./bin
COPY src ./src
COPY drizzle ./drizzle
COPY examples ./examples
COPY test/fakes ./test/fakes

# Never run as root: the image's `node` user owns nothing it does not need.
USER node

EXPOSE 3000 8080
HEALTHCHECK --interval=15s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/jitgate.js"]
CMD ["serve"]
