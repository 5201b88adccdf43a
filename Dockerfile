# The service image used by compose.yaml: one binary on a distroless base.
#   docker build --build-arg BUILD_COMMIT=$(git rev-parse --short HEAD) -t candlekeep .
# Stage 1 installs the project as a user does (npm brings Bun) and compiles dist/candlekeep, which carries the code,
# the SQL migrations, PGlite's WASM and data bundle and the TimescaleDB extension. Built on the image's own
# platform, so `docker buildx build --platform linux/arm64` gives an arm64 binary.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json bunfig.toml ./
COPY scripts ./scripts
COPY sql ./sql
COPY src ./src
# No .git in the build context (.dockerignore): the commit that --version reports comes in as an argument.
ARG BUILD_COMMIT=unknown
RUN BUILD_COMMIT=${BUILD_COMMIT} npm run build && ./dist/candlekeep --version
# The data directory, owned by the runtime user: a fresh named volume copies this ownership.
RUN mkdir -p /out/data

# Stage 2: the binary links only glibc (libc, libpthread, libdl, libm: see `ldd dist/candlekeep`), so distroless
# "base" is enough: glibc, CA certificates, tzdata, a writable /tmp (the TimescaleDB bundle is written out there at
# each start, and removed), no shell, no package manager. debian:bookworm-slim works the same, with a shell.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /src/dist/candlekeep /app/candlekeep
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV DATA_DIR=/data PORT=3604
VOLUME ["/data"]
EXPOSE 3604
# The binary is PID 1 and handles SIGTERM itself: the current page commits, streams are handed over, the database
# closes, `{"command":"serve","status":"stopped"}` is printed, exit 0 — within 10 s (give `docker stop` at least that).
STOPSIGNAL SIGTERM
# No curl here: the binary asks itself (GET /api/data/ready on $PORT; exit 0 when ready).
HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=3 CMD ["/app/candlekeep", "healthcheck", "--timeout", "5"]
ENTRYPOINT ["/app/candlekeep"]
CMD ["serve"]
