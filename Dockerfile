# The service image used by compose.yaml: the same `npm install && npm start` a user runs.
FROM node:20-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json bunfig.toml ./
COPY sql ./sql
COPY src ./src
EXPOSE 3604
CMD ["npm", "start"]
