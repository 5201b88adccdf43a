# The service image used by compose.yaml: the project installed as a user installs it, run without npm
# (npm does not pass SIGTERM on, so `docker stop` would orphan the service instead of stopping it gracefully).
FROM node:20-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json bunfig.toml ./
COPY sql ./sql
COPY src ./src
EXPOSE 3604
STOPSIGNAL SIGTERM
CMD ["node_modules/.bin/bun", "src/main.ts", "serve"]
