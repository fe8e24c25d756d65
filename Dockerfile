# Dockerfile for cosyvoiced: build on Debian 12, run on Debian 12 slim.
#
#   docker build -t cosyvoiced --build-arg GIT_REV=$(git rev-parse --short HEAD) .
#   docker run --gpus all -p 8080:8080 -v /srv/cosyvoice-models:/models:ro \
#              -e COSYVOICED_MODEL_DIR=/models/cosyvoice2 cosyvoiced
#   docker stop -t 30 <container>    (SIGTERM drains the running job first)
#
# Build arguments:
#   GIT_REV=<rev>          the revision `cosyvoiced --version` and /metrics report (.git is not in the context)
#   TORCH_VERSION=<x.y.z>  another torch than the pin (tools/export/requirements-export.txt: 2.10.0, CUDA 12.8,
#                          NVIDIA drivers of branch 525+); 2.11.0 builds for CUDA 13 (drivers 580+)
# Targets:
#   (default) runtime      the daemon, libtorch and the CUDA libraries it loads, espeak-ng data, config
#   --target tools         the model exporter and the speaker tool, for users without Python:
#     docker run --rm -u $(id -u) -v /srv/models:/models cosyvoiced-tools \
#       export --src /models/CosyVoice2-0.5B --out /models/cosyvoice2 --dtype fp16
#     docker run --rm -u $(id -u) -v /srv/models:/models cosyvoiced-tools \
#       add-speaker --bundle /models/cosyvoice2 --name anna --wav /models/anna.wav --text "..." --model-dir ...
#
# Why Debian 12 in both stages and not an nvidia/cuda image: the runtime stage
# must carry the same shared-library ABI as the stage that linked the binary
# (libmicrohttpd12, libopusenc0, libflac12, ... exactly as tools/dev/deps.sh
# installs them on Debian 12), and the nvidia/cuda images are Ubuntu-based,
# where those package names and versions differ. The GPU needs nothing from
# the image: with `--gpus all` the NVIDIA container toolkit mounts the host's
# driver libraries and /dev/nvidia* into the container (NVIDIA_* variables
# below), and the CUDA runtime libraries the CosyVoice2 engine needs come
# with the pinned libtorch (torch wheel) the engine is built against, not
# from the base image. Without a model the embedded espeak-ng engine serves
# on the CPU, so the same image also runs on hosts without a GPU.

# ---------------------------------------------------------------- build stage
FROM debian:12 AS build
ARG TORCH_VERSION=
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# deps.sh first and alone, so the (slow) package layer is cached across
# source edits. --build: the compiler and the -dev packages only (no test,
# browser or container tools).
COPY tools/dev/deps.sh tools/dev/deps.sh
RUN bash tools/dev/deps.sh --build && rm -rf /var/lib/apt/lists/*
# The pinned torch venv (tools/dev/torch-venv.sh): the CosyVoice2 plugin is
# built against the libtorch inside it and its nvidia-* wheels carry the CUDA
# runtime and headers (no CUDA toolkit needed). Only what the daemon loads
# goes to the runtime stage (make install below), not the venv. A
# TORCH_VERSION other than the pin re-pins first (tools/release/torch-pin.sh),
# so venv, plugin and make install all follow it.
ENV CV_CACHE_DIR=/opt/cosyvoiced/cache
COPY tools/dev/torch-venv.sh tools/dev/
COPY tools/release/torch-pin.sh tools/release/
COPY tools/export/requirements-export.txt tools/export/
# Behind a TLS-intercepting proxy, hand pip the proxy's CA as a build secret
# (`--secret id=pip_cert,src=/path/to/ca.crt`); it is not kept in the image.
# pip's downloads stay in a build cache, outside the layers.
RUN --mount=type=secret,id=pip_cert --mount=type=cache,target=/opt/cosyvoiced/cache/pip \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && if [ -n "$TORCH_VERSION" ]; then bash tools/release/torch-pin.sh "$TORCH_VERSION"; fi \
 && bash tools/dev/torch-venv.sh >/dev/null \
 && rm -rf /opt/cosyvoiced/cache/wheels \
 && ln -s "$(bash tools/dev/torch-venv.sh --dir)" /opt/cosyvoiced/venv
COPY . .
RUN if [ -n "$TORCH_VERSION" ]; then bash tools/release/torch-pin.sh "$TORCH_VERSION"; fi
# .git is not in the build context (.dockerignore): the Makefile's revision
# comes from the GIT_REV build argument instead of `git rev-parse` (declared
# here, so a new revision does not invalidate the package and venv layers).
# The deps stamp is set by hand: deps.sh --build above already ran.
ARG GIT_REV=unknown
RUN mkdir -p build && touch build/.deps-ok \
 && make -j"$(nproc)" GIT_REV="$GIT_REV" WITH_TORCH=1 build/cosyvoiced build/libcosyvoiced_torch.so \
      build/libcosyvoiced_torch_cpu.so
# make install's layout into /stage: the binary, the plugin, libtorch and the
# CUDA libraries it links (no triton, onnx, pip caches, promtool, tests), the
# unit and config. The runtime packages are the Debian packages of what the
# binary really links (ldd), written next to it.
# ldd prints /lib/... while most Debian 12 packages own /usr/lib/... (merged /usr):
# each library is looked up under both names and its real path.
RUN make GIT_REV="$GIT_REV" WITH_TORCH=1 install DESTDIR=/stage PREFIX=/usr/local \
 && ldd build/cosyvoiced | awk '/=> \//{print $3}' | while read -r lib; do \
      for q in "$lib" "/usr$lib" "${lib#/usr}" "$(readlink -f "$lib")"; do \
        dpkg -S "$q" 2>/dev/null && break; \
      done || echo "no-package-owns:$lib"; \
    done | cut -d: -f1 | sort -u | grep -v -x -e libc6 -e libgcc-s1 -e libstdc++6 > /stage/runtime-packages.txt \
 && echo espeak-ng-data >> /stage/runtime-packages.txt && cat /stage/runtime-packages.txt \
 && ! grep -q '^no-package-owns' /stage/runtime-packages.txt

# ---------------------------------------------------------------- tools target
# `docker build --target tools -t cosyvoiced-tools .`: the build stage itself
# (its torch venv, the exporter and the speaker tool with the BlankEN
# tokenizer files) plus an entry point. It adds one small layer to what the
# build already made (no second copy of the 7 GB venv); it is for exporting,
# not for serving. Files it writes are 0644 (directories 0755), readable by
# the daemon's user whatever uid ran the tool (-u $(id -u) keeps them yours).
FROM build AS tools
RUN ln -s /src /opt/cosyvoiced/src \
 && install -m 0755 /src/tools/release/docker-tools.sh /usr/local/bin/cosyvoiced-tools
ENV HOME=/tmp
WORKDIR /models
ENTRYPOINT ["/usr/local/bin/cosyvoiced-tools"]
CMD ["--help"]

# -------------------------------------------------------------- runtime stage
# The last stage: what a plain `docker build .` makes.
FROM debian:12-slim AS runtime
LABEL org.opencontainers.image.title="cosyvoiced" \
      org.opencontainers.image.description="HTTP text-to-speech daemon (CosyVoice2 on GPU, espeak-ng fallback)"
ENV DEBIAN_FRONTEND=noninteractive \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# Runtime libraries only: the Debian packages of the shared objects the binary
# links, as the build stage found them with ldd (libfst22 included), and
# espeak-ng's voice data. The ldd check below still fails the build when one
# is missing.
COPY --from=build /stage/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -qq \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y -qq --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
# HOME is a writable, empty directory: espeak-ng's audio library looks there
# at start-up and logs an error when it does not exist.
RUN groupadd --system --gid 10001 cosyvoiced \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/cosyvoiced --shell /usr/sbin/nologin cosyvoiced \
 && install -d -o 10001 -g 10001 -m 0755 /models /var/lib/cosyvoiced /var/lib/cosyvoiced/voices
ENV HOME=/var/lib/cosyvoiced
# make install's tree: /usr/local/bin/cosyvoiced and /usr/local/lib/cosyvoiced/
# (plugin, libtorch, CUDA libraries: the daemon finds them beside itself).
COPY --from=build /stage/usr/local /usr/local
COPY --from=build /stage/etc/cosyvoiced /etc/cosyvoiced
# Fail the image build, not the first `docker run`, if a runtime library is
# missing from the list above (the daemon's libraries, and the plugin's whole
# closure: libtorch and the CUDA libraries beside it).
RUN for f in /usr/local/bin/cosyvoiced /usr/local/lib/cosyvoiced/libcosyvoiced_torch.so \
             /usr/local/lib/cosyvoiced/libcosyvoiced_torch_cpu.so; do \
      if ldd "$f" | grep 'not found'; then echo "$f: missing libraries"; exit 1; fi; \
    done \
 && /usr/local/bin/cosyvoiced --version
USER 10001:10001
# Model bundles (read only; point model_dir / COSYVOICED_MODEL_DIR at one).
VOLUME /models
EXPOSE 8080
# Ready means model loaded and warmed up (can take minutes on a small GPU).
# `cosyvoiced --healthcheck` reads the daemon's own flags from PID 1 and the
# same COSYVOICED_* environment, so it follows --port / COSYVOICED_PORT.
HEALTHCHECK --start-period=600s --interval=15s --timeout=5s --retries=3 \
  CMD ["/usr/local/bin/cosyvoiced", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/cosyvoiced"]
CMD ["--listen", "0.0.0.0", "--port", "8080", "--config", "/etc/cosyvoiced/cosyvoiced.json"]
