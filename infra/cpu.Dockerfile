# syntax=docker/dockerfile:1
# vecmill for CPU nodes: `vecmill worker`, `produce`, `status` and `run` in one image.
#
#   docker build -f infra/cpu.Dockerfile -t vecmill:0.1.0-cpu .
#   docker run --rm vecmill:0.1.0-cpu worker --redis redis://redis:6379 --metrics-port 9464
#
# Base images are pinned by exact version tag. A digest cannot be stated honestly from where this
# file was written (no registry access); pin one where you build by appending the digest that
# `docker buildx imagetools inspect node:20.20.2-bookworm-slim` prints, as
# node:20.20.2-bookworm-slim@sha256:<digest>. BuildKit reads the sibling cpu.Dockerfile.dockerignore.

FROM node:20.20.2-bookworm-slim AS build
# The lockfile was written by npm 11; the same npm resolves and links it the same way here.
# gcc and libjpeg62-turbo-dev build the native JPEG decoder (packages/worker/native): Debian's
# libjpeg-turbo, the library Debian's Pillow links, so plain JPEGs decode to Pillow's pixels.
RUN npm install --global npm@11.19.1 \
 && apt-get update \
 && apt-get install --yes --no-install-recommends gcc=4:12.2.0-3 libc6-dev libjpeg62-turbo-dev=1:2.1.5-2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/shared/package.json packages/shared/
COPY packages/producer/package.json packages/producer/
COPY packages/worker/package.json packages/worker/
COPY packages/retrieval/package.json packages/retrieval/
COPY packages/cli/package.json packages/cli/
# tools/ (model and dataset generators, bench) is development code: only its manifest, so the
# workspace install resolves; its dependencies are devDependencies, pruned below.
COPY tools/package.json tools/
# --ignore-scripts: the root `prepare` would compile the tests and tools too (the packages are
# compiled below), and no dependency script is needed on CPU: onnxruntime-node ships its CPU
# binaries (its install script, which would download the CUDA provider, is also denied by
# package.json's allowScripts), and sharp
# and msgpackr-extract bring prebuilt binaries as optional packages.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.base.json ./
COPY packages ./packages
RUN npx tsc -b packages/cli \
 && node packages/worker/native/build.mjs --require \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/onnxruntime-node/bin/napi-v6/win32 node_modules/onnxruntime-node/bin/napi-v6/darwin

FROM node:20.20.2-bookworm-slim AS runtime
# tini is PID 1: it forwards SIGTERM to node (which then drains: stops taking jobs, finishes the
# ones it holds, exits 0) and reaps zombies; node as PID 1 would ignore the default signal action.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends tini=0.19.0-1+b3 libjpeg62-turbo=1:2.1.5-2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 vecmill \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/vecmill --shell /usr/sbin/nologin vecmill \
 && mkdir /cache \
 && chown 10001:10001 /cache
WORKDIR /app
# A fixed 256 KiB mmap threshold keeps glibc's heap from fragmenting under the few-MB buffers every
# chunk allocates, so a worker's memory does not creep up over a long run (MALLOC_MMAP_THRESHOLD_BYTES
# in packages/shared/src/config.ts; `vecmill run` outside the images relaunches itself with it).
ENV NODE_ENV=production \
    VECMILL_CACHE=/cache \
    MALLOC_MMAP_THRESHOLD_=262144
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/packages ./packages
RUN ln -s /app/packages/cli/bin/vecmill.js /usr/local/bin/vecmill
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["/usr/bin/tini", "--", "vecmill"]
CMD ["--help"]
