# syntax=docker/dockerfile:1
# vecmill for NVIDIA GPU nodes: onnxruntime's CUDA execution provider on CUDA 12 with cuDNN 9.
# Run workers with `--device cuda` (or `auto`) on a node with the NVIDIA driver and device plugin.
#
#   docker build -f infra/cuda.Dockerfile -t vecmill:0.1.0-cuda .
#   docker run --rm --gpus 1 vecmill:0.1.0-cuda worker --device cuda --redis redis://redis:6379
#
# Base images are pinned by exact version tag. A digest cannot be stated honestly from where this
# file was written (no registry access); pin one where you build by appending the digest that
# `docker buildx imagetools inspect <image>` prints. BuildKit reads cuda.Dockerfile.dockerignore.

FROM node:20.20.2-bookworm-slim AS build
# The lockfile was written by npm 11, whose install-script policy (allowScripts) is used below.
# gcc and libjpeg62-turbo-dev build the native JPEG decoder (packages/worker/native): Debian's
# libjpeg-turbo, the library Debian's Pillow links, so plain JPEGs decode to Pillow's pixels.
RUN npm install --global npm@11.19.1 \
 && apt-get update \
 && apt-get install --yes --no-install-recommends tini=0.19.0-1+b3 gcc=4:12.2.0-3 libc6-dev libjpeg62-turbo-dev=1:2.1.5-2 \
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
# --ignore-scripts: the root `prepare` would compile the tests and tools too (done below instead).
RUN npm ci --ignore-scripts --no-audit --no-fund
# The CUDA provider's libraries are not in the npm package: onnxruntime-node's postinstall
# downloads them (from NuGet) into node_modules/onnxruntime-node/bin/napi-v6/linux/x64/.
#  - ONNXRUNTIME_NODE_INSTALL=cuda12 asks for them.
#  - package.json's allowScripts denies onnxruntime-node's script (so CPU installs never download
#    the provider), and npm 11 takes the first allowScripts layer that has any entry: package.json
#    beats .npmrc, and --allow-scripts is refused in a project install (EALLOWSCRIPTS). So this
#    stage's copy of package.json approves it instead; `npm rebuild` then runs the postinstall.
RUN npm pkg set allowScripts.onnxruntime-node=true --json \
 && ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --foreground-scripts \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so
COPY tsconfig.base.json ./
COPY packages ./packages
# Ubuntu 24.04 has no libjpeg62-turbo, so Debian's libjpeg.so.62 travels beside the addon (which
# is linked with rpath $ORIGIN and finds it there).
RUN npx tsc -b packages/cli \
 && node packages/worker/native/build.mjs --require \
 && cp -L "$(dpkg-query -L libjpeg62-turbo | grep '/libjpeg\.so\.62$')" packages/worker/native/build/ \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/onnxruntime-node/bin/napi-v6/win32 node_modules/onnxruntime-node/bin/napi-v6/darwin

# CUDA 12 runtime libraries (cuBLAS, cuFFT, cuRAND, NVRTC) and cuDNN 9, as onnxruntime-node 1.30's
# CUDA 12 provider needs; the driver comes from the node through the NVIDIA container toolkit.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS runtime
# node is one self-contained binary; Ubuntu 24.04's glibc is newer than the Debian 12 it was built on.
COPY --from=build /usr/local/bin/node /usr/local/bin/node
# tini is PID 1: it forwards SIGTERM to node (which then drains: stops taking jobs, finishes the
# ones it holds, exits 0) and reaps zombies; node as PID 1 would ignore the default signal action.
# (Debian's tini package ships this static build beside /usr/bin/tini.)
COPY --from=build /usr/bin/tini-static /usr/bin/tini
RUN groupadd --gid 10001 vecmill \
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
