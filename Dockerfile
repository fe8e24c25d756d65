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
# The pinned torch venv (tools/dev/torch-venv.sh): the CosyVoice2 engine links the
# libtorch inside it, and its nvidia-* wheels carry the CUDA runtime. It lives
# in a fixed cache path so the runtime stage can copy it to the same place
# (the binary's rpath points there). The wheel cache is dropped.
ENV CV_CACHE_DIR=/opt/cosyvoiced/cache
COPY tools/dev/torch-venv.sh tools/dev/
COPY tools/export/requirements-export.txt tools/export/
RUN bash tools/dev/torch-venv.sh >/dev/null && rm -rf /opt/cosyvoiced/cache/wheels
COPY . .
# .git is not in the build context (.dockerignore): the Makefile's revision
# comes from the GIT_REV build argument instead of `git rev-parse`.
RUN make -j"$(nproc)" GIT_REV="$GIT_REV" WITH_TORCH=1 build/cosyvoiced build/libcosyvoiced_torch.so

# -------------------------------------------------------------- runtime stage
FROM debian:12-slim
LABEL org.opencontainers.image.title="cosyvoiced" \
      org.opencontainers.image.description="HTTP text-to-speech daemon (CosyVoice2 on GPU, espeak-ng fallback)"
ENV DEBIAN_FRONTEND=noninteractive \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# Runtime libraries only: the shared objects the binary links (the Makefile's
# pkg-config set: libmicrohttpd jansson libopusenc opus flac soxr libsystemd
# espeak-ng libutf8proc, plus -lmp3lame), espeak-ng's voice data, and curl
# for the HEALTHCHECK. Keep this list in step with PKGS in the Makefile; the
# ldd check below fails the build when it is not.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libmicrohttpd12 libjansson4 libopusenc0 libopus0 libflac12 libmp3lame0 \
      libsoxr0 libsystemd0 libespeak-ng1 espeak-ng-data libutf8proc2 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 cosyvoiced \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin cosyvoiced \
 && install -d -o 10001 -g 10001 -m 0755 /models
COPY --from=build /opt/cosyvoiced/cache /opt/cosyvoiced/cache
COPY --from=build /src/build/cosyvoiced /usr/local/bin/cosyvoiced
# The CosyVoice2 engine's libtorch plugin, found by the daemon in ../lib beside its binary.
COPY --from=build /src/build/libcosyvoiced_torch.so /usr/local/lib/libcosyvoiced_torch.so
COPY config/cosyvoiced.json /etc/cosyvoiced/cosyvoiced.json
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
# Ready means model loaded and warmed up (can take minutes on a small GPU);
# the check follows the port of the default CMD.
HEALTHCHECK --start-period=600s --interval=15s --timeout=5s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/cosyvoiced"]
CMD ["--listen", "0.0.0.0", "--port", "8080", "--config", "/etc/cosyvoiced/cosyvoiced.json"]
