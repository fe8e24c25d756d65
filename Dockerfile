# Dockerfile for cosyvoiced: build on Debian 12, run on Debian 12 slim.
#
#   docker build -t cosyvoiced --build-arg GIT_REV=$(git rev-parse --short HEAD) .
#   docker run --gpus all -p 8080:8080 -v /srv/cosyvoice-models:/models \
#              -e COSYVOICED_MODEL_DIR=/models/cosyvoice2 cosyvoiced
#   docker stop -t 30 <container>    (SIGTERM drains the running job first)
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
ARG GIT_REV=unknown
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# deps.sh first and alone, so the (slow) package layer is cached across
# source edits. It installs the build and test packages with apt-get and
# unpacks promtool into ~/.cache (harmless here, used by `make test`).
COPY tools/dev/deps.sh tools/dev/deps.sh
RUN bash tools/dev/deps.sh && rm -rf /var/lib/apt/lists/*
# The pinned torch venv (tools/dev/torch-venv.sh): the CosyVoice2 plugin is
# built against the libtorch inside it and its nvidia-* wheels carry the CUDA
# runtime and headers (no CUDA toolkit needed). Only what the daemon loads
# goes to the runtime stage (make install below), not the venv.
ENV CV_CACHE_DIR=/opt/cosyvoiced/cache
COPY tools/dev/torch-venv.sh tools/dev/
COPY tools/export/requirements-export.txt tools/export/
RUN bash tools/dev/torch-venv.sh >/dev/null && rm -rf /opt/cosyvoiced/cache/wheels
COPY . .
# .git is not in the build context (.dockerignore): the Makefile's revision
# comes from the GIT_REV build argument instead of `git rev-parse`.
RUN make -j"$(nproc)" GIT_REV="$GIT_REV" WITH_TORCH=1 build/cosyvoiced build/libcosyvoiced_torch.so
# make install's layout into /stage: the binary, the plugin, libtorch and the
# CUDA libraries it links (no triton, onnx, pip caches, promtool, tests), the
# unit and config. The runtime packages are the Debian packages of what the
# binary really links (ldd), written next to it.
RUN make GIT_REV="$GIT_REV" WITH_TORCH=1 install DESTDIR=/stage PREFIX=/usr/local \
 && ldd build/cosyvoiced | awk '/=> \//{print $3}' | xargs -r dpkg -S 2>/dev/null | cut -d: -f1 \
      | sort -u | grep -v -x -e libc6 -e libgcc-s1 -e libstdc++6 > /stage/runtime-packages.txt \
 && echo espeak-ng-data >> /stage/runtime-packages.txt && cat /stage/runtime-packages.txt

# -------------------------------------------------------------- runtime stage
FROM debian:12-slim
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
# missing from the list above.
RUN if ldd /usr/local/bin/cosyvoiced | grep -q 'not found'; then \
      ldd /usr/local/bin/cosyvoiced; exit 1; \
    fi \
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
